"""How model versions did on the parts people reviewed, and a candidate against the active one.

A reviewed-good part judged NG is a false reject; a reviewed-defect part judged OK is
an escape (a REVIEW verdict is neither: a person looked). A version's parts are the
ones it judged as the active model (the inspection records) and as a shadow (the
shadow results).

Two sets of rates per version. ``rates`` count every part people reviewed: people review
what the model flagged (NG, REVIEW) far more than what it passed, so a version's escapes
are hardly ever among them (on magnetic tiles v1 showed 3.5% escapes where the share of
defects it passed was 43%). ``sample_rates`` count only the random audit sample
(``Inspection.audit_sample``, drawn by the photo's hash before any verdict), the rates
SPC's ``escape_audit`` gives for the line, here per version (:func:`sample_rates`).

People choose which of the sample's parts to review by the verdict the line gave (the
active version's: every part it flagged, a share of what it passed), never by a shadow's.
A shadow's OK parts that were reviewed are then rich in parts the active one flagged, the
likelier defects: with two equally good versions, all flagged parts reviewed and a tenth
of the passed ones, the shadow's escapes read 2.3% where the true share was 0.6%. So a
version's sample rates are weighted by the line's verdict (post-stratification: within
each of the line's verdicts the reviewed parts are a fair pick of the sample's parts,
the sample being drawn by the photo's hash), which for the active version's own parts
is the plain rate.

Before a version is activated it is also tried on the product's latest good parts
(:func:`try_on_good_parts`): a model made for another product passes every check of
its own file and then rejects every good part of the line.
"""
from __future__ import annotations

import logging
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Optional

from sqlalchemy import and_, case, exists, func, or_, select, true, union_all
from sqlalchemy.orm import Session

from ..vision.calibration import clopper_pearson, rate_with_ci
from .orm import ChangeLogEntry, Inspection, ModelActivation, ModelVersion, ShadowResult

MAX_DISAGREEMENTS = 200

# A version about to be activated judges this many of the product's latest good parts
# (20 parts: well under a second on the fast profile, and enough to tell a model of
# another product, which rejects nearly all of them, from one a little stricter) ...
GOOD_PARTS_TRIED = 20
# ... and is refused when it rejects more than half of them, once at least this many
# could be judged (a new product's first parts say too little to stop anyone)
GOOD_PARTS_NEEDED = 5
# At most this many of a version's own training photos are looked past to find good parts
# it did not learn from (each is read to tell): past them, fewer parts are tried
MAX_LEARNT_PASSED = 1000
# ... and it judges this many of the latest parts reviewed as defects: a retrain whose
# threshold came out above every defect of the line (set by the oddest good parts, the
# old version's false alarms, it learnt from) passed 26 of 26 real defects held out, and
# was activated with a 200 on its good-parts trial alone
DEFECTS_TRIED = 20
# what _judge_stored says of a stored photo besides a verdict: one the model learned from,
# one it failed on
LEARNT, FAILED = "learnt", "failed"

log = logging.getLogger("lineguard.compare")


def _rates(counts: dict[tuple[str, str], int]) -> Optional[dict[str, Any]]:
    """(review label, verdict) -> parts  ->  the rates (None when nothing was reviewed)."""
    good = {v: n for (label, v), n in counts.items() if label == "good"}
    defect = {v: n for (label, v), n in counts.items() if label == "defect"}
    n_good, n_defect = sum(good.values()), sum(defect.values())
    if not n_good and not n_defect:
        return None
    return {"n_good": n_good, "n_defect": n_defect,
            "false_reject_rate": good.get("NG", 0) / n_good if n_good else None,
            "escape_rate": defect.get("OK", 0) / n_defect if n_defect else None}


# The share of the sample's defects a version passed is read off the sample's reviewed
# parts; it is that share only when the sample's parts of each of the line's verdicts were
# reviewed in about the same proportion (the audit list holds the sample's OK parts, the NG
# and REVIEW lists everything flagged: with the flagged ones all reviewed and a tenth of the
# OK ones, the defects caught count ten times over the ones passed). Within this ratio of
# each other, the share's odds are off by at most a ninth; beyond it the share is withheld.
# The line's verdicts, not the version's own: people chose what to review by what the line
# said (for a shadow, the active version's verdict).
EVEN_REVIEW = 0.9


def weighted_rate(strata: dict[str, tuple[int, int, int]], confidence: float = 0.95) -> dict[str, Any]:
    """A rate over parts whose reviews were picked by the line's verdict, weighted by it.

    ``strata``: the line's verdict -> (the version's parts of that kind judged, of them
    reviewed, of those the ones counted: defects for an escape, good parts for a false
    reject). Each kind's share (``k / reviewed``) is weighted by its part of the judged
    parts: within a kind the reviewed parts are a fair pick, across kinds they are not.

    With the parts all of one kind (the active version's own verdicts) it is
    :func:`rate_with_ci` itself. Otherwise ``rate`` is the weighted share (None when a kind
    holding some of the parts had none reviewed: nothing says what they are), and ``lo``/
    ``hi`` a conservative interval: each kind's exact interval at confidence
    1 - (1 - ``confidence``) / kinds (Bonferroni: all hold together at least
    ``confidence`` of the time), weighted; a kind none of which was reviewed counts 0 to 1.
    The weights are the sample's own shares (every judged part, many more than the
    reviewed ones), taken as they are. ``k``/``n``: the reviewed parts' plain counts, and
    ``weighted_by`` each kind's."""
    kinds = {a: c for a, c in strata.items() if c[0]}
    k, n = sum(c[2] for c in kinds.values()), sum(c[1] for c in kinds.values())
    if len(kinds) <= 1:
        return rate_with_ci(k, n, confidence)
    judged = sum(c[0] for c in kinds.values())
    each = 1 - (1 - confidence) / len(kinds)
    rate: Optional[float] = 0.0
    lo = hi = 0.0
    for parts, reviewed, counted in kinds.values():
        w = parts / judged
        a, b = clopper_pearson(counted, reviewed, each)
        lo, hi = lo + w * a, hi + w * b
        rate = rate + w * counted / reviewed if rate is not None and reviewed else None
    return {"rate": rate, "lo": lo, "hi": min(hi, 1.0), "k": int(k), "n": int(n),
            "weighted_by": {a: {"judged": int(c[0]), "reviewed": int(c[1]), "k": int(c[2])}
                            for a, c in sorted(kinds.items())}}


def sample_rates(counts: dict[tuple, int], confidence: float = 0.95) -> Optional[dict[str, Any]]:
    """A version's rates on the random audit sample alone, with exact intervals.

    ``counts``: (reviewed, review label, the line's verdict, the version's verdict) -> the
    sample's parts it judged; a key of three, (reviewed, label, verdict), is a part it
    judged as the active version (the line's verdict was its own). None when it judged
    none of them. The sample is drawn before any verdict, and people pick which of its
    parts to review by the line's verdict; so each rate is :func:`weighted_rate` over the
    line's verdicts (for the active version's parts, the plain rate):

    - ``escape``: of the sample's parts it judged OK, the share that are defects, read off
      those a person reviewed: the share of what it passes that is defective (outgoing
      defects; SPC's ``escape_audit`` for one version).
    - ``defects_passed``: of the sample's parts reviewed as defects, those it judged OK:
      the share of the line's defects it lets through. None (``even_review`` false) when
      the sample's parts of one of the line's verdicts were reviewed in a far smaller share
      than those of another (:data:`EVEN_REVIEW`): then it says more of how people review
      than of the model.
    - ``false_reject``: of the sample's parts it judged NG, the share that are good.

    ``judged``/``reviewed`` say on how many parts, per verdict of its own (``by_verdict``)
    and of the line's (``by_line_verdict``: what ``even_review`` compares), so that a
    reader sees when too few were reviewed to say anything."""
    if not counts:
        return None
    cells: dict[tuple[bool, Optional[str], str, str], int] = defaultdict(int)
    for key, c in counts.items():
        rev, lab, line_verdict, v = key if len(key) == 4 else (key[0], key[1], key[2], key[2])
        cells[(bool(rev), lab if rev else None, line_verdict, v)] += c

    def n(verdict: Optional[str] = None, label: Optional[str] = None, line: Optional[str] = None) -> int:
        return sum(c for (rev, lab, a, v), c in cells.items()
                   if (verdict is None or v == verdict) and (line is None or a == line)
                   and (label is None or (rev and lab == label)))

    def reviewed(verdict: Optional[str] = None, line: Optional[str] = None) -> int:
        # reviewed good or defect (a label to count by)
        return n(verdict, "good", line) + n(verdict, "defect", line)

    def weighted(verdict: str, label: str) -> dict[str, Any]:
        return weighted_rate({a: (n(verdict, line=a), reviewed(verdict, a), n(verdict, label, a))
                              for a in line_verdicts}, confidence)

    verdicts = sorted({v for (_r, _l, _a, v) in cells})
    line_verdicts = sorted({a for (_r, _l, a, _v) in cells})
    by_verdict = {v: {"judged": n(v), "reviewed": reviewed(v)} for v in verdicts}
    by_line = {a: {"judged": n(line=a), "reviewed": reviewed(line=a)} for a in line_verdicts}
    shares = [b["reviewed"] / b["judged"] for b in by_line.values() if b["judged"]]
    even = bool(shares) and max(shares) > 0 and min(shares) >= EVEN_REVIEW * max(shares)
    defects = n(label="defect")
    return {"judged": n(), "reviewed": reviewed(), "by_verdict": by_verdict, "by_line_verdict": by_line,
            "escape": weighted("OK", "defect"),
            "defects_passed": rate_with_ci(n("OK", "defect"), defects, confidence) if even else None,
            "even_review": even,
            "false_reject": weighted("NG", "good"),
            "confidence": confidence}


def _split(counts: dict[tuple[bool, bool, Optional[str], str, str], int]) -> tuple[dict, dict]:
    """(in sample, reviewed, label, the line's verdict, the version's verdict) -> parts  ->
    (the reviewed parts' (label, verdict) counts for :func:`_rates`, the sample's
    (reviewed, label, line verdict, verdict) ones for :func:`sample_rates`)."""
    reviewed: dict[tuple[str, str], int] = defaultdict(int)
    sample: dict[tuple[bool, Optional[str], str, str], int] = defaultdict(int)
    for (in_sample, rev, label, line_verdict, verdict), k in counts.items():
        if rev:
            reviewed[(label, verdict)] += k
        if in_sample:
            sample[(bool(rev), label if rev else None, line_verdict, verdict)] += k
    return reviewed, sample


def _reviewed_or_sampled(q: Any) -> Any:
    """``q`` over the parts reviewed or in the audit sample, as two branches each along its
    own index (``ix_inspections_reviewed``; the partial ``ix_inspections_audit_sample``,
    migration 0026): one ``reviewed OR audit_sample`` can use neither and reads every
    record (SQLite, 2 million parts, 99,000 of them reviewed or sampled: 0.6-0.7 s against
    0.31-0.36 s in two branches; the reviewed ones alone took 0.24-0.31 s). The branches
    share no part; a grouped ``q`` may give a group in each (the caller adds them)."""
    # "= true" as the partial index's condition is written (SQLite matches it by its text);
    # "IS NOT true", not "= false", so that no planner goes along the reviewed index for
    # nearly every part (SQLite without statistics did)
    return union_all(q.where(Inspection.reviewed.is_(True)),
                     q.where(Inspection.audit_sample == true(), Inspection.reviewed.is_not(True)))


def _active_spans(s: Session, product: str, line: str) -> list[tuple[Any, Any, int]]:
    """(from, until, model version id) of each stretch a version was the one active for
    exactly product/line (until None: still), from the activations and their rollbacks:
    at any moment the newest activation standing then is the active one."""
    acts = list(s.execute(select(ModelActivation.id, ModelActivation.model_version_id, ModelActivation.activated_at,
                                 ModelActivation.rolled_back_at)
                          .where(ModelActivation.product == product, ModelActivation.line == line)))
    times = sorted({t for _i, _v, at, back in acts for t in (at, back) if t is not None})
    spans = []
    for i, t in enumerate(times):
        standing = [(aid, vid) for aid, vid, at, back in acts if at <= t and (back is None or back > t)]
        if standing:
            spans.append((t, times[i + 1] if i + 1 < len(times) else None, max(standing)[1]))
    return spans


def version_rates(s: Session, versions: Iterable[ModelVersion]) -> dict[int, Optional[dict[str, Any]]]:
    """Rates on reviewed parts per version id (see :func:`version_counts`)."""
    return {vid: reviewed for vid, (reviewed, _sample) in version_rates_both(s, versions).items()}


def version_rates_both(s: Session, versions: Iterable[ModelVersion]
                       ) -> dict[int, tuple[Optional[dict[str, Any]], Optional[dict[str, Any]]]]:
    """Per version id, (its rates on reviewed parts, its rates on the random audit sample:
    :func:`sample_rates`), from one count of the parts (:func:`version_counts`)."""
    out = {}
    for vid, counts in version_counts(s, versions).items():
        reviewed, sample = _split(counts)
        out[vid] = (_rates(reviewed), sample_rates(sample))
    return out


# (in the audit sample, reviewed, review label, the line's verdict, the version's verdict)
CountKey = tuple[bool, bool, Optional[str], str, str]


def version_counts(s: Session, versions: Iterable[ModelVersion]) -> dict[int, dict[CountKey, int]]:
    """Per version id, (in the audit sample, reviewed, review label, the line's verdict, its
    verdict) -> parts, over the parts reviewed or in the audit sample it judged, in a few
    grouped queries for any number of versions (:func:`_split` parts them for
    :func:`_rates` and :func:`sample_rates`). The line's verdict is the one people saw and
    picked reviews by: its own on the parts it judged as the active version, the active
    one's on those it judged in shadow.

    A part's record names the model and its version number, not whether the version was
    a line's own or the product's: a file uploaded for line L1 too (cell/L1 v1 beside
    cell v1, the same model) would count the product-wide one's parts as its own. Where
    a line's version shares model and number with a product-wide one, the parts of that
    line go to the one active for the line when the part was judged."""
    versions = list(versions)
    products = sorted({mv.product for mv in versions})
    counts: dict[int, dict[tuple[bool, bool, Optional[str], str, str], int]] = defaultdict(lambda: defaultdict(int))
    if not versions:
        return {}
    by_key = defaultdict(list)
    for mv in versions:
        by_key[(mv.product, mv.model_id, mv.version)].append(mv)
    # every registered version sharing such a key (not only those asked about): the ambiguous ones
    shared = defaultdict(list)
    for mv in s.scalars(select(ModelVersion).where(ModelVersion.product.in_(products))):
        shared[(mv.product, mv.model_id, mv.version)].append(mv)
    ambiguous = {key: mvs for key, mvs in shared.items()
                 if key in by_key and len(mvs) > 1 and any(not mv.line for mv in mvs)}
    # a reviewed part, or one of the audit sample whether reviewed or not (how many of the
    # sample's parts were judged says how much of it the reviews cover)
    group = (Inspection.product, Inspection.model_id, Inspection.registry_version, Inspection.line,
             Inspection.audit_sample, Inspection.reviewed, Inspection.review_label, Inspection.verdict)
    q = _reviewed_or_sampled(select(*group, func.count().label("n"))
                             .where(Inspection.product.in_(products), Inspection.test_part.is_(None))
                             .group_by(*group))
    for product, model_id, reg_version, line, in_sample, reviewed, label, verdict, n in s.execute(q):
        key = (product, model_id, reg_version)
        if key in ambiguous and any(mv.line == line for mv in ambiguous[key]):
            continue     # by time, below
        for mv in by_key.get(key, ()):
            if not mv.line or mv.line == line:
                counts[mv.id][(bool(in_sample), bool(reviewed), label, verdict, verdict)] += n
    for (product, model_id, reg_version), mvs in ambiguous.items():
        wide = next(mv for mv in mvs if not mv.line)
        for own in (mv for mv in mvs if mv.line):
            spans = [(a, b) for a, b, vid in _active_spans(s, product, own.line) if vid == own.id]
            rows = s.execute(_reviewed_or_sampled(
                select(Inspection.created_at, Inspection.audit_sample, Inspection.reviewed,
                       Inspection.review_label, Inspection.verdict)
                .where(Inspection.product == product, Inspection.model_id == model_id,
                       Inspection.registry_version == reg_version, Inspection.line == own.line,
                       Inspection.test_part.is_(None))))
            for at, in_sample, reviewed, label, verdict in rows:
                judge = own if any(a <= at and (b is None or at < b) for a, b in spans) else wide
                counts[judge.id][(bool(in_sample), bool(reviewed), label, verdict, verdict)] += 1
    ids = [mv.id for mv in versions]
    # in shadow: along the shadow's results (few beside the line's records), each part's
    # record looked up; the line's verdict is the active version's
    counted = or_(Inspection.reviewed.is_(True), Inspection.audit_sample.is_(True))
    q2 = (select(ShadowResult.model_version_id, Inspection.audit_sample, Inspection.reviewed, Inspection.review_label,
                 Inspection.verdict, ShadowResult.verdict, func.count())
          .join(Inspection, Inspection.id == ShadowResult.inspection_id)
          .where(counted, ShadowResult.model_version_id.in_(ids), Inspection.test_part.is_(None))
          .group_by(ShadowResult.model_version_id, Inspection.audit_sample, Inspection.reviewed,
                    Inspection.review_label, Inspection.verdict, ShadowResult.verdict))
    for mv_id, in_sample, reviewed, label, line_verdict, verdict, n in s.execute(q2):
        counts[mv_id][(bool(in_sample), bool(reviewed), label, line_verdict, verdict)] += n
    return {mv.id: dict(counts.get(mv.id, {})) for mv in versions}


def shadow_runs(s: Session, candidate: ModelVersion) -> list[tuple[Any, Any]]:
    """(from, until) of each stretch ``candidate`` ran in shadow (until None: it runs still),
    from the change log: ``model.shadow_started`` names the version (``cell/L1 v2``),
    ``model.shadow_stopped`` the product and line it shadowed (``cell/L1``), whether it was
    stopped, replaced by another version or made active. A restart does not end a run (the
    shadow is kept in the database and goes on with the next part)."""
    from .registry import model_subject
    slot = f"{candidate.product}/{candidate.line or '*'}"
    entries = s.execute(select(ChangeLogEntry.action, ChangeLogEntry.at)
                        .where(or_(and_(ChangeLogEntry.action == "model.shadow_started",
                                        ChangeLogEntry.subject == model_subject(candidate)),
                                   and_(ChangeLogEntry.action == "model.shadow_stopped",
                                        ChangeLogEntry.subject == slot)))
                        .order_by(ChangeLogEntry.at, ChangeLogEntry.id))
    runs: list[tuple[Any, Any]] = []
    since = None
    for action, at in entries:
        if action == "model.shadow_started":
            since = at if since is None else since
        elif since is not None:
            runs.append((since, at))
            since = None
    if since is not None:
        runs.append((since, None))
    return runs


def compare(s: Session, active: ModelVersion, candidate: ModelVersion, line: str = "",
            max_disagreements: int = MAX_DISAGREEMENTS) -> dict[str, Any]:
    """The candidate's shadow verdicts against the active version's on the parts both judged:
    agreement, disagreements, the rates of each on the reviewed parts (``reviewed``) and on
    the audit sample's parts (``sample``, :func:`sample_rates`: the candidate's weighted by
    the active version's verdicts, which chose what people reviewed) among them, and
    ``not_compared``: the parts the active version judged while the candidate ran in
    shadow (``shadow_runs``, from the change log) that the candidate did not, because the
    shadow fell behind and dropped them or failed on them. A comparison on half the line's
    parts must say so: the dropped ones come in bursts (a busy hour), not at random; the
    time a shadow was stopped on purpose is not held against it. Where the change log has
    no run of it (parts from before the log), from the first part both judged to the last."""
    # a test part's review says what the part is, not how the line's parts are judged:
    # left out, as SPC, the shift report and tuning leave it out
    both = and_(ShadowResult.model_version_id == candidate.id, Inspection.product == active.product,
                Inspection.model_id == active.model_id, Inspection.registry_version == active.version,
                Inspection.test_part.is_(None))
    if line:
        both = and_(both, Inspection.line == line)
    base = select(Inspection).join(ShadowResult, ShadowResult.inspection_id == Inspection.id).where(both)
    agree = case((Inspection.verdict == ShadowResult.verdict, 1), else_=0)
    parts, agreed, first, last = s.execute(base.with_only_columns(
        func.count(), func.coalesce(func.sum(agree), 0), func.min(Inspection.created_at),
        func.max(Inspection.created_at))).one()
    runs = shadow_runs(s, candidate)
    if parts and (not runs or first < runs[0][0]):
        # parts compared before the log's first run (a shadow from before the change log):
        # their stretch is all that says when it ran
        runs = [(first, runs[0][0] if runs else last)] + runs
    not_compared = 0
    if runs:
        # the active version's parts over the runs without a candidate verdict (the shadow's
        # own counters are per process, for every shadow together, and gone with a restart;
        # the records are not), counted as such: a count of the stretch less the parts both
        # judged went below 0 where a bound compared unequal to the stored time
        during = or_(*(and_(Inspection.created_at >= a, *(() if b is None else (Inspection.created_at <= b,)))
                       for a, b in runs))
        same = [Inspection.product == active.product, Inspection.model_id == active.model_id,
                Inspection.registry_version == active.version, Inspection.test_part.is_(None), during,
                ~exists().where(ShadowResult.inspection_id == Inspection.id,
                                ShadowResult.model_version_id == candidate.id)]
        if line:
            same.append(Inspection.line == line)
        not_compared = max(0, int(s.scalar(select(func.count()).select_from(Inspection).where(*same)) or 0))
    rows = s.execute(base.with_only_columns(Inspection.id, Inspection.part_id, Inspection.verdict, ShadowResult.verdict,
                                            Inspection.score, ShadowResult.score, Inspection.review_label)
                     .where(Inspection.verdict != ShadowResult.verdict)
                     .order_by(Inspection.id.desc()).limit(max_disagreements)).all()
    reviewed = {"active": defaultdict(int), "candidate": defaultdict(int)}
    for label, a_verdict, c_verdict, n in s.execute(
            base.with_only_columns(Inspection.review_label, Inspection.verdict, ShadowResult.verdict, func.count())
            .where(Inspection.reviewed.is_(True))
            .group_by(Inspection.review_label, Inspection.verdict, ShadowResult.verdict)):
        reviewed["active"][(label, a_verdict)] += n
        reviewed["candidate"][(label, c_verdict)] += n
    # (reviewed, label, the line's verdict, the version's): people picked the parts to review
    # by the active version's verdict, so the candidate's rates are weighted by it
    sample = {"active": defaultdict(int), "candidate": defaultdict(int)}
    for rev, label, a_verdict, c_verdict, n in s.execute(
            base.with_only_columns(Inspection.reviewed, Inspection.review_label, Inspection.verdict,
                                   ShadowResult.verdict, func.count())
            .where(Inspection.audit_sample == true())
            .group_by(Inspection.reviewed, Inspection.review_label, Inspection.verdict, ShadowResult.verdict)):
        sample["active"][(bool(rev), label if rev else None, a_verdict, a_verdict)] += n
        sample["candidate"][(bool(rev), label if rev else None, a_verdict, c_verdict)] += n
    return {
        "parts": int(parts),
        "agreement": (int(agreed) / parts) if parts else None,
        "disagreements": [{"inspection_id": i, "part_id": part_id, "active_verdict": av, "candidate_verdict": cv,
                           "active_score": a_score, "candidate_score": c_score, "review_label": label}
                          for i, part_id, av, cv, a_score, c_score, label in rows],
        "reviewed": {k: _rates(v) for k, v in reviewed.items()},
        "sample": {k: sample_rates(v) for k, v in sample.items()},
        "not_compared": not_compared,
        "compared_share": int(parts) / (int(parts) + not_compared) if parts else None,
        "shadow_runs": [{"started_at": a, "stopped_at": b} for a, b in runs],
    }


@dataclass
class GoodPartsTrial:
    """A version tried on the product's latest good parts before it is activated.

    A good part it would not pass is ``rejected``: judged NG (or not judged at all: it
    failed on the part), sent to REVIEW because it doubts the photo (photo issues: REVIEW
    whatever the score, and REVIEW sets the PLC's NG bit, so the line stops as for NG; a
    grey tile model on a colour product doubted 11 of 11 good parts and was activated, as
    only NG was counted), or sent to REVIEW on its score where the line passed the part OK.
    A part the line itself sent to review (a person then said good) and the version sends
    to review again on its score is no worse than the line: not counted. So a version with
    a review band sends its usual few percent to review and is not refused for it; more
    than half of the line's good parts is not a review band, it is a line stop.

    A photo the line doubted too (its record names photo issues: the part went to REVIEW
    on the line as well) is not counted either, only in ``photo_doubted_by_line``: then it
    is the photo (a lamp out, a dirty lens), not the version: the version is refused for
    the line stops it would add, not for the ones the line has already."""
    scored: int = 0
    rejected: int = 0                  # not passed: the sum of the three below
    judged_ng: int = 0                 # judged NG, or failed on the part
    photo_doubted: int = 0             # sent to REVIEW, its photo doubted (photo issues), the line's not
    photo_doubted_by_line: int = 0     # its photo doubted, and the line's record doubts it too: not counted
    sent_to_review: int = 0            # sent to REVIEW on its score, a part the line passed OK
    photo_issues: Counter = field(default_factory=Counter)    # kind of issue ("colour photo") -> parts
    line_verdicts: Counter = field(default_factory=Counter)   # what the line answered on the same parts
    by_active: int = 0                 # of those answers, how many the version active now gave
    learnt_left_out: int = 0           # parts passed over: photos the version learned from (it fits them)

    @property
    def rejects_good_parts(self) -> bool:
        return self.scored >= GOOD_PARTS_NEEDED and 2 * self.rejected > self.scored

    def count(self, verdict: str, issues: Iterable[str], line_verdict: str, line_doubted: bool = False) -> None:
        """One good part the version judged ``verdict`` (FAILED: it failed on it);
        ``line_doubted``: the line's record of the part names photo issues."""
        issues = list(issues)
        if verdict in ("NG", FAILED):          # a model that fails on the product's parts rejects them
            self.judged_ng += 1
        elif verdict == "OK":
            return
        elif issues and line_doubted:
            self.photo_doubted_by_line += 1    # the photo, not the version: said, not counted
            return
        elif issues:
            self.photo_doubted += 1
            # the kind, as the issue begins ("colour photo: the model learnt from ..."): once per part
            self.photo_issues.update({i.split(":", 1)[0].strip() for i in issues})
        elif line_verdict == "OK":
            self.sent_to_review += 1
        else:
            return
        self.rejected += 1

    def did(self, past: bool = False, parts: str = "good parts") -> str:
        """What the version does to the good parts, e.g. "judges 8 of the 8 latest good parts
        NG", "doubts the photo of 11 of the 11 latest good parts (colour photo 11)"; ``past``:
        as the change log says it of a forced activation ("judged ...")."""
        judges, doubts, sends, fails = (("judged", "doubted", "sent", "did not pass") if past else
                                        ("judges", "doubts", "sends", "would not pass"))
        kinds = ", ".join(f"{k} {n}" for k, n in self.photo_issues.most_common())
        said: list[tuple[int, Callable[[str], str]]] = [
            (self.judged_ng, lambda n: f"{judges} {n} NG"),
            (self.photo_doubted, lambda n: f"{doubts} the photo of {n} ({kinds})"),
            (self.sent_to_review, lambda n: f"{sends} {n} to REVIEW on its score, parts the line passed OK")]
        said = [(n, words) for n, words in said if n]
        of = f" of the {self.scored} latest {parts}"
        # the photos the line doubted too: named, so the count above is not read as all it doubts
        also = (f", and {doubts} the photo of {self.photo_doubted_by_line} more of them that the line doubted too "
                "(not counted: the photo, not the version)") if self.photo_doubted_by_line else ""
        if len(said) == 1:
            n, words = said[0]
            return words(f"{n}{of}") + also
        return f"{fails} {self.rejected}{of}: it " + ", ".join(words(str(n)) for n, words in said) + also


@dataclass
class DefectsTrial:
    """A version tried on the product's latest parts reviewed as defects before it is activated."""
    scored: int = 0
    passed: int = 0                    # judged OK by the version tried: shipped
    line_passed: int = 0               # judged OK by the line when they were made (escapes an audit found)
    learnt_left_out: int = 0

    @property
    def passes_defects(self) -> bool:
        """More than half of them passed, and more than the line passed: the version would
        ship defects the line catches (at least :data:`GOOD_PARTS_NEEDED` tried)."""
        return self.scored >= GOOD_PARTS_NEEDED and 2 * self.passed > self.scored and self.passed > self.line_passed


def recent_reviewed_defects(s: Session, product: str, line: str, limit: int) -> list[tuple[str, str]]:
    """(image key, verdict) of the product's latest parts whose latest review says defect and
    whose image was kept; never a test part. ``line`` "": every line."""
    q = (select(Inspection.image_key, Inspection.verdict)
         .where(Inspection.product == product, Inspection.image_key.is_not(None), Inspection.test_part.is_(None),
                Inspection.reviewed.is_(True), Inspection.review_label == "defect")
         .order_by(Inspection.created_at.desc(), Inspection.id.desc()).limit(limit))
    if line:
        q = q.where(Inspection.line == line)
    return [(k, v) for k, v in s.execute(q)]


def recent_good_parts(s: Session, product: str, line: str, limit: int) -> list[tuple[str, str, str, bool]]:
    """(image key, verdict, model id, whether the line doubted its photo) of the product's
    latest parts known good whose image was kept: reviewed good, or judged OK and not
    reviewed since. Never a test part (a red rabbit passed by a failing station is a
    defect), nor a photo any part was reviewed as a defect with (a re-sent photo shares its
    image, not its review), as retraining leaves them out (JobRunner.good_part_keys): a
    version that rejects it was charged with a false reject. ``line`` "": every line."""
    good = or_(Inspection.review_label == "good",
               and_(Inspection.verdict == "OK", Inspection.review_label.is_(None)))
    from .reviews import photo_reviewed_as_defect
    # photo issues are SQL NULL when nothing was off (migration 0013): a test, not the JSON read
    q = (select(Inspection.image_key, Inspection.verdict, Inspection.model_id, Inspection.photo_issues.is_not(None))
         .where(Inspection.product == product, Inspection.image_key.is_not(None), Inspection.test_part.is_(None))
         .where(good, ~photo_reviewed_as_defect())
         # newest first along the (product, created_at) index, not a walk of every record
         .order_by(Inspection.created_at.desc(), Inspection.id.desc()).limit(limit))
    if line:
        q = q.where(Inspection.line == line)
    return [(k, v, m, bool(doubted)) for k, v, m, doubted in s.execute(q)]


def learnt_photos(insp: Any) -> Optional[Callable[[Any], bool]]:
    """Whether a stored photo is one the model learned from, by the print of each
    training photo its file keeps (as ``Inspector.recalibrate`` leaves them out): a
    retrained model judges its own training parts OK whatever it does to the line's
    others, so tried on them it could never be refused. None: the model keeps no prints."""
    info = getattr(insp, "info", None)
    pre = getattr(insp, "preprocess", None)
    try:
        from ..vision.inspector import LEARNT_PHOTOS, photo_prints
    except ImportError:       # pragma: no cover - the vision layer is always there
        return None
    learnt = set((info.get(LEARNT_PHOTOS) or ()) if isinstance(info, dict) else ())
    if not learnt or not callable(getattr(pre, "load", None)):
        return None
    import numpy as np

    def seen(path: Any) -> bool:
        try:
            x = pre.load(str(path))[0]
        except Exception:  # noqa: BLE001 - unreadable: the trial passes over it anyway
            return False
        return photo_prints(np.stack([x]))[0] in learnt
    return seen


def ran_in_shadow_beside(s: Session, candidate: ModelVersion, live: ModelVersion) -> bool:
    """Whether ``candidate``'s model (this version, or the same file under another version of
    its product) ever judged a part in shadow that ``live``'s model judged on the line: a
    comparison of the two on this station's parts exists (Compare). One row looked for,
    along the shadow results' (version, part) key: not a count of a million."""
    same_file = select(ModelVersion.id).where(ModelVersion.product == candidate.product,
                                              ModelVersion.model_id == candidate.model_id)
    return s.scalar(select(ShadowResult.id).join(Inspection, Inspection.id == ShadowResult.inspection_id)
                    .where(ShadowResult.model_version_id.in_(same_file), Inspection.product == live.product,
                           Inspection.model_id == live.model_id).limit(1)) is not None


def try_on_good_parts(db: Any, images: Any, insp: Any, product: str, line: str = "",
                      active_model_id: Optional[str] = None, limit: int = GOOD_PARTS_TRIED) -> GoodPartsTrial:
    """Judge the product's latest good parts (:func:`recent_good_parts`) with the loaded
    model ``insp``, as the shadow judges the line's parts: one at a time, from the
    stored image. A part whose image has been swept from the store since is passed over,
    and so is a photo the model learned from (:func:`learnt_photos`; counted in
    ``learnt_left_out``): a retrain learns the latest reviewed-good parts, the very
    ones tried. ``db``: the station's Database (read, then let go before the model runs)."""
    trial = GoodPartsTrial()
    seen = learnt_photos(insp)
    with db.session() as s:
        parts = recent_good_parts(s, product, line, _wanted(insp, seen, limit))
    for key, verdict, model_id, line_doubted in parts:
        if trial.scored >= limit:
            break
        judged = _judge_stored(insp, images, key, seen)
        if judged is not None and judged[0] == LEARNT:
            trial.learnt_left_out += 1
        if judged is None or judged[0] == LEARNT:
            continue
        trial.scored += 1
        trial.line_verdicts[verdict] += 1
        trial.by_active += bool(active_model_id) and model_id == active_model_id
        trial.count(judged[0], judged[1], verdict, line_doubted)
    return trial


def try_on_reviewed_defects(db: Any, images: Any, insp: Any, product: str, line: str = "",
                            limit: int = DEFECTS_TRIED) -> DefectsTrial:
    """Judge the product's latest parts reviewed as defects (:func:`recent_reviewed_defects`)
    with the loaded model ``insp``, as :func:`try_on_good_parts` judges good ones: how many
    it would pass (OK) against how many the line passed when they were made. REVIEW is
    not passing: a person looks."""
    trial = DefectsTrial()
    seen = learnt_photos(insp)
    with db.session() as s:
        parts = recent_reviewed_defects(s, product, line, _wanted(insp, seen, limit))
    for key, verdict in parts:
        if trial.scored >= limit:
            break
        judged = _judge_stored(insp, images, key, seen)
        if judged is not None and judged[0] == LEARNT:   # a defect photo it learnt from as good: said
            trial.learnt_left_out += 1
        if judged is None or judged[0] == LEARNT:
            continue
        trial.scored += 1
        trial.passed += judged[0] == "OK"
        trial.line_passed += verdict == "OK"
    return trial


def _wanted(insp: Any, seen: Any, limit: int) -> int:
    # twice as many as needed: the image of an older one may be gone (the disk keeper); and
    # past the photos it learned from (a retrain's are the latest good parts)
    info = getattr(insp, "info", None)
    n_learnt = len(info.get("learnt_photos") or ()) if seen is not None and isinstance(info, dict) else 0
    return 2 * limit + min(n_learnt, MAX_LEARNT_PASSED)


def _judge_stored(insp: Any, images: Any, key: str,
                  seen: Optional[Callable[[Any], bool]]) -> Optional[tuple[str, tuple[str, ...]]]:
    """The verdict ("OK", "REVIEW", "NG") ``insp`` gives a stored part's photo and the photo
    issues it names (why it doubts the photo); LEARNT for a photo it learned from, FAILED
    when the model failed on it (no issues either way), None when the photo is gone or
    unreadable now (it says nothing of the model)."""
    from ..vision.imageio import DEFAULT_MAX_PIXELS, load_photo_for
    try:
        path = images.path(key)
        if seen is not None and seen(path):
            return LEARNT, ()
        # as a part is loaded for a model everywhere: its camera depth and decode scale too
        photo = load_photo_for(insp, path, DEFAULT_MAX_PIXELS)
    except Exception:  # noqa: BLE001
        return None
    try:
        result = insp.inspect(photo)
    except Exception as exc:  # noqa: BLE001
        log.info("the version tried failed on a stored part: %s", exc)
        return FAILED, ()
    judged = result.verdict
    return str(getattr(judged, "value", judged)), tuple(str(i) for i in (getattr(result, "photo_issues", None) or ()))
