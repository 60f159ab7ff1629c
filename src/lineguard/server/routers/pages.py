"""The operator's pages: HTML shells and their scripts, served by the station itself.

Each page is the same small shell (no data in it) plus its own script; the script
fetches everything through the API, which checks the caller's key or session, so the
shells and assets stay open. Nothing is loaded from anywhere but the station (plants
run offline), and the Content-Security-Policy says so to the browser too.
"""
from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from ...line.errors import NotFound

router = APIRouter(include_in_schema=False)

WEB = Path(__file__).resolve().parent.parent / "web"

# page name -> title; the name is also the script the shell loads (web/<name>.js)
PAGES = {"line": "Line view", "signin": "Sign in", "gallery": "Defect gallery", "part": "Part",
         "review": "Review queue", "spc": "SPC", "report": "Shift report", "tuning": "Threshold tuning",
         "models": "Models", "testparts": "Test parts", "alarms": "Line alarms", "changes": "Change log",
         "admin": "Keys and users", "account": "Your password", "plant": "Plant"}

_ASSET_TYPES = {".js": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8",
                ".svg": "image/svg+xml"}

# Scripts and styles from the station only; images also as blob: (thumbnails fetched
# with the session); no framing (a sign-in page in a frame is a clickjacking target).
CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
       "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'")
_HEADERS = {"Content-Security-Policy": CSP, "X-Content-Type-Options": "nosniff",
            "Referrer-Policy": "same-origin", "Cache-Control": "no-cache"}


_SHELL = (WEB / "shell.html").read_text(encoding="utf-8")     # as the assets below: read at start


@lru_cache(maxsize=None)
def _shell(page: str) -> str:
    return _SHELL.replace("{{title}}", PAGES[page]).replace("{{page}}", page)


def _page(page: str) -> HTMLResponse:
    return HTMLResponse(_shell(page), headers=_HEADERS)


@router.get("/")
def root() -> RedirectResponse:
    return RedirectResponse("/app/", status_code=307)


@router.get("/app")
def app_root() -> RedirectResponse:
    return RedirectResponse("/app/", status_code=307)


@router.get("/app/")
def line_page() -> HTMLResponse:
    return _page("line")


@router.get("/app/parts/{inspection_id}")
def part_page(inspection_id: str) -> HTMLResponse:
    # the page for any address: it says itself that /app/parts/abc names no part (a bare
    # JSON 422 had no menu and no way back)
    return _page("part")


# The assets as this process read them when it started: a station serves the pages of the
# version it runs. Read from disk at every request, an upgrade installed under a running
# station served the new pages over the old API (a walk's new Sign button answered 404).
_ASSETS = {p.name: p.read_bytes() for p in WEB.iterdir() if p.suffix in _ASSET_TYPES and p.is_file()}


@router.get("/app/static/{name}")
def asset(name: str) -> Response:
    # looked up by name in what was read at start: no request reaches the file system
    data = _ASSETS.get(name)
    if data is None:
        raise NotFound(f"no asset {name!r}")
    return Response(data, media_type=_ASSET_TYPES[Path(name).suffix],
                    headers={"X-Content-Type-Options": "nosniff", "Cache-Control": "no-cache"})


@router.get("/app/{page}")
def named_page(page: str) -> HTMLResponse:
    if page not in PAGES or page in ("line", "part"):
        raise NotFound(f"no page {page!r}; the pages are /app/, " + ", ".join(
            f"/app/{p}" for p in PAGES if p not in ("line", "part")))
    return _page(page)
