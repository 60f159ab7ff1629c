"""Settings of one inspection station: where data lives and how parts are kept."""
from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Container, Mapping, Optional

if TYPE_CHECKING:
    import datetime as dt

    from .alarm_rules import AlarmRules
    from .shifts import Shift


@dataclass
class RetentionPolicy:
    """Which part images are kept on disk.

    Every inspection is recorded in the database; images cost disk, so by default all
    NG and REVIEW parts keep their image and anomaly map (an operator will look at them) while OK
    parts are sampled: ``ok_sample_rate=0.1`` keeps one OK image in ten. Sampling is
    deterministic in the image hash, so a resubmitted part gets the same decision and
    retraining from stored good parts sees an unbiased sample.
    """

    keep_ng: bool = True
    ok_sample_rate: float = 1.0

    def __post_init__(self) -> None:
        # "10" meant as 10% would otherwise keep every OK image
        if not 0 <= self.ok_sample_rate <= 1:
            raise ValueError(f"ok_sample_rate must be between 0 and 1 (0.1 keeps one OK image in ten), "
                             f"got {self.ok_sample_rate}")

    def keep(self, is_ng: bool, sha256_hex: str) -> bool:
        """``is_ng``: the part is not OK (NG or REVIEW); ``keep_ng`` decides for those."""
        if is_ng:
            return self.keep_ng
        rate = min(max(self.ok_sample_rate, 0.0), 1.0)
        if rate >= 1.0:
            return True
        if rate <= 0.0:
            return False
        return int(sha256_hex[:8], 16) / 0xFFFFFFFF < rate


@dataclass
class StationConfig:
    """Everything a station needs to start; defaults give a working single-PC station.

    ``sqlite_synchronous`` is how hard SQLite works to keep a committed inspection
    (the database runs in WAL mode either way, so a crash never corrupts it):

    - ``"NORMAL"`` (default): a commit reaches the operating system before the part is
      answered, so a crash or ``kill -9`` of the station loses no answered inspection.
      A power cut or kernel panic can lose the last moments of answered inspections
      (those not yet checkpointed; the database itself stays consistent). About 7 ms
      less per part on a typical SSD, which is what keeps the service's overhead small
      next to the model.
    - ``"FULL"``: every commit is fsynced before the answer, so answered inspections
      survive power loss too. Choose it where the station PC has no UPS and a part's
      record matters more than a few ms per part. (``"EXTRA"`` also fsyncs the folder.)
    - ``"OFF"``: for throwaway test stations only; a crash can lose answered parts.

    PostgreSQL keeps its own setting (``synchronous_commit``, on by default: answered
    inspections survive power loss).
    """

    data_dir: Path = Path("./station")
    db_url: Optional[str] = None             # None: SQLite file under data_dir
    db_schema: Optional[str] = None          # PostgreSQL schema (tests, several stations in one DB)
    max_upload_bytes: int = 32 * 1024 * 1024
    # Memory one run of an exported (.onnx) model may take on a part, per pixel of its
    # input (at least 64 MiB), tried in a child process before the model is accepted
    # (runtime.loader.trial_run_memory): a sealed graph can ask for anything, and one that
    # expanded its input to 1.5 GiB a run was accepted and kept the station at 1.8 GB.
    # Real models take ~200 bytes per input pixel (3 MiB at 128 px, 205 MiB at 1024 px):
    # the default is five times that.
    model_run_bytes_per_pixel: int = 1024
    # Pixels a part image may decode to, checked from its header before decoding: a
    # 200 kB PNG can declare 64 MP and take GBs to decode. 26 MP covers 25 MP line
    # cameras (5120x5120); a JPEG over it is decoded at 1/2..1/8 scale when that fits.
    max_image_pixels: int = 26_000_000
    # Parts decoded at once: the decode is where a large image's memory goes, so this
    # (with max_image_pixels) bounds the station's memory when big parts arrive together.
    max_concurrent_decodes: int = 2
    # SPC charts, shift reports and exports run at once (server.report_slots): the others
    # wait their turn without holding a thread a part's upload needs; exports take all but one
    report_slots: int = 2
    # Pixels of the parts being judged at once (decoded image, anomaly map at its size):
    # None = max_image_pixels, i.e. one maximum-size part at a time, small parts freely.
    max_pixels_in_flight: Optional[int] = None
    retention: RetentionPolicy = field(default_factory=RetentionPolicy)
    # GET endpoints without a key or session: off, as part images are the plant's IP;
    # on (``serve --open-reads``) only where every reader on the network may see them
    open_reads: bool = False
    # how long a sign-in lasts (fixed from sign-in, not extended by use): a shift and a margin
    session_hours: float = 12.0
    # Share of parts kept at random whatever their verdict and the retention policy, and
    # flagged: an unbiased sample of the line (rare defects at the line's own rate) that
    # retraining may learn from, unlike the OK parts, which are what the old model passed.
    audit_sample_rate: float = 0.02
    # Part images are deleted, oldest OK parts' first, when the data disk has less free
    # than this (see line.disk; 0: never for space); OK parts' images older than
    # ok_image_days go whatever the disk (None: kept while there is room).
    min_free_gb: float = 2.0
    ok_image_days: Optional[float] = None
    disk_check_s: float = 60.0
    # Parts' records older than this many days are deleted, with their files, except
    # reviewed parts, the audit sample and test-part checks (line.record_keeper; None:
    # every record is kept for good, the default: it is the quality record)
    keep_records_days: Optional[float] = None
    # with keep_records_days: the records are written there (CSV) before they are deleted,
    # with the images of the parts not passed ("ng"), of every part ("all") or none
    archive_records_to: Optional[Path] = None
    archive_images: str = "ng"
    # Files of the image store no record names (left by a crash, see line.sweep) are
    # deleted 10 minutes after start and then every store_sweep_h hours (0: never).
    store_sweep_h: float = 24.0
    # The station's own backups (line.backup; SQLite stations): every backup_every_h
    # hours into backup_to, a folder best on another disk (None: no backups).
    backup_to: Optional[Path] = None
    backup_every_h: float = 24.0
    # Parts waiting for the shadow model (see line.shadow); beyond it they are dropped.
    shadow_queue: int = 8
    sqlite_synchronous: str = "NORMAL"       # see the class docstring: NORMAL survives kill -9, FULL power loss
    webhook_url: Optional[str] = None
    mqtt_url: Optional[str] = None           # mqtt://host:port
    # How long a webhook's receiver may take to answer one message (`serve --webhook-timeout`,
    # LINEGUARD_WEBHOOK_TIMEOUT): one slower is never acknowledged, and each message is
    # sent again after the outbox's backoff (a 3 s receiver was sent its first message 12
    # times in 40 s at the 2 s this was). A line waits for it at most this long per try.
    webhook_timeout_s: float = 10.0
    webhook_retries: int = 3
    # Delivered outbox rows are kept this long (what was sent, for a look back);
    # rows a sink still owes are kept however old (see line.outbox).
    outbox_retention_h: float = 24.0
    # Parts that wait while the model is busy go in together, up to max_batch, where
    # the model judges batches faster (exported models: one part per core); 0 ms of
    # window means a part arriving alone is never held back waiting for company.
    max_batch: int = 16
    batch_window_ms: float = 0.0
    # exported (.onnx) models: "onnxruntime" (default) or "openvino"; precision "bf16"
    # with OpenVINO only (see lineguard.runtime.openvino_detector)
    runtime: Optional[str] = None
    precision: Optional[str] = None
    # The plant's shifts (local wall-clock starts) and time zone (IANA name; None: this
    # PC's zone): counters "this shift" and SPC subgroups by shift follow them.
    shift_starts: tuple[str, ...] = ("06:00", "14:00", "22:00")
    timezone: Optional[str] = None
    # Line alarms (see line.alarms): parts in a row not passed, and the share of NG parts
    # among the last alarm_window, that raise an alarm at a station, and photos the photo
    # check doubts among the last 2N-1 (a lamp, a lens: the camera's alarm) (0: that rule off)
    alarm_ng_run: int = 5
    alarm_ng_rate: float = 0.10
    alarm_window: int = 100
    alarm_photo_run: int = 3
    alarm_no_verdict_run: int = 3
    # parts per group the score-drift alarm compares with the model's first parts (0: off)
    alarm_drift_parts: int = 100
    # minutes an alarm may stay unacknowledged before it is escalated (0: never), then
    # escalated again every alarm_escalate_again_min (0: once)
    alarm_escalate_min: float = 10.0
    alarm_escalate_again_min: float = 0.0
    # What `serve` starts beside the pages: the product and line of its --model, and the
    # PLC links (--modbus-port / --opcua-port) with their camera folders and windows. Kept
    # here, in the one table of LINEGUARD_* variables, so the environment sets them as
    # every other serve setting (LINEGUARD_MODBUS_PORT was "not a lineguard setting" and
    # the station started without its PLC link), and a line or product name the station
    # would refuse on every part is refused at start, whichever way the station starts
    # (a 150-character --line ran, then answered every part NG code 15).
    line: str = ""
    product: Optional[str] = None
    # serve --new-product: --product (or a --recipe's) IS a new product though its name is
    # one keying slip from a known one (cell-ba beside cell-ab); without it refused as a typo.
    # No LINEGUARD_* variable, as --new and --model have none: it is one start's word, and a
    # variable left set would let every later typo of LINEGUARD_PRODUCT through
    new_product: bool = False
    plc_line: Optional[str] = None
    # the station PLC-triggered parts are recorded at ("plc"; with two links plc-modbus and
    # plc-opcua, or NAME-modbus and NAME-opcua): alarm rules, the gallery and reports name it
    plc_station: Optional[str] = None
    modbus_port: Optional[int] = None
    opcua_port: Optional[int] = None
    plc_images: tuple[str, ...] = ()        # "[LINK=]DIR": the camera folder of each link
    plc_image_wait_ms: float = 250.0
    inspection_window_ms: float = 1000.0
    # the link's camera instead of a folder, the address its unsecured Modbus/OPC UA server
    # listens on, and the PLC's recipe table: from the environment too, or a unit's env file
    # held every PLC setting but these, and they had to go on its ExecStart= line
    plc_camera: Optional[str] = None        # --plc-camera SOURCE
    plc_camera_fps: Optional[float] = None
    plc_host: Optional[str] = None          # None: serve's --host
    recipes: tuple[str, ...] = ()           # "ID=PRODUCT" each (none: 1=product)
    # the plant's other stations, "NAME=URL" each (serve --peer): the plant view
    # (GET /api/v1/plant, the Plant page) shows their /health beside this station's, so a
    # line's alarms or a station killed are seen from any station's screen, not only its own
    peers: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        self.data_dir = Path(self.data_dir)
        from .schema_names import check_schema_name
        # a name PostgreSQL would read two ways (hI_walk) ran the station in another's schema
        # (the option's callback names --db-schema; from_env's error, LINEGUARD_DB_SCHEMA)
        check_schema_name(self.db_schema, None)
        for name, option in (("line", "--line"), ("plc_line", "--plc-line"), ("plc_station", "--plc-station"),
                             ("product", "--product")):
            value = getattr(self, name)
            if value is not None and (value.strip() or name == "product"):
                check_part_name(_PART_FIELD[name], value, f"{option} / {env_var_of(name)}")
        for name, option in (("modbus_port", "--modbus-port"), ("opcua_port", "--opcua-port")):
            value = getattr(self, name)
            if value is not None and not 0 < value < 65536:
                raise ValueError(f"{option} {value} is not a TCP port (1..65535)")
        if self.modbus_port is not None and self.modbus_port == self.opcua_port:
            raise ValueError("--modbus-port and --opcua-port must differ")
        self.plc_images = tuple(self.plc_images)
        self.recipes = tuple(self.recipes)
        self.peers = tuple(self.peers)
        peer_list(self.peers)           # a peer that can never be asked stops the start, not the page
        if not 0 <= self.plc_image_wait_ms <= 5000:
            raise ValueError(f"--plc-image-wait-ms must be between 0 and 5000, got {self.plc_image_wait_ms:g}")
        if not self.inspection_window_ms > 0:
            raise ValueError(f"--inspection-window-ms must be above 0, got {self.inspection_window_ms:g}")
        if not self.webhook_timeout_s > 0:
            raise ValueError(f"webhook_timeout_s must be above 0 seconds, got {self.webhook_timeout_s}")
        if self.max_batch < 1:
            raise ValueError(f"max_batch must be at least 1 (1 = one part at a time), got {self.max_batch}")
        if not 0 <= self.batch_window_ms <= 1000:
            raise ValueError(f"batch_window_ms must be between 0 and 1000, got {self.batch_window_ms}")
        if not 0 < self.session_hours <= 24 * 30:
            raise ValueError(f"session_hours must be above 0 and at most 720 (30 days), got {self.session_hours}")
        if not 0 <= self.audit_sample_rate <= 1:
            raise ValueError(f"audit_sample_rate must be between 0 and 1, got {self.audit_sample_rate}")
        if not self.min_free_gb >= 0:
            raise ValueError(f"min_free_gb must be 0 (never delete images for space) or more, got {self.min_free_gb}")
        if self.ok_image_days is not None and not self.ok_image_days > 0:
            raise ValueError(f"ok_image_days must be above 0 (or unset: keep OK images while there is room), "
                             f"got {self.ok_image_days}")
        if self.keep_records_days is not None:
            from .record_keeper import MIN_DAYS
            if not self.keep_records_days >= MIN_DAYS:
                raise ValueError(f"keep_records_days must be at least {MIN_DAYS} (the shift report and SPC compare "
                                 f"with the weeks before; unset: keep every record), got {self.keep_records_days}")
        from .record_keeper import ARCHIVE_IMAGES
        if self.archive_images not in ARCHIVE_IMAGES:
            raise ValueError(f"archive_images is one of {', '.join(ARCHIVE_IMAGES)} (whose part images go to the "
                             f"archive with their records), got {self.archive_images!r}")
        if self.archive_records_to is not None and self.keep_records_days is None:
            raise ValueError("archive_records_to archives the records deleted for their age: it needs "
                             "keep_records_days (without it every record is kept in the database)")
        if not self.store_sweep_h >= 0:
            raise ValueError(f"store_sweep_h must be 0 (never sweep the image store) or more hours, "
                             f"got {self.store_sweep_h}")
        if not self.backup_every_h > 0:
            raise ValueError(f"backup_every_h must be above 0 hours, got {self.backup_every_h}")
        if self.backup_to is not None:
            self.backup_to = Path(self.backup_to)
            if self.sqlite_path is None:
                raise ValueError("--backup-to (LINEGUARD_BACKUP_TO) backs up a SQLite station only. Back a "
                                 "PostgreSQL station up with `pg_dump -Fc` of its database (with --db-schema, of "
                                 "that schema alone: `pg_dump -Fc -n SCHEMA`), then a copy of its whole data folder "
                                 "(images/, models/ and .lineguard-folder, e.g. `cp -a`); restore with pg_restore, "
                                 "then the folder back in place (README: backups)")
        if self.shadow_queue < 1:
            raise ValueError(f"shadow_queue must be at least 1, got {self.shadow_queue}")
        if self.model_run_bytes_per_pixel < 256:
            raise ValueError(f"model_run_bytes_per_pixel must be at least 256 (a real model's run takes ~200 bytes "
                             f"per input pixel; the default is 1024), got {self.model_run_bytes_per_pixel}")
        if self.max_image_pixels < 64:
            raise ValueError(f"max_image_pixels must be at least 64, got {self.max_image_pixels}")
        if self.report_slots < 1:
            raise ValueError(f"report_slots must be at least 1, got {self.report_slots}")
        if self.max_concurrent_decodes < 1:
            raise ValueError(f"max_concurrent_decodes must be at least 1, got {self.max_concurrent_decodes}")
        if self.runtime not in (None, "onnxruntime", "openvino"):
            raise ValueError(f"runtime must be onnxruntime or openvino, got {self.runtime!r}")
        if self.precision not in (None, "fp32", "bf16"):
            raise ValueError(f"precision must be fp32 or bf16, got {self.precision!r}")
        self.alarm_rules   # checked here: a bad alarm setting ends start-up with its reason
        if self.mqtt_url:
            from .sinks import mqtt_address
            mqtt_address(self.mqtt_url)     # a scheme it cannot honour ends start-up, not later
        from .shifts import parse_shift_starts, plant_zone
        parse_shift_starts(self.shift_starts)
        plant_zone(self.timezone)

    def shift_at(self, t_utc: "dt.datetime") -> "Shift":
        """The plant's shift (by these shift starts and time zone) holding a naive-UTC time."""
        from .shifts import parse_shift_starts, plant_zone, shift_of
        return shift_of(t_utc, parse_shift_starts(self.shift_starts), plant_zone(self.timezone))

    def audited_settings(self) -> dict[str, Any]:
        """The settings an auditor asks after, as the change log keeps them (each process's
        start with other ones is an entry, see line.audit.record_start): which records and
        images are kept and for how long, where they are backed up and archived, how
        safely a record is written, who may read without a key, how the model runs, the
        plant's shifts, when a line alarm is raised, and where results go (scheme, host and
        port only: a URL's user, password, path and query may hold secrets). Not the sizes
        and speeds that decide no verdict or record (batching, queues, timeouts)."""
        import time

        from .shifts import parse_shift_starts
        path = (lambda p: None if p is None else str(Path(p).resolve()))
        return {
            "keep_records_days": self.keep_records_days, "archive_records_to": path(self.archive_records_to),
            "archive_images": self.archive_images if self.archive_records_to else None,
            "ok_image_days": self.ok_image_days, "ok_sample_rate": self.retention.ok_sample_rate,
            "keep_ng_images": self.retention.keep_ng, "audit_sample_rate": self.audit_sample_rate,
            "min_free_gb": self.min_free_gb, "store_sweep_h": self.store_sweep_h,
            "backup_to": path(self.backup_to), "backup_every_h": self.backup_every_h if self.backup_to else None,
            "outbox_retention_h": self.outbox_retention_h,
            "sqlite_synchronous": self.sqlite_synchronous if self.sqlite_path else None,
            "webhook": without_secrets(self.webhook_url, "http"), "mqtt": without_secrets(self.mqtt_url, "mqtt"),
            "open_reads": self.open_reads, "session_hours": self.session_hours,
            "max_upload_bytes": self.max_upload_bytes, "max_image_pixels": self.max_image_pixels,
            "runtime": self.runtime, "precision": self.precision,
            "shift_starts": [t.strftime("%H:%M") for t in parse_shift_starts(self.shift_starts)],
            # this PC's zone by its names, not today's abbreviation (CET/CEST would differ by season)
            "timezone": self.timezone or f"this PC's ({'/'.join(dict.fromkeys(time.tzname))})",
            **{f"alarm_{k}": v for k, v in self.alarm_rules.to_dict().items()
               if k not in ("rate_limit", "drift_baseline_parts")},     # derived, not settings
        }

    @property
    def alarm_rules(self) -> "AlarmRules":
        from .alarm_rules import AlarmRules
        return AlarmRules(ng_run=self.alarm_ng_run, ng_rate=self.alarm_ng_rate, window=self.alarm_window,
                          photo_run=self.alarm_photo_run, no_verdict_run=self.alarm_no_verdict_run,
                          escalate_min=self.alarm_escalate_min, escalate_again_min=self.alarm_escalate_again_min,
                          drift_parts=self.alarm_drift_parts)

    @property
    def database_url(self) -> str:
        if self.db_url:
            return self.db_url
        return f"sqlite:///{(self.data_dir / 'lineguard.db').resolve()}"

    @property
    def sqlite_path(self) -> Optional[Path]:
        """The SQLite database file; None for a PostgreSQL station."""
        url = self.database_url
        return Path(url[len("sqlite:///"):]) if url.startswith("sqlite:///") else None

    @classmethod
    def from_env(cls, environ: Optional[Mapping[str, str]] = None, warn: Optional[Callable[[str], None]] = None,
                 serve: bool = True, **overrides) -> "StationConfig":
        """The settings from the LINEGUARD_* variables (the table ``_ENV``), under ``overrides``
        (a command line's options given there; None: not given) and over the defaults.

        Every way a station starts reads them here (``lineguard serve``, ``watch``/``camera
        --data``, uvicorn importing the app): ``serve`` built its own settings and dropped
        LINEGUARD_BACKUP_TO, _SESSION_HOURS, _AUDIT_SAMPLE_RATE and others without a word (a
        station set up that way made no backups). A value the station cannot take raises
        :class:`EnvSettingError` naming its variable; ``warn`` (default: the log) is told
        of each LINEGUARD_* variable no part of lineguard reads, a typo's usual sign.
        ``serve`` False (``watch``/``camera --data``): the settings only ``serve`` acts on
        (SERVE_ONLY: its model's product and line, the PLC links) are not read, so a bad one
        in an environment file shared with serve does not stop a watcher."""
        import logging
        environ = os.environ if environ is None else environ
        for line in unknown_env_warnings(environ):
            (warn or logging.getLogger("lineguard.config").warning)(line)
        given = {k: v for k, v in overrides.items() if v is not None}
        # not even parsed: a value the command line overrides, or one this process never acts
        # on (LINEGUARD_PLC_IMAGES=/cam/a:/cam/b, refused as two unnamed folders, stopped a
        # watcher sharing serve's environment file, and serve given --plc-images)
        unread = set(given) | (set() if serve else set(SERVE_ONLY))
        from_env = env_settings(environ, skip=unread)
        kw = {name: value for name, value in from_env.values()}
        kw.update(given)
        try:
            return cls(**kw)
        except ValueError as exc:
            raise _blame(cls, exc, kw, from_env, environ) from None


def _blame(cls: type, exc: ValueError, kw: dict, from_env: dict, environ: Mapping[str, str]) -> ValueError:
    """The error of settings that cannot start a station, naming the LINEGUARD_* variable at
    fault: the one without which they can (a cross-field one too: LINEGUARD_BACKUP_TO on a
    PostgreSQL station), else the one alone giving the same error; else ``exc`` as it is
    (the fault is the command line's, or several variables' together)."""
    def fails(settings: dict) -> Optional[str]:
        try:
            cls(**settings)
        except ValueError as e:
            return str(e)
        return None
    # the variables of the fields the message names first: LINEGUARD_BACKUP_TO, not the
    # LINEGUARD_DB of a PostgreSQL station, is the one without which a backup_to error goes
    suspects = sorted(from_env.items(), key=lambda item: item[1][0] not in str(exc))
    for var, (name, _value) in suspects:
        if fails({k: v for k, v in kw.items() if k != name}) is None:
            return EnvSettingError(f"{_shown(var, environ[var])}: {exc}")
    others = {k: v for k, v in kw.items() if k not in {name for name, _v in from_env.values()}}
    for var, (name, value) in suspects:
        if fails({**others, name: value}) == str(exc):
            return EnvSettingError(f"{_shown(var, environ[var])}: {exc}")
    return exc


class EnvSettingError(ValueError):
    """A LINEGUARD_* variable holds a value the station cannot take; the message names it
    (a station must not start on a setting it silently replaced by its default)."""


# what only `serve` acts on (the model it adds, the PLC links it starts): not read where a
# station is opened to judge parts from a hot folder or a camera (watch/camera --data)
SERVE_ONLY = frozenset({"line", "product", "plc_line", "plc_station", "modbus_port", "opcua_port", "plc_images",
                        "plc_image_wait_ms", "inspection_window_ms", "plc_camera", "plc_camera_fps", "plc_host",
                        "recipes", "peers"})

# the settings above as the part's field they name (Part.checked's limits)
_PART_FIELD = {"line": "line", "plc_line": "line", "plc_station": "station", "product": "product"}


def check_part_name(field_name: str, value: str, given_as: str) -> None:
    """ValueError, naming ``given_as`` (the option or variable), where ``value`` is a name a
    part's ``field_name`` (line, station, product) cannot have: the station refuses every
    part bearing it (line.station.Part.checked), so a station started with it answered
    every PLC trigger NG (code 15, image refused) instead of not starting."""
    from .station import _FIELD_MAX, unprintable
    limit = _FIELD_MAX[field_name]
    text = value.strip()
    if not text:
        raise ValueError(f"{given_as}: the {field_name} name is empty; name the {field_name}")
    if len(text) > limit:
        raise ValueError(f"{given_as}: the {field_name} name is {len(text)} characters, longer than the "
                         f"{limit} a part's {field_name} may have (every part would be refused): shorten it")
    bad = unprintable(text)
    if bad is not None:
        raise ValueError(f"{given_as}: the {field_name} name holds a control or invisible character "
                         f"(U+{ord(bad):04X}; every part would be refused): write it as printable text")


def without_secrets(url: Optional[str], scheme: str) -> Optional[str]:
    """A sink's URL as the change log keeps it: where results go, without a password or token
    (only scheme, host and port: a webhook's path and query often hold its token)."""
    if not url:
        return None
    from urllib.parse import urlsplit
    u = urlsplit(url if "://" in url else f"{scheme}://{url}")    # the MQTT sink takes host:port alone too
    where = u.netloc.rpartition("@")[2]     # host and port as given ([::1]:1883 keeps its brackets)
    return f"{u.scheme}://{where}"


# "scheme://" then a user and a password before "@": the password up to the last "@" before a
# query or fragment, so one with an "@" or "/" its owner did not percent-encode is hidden whole
# (a start line showed rtsp://admin:c4m-pw@10.0.0.9/s1 to everyone reading the journal)
_URL_PASSWORD = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*://[^:/?#@]*):[^?#]*@")
# a password with a "?" or "#" its owner did not percent-encode: SQLAlchemy reads it whole
# ("lg:pa?ss@db" connects as lg with pa?ss), so it is hidden to the last "@", unless what
# follows the ":" is a port ("cam:8443/notify?to=ops@plant": no password, none hidden)
_URL_PASSWORD_ODD = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*://[^:/?#@]*):(?!\d*(?:[/?#]|$)).*@")
# a query's secrets: IP cameras take their account in the URL's query (video.cgi?user=admin&pwd=...)
# (and libpq's sslpassword: the client key's passphrase, in a database URL's query)
_QUERY_SECRET = re.compile(r"(?i)([?&;](?:password|sslpassword|passwd|pass|pwd|pw|token|access_token|api_key|apikey|key|"
                           r"secret|auth|signature|sig)=)[^&#;]*")
# libpq's key=value words (host=db user=line password=s3cret dbname=plant): not a URL, and
# --db refuses them, but the refusal and a unit's check read them first, and printed the
# password as typed. Quoted ('se cret', with \' inside) or up to the next space.
_WORD_PASSWORD = re.compile(r"(?i)(^|\s)(password\s*=\s*)('(?:[^'\\]|\\.)*'?|\S*)")


def without_password(source: "str | os.PathLike | int | None") -> str:
    """A camera source or a database URL as a command, the log or an answer shows it: a
    password in it written ``***`` (``rtsp://admin:***@10.0.0.9/s1``,
    ``postgresql://lg:***@db/line``), as the query's password or token, and libpq's
    ``password=`` word (``host=db password=***``); a folder, file or device index as it is.
    The one way they are printed, so none shows the password."""
    text = "" if source is None else os.fspath(source) if isinstance(source, os.PathLike) else str(source)
    if "://" not in text:
        return _WORD_PASSWORD.sub(r"\1\2***", text)
    text, hidden = _URL_PASSWORD.subn(r"\1:***@", text, count=1)
    if not hidden:
        text = _URL_PASSWORD_ODD.sub(r"\1:***@", text, count=1)
    return _QUERY_SECRET.sub(r"\1***", text)


def shift_starts_from_text(text: str) -> tuple[str, ...]:
    """``"06:00, 18:00"`` (an option or LINEGUARD_SHIFT_STARTS) as StationConfig keeps it."""
    return tuple(t.strip() for t in text.split(","))


def _number(value: str) -> float:
    try:
        v = float(value)
    except ValueError:
        raise ValueError("not a number (write it like 0.5 or 24)") from None
    if not math.isfinite(v):
        raise ValueError("not a finite number")
    return v


def _whole(value: str) -> int:
    try:
        return int(value)
    except ValueError:
        raise ValueError("not a whole number") from None


def _port(value: str) -> int:
    port = _whole(value)
    if not 0 < port < 65536:
        raise ValueError(f"{port} is not a TCP port (1..65535)")
    return port


# the PLC links a LINEGUARD_PLC_IMAGES item may name (serve's --modbus-port, --opcua-port)
_PLC_LINK_NAMES = ("modbus", "opcua")


# the forms LINEGUARD_PLC_IMAGES takes, said whenever a value is refused
_PLC_IMAGES_FORMS = (f"write one camera folder for one PLC link (/cam/line1), or each link's as LINK=DIR "
                     f"separated by '{os.pathsep}' (modbus=/cam/line1{os.pathsep}opcua=/cam/line2)")


def _two_folders(before: str, piece: str, joined: str) -> bool:
    """Whether ``piece`` is a second folder rather than the rest of the one before it
    (/mnt/line:2 goes on past its ':' as '2'): no folder has the joined name, and the piece
    is an absolute path (or one from the home folder), or both it and the one before are
    folders."""
    def is_dir(path: str) -> bool:
        return Path(path).expanduser().is_dir()
    p = piece.strip()
    if is_dir(_folder_of(joined)):
        return False
    return os.path.isabs(p) or p.startswith("~") or (is_dir(_folder_of(before)) and is_dir(p))


def _folders(value: str) -> tuple[str, ...]:
    """The PLC links' camera folders as serve --plc-images takes them, one [LINK=]DIR each,
    separated as a PATH is (':' here, ';' on Windows): modbus=/cam/a:opcua=/cam/b.

    Only a piece naming a link (``modbus=``, ``opcua=``) starts another folder; any other
    piece is the folder before it, its ':' kept: a camera share mounted at /mnt/line:2 was
    cut in two, and refused as "two folders for the modbus link". No value that started a
    station before reads otherwise: a link takes one folder, so with two items each named
    its link. An empty piece is a separator left over (``$CAMS:/cam/a``, ``/cam/a:``), as
    before: the piece after it starts a folder. A folder whose own name holds '::', ends in
    ':', or holds ':modbus=' or ':opcua=', still needs --plc-images.

    A value that reads two ways is refused (ValueError, one line with the forms taken):
    ``/cam/a:/cam/b`` read as one folder named ``a:/cam/b`` and refused at start as "not
    a folder", naming neither the variable nor the two folders meant; an absolute piece
    goes on the folder before it only where that whole path is a folder. Two folders of
    which one names no link (``/cam/a:opcua=/cam/b``) never started a station either: the
    unnamed one is either link's."""
    items: list[str] = []
    glue = False            # whether the next piece may belong to the folder before it
    for piece in value.split(os.pathsep):
        if not piece.strip():
            glue = False
            continue
        link, sep, _ = piece.partition("=")
        if glue and not (sep and link.strip().lower() in _PLC_LINK_NAMES):
            joined = items[-1] + os.pathsep + piece
            if _two_folders(items[-1], piece, joined):
                before = items[-1].strip()
                raise ValueError(f"{before!r} and {piece.strip()!r} read as two camera folders, "
                                 + ("and the second names no PLC link: " if _named(before) else
                                    "neither naming its PLC link, and a link takes one folder: ")
                                 + _PLC_IMAGES_FORMS)
            items[-1] = joined
        else:
            items.append(piece)
        glue = True
    out = tuple(item.strip() for item in items)
    unnamed = [k for k, item in enumerate(out) if not _named(item)]
    if len(out) > 1 and unnamed:
        k = unnamed[0]
        raise ValueError(f"{out[k]!r} names no PLC link beside {out[1 if k == 0 else 0]!r}: with more than one "
                         f"folder, each names its link; {_PLC_IMAGES_FORMS}")
    return out


def _named(item: str) -> bool:
    """Whether an item of LINEGUARD_PLC_IMAGES names its link (``modbus=DIR``)."""
    link, sep, _ = item.partition("=")
    return bool(sep) and link.strip().lower() in _PLC_LINK_NAMES


def _folder_of(item: str) -> str:
    """The folder of an item, its ``LINK=`` left off."""
    return item.partition("=")[2].strip() if _named(item) else item.strip()


# a ',' that starts the next recipe: one followed by its ID= (any other stays in the product's name)
_NEXT_RECIPE = re.compile(r",(?=\s*\d+\s*=)")


def _recipes(value: str) -> tuple[str, ...]:
    """The PLC's recipes as serve --recipe takes them, ID=PRODUCT each, separated by ','
    (1=cell,2=frame); a value that is not one is refused saying the form, not first at the
    start of the PLC link."""
    items = tuple(piece.strip() for piece in _NEXT_RECIPE.split(value) if piece.strip())
    for item in items:
        rid, sep, product = item.partition("=")
        if not sep or not rid.strip().isdigit() or not product.strip() or int(rid) > 65535:
            raise ValueError(f"{item!r} is not a recipe: write each as ID=PRODUCT with ID 0..65535, separated by "
                             "',' (1=cell,2=frame)")
    return items


# the most peers one station asks (each every time the Plant page refreshes)
MAX_PEERS = 32
_PEER_FORM = "give each peer as NAME=URL, e.g. --peer line2=http://10.0.0.12:8000 (in LINEGUARD_PEERS separated by ',')"


# a path that is a station's own page or API (a proxy's prefix before them is kept)
_STATION_PAGE = re.compile(r"/(app|api|docs|redoc|health|metrics|static)(/|$)")


def peer_list(items: "tuple[str, ...] | list[str]") -> list[tuple[str, str]]:
    """The peer stations as (name, base URL) pairs, from serve --peer's NAME=URL items; a
    ValueError saying what to write for one that cannot be asked. The URL is where the
    station answers (http(s)://HOST:PORT, a proxy's path kept); its /health is asked. No
    user:password in it: /health needs no key, and the URL is shown on the Plant page."""
    from urllib.parse import urlsplit
    out: list[tuple[str, str]] = []
    seen: set[str] = set()
    for item in items:
        name, sep, url = str(item).partition("=")
        name, url = name.strip(), url.strip()
        if not sep or not name or not url:
            raise ValueError(f"--peer {str(item)[:80]!r}: {_PEER_FORM}")
        if len(name) > 40 or any(not c.isprintable() or c in ",=" for c in name):
            raise ValueError(f"--peer {name[:80]!r}: a peer's name is at most 40 printable characters, without ',' "
                             "or '='")
        try:
            parts = urlsplit(url)
            port_ok = parts.port is None or parts.port > 0
        except ValueError:
            parts, port_ok = None, False
        if parts is None or parts.scheme not in ("http", "https") or not parts.hostname or not port_ok \
                or parts.query or parts.fragment or any(not c.isprintable() or c.isspace() for c in url):
            raise ValueError(f"--peer {name}: {url[:120]!r} is not a station's address: write it as "
                             "http://HOST:PORT (the address its pages are on)")
        if parts.username is not None or parts.password is not None:
            raise ValueError(f"--peer {name}: leave the user and password out of its URL (its /health needs no "
                             "key, and the URL is shown on the Plant page)")
        if _STATION_PAGE.search(parts.path):
            # a page's address copied from the browser (http://pc:8000/app/): /app/health was
            # asked, every answer a 404, and the row's link went to /app/app/
            raise ValueError(f"--peer {name}: {url[:120]!r} is one of the station's pages; give the station's own "
                             f"address, without {parts.path!r} (http://HOST:PORT)")
        if name.casefold() in seen:
            raise ValueError(f"--peer {name}: two peers have this name; give each its own")
        seen.add(name.casefold())
        out.append((name, url.rstrip("/")))
    if len(out) > MAX_PEERS:
        raise ValueError(f"--peer: {len(out)} peers, more than the {MAX_PEERS} one station asks")
    return out


# a ',' that starts the next peer: one followed by its NAME= (a URL's own ',' stays in it)
_NEXT_PEER = re.compile(r",(?=\s*[^,=/:\s][^,=/:]*=)")


def _peers(value: str) -> tuple[str, ...]:
    """LINEGUARD_PEERS: NAME=URL items separated by ',' (line1=http://10.0.0.11:8000,line2=...)."""
    items = tuple(piece.strip() for piece in _NEXT_PEER.split(value) if piece.strip())
    peer_list(items)
    return items


def _flag(value: str) -> bool:
    v = value.strip().lower()
    if v in ("1", "true", "yes", "on"):
        return True
    if v in ("0", "false", "no", "off", ""):
        return False
    raise ValueError("use 1/true/yes/on or 0/false/no/off")


# LINEGUARD_* variable -> (StationConfig field, parser): the one list of the station's
# variables (StationConfig.from_env), whichever way the station is started; a parser's
# ValueError says what is wrong and from_env adds the variable's name
_ENV: dict[str, tuple[str, Callable[[str], Any]]] = {
    "LINEGUARD_DATA": ("data_dir", Path),
    "LINEGUARD_DB": ("db_url", str),
    "LINEGUARD_DB_SCHEMA": ("db_schema", str),
    "LINEGUARD_MAX_UPLOAD_BYTES": ("max_upload_bytes", _whole),
    "LINEGUARD_MODEL_RUN_BYTES_PER_PIXEL": ("model_run_bytes_per_pixel", _whole),
    "LINEGUARD_MAX_IMAGE_PIXELS": ("max_image_pixels", _whole),
    "LINEGUARD_MAX_CONCURRENT_DECODES": ("max_concurrent_decodes", _whole),
    "LINEGUARD_REPORT_SLOTS": ("report_slots", _whole),
    "LINEGUARD_OK_SAMPLE_RATE": ("retention", lambda v: RetentionPolicy(ok_sample_rate=_number(v))),
    "LINEGUARD_AUDIT_SAMPLE_RATE": ("audit_sample_rate", _number),
    "LINEGUARD_MIN_FREE_GB": ("min_free_gb", _number),
    "LINEGUARD_OK_IMAGE_DAYS": ("ok_image_days", _number),
    "LINEGUARD_KEEP_RECORDS_DAYS": ("keep_records_days", _number),
    "LINEGUARD_ARCHIVE_RECORDS_TO": ("archive_records_to", Path),
    "LINEGUARD_ARCHIVE_IMAGES": ("archive_images", str),
    "LINEGUARD_STORE_SWEEP_H": ("store_sweep_h", _number),
    "LINEGUARD_BACKUP_TO": ("backup_to", Path),
    "LINEGUARD_BACKUP_EVERY_H": ("backup_every_h", _number),
    "LINEGUARD_WEBHOOK": ("webhook_url", str),
    "LINEGUARD_MQTT": ("mqtt_url", str),
    "LINEGUARD_WEBHOOK_TIMEOUT": ("webhook_timeout_s", _number),
    "LINEGUARD_MAX_BATCH": ("max_batch", _whole),
    "LINEGUARD_BATCH_WINDOW_MS": ("batch_window_ms", _number),
    "LINEGUARD_RUNTIME": ("runtime", str),
    "LINEGUARD_PRECISION": ("precision", str),
    "LINEGUARD_SHIFT_STARTS": ("shift_starts", shift_starts_from_text),
    "LINEGUARD_TIMEZONE": ("timezone", str),
    "LINEGUARD_OPEN_READS": ("open_reads", _flag),
    # serve --power-safe: a unit's env file set it and was told "not a lineguard setting"
    "LINEGUARD_POWER_SAFE": ("sqlite_synchronous", lambda v: "FULL" if _flag(v) else "NORMAL"),
    "LINEGUARD_SESSION_HOURS": ("session_hours", _number),
    "LINEGUARD_ALARM_NG_RUN": ("alarm_ng_run", _whole),
    "LINEGUARD_ALARM_NG_RATE": ("alarm_ng_rate", _number),
    "LINEGUARD_ALARM_WINDOW": ("alarm_window", _whole),
    "LINEGUARD_ALARM_PHOTO_RUN": ("alarm_photo_run", _whole),
    "LINEGUARD_ALARM_NO_VERDICT_RUN": ("alarm_no_verdict_run", _whole),
    "LINEGUARD_ALARM_DRIFT_PARTS": ("alarm_drift_parts", _whole),
    "LINEGUARD_ALARM_ESCALATE_MIN": ("alarm_escalate_min", _number),
    "LINEGUARD_ALARM_ESCALATE_AGAIN_MIN": ("alarm_escalate_again_min", _number),
    "LINEGUARD_PRODUCT": ("product", str),
    "LINEGUARD_LINE": ("line", str),
    "LINEGUARD_PLC_LINE": ("plc_line", str),
    "LINEGUARD_PLC_STATION": ("plc_station", str),
    "LINEGUARD_MODBUS_PORT": ("modbus_port", _port),
    "LINEGUARD_OPCUA_PORT": ("opcua_port", _port),
    "LINEGUARD_PLC_IMAGES": ("plc_images", _folders),
    "LINEGUARD_PLC_IMAGE_WAIT_MS": ("plc_image_wait_ms", _number),
    "LINEGUARD_INSPECTION_WINDOW_MS": ("inspection_window_ms", _number),
    "LINEGUARD_PLC_CAMERA": ("plc_camera", str),
    "LINEGUARD_PLC_CAMERA_FPS": ("plc_camera_fps", _number),
    "LINEGUARD_PLC_HOST": ("plc_host", str),
    "LINEGUARD_RECIPE": ("recipes", _recipes),
    "LINEGUARD_PEERS": ("peers", _peers),
}

# the LINEGUARD_* variables read elsewhere, not settings of the station: not typos
OTHER_ENV_VARS = ("LINEGUARD_API_KEY",               # watch/camera --server's operator key
                  # camera's --source: a camera URL's password goes in a unit's env file,
                  # not on its command line (systemctl cat, the process list)
                  "LINEGUARD_CAMERA_SOURCE",
                  "LINEGUARD_LET_GO_OF_FOLDER",      # line.data_folders
                  "LINEGUARD_UPGRADE_WITHOUT_COPY")  # line.db


def env_settings(environ: Optional[Mapping[str, str]] = None, skip: Container[str] = ()
                 ) -> dict[str, tuple[str, Any]]:
    """The LINEGUARD_* variables set: variable -> (StationConfig field, value), or
    EnvSettingError naming the first that is not one. An empty one counts as unset (a
    compose file's ``LINEGUARD_BACKUP_TO=`` must not back up into the working folder).
    The variables of the fields in ``skip`` are not read at all."""
    environ = os.environ if environ is None else environ
    found: dict[str, tuple[str, Any]] = {}
    for var, (name, parse) in _ENV.items():
        raw = environ.get(var)
        if raw is None or not raw.strip() or name in skip:
            continue
        try:
            found[var] = (name, parse(raw.strip()))
        except ValueError as exc:
            raise EnvSettingError(f"{_shown(var, raw)}: {exc}") from None
    return found


def _shown(var: str, raw: str) -> str:
    """A variable as an error names it: with its value, but a URL's alone (a database's or
    a webhook's may hold a password or a token; a camera's, rtsp://user:pw@cam/...)."""
    return var if var in ("LINEGUARD_DB", "LINEGUARD_WEBHOOK", "LINEGUARD_MQTT", "LINEGUARD_PLC_CAMERA") \
        else f"{var}={raw!r}"


def env_var_of(field_name: str) -> Optional[str]:
    """The LINEGUARD_* variable setting a StationConfig field (None: none does)."""
    return next((var for var, (name, _parse) in _ENV.items() if name == field_name), None)


def unknown_env_warnings(environ: Optional[Mapping[str, str]] = None) -> list[str]:
    """One line for each LINEGUARD_* variable set that lineguard does not read, with the
    variable it was likely meant as: a misspelt setting (LINEGUARD_BACKUPTO) is otherwise
    ignored without a word, and its station runs on the default."""
    import difflib
    environ = os.environ if environ is None else environ
    known = [*_ENV, *OTHER_ENV_VARS]
    squeezed = {var[len("LINEGUARD_"):].replace("_", ""): var for var in known}
    lines = []
    for var in sorted(environ):
        if not var.upper().startswith("LINEGUARD_") or var in known:
            continue
        tail = var.upper()[len("LINEGUARD_"):]
        meant = squeezed.get(tail.replace("_", "").replace("-", ""))
        if meant is None:
            close = difflib.get_close_matches(tail, [v[len("LINEGUARD_"):] for v in known], n=1, cutoff=0.7)
            meant = f"LINEGUARD_{close[0]}" if close else None
        lines.append(f"{var} is not a lineguard setting and is ignored"
                     + (f": did you mean {meant}?" if meant else ""))
    return lines


def env_flag(var: str, value: str) -> bool:
    """A yes/no setting from the environment; ValueError naming the variable if it is neither."""
    try:
        return _flag(value)
    except ValueError as exc:
        raise ValueError(f"{var}={value!r}: {exc}") from None


def disk_floor_check(min_free_gb: float, data_dir: Path, given_as: str = "--min-free-gb",
                     usage: Optional[Callable[[Path], Any]] = None) -> Optional[str]:
    """A floor of free space (``min_free_gb``) the data disk under ``data_dir`` can never
    reach raises ValueError naming ``given_as``: `serve --min-free-gb 500` on a 252 GB disk
    started and deleted the oldest parts' images at once, NG parts' too, and would go on
    deleting every image it may. One above the free space now is taken, but said (the line
    returned): the keeper deletes images at start. None where the floor is under the free space.
    The disk is the one line.disk's keeper measures (the images folder, else the nearest
    folder above it that exists: a new station's folder is made later)."""
    import shutil

    from .disk import GB, MARGIN
    if not min_free_gb > 0:
        return None
    where = Path(data_dir) / "images"
    while not where.exists() and where.parent != where:
        where = where.parent
    try:
        disk = (usage or shutil.disk_usage)(where)
    except OSError:
        return None          # the station's own start says what is wrong with its folder
    total, free = disk.total / GB, disk.free / GB
    sensible = _floor_advice(total, free)
    if min_free_gb >= total:
        raise ValueError(
            f"{given_as} {min_free_gb:g} GB is not under the size of the data disk ({where}: {_size(total)} in all, "
            f"{_size(free)} free): the station would delete every part image it may, the oldest OK parts' first, "
            f"then NG and REVIEW parts', and still never have that much free. It is the free space to keep, "
            f"not the space to use: under the free space now, e.g. {sensible} GB (the default is 2)")
    if min_free_gb > free:
        return (f"{given_as} {min_free_gb:g} GB is more than the {_size(free)} free on the data disk now ({where}, "
                f"{_size(total)} in all): the station deletes at start the images of the oldest OK parts, then of the "
                f"oldest NG and REVIEW parts, until {_size(min_free_gb * MARGIN)} is free (their records stay; "
                f"reviewed parts', the audit sample's and test parts' images never go). Stop it and give a lower "
                f"floor (e.g. {sensible} GB) if that is not meant")
    return None


def _size(gb: float) -> str:
    """A size given in GB as a person reads it: ``71.5 GB``; under 1 GB in MB (a 20 MB disk was
    "0.0 GB in all, 0.0 GB free")."""
    return f"{gb:.1f} GB" if gb >= 1 else f"{gb * 1024:.1f} MB"


def _floor_advice(total_gb: float, free_gb: float) -> str:
    """A floor to advise for a data disk of ``total_gb`` with ``free_gb`` free, as the option is
    written: 5 % of the disk, at most half the free space, in whole GB where that is 1 or more,
    else in GB with the decimals it needs (``0.00095``). "1 GB" was advised whatever the disk, so
    on a 20 MB one the advice was itself refused as not under the disk's size. Always under the
    disk's size, and under the free space where any is free (then taken without a word)."""
    whole = min(round(total_gb * 0.05), int(free_gb / 2))
    if whole >= 1:
        return str(whole)
    fits = total_gb * 0.05 if free_gb <= 0 else min(total_gb * 0.05, free_gb / 2)
    if not fits > 0:
        return "0"           # no disk to speak of: 0 never deletes images for space
    # two significant digits, rounded down: the value read back is never above ``fits``
    digits = max(2, 1 - math.floor(math.log10(fits)))
    step = 10.0 ** -digits
    return f"{math.floor(fits / step) * step:.{digits}f}".rstrip("0").rstrip(".")


def start_disk_floor(cfg: "StationConfig", option_given: bool,
                     environ: Optional[Mapping[str, str]] = None) -> Optional[str]:
    """:func:`disk_floor_check` of a station about to start, naming where its floor came
    from (``option_given``: --min-free-gb; else LINEGUARD_MIN_FREE_GB where set; else the
    default): the one check every start runs (`lineguard serve`, `watch`/`camera --data`,
    `python -m lineguard.server`); the container entry point skipped it, and a floor over
    the disk's size started there deleting every part image it may. ValueError: a floor
    the disk can never reach; the line returned: one above the free space now, to say."""
    environ = os.environ if environ is None else environ
    var = env_var_of("min_free_gb")
    given_as = ("--min-free-gb" if option_given else var if (environ.get(var) or "").strip()
                else "the default --min-free-gb")
    return disk_floor_check(cfg.min_free_gb, cfg.data_dir, given_as)
