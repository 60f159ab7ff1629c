"""A station serves the pages of the version it runs: its scripts and styles as read when
it started, not the files an upgrade put under it since (a walk's running station served a
new page's Sign button over an API without the endpoint, 404)."""
from __future__ import annotations

from fastapi import FastAPI
from fastapi.testclient import TestClient


def test_assets_are_those_read_at_start_not_files_changed_since(tmp_path, monkeypatch):
    from fastapi.responses import JSONResponse

    from lineguard.line.errors import StationError
    from lineguard.server.routers import pages
    app = FastAPI()
    app.include_router(pages.router)
    # as the station's app answers its errors
    app.add_exception_handler(StationError, lambda req, exc: JSONResponse({"detail": exc.message}, exc.http_status))
    with TestClient(app) as c:
        before = c.get("/app/static/common.js")
        assert before.status_code == 200 and before.headers["content-type"].startswith("text/javascript")
        # an upgrade in place: the package's web folder now holds other files
        (tmp_path / "common.js").write_text("// another version's script")
        (tmp_path / "newpage.js").write_text("// a page this process does not know")
        monkeypatch.setattr(pages, "WEB", tmp_path)
        after = c.get("/app/static/common.js")
        assert after.status_code == 200 and after.content == before.content
        assert c.get("/app/static/newpage.js").status_code == 404
        assert c.get("/app/static/..%2Fpages.py").status_code == 404
        assert c.get("/app/static/shell.html").status_code == 404          # not an asset type
