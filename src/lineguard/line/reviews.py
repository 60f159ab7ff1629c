"""What people said about parts: the review history and each product's defect types.

A review is appended, never overwritten: who said what, when, and what the model had
said (a false alarm and a later "defect after all" are both kept). The inspection
carries the latest review, so lists and filters need no join.
"""
from __future__ import annotations

from typing import Any, Optional, Sequence

from sqlalchemy import exists, select
from sqlalchemy.orm import Session, aliased

from . import audit
from .errors import InvalidRequest, ReviewChanged
from .orm import Inspection, ProductSettings, Review, utcnow

DEFAULT_DEFECT_TYPES = ("scratch", "crack", "dent", "stain", "contamination", "other")
MAX_DEFECT_TYPES = 100
DEFECT_TYPE_MAX_LEN = 100
# where an escape (a part the station passed, OK, reviewed as a defect) was found, the
# 8D report's "how many did we find before the customer did?": "audit" is the random audit
# sample's (a part drawn for it only); a plant's other audits (a dock audit) are "other"
FOUND_BY = ("audit", "station review", "next process", "customer", "other")


def defect_types(s: Session, product: str) -> list[str]:
    """The product's defect types (the default list until an engineer sets its own)."""
    row = s.get(ProductSettings, product)
    return list(row.defect_types) if row is not None and row.defect_types else list(DEFAULT_DEFECT_TYPES)


def set_defect_types(s: Session, product: str, types: Sequence[str], by: Optional[str]) -> list[str]:
    clean = check_defect_types(types)
    row = s.get(ProductSettings, product)
    # what reviewers chose from until now: the default list before a product's first own one
    before = defect_types(s, product)
    if before == clean and row is not None:
        return clean          # the list as it stands: no change, so nothing logged or written
    if before != clean:       # (a first save of the default list is kept as the product's own, unlogged)
        audit.record(s, "product.defect_types", product, by, before=before, after=clean)
    if row is None:
        s.add(ProductSettings(product=product, defect_types=clean, updated_at=utcnow(), updated_by=by))
    else:
        row.defect_types, row.updated_at, row.updated_by = clean, utcnow(), by
    return clean


def check_defect_types(types: Sequence[str]) -> list[str]:
    clean = [t.strip() for t in types if isinstance(t, str)]
    if len(clean) != len(types) or not clean:
        raise InvalidRequest("defect_types must be a non-empty list of names (e.g. [\"scratch\", \"dent\"])")
    blank = [i for i, t in enumerate(clean, 1) if not t]
    if blank:
        # the list was not empty: the name that is (a trailing comma in a form, a stray "")
        raise InvalidRequest(f"defect type number {blank[0]} of the list is empty" + (f" (and {len(blank) - 1} more)"
                             if len(blank) > 1 else "") + ": leave it out, or give it a name")
    if len(clean) > MAX_DEFECT_TYPES:
        raise InvalidRequest(f"at most {MAX_DEFECT_TYPES} defect types per product; merge rare ones into \"other\"")
    long = [t for t in clean if len(t) > DEFECT_TYPE_MAX_LEN]
    if long:
        raise InvalidRequest(f"defect type {long[0][:40]!r}... is longer than {DEFECT_TYPE_MAX_LEN} characters")
    dupes = sorted({t for t in clean if clean.count(t) > 1})
    if dupes:
        raise InvalidRequest(f"defect types listed twice: {', '.join(dupes)}; list each once")
    # "chip" and "Chip" are one defect to a reviewer: listed twice, its reviews split between them
    spelt: dict[str, list[str]] = {}
    for t in clean:
        spelt.setdefault(t.casefold(), []).append(t)
    cased = [names for names in spelt.values() if len(names) > 1]
    if cased:
        raise InvalidRequest("defect types that differ only in case: "
                             + "; ".join(" and ".join(repr(n) for n in names) for names in cased)
                             + "; keep one spelling of each")
    return clean


def check_review(s: Session, product: str, label: str, defect_type: Optional[str]) -> None:
    """Refuse a review the product's list cannot hold, saying what would be accepted."""
    if label not in ("good", "defect"):
        raise InvalidRequest("label must be 'good' (no defect: a false alarm, or an OK part confirmed) or "
                             "'defect' (a confirmed defect, or a missed one on an OK part)")
    if defect_type is None:
        return
    if label != "defect":
        raise InvalidRequest("a defect_type goes with label 'defect' only; send it without one for 'good'")
    allowed = defect_types(s, product)
    if defect_type not in allowed:
        raise InvalidRequest(f"defect type {defect_type!r} is not in product {product!r}'s list: "
                             f"{', '.join(allowed)}; choose one of them, or have an engineer add it "
                             f"(PUT /api/v1/products/{product}/defect-types)", defect_types=allowed)


def check_found_by(found_by: str, label: str, verdict: Optional[str], audit_sample: bool) -> None:
    """Refuse a ``found_by`` (where an escape was found) that is not one of :data:`FOUND_BY`,
    is sent on a review that is no escape (label "defect" on a part whose ``verdict`` was
    OK), or says "audit" of a part not drawn for the audit sample."""
    # refused, not ignored: a "found by the customer" dropped unsaid would read as never found
    if found_by not in FOUND_BY:
        raise InvalidRequest(f"found_by {found_by[:40]!r} is not one of: {', '.join(FOUND_BY)}; say where the "
                             "escape was found with one of them (another place: \"other\", and name it in the "
                             "note)", found_by=list(FOUND_BY))
    if label != "defect" or verdict != "OK":
        raise InvalidRequest("found_by says where an escape was found: it goes with label 'defect' on a part the "
                             f"station passed (OK) only; this part's verdict is {verdict} and the label {label!r}: "
                             "send the review without found_by", found_by=list(FOUND_BY))
    if found_by == "audit" and not audit_sample:
        raise InvalidRequest("found_by 'audit' is the random audit sample's, and this part was not drawn for it: "
                             "choose 'station review' (picked in the review queue), 'next process', 'customer' "
                             "or 'other' (another audit: name it in the note)", found_by=list(FOUND_BY))


def history(s: Session, inspection_id: int) -> list[Review]:
    """Every review of a part, oldest first."""
    return list(s.scalars(select(Review).where(Review.inspection_id == inspection_id).order_by(Review.id)))


def check_seen(rec: Inspection, seen: str, latest_at: Optional[str]) -> None:
    """ReviewChanged when the part's latest review (``latest_at``, its reviewed_at as the
    API writes it; None: not reviewed) is not the one the reviewer saw (``seen``: that
    time, or "none"), naming the review that came meanwhile."""
    if (latest_at or "none") == seen.strip():
        return
    if latest_at is None:
        raise ReviewChanged(f"part {rec.part_id} is not reviewed now, though the page showed a review: load it "
                            "again and judge it", review=None)
    what = "a confirmed defect" + (f" ({rec.defect_type})" if rec.defect_type else "") \
        if rec.review_label == "defect" else "good"
    raise ReviewChanged(f"part {rec.part_id} was reviewed meanwhile: {what}, by {rec.reviewer or 'someone'} at "
                        f"{latest_at}; look at that review, then send yours again with its seen_review to "
                        "replace it", review={"label": rec.review_label, "defect_type": rec.defect_type,
                                              "reviewer": rec.reviewer, "note": rec.review_note,
                                              "reviewed_at": latest_at, "found_by": rec.found_by})


def photo_reviewed_as_defect() -> Any:
    """The condition "some part was reviewed as a defect with this part's photo" (a re-sent
    photo shares its image, not its review): what retraining and the activation trial leave
    out of the good parts. A probe of the photo's index per part, not NOT IN over every
    defect ever reviewed (past work_mem on PostgreSQL, a scan of that list per part)."""
    other = aliased(Inspection)
    # a label is written with the review alone (Station.review), so no test of the reviewed
    # flag: with one, SQLite without statistics walked that flag's index (every reviewed
    # part, for each part) where the photo's index finds its few copies
    return exists().where(other.image_sha256 == Inspection.image_sha256, other.review_label == "defect")
