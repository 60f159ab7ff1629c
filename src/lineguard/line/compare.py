"""How model versions did on the parts people reviewed, and a candidate against the active one.

A reviewed-good part judged NG is a false reject; a reviewed-defect part judged OK is
an escape (a REVIEW verdict is neither: a person looked). A version's parts are the
ones it judged as the active model (the inspection records) and as a shadow (the
shadow results).
"""
from __future__ import annotations

from collections import defaultdict
from typing import Any, Iterable, Optional

from sqlalchemy import and_, case, func, select
from sqlalchemy.orm import Session

from .orm import Inspection, ModelVersion, ShadowResult

MAX_DISAGREEMENTS = 200


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


def version_rates(s: Session, versions: Iterable[ModelVersion]) -> dict[int, Optional[dict[str, Any]]]:
    """Rates on reviewed parts per version id, in two grouped queries for any number of versions."""
    versions = list(versions)
    products = sorted({mv.product for mv in versions})
    counts: dict[int, dict[tuple[str, str], int]] = defaultdict(lambda: defaultdict(int))
    if not versions:
        return {}
    by_key = defaultdict(list)
    for mv in versions:
        by_key[(mv.product, mv.model_id, mv.version)].append(mv)
    q = (select(Inspection.product, Inspection.model_id, Inspection.registry_version, Inspection.line,
                Inspection.review_label, Inspection.verdict, func.count())
         .where(Inspection.reviewed.is_(True), Inspection.product.in_(products))
         .group_by(Inspection.product, Inspection.model_id, Inspection.registry_version, Inspection.line,
                   Inspection.review_label, Inspection.verdict))
    for product, model_id, reg_version, line, label, verdict, n in s.execute(q):
        for mv in by_key.get((product, model_id, reg_version), ()):
            if not mv.line or mv.line == line:
                counts[mv.id][(label, verdict)] += n
    ids = [mv.id for mv in versions]
    q2 = (select(ShadowResult.model_version_id, Inspection.review_label, ShadowResult.verdict, func.count())
          .join(Inspection, Inspection.id == ShadowResult.inspection_id)
          .where(Inspection.reviewed.is_(True), ShadowResult.model_version_id.in_(ids))
          .group_by(ShadowResult.model_version_id, Inspection.review_label, ShadowResult.verdict))
    for mv_id, label, verdict, n in s.execute(q2):
        counts[mv_id][(label, verdict)] += n
    return {mv.id: _rates(counts.get(mv.id, {})) for mv in versions}


def compare(s: Session, active: ModelVersion, candidate: ModelVersion, line: str = "",
            max_disagreements: int = MAX_DISAGREEMENTS) -> dict[str, Any]:
    """The candidate's shadow verdicts against the active version's on the parts both judged."""
    both = and_(ShadowResult.model_version_id == candidate.id, Inspection.product == active.product,
                Inspection.model_id == active.model_id, Inspection.registry_version == active.version)
    if line:
        both = and_(both, Inspection.line == line)
    base = select(Inspection).join(ShadowResult, ShadowResult.inspection_id == Inspection.id).where(both)
    agree = case((Inspection.verdict == ShadowResult.verdict, 1), else_=0)
    parts, agreed = s.execute(base.with_only_columns(func.count(), func.coalesce(func.sum(agree), 0))).one()
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
    return {
        "parts": int(parts),
        "agreement": (int(agreed) / parts) if parts else None,
        "disagreements": [{"inspection_id": i, "part_id": part_id, "active_verdict": av, "candidate_verdict": cv,
                           "active_score": a_score, "candidate_score": c_score, "review_label": label}
                          for i, part_id, av, cv, a_score, c_score, label in rows],
        "reviewed": {k: _rates(v) for k, v in reviewed.items()},
    }
