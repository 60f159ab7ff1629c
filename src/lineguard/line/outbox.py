"""The outbox: every result and event leaves the station through the database.

A part's verdict, an operator's review and a model change are written to the
``outbox`` table in the same transaction as the record they report
(:func:`record_event`), so a committed record is always signalled and nothing is
signalled that was not recorded. One delivery worker per sink (MQTT broker, webhook)
then sends the rows:

- **at least once**: a row is marked delivered (``outbox_deliveries``, per sink) only
  after the sink acknowledged it (MQTT PUBACK at QoS 1, HTTP 2xx). A crash between the
  send and the mark sends it again after the restart;
- **with an idempotency key**: ``message_id`` in the message (and the
  ``Idempotency-Key`` header of a webhook) is the row's UUID; a consumer that keeps the
  keys it has seen never acts twice on one part;
- **in order per line**: rows of one line go out in id order, and a row that fails
  holds back the later rows of its line (other lines keep flowing). On PostgreSQL the
  writers of one line take an advisory lock so ids of a line commit in id order;
  SQLite has one writer at a time anyway;
- **retrying with backoff**: a failing sink is retried after 0.5 s, doubling to 30 s, so
  a broker outage delays delivery and loses nothing. A sink with ``send_once`` (the
  webhook) is given one try per row here: the backoff is this worker's, per line, so a
  line whose receiver fails or hangs costs the other lines at most one try (one timeout)
  per look, not a sink's own quick retries;
- **refused, kept**: a message the receiver refuses for good (:class:`Refused`, a
  webhook's 400/413/415/422) is marked ``refused`` in ``outbox_deliveries`` with the
  error and its line moves on; the row stays in the table until pruned like a delivered
  one (``retention_s``), :meth:`Outbox.resend_refused` sends such rows again, and
  refusals in the last ``REFUSED_SHOWN_S`` are in :meth:`Outbox.status` (``/health``
  says them as a fault);
- **not carried, skipped**: a row of an event a sink does not carry (its
  ``not_carried``: a webhook is not posted the ``alarm_state`` rows written again for
  MQTT's retained messages) is marked ``skipped`` for it without a send: never counted
  delivered nor in its backlog, and never holding its line back;
- **pruned**: rows every sink of this station has taken are deleted after
  ``retention_s`` (a day by default); rows still owed to a sink are kept however old.

A sink seen for the first time owes the rows written from then on (``outbox_sinks``),
not the station's history. Several station processes on one database each deliver the
rows to their own sinks; two processes with the same sink deliver (harmlessly, by the
key) twice.
"""
from __future__ import annotations

import datetime as dt
import logging
import threading
import time
import uuid
from collections import deque
from typing import Any, Callable, Optional

from sqlalchemy import delete, exists, func, select, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from .orm import OutboxDelivery, OutboxEvent, OutboxSink, utcnow

log = logging.getLogger("lineguard.outbox")

# Rows are looked for above a per-sink floor, so a long delivered history is not scanned
# at every poll. A PostgreSQL transaction can commit a row with a lower id after a
# higher one (another line); the floor never passes rows younger than this, and no
# outbox transaction stays open that long (the row is written just before the commit).
_FLOOR_LAG_S = 120.0
_ADVISORY_KEY = 74111
# refusals this recent are shown by status() (/health makes them a fault)
REFUSED_SHOWN_S = 600.0


class Refused(Exception):
    """The receiver refuses this message for good (its content); sending it again cannot
    help. The row is marked refused (kept, logged, counted) and its line moves on."""


def lock_line(session: Session, line: str) -> None:
    """Hold ``line``'s outbox lock to the commit (PostgreSQL; SQLite's writer lock does it
    there): rows of one line are numbered and committed in one order, so the worker never
    sees a later part of a line before an earlier one. Taken before a transaction's first
    read when what it sends must agree with what it read (a station's active alarms)."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SELECT pg_advisory_xact_lock(:k, hashtext(:line))"),
                        {"k": _ADVISORY_KEY, "line": line})


def record_event(session: Session, event: str, line: str, payload: dict[str, Any]) -> OutboxEvent:
    """Add an outbox row to ``session``'s transaction; it exists only if that commits."""
    lock_line(session, line)
    key = str(uuid.uuid4())
    row = OutboxEvent(key=key, event=event, line=line, created_at=utcnow(),
                      payload={**payload, "event": event, "message_id": key})
    session.add(row)
    return row


def sink_key(sink: Any) -> str:
    return str(getattr(sink, "key", None) or getattr(sink, "name", None) or type(sink).__name__)


def sink_label(sink: Any) -> str:
    """How /health, /metrics and the log name a sink (its key may hold a webhook's token)."""
    return str(getattr(sink, "label", None) or sink_key(sink))


# a sink registered on the database by another process holds the rows it owes from
# pruning while it delivered (or was registered) this recently
OTHER_SINKS_KEPT_S = 7 * 86400.0


def _owed(key: str, after_id: int) -> tuple[Any, Any]:
    """Where-clauses of the rows sink ``key`` owes: after ``after_id`` and not marked for it."""
    done = exists().where(OutboxDelivery.outbox_id == OutboxEvent.id, OutboxDelivery.sink == key)
    return OutboxEvent.id > after_id, ~done


def _first_owed(s: Any, key: str, after_id: int) -> Optional[int]:
    """The id of the first row sink ``key`` owes (None: none)."""
    return s.scalar(select(func.min(OutboxEvent.id)).where(*_owed(key, after_id)))


class _SinkState:
    def __init__(self, sink: Any, key: str, since_id: int):
        self.sink = sink
        self.key = key                   # the database's name of the receiver
        self.label = sink_label(sink)    # what is shown of it
        # events this sink is never sent (marked skipped, not delivered; not in its backlog)
        self.not_carried = tuple(getattr(sink, "not_carried", ()) or ())
        self.floor = since_id            # every row with id <= floor is delivered or not owed
        self.backlog = 0
        self.oldest_pending: Optional[dt.datetime] = None
        self.last_error: Optional[str] = None
        self.failing_since: Optional[float] = None
        self.last_delivered: Optional[float] = None
        self.delivered = 0
        self.refused = 0
        self.refusals: deque[float] = deque()      # time.monotonic() of the recent refusals
        self.last_refused: Optional[str] = None    # the last refusal's error
        # lines whose oldest row failed: line -> (when to try it again, failures in a row)
        self.held: dict[str, tuple[float, int]] = {}
        self.attempts: dict[int, int] = {}
        self.floor_checked = 0.0
        self.floor_lowered = 0           # bumped when rows below the floor are owed again (resend_refused)
        self.connections_seen = 0        # the sink's connections whose retained states were written again
        self.restore_failing = False


class Outbox:
    """Delivery workers for the outbox rows of one database, one thread per sink."""

    def __init__(self, db: Any, sinks: list[Any], metrics: Any = None, retention_s: float = 86400.0,
                 poll_s: float = 0.2, batch: int = 200, backoff_s: float = 0.5, max_backoff_s: float = 30.0,
                 prune_every_s: float = 600.0):
        self.db = db
        self.sinks = sinks
        self.metrics = metrics
        self.retention_s = retention_s
        self.poll_s = poll_s
        self.batch = batch
        self.backoff_s = backoff_s
        self.max_backoff_s = max_backoff_s
        self.prune_every_s = prune_every_s
        # called when a sink that counts its connections (MQTT) has made a new one: writes
        # what it keeps retained to the outbox again (a broker restarted without
        # persistence forgot it); set by the station (line.alarms.AlarmWatch.record_states)
        self.on_connected: Optional[Callable[[], int]] = None
        keys = [sink_key(s) for s in sinks]
        if len(set(keys)) != len(keys):
            raise ValueError(f"two sinks with the same target ({', '.join(sink_label(s) for s in sinks)}); "
                             "configure each receiver once")
        self._states = [_SinkState(s, k, self._register(k, sink_label(s))) for s, k in zip(sinks, keys)]
        self._resend_lock = threading.Lock()
        self._stop = threading.Event()
        self._wake = threading.Condition()
        self._woken = 0
        self._threads = [threading.Thread(target=self._run, args=(st,), name=f"outbox-{st.label[:40]}", daemon=True)
                         for st in self._states]
        self._threads.append(threading.Thread(target=self._prune_loop, name="outbox-prune", daemon=True))
        for t in self._threads:
            t.start()

    # -- set-up ------------------------------------------------------------------------
    def _register(self, key: str, label: str) -> int:
        """The row id after which sink ``key`` is owed the outbox's rows (a new sink: from now).
        The log names it by ``label``: a webhook's key holds its URL's path, where Slack,
        Teams and plant systems keep the token, and the log is read by more than its owner."""
        with self.db.session() as s:
            known = s.get(OutboxSink, key)
            if known is not None:
                return known.since_id
            since = s.scalar(select(func.max(OutboxEvent.id))) or 0
            s.add(OutboxSink(sink=key, since_id=since, created_at=utcnow()))
        log.info("sink %s: new, owes the outbox rows after id %s", label, since)
        return since

    # -- the workers -------------------------------------------------------------------
    def wake(self) -> None:
        """A row was just committed: look now instead of at the next poll."""
        with self._wake:
            self._woken += 1
            self._wake.notify_all()

    def _sleep(self, seconds: float, seen: int) -> None:
        with self._wake:
            if self._woken == seen and not self._stop.is_set():
                self._wake.wait(seconds)

    def _pending(self, st: _SinkState, limit: int) -> list[OutboxEvent]:
        """The next rows to send: the oldest of the lines flowing, and the first row of each
        held line whose retry is due. A held line's rows are left out of the batch: once one
        line owed a batch's worth (200) and failed, every batch was that line's rows, skipped,
        and no other line's result, alarm or escalation went out."""
        owed = select(OutboxEvent).where(*_owed(st.key, st.floor))
        now = time.monotonic()
        with self.db.session() as s:
            free = owed.where(OutboxEvent.line.not_in(list(st.held))) if st.held else owed
            rows = list(s.scalars(free.order_by(OutboxEvent.id).limit(limit)))
            for line, (due, _) in st.held.items():
                if due <= now:
                    rows.extend(s.scalars(owed.where(OutboxEvent.line == line).order_by(OutboxEvent.id).limit(1)))
        # a held line's retry last: the other lines' rows of this look go first, whatever
        # its retry costs (a receiver that hangs to the timeout)
        return sorted(rows, key=lambda r: (r.line in st.held, r.id))

    def _count_pending(self, st: _SinkState) -> None:
        # a row the sink does not carry is no message owed to its receiver: a webhook's
        # backlog on /health counted the alarm states written again for MQTT as results
        carried = (OutboxEvent.event.not_in(st.not_carried),) if st.not_carried else ()
        with self.db.session() as s:
            n, oldest = s.execute(select(func.count(OutboxEvent.id), func.min(OutboxEvent.created_at))
                                  .where(*_owed(st.key, st.floor), *carried)).one()
        st.backlog = int(n)
        st.oldest_pending = oldest
        if self.metrics is not None:
            self.metrics.outbox_backlog.labels(st.label).set(st.backlog)

    def _raise_floor(self, st: _SinkState) -> None:
        now = time.monotonic()
        if now - st.floor_checked < 5.0:
            return
        st.floor_checked = now
        lowered = st.floor_lowered
        cutoff = utcnow() - dt.timedelta(seconds=_FLOOR_LAG_S)
        with self.db.session() as s:
            settled = s.scalar(select(func.max(OutboxEvent.id)).where(OutboxEvent.created_at < cutoff))
            # the first row still owed on any line: a held line's rows are not in the batch
            first_pending = _first_owed(s, st.key, st.floor)
        if settled is None:
            return
        if first_pending is not None:
            settled = min(settled, first_pending - 1)
        if lowered == st.floor_lowered:      # not read across rows owed again meanwhile
            st.floor = max(st.floor, settled)

    def _mark(self, st: _SinkState, row_id: int, status: str, error: Optional[str]) -> None:
        try:
            with self.db.session() as s:
                s.add(OutboxDelivery(outbox_id=row_id, sink=st.key, status=status, error=error,
                                     attempts=st.attempts.pop(row_id, 0) + 1, delivered_at=utcnow()))
        except IntegrityError:
            pass   # another process with the same sink marked it first

    def _run(self, st: _SinkState) -> None:
        failures = 0
        while not self._stop.is_set():
            try:
                failures = self._pass(st, failures)
            except Exception:  # noqa: BLE001 - whatever it was, the worker goes on: a dead worker
                # delivers nothing to its receiver (results, alarms, escalations) until a restart
                log.exception("outbox for %s: unexpected error; trying again", st.label)
                failures = min(failures + 1, 10)
                self._stop.wait(min(self.max_backoff_s, self.backoff_s * 2 ** failures))

    def _pass(self, st: _SinkState, failures: int) -> int:
        """One look at what the sink owes and one batch sent; the database's failures in a row."""
        seen = self._woken
        self._after_connecting(st)
        try:
            rows = self._pending(st, self.batch)
            self._raise_floor(st)
        except Exception as exc:  # noqa: BLE001 - the database is down: wait and look again
            log.error("outbox for %s cannot read the database: %s", st.label, exc)
            self._sleep(min(self.max_backoff_s, self.backoff_s * 2 ** failures), seen)
            return min(failures + 1, 10)
        if not rows:
            self._safe_count(st)
            self._sleep(self.poll_s, seen)
            return 0
        blocked: set[str] = set()
        moved: set[str] = set()
        failed = False
        spent: dict[str, float] = {}     # what a failed try took, per line
        # one try per row where the sink offers it: the backoff below is per line
        send = getattr(st.sink, "send_once", None) or st.sink.send
        for row in rows:
            if self._stop.is_set():
                break
            if row.event in st.not_carried:
                # never sent to this receiver: marked skipped (owed no more), counted neither
                # delivered nor refused, and never held back by its line nor holding it (the
                # webhook counted each alarm state written again for MQTT as delivered)
                try:
                    self._mark(st, row.id, "skipped", None)
                except Exception as exc:  # noqa: BLE001 - not marked: looked at again next time
                    log.error("%s: row %s (not carried) not marked skipped (%s)", st.label, row.id, exc)
                    failed = True
                    break
                continue
            if row.line in blocked:
                continue
            message = {**row.payload, "outbox_id": row.id}
            began = time.monotonic()
            try:
                send(message)
                status, error = "delivered", None
            except Refused as exc:
                status, error = "refused", str(exc)
                log.error("%s refused %s %s of line %s for good: %s", st.label, row.event, row.key, row.line, exc)
                if self.metrics is not None:
                    self.metrics.outbox_refused.labels(st.label).inc()
            except Exception as exc:  # noqa: BLE001 - any failure: keep the row, retry later
                # the rest of this line waits, so the receiver never sees its parts out of order
                blocked.add(row.line)
                spent[row.line] = time.monotonic() - began
                failed = True
                st.attempts[row.id] = st.attempts.get(row.id, 0) + 1
                if st.failing_since is None:
                    st.failing_since = time.time()
                    log.error("%s: delivery failing, retrying with backoff (%s)", st.label, exc)
                st.last_error = f"{type(exc).__name__}: {exc}"[:300]
                if self.metrics is not None:
                    self.metrics.outbox_failures.labels(st.label).inc()
                continue
            try:
                self._mark(st, row.id, status, error)
            except Exception as exc:  # noqa: BLE001 - sent but not marked: it goes again (at least once)
                log.error("%s: delivered row %s not marked (%s); it will be sent again", st.label, row.id, exc)
                failed = True
                break
            if status == "refused":          # taken off the backlog, but not delivered (kept, marked)
                st.refused += 1
                st.refusals.append(time.monotonic())
                st.last_refused = f"{row.event} {row.key} of line {row.line}: {error}"[:300]
                while len(st.refusals) > 100_000:      # a receiver refusing everything, unread
                    st.refusals.popleft()
                moved.add(row.line)
                continue
            moved.add(row.line)
            st.delivered += 1
            st.last_delivered = time.time()
            if self.metrics is not None:
                self.metrics.outbox_delivered.labels(st.label).inc()
        self._safe_count(st)
        # Each failing line backs off on its own; the others go on at once. A line whose
        # first row went through flows again in the next batch.
        now = time.monotonic()
        for line in moved - blocked:
            st.held.pop(line, None)
        for line in blocked:
            tries = st.held.get(line, (0.0, 0))[1] + 1
            # at least as long as the failed try took: a receiver that hangs to the timeout
            # holds the other lines for at most half the time, not nearly all of it
            wait = max(min(self.max_backoff_s, self.backoff_s * 2 ** (min(tries, 10) - 1)), spent.get(line, 0.0))
            st.held[line] = (now + wait, tries)
        if failed and not moved:
            # nothing went anywhere (the receiver is down, or a row sent could not be marked):
            # wait for the first retry due
            first = min((due for due, _ in st.held.values()), default=now + self.backoff_s)
            self._sleep(max(0.0, first - now), seen)
        if not st.held:
            if st.failing_since is not None:
                log.info("%s: delivering again after %.0f s", st.label, time.time() - st.failing_since)
            st.failing_since = None
            st.last_error = None
        return 0

    def _after_connecting(self, st: _SinkState) -> None:
        """A new connection of this sink: what it keeps retained written to the outbox
        again, as rows in each line's order (so, also across processes on the database, a
        change made meanwhile comes after and the broker is left with the newest state).
        Tried again at the next look while the database refuses, said once."""
        made, hook = getattr(st.sink, "connections", None), self.on_connected
        if made is None or hook is None or made == st.connections_seen:
            return
        try:
            n = hook()
        except Exception as exc:  # noqa: BLE001 - the database away: tried again at the next look
            if not st.restore_failing:
                log.warning("%s: connected, but the stations' alarm states could not be written again: %s",
                            st.label, exc)
            st.restore_failing = True
            return
        st.connections_seen, st.restore_failing = made, False
        if n:
            log.info("%s: connected; the alarm state of %d station(s) goes out again, retained", st.label, n)

    def _safe_count(self, st: _SinkState) -> None:
        try:
            self._count_pending(st)
        except Exception:  # noqa: BLE001 - shown as unknown at the next look
            pass

    # -- pruning -----------------------------------------------------------------------
    def prune(self, now: Optional[dt.datetime] = None) -> int:
        """Delete rows older than the retention that every sink has taken; returns how many."""
        cutoff = (now or utcnow()) - dt.timedelta(seconds=self.retention_s)
        with self.db.session() as s:
            bound = s.scalar(select(func.max(OutboxEvent.id)).where(OutboxEvent.created_at < cutoff))
            if bound is None:
                return 0
            for st in self._states:
                first = _first_owed(s, st.key, st.floor)
                if first is not None:
                    bound = min(bound, first - 1)
            # and what the sinks of the other processes on this database still owe (a watcher
            # without sinks deleted the results the station's webhook, down for a weekend, owed):
            # each sink registered here that delivered, or was registered, in the last
            # OTHER_SINKS_KEPT_S; one gone from every process's settings for longer holds nothing
            mine = {st.key for st in self._states}
            active_since = (now or utcnow()) - dt.timedelta(seconds=OTHER_SINKS_KEPT_S)
            for key, since_id, registered in s.execute(select(OutboxSink.sink, OutboxSink.since_id,
                                                              OutboxSink.created_at)).all():
                if key in mine:
                    continue
                last = s.scalar(select(func.max(OutboxDelivery.delivered_at)).where(OutboxDelivery.sink == key))
                if max(last or registered, registered) < active_since:
                    continue
                first = _first_owed(s, key, since_id)
                if first is not None:
                    bound = min(bound, first - 1)
            n = s.execute(delete(OutboxEvent).where(OutboxEvent.id <= bound)).rowcount
            s.execute(delete(OutboxDelivery).where(OutboxDelivery.outbox_id <= bound))
        return int(n or 0)

    def _prune_loop(self) -> None:
        while not self._stop.is_set():
            try:
                self.prune()
            except Exception as exc:  # noqa: BLE001 - tried again at the next round
                log.warning("outbox prune failed: %s", exc)
            self._stop.wait(self.prune_every_s)

    # -- refused rows ------------------------------------------------------------------
    def sink_named(self, name: str) -> Optional[str]:
        """The label of the sink ``name`` names (None: none of this outbox's): its address as
        stored in ``outbox_deliveries.sink`` (``webhook:host:port/path``, ``mqtt:host:port``)
        or its label as /health shows it, spaces aside (``webhook:host:port #1a2b3c4d`` came
        as ``...#1a2b3c4d`` or cut at the ``#`` where a shell or client took it for a URL's
        fragment: that bare ``webhook:host:port`` names the one webhook on that host and port)."""
        name = name.strip()
        for st in self._states:
            if name in (st.key, st.label) or "".join(name.split()) == "".join(st.label.split()):
                return st.label
        cut = [st.label for st in self._states if st.label.split(" #")[0] == name]
        return cut[0] if len(cut) == 1 else None

    def resend_refused(self, sink: Optional[str] = None) -> int:
        """Send the rows refused for good again (a receiver fixed after it refused them):
        their ``refused`` marks are removed for ``sink`` (as :meth:`sink_named` reads it;
        None: every sink of this outbox) and the worker owes them again, each before its
        line's next rows. Only rows not pruned yet (``retention_s``). Returns how many."""
        n = 0
        label = self.sink_named(sink) if sink is not None else None
        if sink is not None and label is None:
            return 0
        with self._resend_lock:
            for st in self._states:
                if label is not None and st.label != label:
                    continue
                refused = (OutboxDelivery.sink == st.key, OutboxDelivery.status == "refused")
                with self.db.session() as s:
                    first = s.scalar(select(func.min(OutboxDelivery.outbox_id)).where(*refused))
                    if first is None:
                        continue
                    n += int(s.execute(delete(OutboxDelivery).where(*refused)).rowcount or 0)
                st.floor_lowered += 1
                st.floor = min(st.floor, first - 1)
                st.refusals.clear()
                st.last_refused = None
        if n:
            log.info("%d refused outbox row(s) to be sent again", n)
            self.wake()
        return n

    # -- what /health and tests ask ----------------------------------------------------
    def status(self) -> dict[str, dict[str, Any]]:
        out = {}
        now = utcnow()
        for st in self._states:
            self._safe_count(st)
            recent = time.monotonic() - REFUSED_SHOWN_S
            while st.refusals and st.refusals[0] < recent:
                st.refusals.popleft()
            # The sender clears failing_since only when its batch ends, a moment after the last
            # row is marked; with nothing left to send the sink is not retrying anything.
            failing_since = st.failing_since if st.backlog else None
            out[st.label] = {
                "backlog": st.backlog,
                "state": "retrying" if failing_since is not None else ("delivering" if st.backlog else "ok"),
                "oldest_pending_s": (round((now - st.oldest_pending).total_seconds(), 1)
                                     if st.oldest_pending is not None and st.backlog else None),
                "failing_for_s": round(time.time() - failing_since, 1) if failing_since else None,
                "last_error": st.last_error,
                "delivered": st.delivered,
                # refused for good by the receiver (400, 413, 415, 422): counted as delivered before
                "refused": st.refused,
                # of them, those in the last REFUSED_SHOWN_S (a /health fault), and the last one's error
                "refused_recent": len(st.refusals),
                "last_refused": st.last_refused if st.refusals else None,
            }
        return out

    def flush(self, timeout_s: float = 10.0) -> bool:
        """Wait until every sink has taken every row committed so far; False on timeout."""
        deadline = time.monotonic() + timeout_s
        self.wake()
        while True:
            for st in self._states:
                self._safe_count(st)
            if all(st.backlog == 0 for st in self._states):
                return True
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.05)

    def close(self, timeout_s: float = 5.0) -> None:
        """Deliver what can be delivered within ``timeout_s``, then stop; the rest stays owed."""
        # a sink that is failing now would only spend the whole timeout
        if self._states and all(st.failing_since is None for st in self._states):
            self.flush(timeout_s)
        self._stop.set()
        self.wake()
        for t in self._threads:
            t.join(timeout=timeout_s)
        for sink in self.sinks:
            try:
                sink.close()
            except Exception:  # noqa: BLE001
                pass
