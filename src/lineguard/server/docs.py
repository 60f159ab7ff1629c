"""The API docs (/docs, /redoc) served from the station itself, and the security headers
of every page the station serves.

Factories are offline: Swagger UI and ReDoc must not load from a CDN. Their files come
from the pinned ``fastapi-offline`` wheel (its ``static`` folder ships swagger-ui-bundle.js,
swagger-ui.css and redoc.standalone.js); only those files are read from it, nothing else
of that package is used. They are served under ``/static/docs/``.
"""
from __future__ import annotations

import base64
import hashlib
import re
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

from fastapi import FastAPI, HTTPException
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import FileResponse, HTMLResponse, Response

DOCS_STATIC = "/static/docs"
SESSION_SCRIPT = "docs-session.js"     # web/: the session's CSRF token on "Try it out" requests
_ASSETS = {"swagger-ui-bundle.js": "text/javascript", "swagger-ui.css": "text/css",
           "redoc.standalone.js": "text/javascript", "favicon.png": "image/png"}

# Pages may load scripts, styles, images and data from the station only, and may not be
# framed (clickjacking). Images may be data:/blob: URLs the page made itself (Swagger UI
# draws its icons that way; a page may show a part image it fetched).
BASE_CSP = ("default-src 'self'; img-src 'self' data: blob:; object-src 'none'; base-uri 'self'; "
            "form-action 'self'; frame-ancestors 'none'")


# ReDoc's sidebar footer draws Redocly's logo from their CDN, whatever its options say: an
# offline plant's browser tried it on every /redoc (and the page's policy logged a refusal).
# Served with that address made an empty data: URL, the image fails at once and ReDoc,
# which hides the logo when it fails to load, shows the footer's words alone.
_CDN_LOGO = b"https://cdn.redoc.ly/redoc/logo-mini.svg"


@lru_cache(maxsize=1)
def _redoc_offline() -> bytes:
    return (_asset_dir() / "redoc.standalone.js").read_bytes().replace(_CDN_LOGO, b"data:,")


@lru_cache(maxsize=1)
def _asset_dir() -> Path:
    try:
        return Path(str(resources.files("fastapi_offline") / "static"))
    except ModuleNotFoundError:
        raise RuntimeError("the API docs need the fastapi-offline package (pip install 'lineguard[server]')") from None


def _inline_hashes(html: str, tag: str) -> str:
    """CSP source expressions allowing exactly the inline <script>/<style> blocks of a page
    we generated, so the policy needs no 'unsafe-inline'."""
    blocks = re.findall(rf"<{tag}>(.*?)</{tag}>", html, flags=re.S)
    return " ".join("'sha256-" + base64.b64encode(hashlib.sha256(b.encode("utf-8")).digest()).decode() + "'"
                    for b in blocks)


def _with_csp(page: HTMLResponse) -> HTMLResponse:
    html = page.body.decode("utf-8")
    scripts, styles = _inline_hashes(html, "script"), _inline_hashes(html, "style")
    # ReDoc writes its styles into <style> elements at run time (styled-components), which
    # no hash can cover: its page alone allows inline styles (never inline scripts).
    style_src = "'self' 'unsafe-inline'" if "<redoc" in html else f"'self' {styles}".strip()
    csp = f"{BASE_CSP}; script-src 'self' {scripts}".strip() + f"; style-src {style_src}"
    if "<redoc" in html:
        csp += "; worker-src 'self' blob:"     # its search index runs in a worker made from a blob
    page.headers["content-security-policy"] = csp
    return page


def add_offline_docs(app: FastAPI) -> None:
    """/docs and /redoc pages and their assets; the app must be made with docs_url=None, redoc_url=None."""
    title = f"{app.title} - API"

    @app.get("/static/docs/{name}", include_in_schema=False)
    async def docs_asset(name: str) -> FileResponse:
        if name == SESSION_SCRIPT:      # the station's own, beside the package's files
            return FileResponse(Path(__file__).resolve().parent / "web" / SESSION_SCRIPT,
                                media_type="text/javascript", headers={"cache-control": "no-cache"})
        if name not in _ASSETS:
            raise HTTPException(404, f"no docs asset {name!r}")
        # assets change only with the pinned package: a day's caching spares the station
        if name == "redoc.standalone.js":
            return Response(_redoc_offline(), media_type=_ASSETS[name],
                            headers={"cache-control": "public, max-age=86400"})
        return FileResponse(_asset_dir() / name, media_type=_ASSETS[name],
                            headers={"cache-control": "public, max-age=86400"})

    @app.get("/docs", include_in_schema=False)
    async def swagger_ui() -> HTMLResponse:
        page = get_swagger_ui_html(
            openapi_url=app.openapi_url or "/openapi.json", title=title,
            swagger_js_url=f"{DOCS_STATIC}/swagger-ui-bundle.js", swagger_css_url=f"{DOCS_STATIC}/swagger-ui.css",
            swagger_favicon_url=f"{DOCS_STATIC}/favicon.png", oauth2_redirect_url=None,
            # no online validator badge: opened at a plant address (not localhost), Swagger UI
            # asks validator.swagger.io about the station's API document
            swagger_ui_parameters={"validatorUrl": None})
        # before Swagger UI's own script: "Try it out" then works with the page's sign-in
        bundle = f'<script src="{DOCS_STATIC}/swagger-ui-bundle.js">'
        html = page.body.decode("utf-8").replace(bundle, f'<script src="{DOCS_STATIC}/{SESSION_SCRIPT}"></script>\n'
                                                         + bundle, 1)
        return _with_csp(HTMLResponse(html))

    @app.get("/redoc", include_in_schema=False)
    async def redoc() -> HTMLResponse:
        return _with_csp(get_redoc_html(
            openapi_url=app.openapi_url or "/openapi.json", title=title,
            redoc_js_url=f"{DOCS_STATIC}/redoc.standalone.js", redoc_favicon_url=f"{DOCS_STATIC}/favicon.png",
            with_google_fonts=False))


class SecurityHeaders:
    """Headers every page and static file of the station carries (not the JSON API: an
    upload's answer stays as lean as it was).

    ``nosniff`` stops a browser reading a file as another type than sent; pages get the
    station-only Content-Security-Policy (unless the route set a stricter one of its own)
    and may not be framed by another site.
    """

    def __init__(self, app: Any):
        self.app = app

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["path"].startswith("/api/"):
            await self.app(scope, receive, send)
            return

        async def with_headers(msg: dict) -> None:
            if msg["type"] == "http.response.start":
                headers = list(msg.get("headers", []))
                names = {k.lower() for k, _ in headers}
                add = [(b"x-content-type-options", b"nosniff"), (b"referrer-policy", b"same-origin")]
                ctype = next((v for k, v in headers if k.lower() == b"content-type"), b"")
                if ctype.startswith(b"text/html"):
                    add += [(b"x-frame-options", b"DENY"), (b"content-security-policy", BASE_CSP.encode())]
                headers += [(k, v) for k, v in add if k not in names]
                msg = dict(msg, headers=headers)
            await send(msg)

        await self.app(scope, receive, with_headers)
