"""Where parts come from besides HTTP: a hot folder and cameras.

Each source calls a *submit* function ``submit(image, part_id: str, name: str)``, the
image being a file's bytes or a camera's :class:`~lineguard.line.camera_frame.CameraFrame`;
:func:`local_submitter` feeds a :class:`~lineguard.line.station.Station` in-process
(a frame as its pixels), :func:`remote_submitter` posts to a running station (a frame
as its PNG), so a source behaves the same either way.
"""
from __future__ import annotations

from typing import Any, Callable, Optional, Union

from ..camera_frame import CameraFrame

Submit = Callable[[Union[bytes, CameraFrame], str, str], dict[str, Any]]


class SubmitRefused(Exception):
    """The station refused this input for good (bad image, ...): do not retry it."""


def local_submitter(station: Any, line: str, station_name: str, product: str, source: str,
                    lot: Optional[str] = None) -> Submit:
    from ..errors import ModelLoadFailed, StationError
    from ..station import Part, inspection_to_dict

    def submit(image: Union[bytes, CameraFrame], part_id: str, name: str) -> dict[str, Any]:
        try:
            out = station.inspect(image, Part(part_id, line, station_name, product, lot=lot), source=source)
        except ModelLoadFailed:
            raise  # transient: the file stays and is retried
        except StationError as exc:
            raise SubmitRefused(f"{exc.code}: {exc.message}") from exc
        d = inspection_to_dict(out.record)
        d["created"] = out.created
        return d

    return submit


def remote_submitter(url: str, api_key: str, line: str, station_name: str, product: str,
                     lot: Optional[str] = None, timeout_s: float = 60.0) -> Submit:
    import httpx
    client = httpx.Client(base_url=url.rstrip("/"), headers={"X-API-Key": api_key}, timeout=timeout_s)

    def submit(image: Union[bytes, CameraFrame], part_id: str, name: str) -> dict[str, Any]:
        try:
            data = image.png() if isinstance(image, CameraFrame) else image
        except ValueError as exc:
            raise SubmitRefused(f"the frame cannot be sent: {exc}") from exc
        form = {"part_id": part_id, "line": line, "station": station_name, "product": product}
        if lot:
            form["lot"] = lot
        r = client.post("/api/v1/inspections", files={"image": (name, data)}, data=form)
        if r.status_code in (200, 201):
            return r.json()
        msg = r.json().get("error", {}).get("message", r.text) if r.headers.get(
            "content-type", "").startswith("application/json") else r.text
        if 400 <= r.status_code < 500 and r.status_code not in (401, 403, 404, 408, 429):
            raise SubmitRefused(f"HTTP {r.status_code}: {msg}")
        # auth, unknown model, overload, server errors: fix-able or transient; retry later
        raise RuntimeError(f"HTTP {r.status_code}: {msg}")

    return submit
