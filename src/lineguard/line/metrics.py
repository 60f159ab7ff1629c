"""Prometheus metrics of one station (own registry, so several stations can coexist in tests)."""
from __future__ import annotations

import re
import threading
import time
from typing import Optional

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.5, 0.75, 1.0, 2.0, 5.0, 10.0)

# The station's own faults (line.station, disk, backup, record_keeper, sweep, the PLC
# links, the camera): few and fixed, their series stay at 0 once cleared, so an alert
# on them resolves and a dashboard keeps the line. Every other name (a watcher's, which
# a key holder's heartbeat names; a model's, a sink's) is dropped once it has been at 0
# for FAULT_CLEARED_KEPT_S and FAULT_CLEARED_SCRAPES scrapes, long enough for Prometheus
# to see it resolve: kept for ever, heartbeats under new line names grew /metrics without
# end (2000 of them: 5 KB to 480 KB).
STATION_FAULTS = frozenset({"database", "images", "disk", "backup", "records", "records_image", "store_sweep",
                            "camera"})
_PLC_FAULT = re.compile(r"^plc(-[a-z0-9]+)?(_signals|_backlog_signals)?$")
FAULT_CLEARED_KEPT_S = 600.0
FAULT_CLEARED_SCRAPES = 3
# most fault series of any other name at once (standing or cleared): more standing
# faults than this are counted in one series, MORE_FAULTS, not one each
MAX_FAULT_SERIES = 300
MORE_FAULTS = "more faults"


def fixed_fault(name: str) -> bool:
    """Whether ``name`` is one of the station's own faults, whose series stays at 0 once cleared."""
    return name in STATION_FAULTS or bool(_PLC_FAULT.match(name))


class StationMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.parts = Counter("lineguard_parts", "Parts inspected, by line, station and verdict (test parts apart)",
                             ["line", "station", "verdict"], registry=self.registry)
        self.rejected_uploads = Counter("lineguard_rejected_inputs", "Inputs refused before inspection, by reason",
                                        ["reason"], registry=self.registry)
        self.latency = Histogram("lineguard_inspection_seconds", "Time to inspect and record one part",
                                 ["line"], buckets=LATENCY_BUCKETS, registry=self.registry)
        self.model_latency = Histogram("lineguard_model_seconds", "Time inside the model for one part",
                                       ["line"], buckets=LATENCY_BUCKETS, registry=self.registry)
        self.queue_depth = Gauge("lineguard_queue_depth", "Parts accepted and not yet answered",
                                 registry=self.registry)
        self.active_model = Gauge("lineguard_active_model_version",
                                  "Registry version of the active model per product and line",
                                  ["product", "line", "model_id"], registry=self.registry)
        # the outbox (see line.outbox): nothing is dropped, so what matters is what waits
        self.outbox_backlog = Gauge("lineguard_outbox_backlog", "Outbox rows a sink has not yet taken",
                                    ["sink"], registry=self.registry)
        self.outbox_delivered = Counter("lineguard_outbox_delivered", "Outbox rows a sink acknowledged",
                                        ["sink"], registry=self.registry)
        self.outbox_failures = Counter("lineguard_outbox_failures", "Failed delivery attempts (retried)",
                                       ["sink"], registry=self.registry)
        # a shadow model's parts (see line.shadow): judged, dropped (it fell behind), failed
        self.shadow_parts = Counter("lineguard_shadow_parts", "Parts handed to a shadow model, by outcome",
                                    ["outcome"], registry=self.registry)
        # test parts (see line.test_parts): a "wrong" one means the station failed its verification
        self.test_part_checks = Counter("lineguard_test_part_checks", "Test parts judged, by line, station and "
                                        "whether they got their known verdict", ["line", "station", "result"],
                                        registry=self.registry)
        # line alarms (see line.alarms): a run of rejected parts, or a high NG rate, at a station
        self.alarms_raised = Counter("lineguard_alarms_raised", "Line alarms raised, by line, station and kind",
                                     ["line", "station", "kind"], registry=self.registry)
        self.alarms_escalated = Counter("lineguard_alarms_escalated", "Line alarms escalated, left unacknowledged, by "
                                        "line, station and kind", ["line", "station", "kind"], registry=self.registry)
        self.alarms_active = Gauge("lineguard_alarms_active", "Line alarms not yet acknowledged, by line and station",
                                   ["line", "station"], registry=self.registry)
        # how long the line has left them: an alert on lineguard_alarms_active fires alike for
        # one raised a minute ago and one nobody has looked at for 40 (set by
        # AlarmWatch.count_active, at each scrape; a kind's series stays at 0 once acknowledged)
        self.alarms_unacknowledged = Gauge("lineguard_alarms_unacknowledged_seconds", "Age of the oldest line "
                                           "alarm not yet acknowledged, by line, station and kind (0: none)",
                                           ["line", "station", "kind"], registry=self.registry)
        self.alarms_past_escalation = Gauge("lineguard_alarms_past_escalation", "Line alarms not yet acknowledged "
                                            "past their escalation time, by line and station",
                                            ["line", "station"], registry=self.registry)
        # the drift alarm's state (line.alarms, kind drift), set as each group of parts
        # completes: the rank shift it tests (-0.5..0.5; none while the baseline fills) and
        # the parts of the baseline so far, so a dashboard sees a slow creep before the alarm
        self.drift_shift = Gauge("lineguard_score_drift_shift", "Rank shift of the latest group of part scores "
                                 "against the baseline (-0.5..0.5), by line, station and product",
                                 ["line", "station", "product"], registry=self.registry)
        self.drift_baseline_parts = Gauge("lineguard_score_drift_baseline_parts", "Parts in the score-drift "
                                          "baseline so far, by line, station and product",
                                          ["line", "station", "product"], registry=self.registry)
        # the photo check (vision.photo_check): photos unlike the model's good photos (a lamp,
        # a lens), judged REVIEW at best; a rise is the camera's, not the parts'
        self.photos_doubted = Counter("lineguard_photos_doubted", "Parts whose photo was unlike the model's good "
                                      "photos, by line and station (test parts apart)", ["line", "station"],
                                      registry=self.registry)
        self.outbox_refused = Counter("lineguard_outbox_refused", "Rows a receiver refused for good (HTTP 4xx)",
                                      ["sink"], registry=self.registry)
        # what /health's faults say, for a plant monitor that alerts on metrics: 1 while a
        # fault stands, 0 once it cleared (the series stays, so an alert can resolve: the
        # station's own for ever, the others' for a while, see set_faults)
        self.faults = Gauge("lineguard_station_fault", "1 while the station has this fault (see /health's faults), "
                            "0 once it cleared", ["fault"], registry=self.registry)
        self._fault_names: set[str] = set()           # the station's own, kept at 0 once cleared
        # the others' series that cleared: name -> (when, by the monotonic clock, scrapes at 0 since)
        self._cleared: dict[str, tuple[float, int]] = {}
        self._others_shown: set[str] = set()
        self._faults_lock = threading.Lock()
        # hot folders' watchers (line.watchers): files ready and not yet taken, and the oldest's wait
        self.hot_folder_waiting = Gauge("lineguard_hot_folder_waiting", "Files ready in a hot folder and not yet "
                                        "taken, by line and station", ["line", "station"], registry=self.registry)
        self.hot_folder_oldest = Gauge("lineguard_hot_folder_oldest_wait_seconds", "How long the oldest file "
                                       "ready in a hot folder has waited", ["line", "station"], registry=self.registry)
        # labels every series carries on /metrics (create_app's metric_labels: a Ray Serve
        # replica's number, so Prometheus can sum the replicas instead of reading resets)
        self.const_labels: dict[str, str] = {}

    def set_faults(self, faults: dict[str, str], now: Optional[float] = None) -> None:
        """The faults standing now (/health's): 1 each; 0 for those that cleared, the
        station's own for ever, the others for a while (see FAULT_CLEARED_KEPT_S); at most
        MAX_FAULT_SERIES series of the others. ``now``: the monotonic clock."""
        now = time.monotonic() if now is None else now
        with self._faults_lock:           # two scrapes at once: one at a time, each whole
            self._fault_names |= {name for name in faults if fixed_fault(name)}
            for name in self._fault_names:
                self.faults.labels(name).set(1 if name in faults else 0)
            standing = sorted(name for name in faults if not fixed_fault(name))
            if len(standing) > MAX_FAULT_SERIES:
                # more standing faults than series (each is on /health): the rest counted in one
                shown, more = standing[:MAX_FAULT_SERIES - 1], {MORE_FAULTS: len(standing) - MAX_FAULT_SERIES + 1}
            else:
                shown, more = standing, {}
            for name in [*standing, *more]:       # standing: not cleared, whether it has a series or not
                self._cleared.pop(name, None)
            for name in self._others_shown - set(standing) - set(more):      # cleared since
                self._cleared.setdefault(name, (now, 0))
            for name, (since, scrapes) in list(self._cleared.items()):
                if scrapes >= FAULT_CLEARED_SCRAPES and now - since >= FAULT_CLEARED_KEPT_S:
                    del self._cleared[name]                  # seen at 0 long enough for an alert to resolve
                else:
                    self._cleared[name] = (since, scrapes + 1)
            # the cleared ones in the room left, the latest cleared first; the others go now
            room = MAX_FAULT_SERIES - len(shown) - len(more)
            for name in sorted(self._cleared, key=lambda n: self._cleared[n][0], reverse=True)[room:]:
                del self._cleared[name]
            values = {**{name: 1 for name in shown}, **more, **{name: 0 for name in self._cleared}}
            for name in self._others_shown - set(values):
                try:
                    self.faults.remove(name)
                except KeyError:
                    pass
            for name, value in values.items():
                self.faults.labels(name).set(value)
            self._others_shown = set(values)

    def set_hot_folders(self, backlogs: list[dict]) -> None:
        """The running watchers' backlogs (line.watchers.backlogs); a watcher gone drops its series."""
        per: dict[tuple[str, str], list[float]] = {}      # two folders of one line and station: together
        for b in backlogs:
            got = per.setdefault((b["line"], b["station"]), [0, 0.0])
            got[0] += b["waiting"]
            got[1] = max(got[1], b["oldest_wait_s"])
        with self._faults_lock:
            self.hot_folder_waiting.clear()
            self.hot_folder_oldest.clear()
            for (line, station), (waiting, oldest) in per.items():
                self.hot_folder_waiting.labels(line, station).set(waiting)
                self.hot_folder_oldest.labels(line, station).set(oldest)

    def set_actives(self, active: list[tuple[str, str, str, int]]) -> None:
        """The active versions, (product, line, model_id, version) each, as the whole set:
        one series per product and line, and none for a line with no version of its own
        (a rollback gave it back to the model of every line: its old series stood on when
        series were only ever replaced). New series are set before old ones go, so a scrape
        in between never sees a product with none."""
        keep = set()
        for product, line, model_id, version in active:
            self.active_model.labels(product, line, model_id[:16]).set(version)
            keep.add((product, line, model_id[:16]))
        for metric in list(self.registry.collect()):
            if metric.name != "lineguard_active_model_version":
                continue
            for sample in metric.samples:
                lb = sample.labels
                labels = (lb.get("product"), lb.get("line"), lb.get("model_id"))
                if labels not in keep:
                    try:
                        self.active_model.remove(*labels)
                    except KeyError:
                        pass

    def render(self) -> bytes:
        if not self.const_labels:
            return generate_latest(self.registry)
        return generate_latest(_Labelled(self.registry, self.const_labels))


class _Labelled:
    """A registry as /metrics renders it with labels every series carries (a Ray Serve
    replica's): each scrape through Serve's proxy lands on one replica, and without its
    own label replica 1's lineguard_parts_total (3) then replica 2's (5) read as one
    counter that jumped and reset."""

    def __init__(self, registry: CollectorRegistry, labels: dict[str, str]) -> None:
        self.registry, self.labels = registry, labels

    def collect(self):
        for family in self.registry.collect():
            # the series' own label wins: a replica label never hides a metric's own
            family.samples = [s._replace(labels={**self.labels, **s.labels}) for s in family.samples]
            yield family
