"""Database tables of a station (SQLAlchemy 2 declarative).

Changing a table means adding an Alembic migration under ``migrations/versions``;
the station upgrades its database to head at start-up.
"""
from __future__ import annotations

import datetime as dt
from typing import Any, Optional

from sqlalchemy import (JSON, BigInteger, Boolean, DateTime, Float, ForeignKey, Index, Integer, LargeBinary,
                        String, Text, UniqueConstraint)
from sqlalchemy import text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


def utcnow() -> dt.datetime:
    # Stored naive in UTC: SQLite has no time zones, and one convention everywhere
    # keeps comparisons (since/until filters) correct on both backends.
    return dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)


def iso_utc(t: Optional[dt.datetime]) -> Optional[str]:
    """A stored (naive UTC) time as ISO 8601 with its Z, as every answer gives it."""
    return None if t is None else t.replace(tzinfo=dt.timezone.utc).isoformat().replace("+00:00", "Z")


class Base(DeclarativeBase):
    pass


class Inspection(Base):
    __tablename__ = "inspections"
    __table_args__ = (
        UniqueConstraint("part_id", "image_sha256", name="uq_inspections_part_image"),
        Index("ix_inspections_line_created", "line", "created_at"),
        Index("ix_inspections_product_created", "product", "created_at"),
        Index("ix_inspections_image_sha256", "image_sha256"),   # the disk keeper, re-score comparisons
        Index("ix_inspections_test_part", "test_part", "created_at"),   # the test-part checks (line.test_parts)
        # the gallery's lot and defect-type filters, newest first (migration 0025)
        Index("ix_inspections_lot_id", "lot", "id"),
        # a part's other inspections on its line, newest first (migration 0028; station.part_history)
        Index("ix_inspections_part_line_id", "part_id", "line", "product", "id"),
        # a station's parts by id, for the line alarms' reads after the last part counted
        # (migration 0029; line.alarms)
        Index("ix_inspections_line_station_id", "line", "station", "id"),
        # a station's production parts of each verdict by time, and its test parts by time:
        # the line view's shift counters count each along these, no sort of the shift's parts
        # (migration 0031; server.routers.live); partial, so each part is in one of the two
        Index("ix_inspections_production_verdict", "line", "station", "verdict", "created_at",
              postgresql_where=text("test_part IS NULL"), sqlite_where=text("test_part IS NULL")),
        Index("ix_inspections_test_station", "line", "station", "created_at",
              postgresql_where=text("test_part IS NOT NULL"), sqlite_where=text("test_part IS NOT NULL")),
        Index("ix_inspections_defect_type_id", "defect_type", "id", postgresql_where=text("defect_type IS NOT NULL"),
              sqlite_where=text("defect_type IS NOT NULL")),
        # a part's inspections by its serial (a PLC's PartTag; migration 0030; the list's serial filter)
        Index("ix_inspections_serial_id", "serial", "id", postgresql_where=text("serial IS NOT NULL"),
              sqlite_where=text("serial IS NOT NULL")),
        # the audit sample's parts, reviewed or not, for each version's rates on it (migration
        # 0026): partial, a few parts in a hundred; the condition as queries write it
        # (SQLite uses a partial index only where the query's condition reads the same)
        Index("ix_inspections_audit_sample", "product", "created_at", postgresql_where=text("audit_sample = true"),
              sqlite_where=text("audit_sample = 1")),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    part_id: Mapped[str] = mapped_column(String(200))
    line: Mapped[str] = mapped_column(String(100))
    station: Mapped[str] = mapped_column(String(100))
    product: Mapped[str] = mapped_column(String(100))
    lot: Mapped[Optional[str]] = mapped_column(String(200), nullable=True)
    serial: Mapped[Optional[str]] = mapped_column(String(200), nullable=True)
    source: Mapped[str] = mapped_column(String(50), default="api")     # api | folder | camera
    verdict: Mapped[str] = mapped_column(String(16), index=True)          # OK | NG | REVIEW
    score: Mapped[float] = mapped_column(Float)
    threshold: Mapped[float] = mapped_column(Float)
    # OK at or below it, REVIEW up to ``threshold``; None: no review band (or an older record)
    review_threshold: Mapped[Optional[float]] = mapped_column(Float, nullable=True)
    pixel_threshold: Mapped[float] = mapped_column(Float)
    model_id: Mapped[str] = mapped_column(String(128))
    model_version: Mapped[str] = mapped_column(String(100))
    registry_version: Mapped[Optional[int]] = mapped_column(Integer, nullable=True)
    regions: Mapped[Any] = mapped_column(JSON, default=list)
    timings_ms: Mapped[Any] = mapped_column(JSON, default=dict)
    image_sha256: Mapped[str] = mapped_column(String(64))
    image_width: Mapped[int] = mapped_column(Integer)
    image_height: Mapped[int] = mapped_column(Integer)
    image_key: Mapped[Optional[str]] = mapped_column(String(200), nullable=True)
    heatmap_key: Mapped[Optional[str]] = mapped_column(String(200), nullable=True)
    heatmap_scale: Mapped[Optional[float]] = mapped_column(Float, nullable=True)
    overlay_key: Mapped[Optional[str]] = mapped_column(String(200), nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow, index=True)
    reviewed: Mapped[bool] = mapped_column(Boolean, default=False, index=True)
    review_label: Mapped[Optional[str]] = mapped_column(String(20), nullable=True)   # good | defect
    reviewer: Mapped[Optional[str]] = mapped_column(String(100), nullable=True)
    review_note: Mapped[Optional[str]] = mapped_column(Text, nullable=True)
    reviewed_at: Mapped[Optional[dt.datetime]] = mapped_column(DateTime, nullable=True)
    defect_type: Mapped[Optional[str]] = mapped_column(String(100), nullable=True)   # latest review's
    # where the latest review's escape was found (reviews.FOUND_BY; migration 0035): an OK
    # part reviewed as a defect, found by the audit sample, the customer...; None: not said
    found_by: Mapped[Optional[str]] = mapped_column(String(20), nullable=True)
    # kept at random whatever the verdict (StationConfig.audit_sample_rate): the unbiased
    # sample of the line that retraining may learn from
    audit_sample: Mapped[bool] = mapped_column(Boolean, default=False, server_default=text("false"))
    # A test part (line.test_parts): its name and the verdict it had to get; NULL for the
    # line's own parts. Such records stay out of the counts the plant reports by.
    test_part: Mapped[Optional[str]] = mapped_column(String(200), nullable=True)
    test_expected: Mapped[Optional[str]] = mapped_column(String(16), nullable=True)
    # what was off about the photo against the model's good photos (vision.photo_check); NULL: nothing
    photo_issues: Mapped[Optional[Any]] = mapped_column(JSON(none_as_null=True), nullable=True)


class TestPart(Base):
    """A part of known verdict (a "red rabbit": a defect the station must reject; a good
    part it must pass; a limit sample it must send to review), put through the line each
    shift to prove the station still judges right (see line.test_parts)."""

    __tablename__ = "test_parts"
    __table_args__ = (UniqueConstraint("product", "name", name="uq_test_parts_product_name"),)
    __test__ = False   # not a pytest class, whatever its name

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    product: Mapped[str] = mapped_column(String(100))
    name: Mapped[str] = mapped_column(String(200))          # the serial or part id it is sent with
    expect: Mapped[str] = mapped_column(String(16))          # OK | NG | REVIEW
    description: Mapped[Optional[str]] = mapped_column(Text, nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    created_by: Mapped[Optional[str]] = mapped_column(String(100), nullable=True)
    retired_at: Mapped[Optional[dt.datetime]] = mapped_column(DateTime, nullable=True)
    retired_by: Mapped[Optional[str]] = mapped_column(String(100), nullable=True)


class ChangeLogEntry(Base):
    """One change to the station's settings: who, when, what (see line.audit); only ever added."""

    __tablename__ = "change_log"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow, index=True)
    actor: Mapped[Optional[str]] = mapped_column(String(100), nullable=True)   # a user, a key's name, "cli (root)"
    action: Mapped[str] = mapped_column(String(50), index=True)               # model.activated, key.revoked ...
    subject: Mapped[str] = mapped_column(String(320))                         # cell/L1 v3, key 12 (line-pc) ...
    details: Mapped[Any] = mapped_column(JSON, default=dict)


class LineAlarm(Base):
    """A station that rejected part after part (see line.alarms): raised once, latched
    until a person or the PLC acknowledges it; only ever added to and acknowledged."""

    __tablename__ = "alarms"
    __table_args__ = (Index("ix_alarms_station_acked", "line", "station", "acked_at"),
                      Index("ix_alarms_raised_at", "raised_at"),
                      # one active alarm of a kind per station, whichever process raises it
                      Index("uq_alarms_active", "line", "station", "kind", unique=True,
                            sqlite_where=text("acked_at IS NULL"), postgresql_where=text("acked_at IS NULL")))

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    line: Mapped[str] = mapped_column(String(100))
    station: Mapped[str] = mapped_column(String(100))
    product: Mapped[str] = mapped_column(String(100))        # of the part that raised it
    kind: Mapped[str] = mapped_column(String(20))            # line.alarms.KINDS
    message: Mapped[str] = mapped_column(Text)
    raised_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    inspection_id: Mapped[int] = mapped_column(Integer)       # the part that raised it (0: no_verdict, no record)
    first_inspection_id: Mapped[int] = mapped_column(Integer)  # the first part of the run or window
    # no_verdict: the PLC answer (line_signals) that raised it; its acked_after_id is then
    # the station's newest answer when acknowledged, not a part
    signal_id: Mapped[Optional[int]] = mapped_column(Integer, nullable=True)
    parts: Mapped[int] = mapped_column(Integer)               # parts looked at (the run, the window)
    rejected: Mapped[int] = mapped_column(Integer)            # of them not passed (run) or NG (rate)
    acked_at: Mapped[Optional[dt.datetime]] = mapped_column(DateTime, nullable=True)
    acked_by: Mapped[Optional[str]] = mapped_column(String(100), nullable=True)
    ack_note: Mapped[Optional[str]] = mapped_column(Text, nullable=True)
    # when it is next escalated if still unacknowledged (the raising station's escalate_min,
    # then every escalate_again_min; None: not again), when it first was and how many times
    # (each by whichever process on the database marks it first)
    escalate_at: Mapped[Optional[dt.datetime]] = mapped_column(DateTime, nullable=True)
    escalated_at: Mapped[Optional[dt.datetime]] = mapped_column(DateTime, nullable=True)
    escalations: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    escalate_again_min: Mapped[Optional[float]] = mapped_column(Float, nullable=True)
    # what it turned out to be (line.alarm_causes), chosen on acknowledgement: what stops the line
    ack_cause: Mapped[Optional[str]] = mapped_column(String(20), nullable=True)
    # the station's newest part when acknowledged: it and the parts before never raise this kind again
    acked_after_id: Mapped[Optional[int]] = mapped_column(Integer, nullable=True)


class AlarmCause(Base):
    """A cause of the plant's own an alarm may turn out to be (line.alarm_causes), beside
    the built-in six; ``code`` is the PLC's number for it, kept for good."""

    __tablename__ = "alarm_causes"

    key: Mapped[str] = mapped_column(String(20), primary_key=True)
    label: Mapped[str] = mapped_column(String(100))
    code: Mapped[int] = mapped_column(Integer, unique=True)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    created_by: Mapped[Optional[str]] = mapped_column(String(100), nullable=True)
    retired_at: Mapped[Optional[dt.datetime]] = mapped_column(DateTime, nullable=True)
    retired_by: Mapped[Optional[str]] = mapped_column(String(100), nullable=True)


class DataFolder(Base):
    """A data folder (models, images, maps) a station on this PostgreSQL database keeps its
    files in (line.data_folders): the records name files that only that folder holds."""

    __tablename__ = "data_folders"

    folder_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    host: Mapped[str] = mapped_column(String(255))
    path: Mapped[str] = mapped_column(Text)
    first_seen: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    last_seen: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)


class StationAlarmRules(Base):
    """One station's own alarm rules (see line.alarm_rules): each setting left empty
    follows the process's default; a change is in the change log."""

    __tablename__ = "alarm_rules"

    line: Mapped[str] = mapped_column(String(100), primary_key=True)
    station: Mapped[str] = mapped_column(String(100), primary_key=True)
    ng_run: Mapped[Optional[int]] = mapped_column(Integer, nullable=True)
    ng_rate: Mapped[Optional[float]] = mapped_column(Float, nullable=True)
    rate_window: Mapped[Optional[int]] = mapped_column(Integer, nullable=True)   # "window" is reserved in SQL
    photo_run: Mapped[Optional[int]] = mapped_column(Integer, nullable=True)
    no_verdict_run: Mapped[Optional[int]] = mapped_column(Integer, nullable=True)
    escalate_min: Mapped[Optional[float]] = mapped_column(Float, nullable=True)
    escalate_again_min: Mapped[Optional[float]] = mapped_column(Float, nullable=True)
    drift_parts: Mapped[Optional[int]] = mapped_column(Integer, nullable=True)     # migration 0034
    updated_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    updated_by: Mapped[Optional[str]] = mapped_column(String(100), nullable=True)


class RecordsKept(Base):
    """One row: parts recorded before ``kept_since`` are not all kept (line.record_keeper);
    moved forward by each deletion of old records, whichever process made it."""

    __tablename__ = "records_kept"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)     # always 1
    kept_since: Mapped[dt.datetime] = mapped_column(DateTime)
    keep_days: Mapped[float] = mapped_column(Float)
    updated_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)


class SignInFailure(Base):
    """A sign-in with a password that failed (or is still being checked) from a name or an
    address (line.sign_ins): in the database, so every server process and every station on
    one database counts the same tries, and a restart does not hand a guesser new ones."""

    __tablename__ = "sign_in_failures"
    __table_args__ = (Index("ix_sign_in_failures_who_at", "who", "at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    who: Mapped[str] = mapped_column(String(300))     # "name:<lower-cased name>" or "addr:<client address>"
    at: Mapped[dt.datetime] = mapped_column(DateTime, index=True)


class WriteCheck(Base):
    """Rows a station's health probe writes (64 kB) and deletes again while a refused
    write's fault stands: the write that shows the database takes parts again."""

    __tablename__ = "write_checks"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    written_at: Mapped[dt.datetime] = mapped_column(DateTime)
    payload: Mapped[bytes] = mapped_column(LargeBinary)


class Review(Base):
    """One person's judgement of a part; appended, never changed (the part keeps the latest)."""

    __tablename__ = "reviews"
    __table_args__ = (Index("ix_reviews_inspection_id", "inspection_id", "id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    inspection_id: Mapped[int] = mapped_column(ForeignKey("inspections.id"))
    label: Mapped[str] = mapped_column(String(20))                       # good | defect
    defect_type: Mapped[Optional[str]] = mapped_column(String(100), nullable=True)
    reviewer: Mapped[Optional[str]] = mapped_column(String(100), nullable=True)
    note: Mapped[Optional[str]] = mapped_column(Text, nullable=True)
    verdict_at_review: Mapped[str] = mapped_column(String(16))          # what the model had said
    found_by: Mapped[Optional[str]] = mapped_column(String(20), nullable=True)   # an escape's: reviews.FOUND_BY
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)


class ProductSettings(Base):
    """Settings of one product (the defect types its reviewers choose from)."""

    __tablename__ = "products"

    product: Mapped[str] = mapped_column(String(100), primary_key=True)
    defect_types: Mapped[Any] = mapped_column(JSON)
    updated_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    updated_by: Mapped[Optional[str]] = mapped_column(String(100), nullable=True)


class ModelShadow(Base):
    """The candidate version judging every new part of a product/line beside the active one."""

    __tablename__ = "model_shadows"

    product: Mapped[str] = mapped_column(String(100), primary_key=True)
    line: Mapped[str] = mapped_column(String(100), primary_key=True)
    model_version_id: Mapped[int] = mapped_column(ForeignKey("model_versions.id"))
    started_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    started_by: Mapped[Optional[str]] = mapped_column(String(100), nullable=True)


class ShadowResult(Base):
    """A shadow version's verdict on one part: stored for comparison, never signalled."""

    __tablename__ = "shadow_results"
    __table_args__ = (UniqueConstraint("model_version_id", "inspection_id", name="uq_shadow_results_version_part"),
                      Index("ix_shadow_results_inspection_id", "inspection_id"))

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    inspection_id: Mapped[int] = mapped_column(ForeignKey("inspections.id"))
    model_version_id: Mapped[int] = mapped_column(ForeignKey("model_versions.id"))
    verdict: Mapped[str] = mapped_column(String(16))
    score: Mapped[float] = mapped_column(Float)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)


class ModelVersion(Base):
    """One uploaded or trained model bundle for a product (optionally one line)."""

    __tablename__ = "model_versions"
    __table_args__ = (
        UniqueConstraint("product", "line", "version", name="uq_model_versions_version"),
        # at most one active version per product/line, enforced by the database so two
        # stations (or two requests) activating at once cannot leave both active
        Index("uq_model_versions_one_active", "product", "line", unique=True,
              sqlite_where=text("active"), postgresql_where=text("active")),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    product: Mapped[str] = mapped_column(String(100), index=True)
    line: Mapped[str] = mapped_column(String(100), default="")   # "" = every line of the product
    version: Mapped[int] = mapped_column(Integer)                # 1, 2, 3 ... per product+line
    model_id: Mapped[str] = mapped_column(String(128))
    model_version: Mapped[str] = mapped_column(String(100), default="")
    file_key: Mapped[str] = mapped_column(String(200))
    note: Mapped[Optional[str]] = mapped_column(Text, nullable=True)
    uploaded_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    uploaded_by: Mapped[Optional[str]] = mapped_column(String(100), nullable=True)
    active: Mapped[bool] = mapped_column(Boolean, default=False)
    activated_at: Mapped[Optional[dt.datetime]] = mapped_column(DateTime, nullable=True)
    # read from the bundle at upload, so listing versions loads no model (None: uploaded
    # before these were recorded)
    threshold: Mapped[Optional[float]] = mapped_column(Float, nullable=True)
    review_threshold: Mapped[Optional[float]] = mapped_column(Float, nullable=True)
    detector: Mapped[Optional[str]] = mapped_column(String(50), nullable=True)
    train_images: Mapped[Optional[int]] = mapped_column(Integer, nullable=True)
    trained_from: Mapped[Optional[str]] = mapped_column(Text, nullable=True)
    # what it looks at: "mobilenet_v2 320x192 + 0.7x" (registry.model_facts)
    features: Mapped[Optional[str]] = mapped_column(String(100), nullable=True)


class ModelActivation(Base):
    """History of activations, so a rollback goes back to what ran before."""

    __tablename__ = "model_activations"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    product: Mapped[str] = mapped_column(String(100))
    line: Mapped[str] = mapped_column(String(100))
    model_version_id: Mapped[int] = mapped_column(ForeignKey("model_versions.id"))
    activated_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    activated_by: Mapped[Optional[str]] = mapped_column(String(100), nullable=True)
    # undone by a rollback: the next rollback walks past it (None: it stands)
    rolled_back_at: Mapped[Optional[dt.datetime]] = mapped_column(DateTime, nullable=True)
    rolled_back_by: Mapped[Optional[str]] = mapped_column(String(100), nullable=True)


class ApiKey(Base):
    __tablename__ = "api_keys"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    prefix: Mapped[str] = mapped_column(String(16), unique=True)
    key_hash: Mapped[str] = mapped_column(String(64))
    role: Mapped[str] = mapped_column(String(20))
    name: Mapped[Optional[str]] = mapped_column(String(100), nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    revoked: Mapped[bool] = mapped_column(Boolean, default=False)


class Job(Base):
    """A background job (training); its state survives a restart as 'interrupted'."""

    __tablename__ = "jobs"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    kind: Mapped[str] = mapped_column(String(30))
    status: Mapped[str] = mapped_column(String(20), default="queued")  # queued running done failed interrupted
    progress: Mapped[float] = mapped_column(Float, default=0.0)
    message: Mapped[Optional[str]] = mapped_column(Text, nullable=True)
    params: Mapped[Any] = mapped_column(JSON, default=dict)
    result: Mapped[Any] = mapped_column(JSON, nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    finished_at: Mapped[Optional[dt.datetime]] = mapped_column(DateTime, nullable=True)


class OutboxEvent(Base):
    """A result or event waiting to leave the station (see :mod:`lineguard.line.outbox`).

    Written in the same transaction as the record it reports, so a committed part is
    always signalled and a signalled part is always recorded. ``key`` is the
    idempotency key consumers use to drop a second delivery of the same message.
    """

    __tablename__ = "outbox"
    __table_args__ = (Index("ix_outbox_line_id", "line", "id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    key: Mapped[str] = mapped_column(String(36), unique=True)
    event: Mapped[str] = mapped_column(String(20))               # inspection | review | model
    line: Mapped[str] = mapped_column(String(100))               # delivery is in order per line
    payload: Mapped[Any] = mapped_column(JSON)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow, index=True)


class OutboxDelivery(Base):
    """One outbox row handed to one sink: delivered (acknowledged) or refused by it."""

    __tablename__ = "outbox_deliveries"

    outbox_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    sink: Mapped[str] = mapped_column(String(200), primary_key=True)
    status: Mapped[str] = mapped_column(String(16))              # delivered | refused | skipped
    attempts: Mapped[int] = mapped_column(Integer, default=1)
    error: Mapped[Optional[str]] = mapped_column(Text, nullable=True)
    delivered_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)


class OutboxSink(Base):
    """A sink this database has delivered to, and the first outbox row it owes.

    A sink configured today receives what happens from today on, not years of history.
    """

    __tablename__ = "outbox_sinks"

    sink: Mapped[str] = mapped_column(String(200), primary_key=True)
    since_id: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)


class LineSignal(Base):
    """What the station answered the PLC for one trigger, and why.

    A trigger answered NG without a verdict of the model (inspection window missed,
    no image, model or storage fault) has no inspection record; this row is where
    that part's reject and its reason are kept.
    """

    __tablename__ = "line_signals"
    __table_args__ = (Index("ix_line_signals_line_triggered", "line", "triggered_at"),
                      # a station's newest answers (the no_verdict alarm's run, its acknowledgement)
                      Index("ix_line_signals_station_id", "line", "station", "id"))

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    protocol: Mapped[str] = mapped_column(String(20))                  # modbus
    line: Mapped[str] = mapped_column(String(100))
    station: Mapped[str] = mapped_column(String(100))
    trigger_seq: Mapped[int] = mapped_column(Integer)                  # the station's trigger count
    # UInt32 on both protocols: BIGINT, as PostgreSQL's INTEGER stops at 2**31 - 1
    part_tag: Mapped[int] = mapped_column(BigInteger, default=0)       # the PLC's part number, echoed
    recipe_id: Mapped[int] = mapped_column(BigInteger, default=0)
    product: Mapped[Optional[str]] = mapped_column(String(100), nullable=True)
    inspection_id: Mapped[Optional[int]] = mapped_column(Integer, nullable=True)   # the verdict sent, if any
    late_inspection_id: Mapped[Optional[int]] = mapped_column(Integer, nullable=True)  # judged after the window
    signal: Mapped[str] = mapped_column(String(8))                     # OK | NG: what the PLC was told
    result_code: Mapped[int] = mapped_column(Integer)
    reason: Mapped[Optional[str]] = mapped_column(Text, nullable=True)
    triggered_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    answered_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)


class User(Base):
    """A person who signs in with a name and password (keys are for machines and scripts)."""

    __tablename__ = "users"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    username: Mapped[str] = mapped_column(String(100), unique=True)
    # "scrypt$n$r$p$salt$hash" (see line.users); never the password itself
    password_hash: Mapped[str] = mapped_column(String(255))
    role: Mapped[str] = mapped_column(String(20))
    disabled: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)


class SignInSession(Base):
    """A browser's signed-in session, made from a key or a user (exactly one of them).

    Only the sha256 of the cookie's token is stored. The session acts with its key's or
    user's current standing: revoking the key or disabling the user ends it.
    """

    __tablename__ = "sign_in_sessions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    key_id: Mapped[Optional[int]] = mapped_column(ForeignKey("api_keys.id"), nullable=True, index=True)
    user_id: Mapped[Optional[int]] = mapped_column(ForeignKey("users.id"), nullable=True, index=True)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    expires_at: Mapped[dt.datetime] = mapped_column(DateTime, index=True)


# 64-bit on PostgreSQL (a re-scored archive can pass 2**31 rows over the years); SQLite's
# INTEGER PRIMARY KEY is already 64-bit and must stay spelled INTEGER to be the rowid.
_BigId = BigInteger().with_variant(Integer, "sqlite")


class RescoreRun(Base):
    """One re-scoring of an archive with one model (``lineguard rescore --station-db``).

    Kept apart from ``inspections`` on purpose: re-scoring last year's images must not
    move the live line counters, the shift's defect rate or the SPC charts. A run is
    the pair (results folder, model id): the same ``--out`` with the same model resumes
    this row; another model needs another ``--out``.
    """

    __tablename__ = "rescore_runs"
    __table_args__ = (UniqueConstraint("out", "model_id", name="uq_rescore_runs_out_model"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    out: Mapped[str] = mapped_column(String(2048))                   # the Parquet folder (absolute) or URL
    images: Mapped[str] = mapped_column(Text)                        # the archive as given: folder, glob, URL
    model_id: Mapped[str] = mapped_column(String(128))
    model_version: Mapped[str] = mapped_column(String(100), default="")
    mode: Mapped[str] = mapped_column(String(200), default="")       # single process | ray ADDRESS xN
    listed: Mapped[int] = mapped_column(Integer, default=0)          # images in the archive at the last start
    # {"OK": n, "NG": n, "REVIEW": n, "error": n}: kept with every chunk, so a list of runs reads no results
    counts: Mapped[Any] = mapped_column(JSON, default=dict)
    starts: Mapped[int] = mapped_column(Integer, default=1)          # 1 + the times it was resumed
    started_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    finished_at: Mapped[Optional[dt.datetime]] = mapped_column(DateTime, nullable=True)   # None: running or stopped
    # a run that ended without finishing and could say so (an error, Ctrl-C, SIGTERM): when
    # and why; both None while it runs, and after a kill -9 (then only updated_at tells)
    stopped_at: Mapped[Optional[dt.datetime]] = mapped_column(DateTime, nullable=True)
    stop_reason: Mapped[Optional[str]] = mapped_column(String(2000), nullable=True)


class RescoreResult(Base):
    """One archive image's result in a run (a row of the run's Parquet, mirrored)."""

    __tablename__ = "rescore_results"
    __table_args__ = (UniqueConstraint("run_id", "path", name="uq_rescore_results_run_path"),
                      Index("ix_rescore_results_run_score", "run_id", "score"),
                      Index("ix_rescore_results_run_verdict", "run_id", "verdict"))

    id: Mapped[int] = mapped_column(_BigId, primary_key=True, autoincrement=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("rescore_runs.id"))
    path: Mapped[str] = mapped_column(String(2048))
    size: Mapped[int] = mapped_column(BigInteger)
    mtime_ns: Mapped[int] = mapped_column(BigInteger)
    sha256: Mapped[Optional[str]] = mapped_column(String(64), nullable=True)      # None: unreadable
    score: Mapped[Optional[float]] = mapped_column(Float, nullable=True)
    verdict: Mapped[Optional[str]] = mapped_column(String(16), nullable=True)     # None when ``error`` is set
    threshold: Mapped[Optional[float]] = mapped_column(Float, nullable=True)
    review_threshold: Mapped[Optional[float]] = mapped_column(Float, nullable=True)
    pixel_threshold: Mapped[Optional[float]] = mapped_column(Float, nullable=True)
    n_regions: Mapped[Optional[int]] = mapped_column(Integer, nullable=True)
    largest_region_area: Mapped[Optional[int]] = mapped_column(BigInteger, nullable=True)
    error: Mapped[Optional[str]] = mapped_column(Text, nullable=True)
    # what the photo check found off, as a part's record lists it (None: nothing, or a run from before)
    photo_issues: Mapped[Optional[Any]] = mapped_column(JSON(none_as_null=True), nullable=True)
    scored_at: Mapped[dt.datetime] = mapped_column(DateTime)


class RescorePart(Base):
    """A Parquet part of a run already copied into ``rescore_results``: what a resumed
    run checks to copy a part written just before a kill, and nothing twice."""

    __tablename__ = "rescore_parts"

    run_id: Mapped[int] = mapped_column(ForeignKey("rescore_runs.id"), primary_key=True)
    name: Mapped[str] = mapped_column(String(200), primary_key=True)
    rows: Mapped[int] = mapped_column(Integer)
    loaded_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)


class ShiftNote(Base):
    """The handover note of one shift and line, written by the shift for the next (see
    line.handover): only ever added; the newest is the note, the earlier ones its history."""

    __tablename__ = "shift_notes"
    __table_args__ = (Index("ix_shift_notes_shift_line", "shift_start", "line", "id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    shift_start: Mapped[dt.datetime] = mapped_column(DateTime)          # the shift's start, UTC: names the shift
    line: Mapped[str] = mapped_column(String(100), default="")         # "": the report of every line
    note: Mapped[str] = mapped_column(Text)                             # "": the note taken back
    written_by: Mapped[Optional[str]] = mapped_column(String(100), nullable=True)
    written_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)


class IssuedReport(Base):
    """A period's report as it was issued (sent to the customer), see line.issued_reports:
    its JSON is what was sent, whatever later reviews change; a row is only ever added, and
    marked withdrawn at most once."""

    __tablename__ = "issued_reports"
    __table_args__ = (Index("ix_issued_reports_window", "kind", "since", "until", "id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    kind: Mapped[str] = mapped_column(String(20))                      # "period"
    since: Mapped[dt.datetime] = mapped_column(DateTime)                # the report's window, UTC
    until: Mapped[dt.datetime] = mapped_column(DateTime)
    line: Mapped[str] = mapped_column(String(100), default="")         # "": every line
    station: Mapped[str] = mapped_column(String(100), default="")
    product: Mapped[str] = mapped_column(String(100), default="")
    issued_by: Mapped[Optional[str]] = mapped_column(String(100), nullable=True)
    issued_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    note: Mapped[str] = mapped_column(Text, default="")
    report: Mapped[str] = mapped_column(Text)                           # the report's JSON as issued
    # withdrawn (sent in error): set once, the report itself unchanged (migration 0037)
    withdrawn_at: Mapped[Optional[dt.datetime]] = mapped_column(DateTime, nullable=True)
    withdrawn_by: Mapped[Optional[str]] = mapped_column(String(100), nullable=True)
    withdrawn_reason: Mapped[Optional[str]] = mapped_column(Text, nullable=True)


class StationRun(Base):
    """One run of a station process, from its start to its stop (see line.handover): the
    gap between a run's last sign of life and the next start is the time no part was judged."""

    __tablename__ = "station_runs"
    __table_args__ = (Index("ix_station_runs_process_started", "process", "started_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    process: Mapped[str] = mapped_column(String(320))                   # the station PC (and process)
    pid: Mapped[Optional[int]] = mapped_column(Integer, nullable=True)
    started_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    seen_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)   # its last sign of life
    stopped_at: Mapped[Optional[dt.datetime]] = mapped_column(DateTime, nullable=True)   # None: never stopped cleanly


class ReferencePhoto(Base):
    """A photo of a good part an engineer gave the station for a product (the photos its
    first model was trained on, on the PC): kept in the data folder's ``reference`` store
    and learnt by every retrain beside the stored parts reviewed good, so parts pile up
    rather than replace (line.reference)."""

    __tablename__ = "reference_photos"
    __table_args__ = (UniqueConstraint("product", "line", "image_sha256", name="uq_reference_photos_image"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    product: Mapped[str] = mapped_column(String(100))
    line: Mapped[str] = mapped_column(String(100), default="")   # "" = every line's retrain learns it
    image_key: Mapped[str] = mapped_column(String(200))
    image_sha256: Mapped[str] = mapped_column(String(64))
    filename: Mapped[Optional[str]] = mapped_column(String(255), nullable=True)
    width: Mapped[int] = mapped_column(Integer)
    height: Mapped[int] = mapped_column(Integer)
    added_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    added_by: Mapped[Optional[str]] = mapped_column(String(100), nullable=True)
