"""What text the API takes: the one rule for every name and filter a request brings.

- No NUL anywhere (:func:`no_nul`, :class:`RefuseNul`): PostgreSQL refuses it in a text
  column or a query's parameter, so a NUL that got through was a 500 there (and a filter
  that matches nothing on SQLite); refused at the edge, it is a 422 on both.
- A name people read and choose from (:func:`printable`: a defect type, a key's name, an alarm
  cause, a test part's serial) follows the rule of a part's own fields
  (``line.station.Part.checked``): no control character (NUL, a line break, an escape) and
  no invisible or bidirectional one. A defect type with a NUL could never be chosen (a
  review refuses NUL), and "\\u202e" turns the text after it around on every page that
  shows the name: a spoofed name.
"""
from __future__ import annotations

from typing import Annotated, Any, ClassVar, Optional
from urllib.parse import parse_qsl

from fastapi.responses import JSONResponse
from pydantic import AfterValidator, BaseModel, Field, StringConstraints, model_validator

# the part fields' own rule: one definition of "invisible"
from ..line.station import _INVISIBLE, unprintable

# for patterns (documented in OpenAPI; a Query(pattern=NO_NUL) is checked by FastAPI itself)
NO_NUL = r"^[^\x00]*$"
# the same rule as unprintable(), as a JSON-schema (ECMA) pattern for the OpenAPI document
PRINTABLE = "^[^\\x00-\\x1f\\x7f-\\x9f" + "".join(f"\\u{ord(c):04x}" for c in _INVISIBLE) + "]*$"

_FIX = "(a scanner or PLC string may need its terminator removed)"


def _refuse_unprintable(value: str) -> str:
    # as a part's fields: surrounding spaces go first (a scanner's trailing CR, a pasted
    # line break), then what is left must be printable
    value = value.strip()
    bad = unprintable(value)
    if bad is not None:
        raise ValueError(f"holds a control or invisible character (U+{ord(bad):04X}); send it as printable text "
                         f"{_FIX}")
    return value


def _refuse_nul(value: str) -> str:
    if "\x00" in value:
        raise ValueError(f"holds a NUL character (U+0000), which the station cannot store; send the text without it "
                         f"{_FIX}")
    return value


# Types, not a pattern per field: the message says what is wrong (a pattern's says only
# that "^[^\x00]*$" did not match). The lengths are part of the type because pydantic checks
# a field's own max_length after a validator as a count of "items".
def printable(max_length: int, min_length: int = 0) -> Any:
    """A name people read and choose from, of at most ``max_length`` characters: a part
    field's rule (no control, invisible or bidirectional character)."""
    return Annotated[str, StringConstraints(min_length=min_length, max_length=max_length),
                     AfterValidator(_refuse_unprintable), Field(json_schema_extra={"pattern": PRINTABLE})]


def no_nul(max_length: int, min_length: int = 0) -> Any:
    """Free text (a note may break its lines) of at most ``max_length`` characters: anything
    but NUL."""
    return Annotated[str, StringConstraints(min_length=min_length, max_length=max_length),
                     AfterValidator(_refuse_nul), Field(json_schema_extra={"pattern": NO_NUL})]


def _nul_at(value: Any, where: str) -> Optional[str]:
    """Where in a JSON body's value a NUL lies ("note", "items[2].name"), or None."""
    if isinstance(value, str):
        return where if "\x00" in value else None
    if isinstance(value, dict):
        for k, v in value.items():
            at = f"{where}.{k}" if where else str(k)
            if "\x00" in str(k):
                return at.replace("\x00", "\\u0000")
            found = _nul_at(v, at)
            if found:
                return found
    if isinstance(value, (list, tuple)):
        for i, v in enumerate(value):
            found = _nul_at(v, f"{where}[{i}]")
            if found:
                return found
    return None


class NulFree(BaseModel):
    """A request body with no NUL in any of its text, whatever the field's own type says:
    a field written without no_nul() (a threshold's note, a watcher's last error) took one,
    a 500 on PostgreSQL (after the model file was written) and stored as sent on SQLite."""

    # top-level fields a NUL may reach (never stored: a sign-in's password, checked against
    # a hash, is a wrong one, 401, like any other)
    nul_allowed_in: ClassVar[frozenset[str]] = frozenset()

    @model_validator(mode="before")
    @classmethod
    def _no_nul_anywhere(cls, data: Any) -> Any:
        data_checked: Any = data
        if isinstance(data, dict):
            # fields a model drops (extra="ignore": a newer watcher's) are not refused for it
            dropped = cls.model_config.get("extra") == "ignore"
            data_checked = {k: v for k, v in data.items() if k not in cls.nul_allowed_in
                            and (not dropped or k in cls.model_fields)}
        at = _nul_at(data_checked, "")
        if at is not None:
            raise ValueError(f"{at or 'the body'}: holds a NUL character (U+0000), which the station cannot store; "
                             f"send the text without it {_FIX}")
        return data


def nul_in(scope: dict[str, Any]) -> list[tuple[str, str]]:
    """Where a request's path or query string holds a NUL: ("path", the path) and
    ("query", parameter name) pairs; empty when nowhere (the usual case costs two byte
    searches)."""
    found: list[tuple[str, str]] = []
    if "\x00" in scope.get("path", ""):
        found.append(("path", scope["path"].replace("\x00", "%00")))
    qs: bytes = scope.get("query_string", b"")
    if b"%00" in qs or b"\x00" in qs:
        for name, value in parse_qsl(qs.decode("latin-1"), keep_blank_values=True):
            if "\x00" in name or "\x00" in value:
                found.append(("query", name.replace("\x00", "%00")))
    return found


class RefuseNul:
    """Refuse (422) a request whose path or query string holds a NUL (``%00``), before any
    route reads it: every filter and path name of every router reaches the database,
    and one route missing its own check was a 500 on PostgreSQL, or a CSV download that
    answered 200 and then broke off. Bodies are the models' (:func:`no_nul`, :func:`printable`).

    A plain ASGI middleware like the station's others; add it first (innermost), so the
    security headers still wrap its answer.
    """

    def __init__(self, app: Any):
        self.app = app

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        found = nul_in(scope) if scope["type"] == "http" else []
        if not found:
            await self.app(scope, receive, send)
            return
        problems = [{"loc": [where, name], "msg": "holds a NUL character (%00)"} for where, name in found]
        said = ", ".join(f"the path {name}" if where == "path" else f"query parameter {name!r}"
                         for where, name in found)
        message = (f"{said} holds a NUL character (%00), which no name or filter can hold; send the text without "
                   f"it {_FIX}")
        # the shape of every error answer of the station (app._error)
        await JSONResponse({"error": {"code": "invalid_request", "message": message, "problems": problems},
                            "detail": message}, status_code=422)(scope, receive, send)
