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
    """The station refused this input for good (bad image, ...): do not retry it.

    ``code`` is the station's error code when known (``corrupt_image``, ...): a hot folder
    waits for a file refused as corrupt while it may still be being written."""

    def __init__(self, message: str, code: Optional[str] = None):
        super().__init__(message)
        self.code = code


# The longest wait a source takes from the station's Retry-After before its next try: the
# station asks 5 s (busy) or 30 s (its model did not answer in time); a proxy or another
# server asking an hour would hold a hot folder's parts, and a recorded camera's playback,
# for that hour without a word
RETRY_AFTER_MAX_S = 60.0


class SubmitFailed(RuntimeError):
    """The station could not take this input now (storage full or read-only, database
    locked, no active model yet, the model not loadable, the model not answering in time):
    transient, retry it later.

    ``retry_after_s``: how long the station asked the sender to wait before sending again
    (its Retry-After: 5 s busy, 30 s a model timeout), at most ``RETRY_AFTER_MAX_S``; None
    when it asked nothing, and the source's own backoff (0.5 to 5 s) applies."""

    def __init__(self, message: str, code: Optional[str] = None, retry_after_s: Optional[float] = None):
        super().__init__(message)
        self.code = code
        self.retry_after_s = _bounded_wait(retry_after_s)


def _bounded_wait(value: Any) -> Optional[float]:
    """A wait the station asked for, in seconds, within 0..RETRY_AFTER_MAX_S; None when it is
    not a number of seconds (nothing asked, or a value no station sends)."""
    if value is None or isinstance(value, bool):
        return None
    try:
        wait = float(value)
    except (TypeError, ValueError):
        return None
    if wait != wait:        # NaN
        return None
    return min(max(wait, 0.0), RETRY_AFTER_MAX_S)


def retry_after(exc: BaseException) -> float:
    """Seconds the station asked to be left alone before the next try after ``exc`` (0: it
    asked nothing). A source waits at least this long, its own backoff otherwise."""
    wait = getattr(exc, "retry_after_s", None) if isinstance(exc, SubmitFailed) else None
    return wait or 0.0


def parse_retry_after(header: Optional[str], now: Optional[float] = None) -> Optional[float]:
    """An HTTP Retry-After header's wait in seconds: delay-seconds (what the station sends)
    or an HTTP date (a proxy may); bounded by ``RETRY_AFTER_MAX_S``, None when absent or
    unreadable (the source's own backoff then)."""
    if not header:
        return None
    header = header.strip()
    if header.isdigit():
        return _bounded_wait(int(header))
    from email.utils import parsedate_to_datetime
    try:
        when = parsedate_to_datetime(header)
    except (TypeError, ValueError, IndexError):
        return None
    if when is None or when.tzinfo is None:
        return None
    import time
    return _bounded_wait(when.timestamp() - (time.time() if now is None else now))


# What the station answers that a retry may cure: the same classes remote_submitter
# retries by HTTP status (auth, unknown model, timeouts, overload, server errors). A key or
# product refused at the start ends watch and camera there (cli.station checks both before
# the first part); refused later in the run (the key revoked, the station restarted without
# the product's model) the parts wait for it, said with what to do (_REFUSED_MEANWHILE):
# ended, a hot folder's watcher would stop the line's inspection until someone restarted it,
# and refused one by one, its good parts went to failed/.
_RETRIED_STATUS = (401, 403, 404, 408, 429)

# what a refusal of the key or the product during a run means, said with the station's answer
_REFUSED_MEANWHILE = {
    401: "the station no longer takes this key (revoked, or the station's keys replaced): give an operator key it "
         "keeps and start this command again; the parts wait meanwhile",
    403: "this key may not send parts (an operator key is needed): give one and start this command again; the "
         "parts wait meanwhile",
    404: "the station has no active model for this product now (restarted with other products, or its model "
         "deactivated): activate one there, or start this command again with the product meant; the parts "
         "wait meanwhile",
}


def retried(http_status: int) -> bool:
    """Whether a refusal with this HTTP status is transient (retry) rather than for good."""
    return http_status >= 500 or http_status in _RETRIED_STATUS


def local_submitter(station: Any, line: str, station_name: str, product: str, source: str,
                    lot: Optional[str] = None) -> Submit:
    from ..errors import StationError
    from ..station import Part, inspection_to_dict

    def submit(image: Union[bytes, CameraFrame], part_id: str, name: str) -> dict[str, Any]:
        try:
            out = station.inspect(image, Part(part_id, line, station_name, product, lot=lot), source=source)
        except StationError as exc:
            if retried(exc.http_status):
                # transient, as the API's 5xx/404 are for remote_submitter: disk full
                # (StorageUnavailable), database locked or read-only, no active model yet,
                # the model not loadable. The file stays and is retried.
                # the wait the station asks of an HTTP client (busy: 5 s, a model timeout:
                # 30 s) is asked of a source in its process too
                raise SubmitFailed(f"{exc.code}: {exc.message}", exc.code,
                                   retry_after_s=exc.details.get("retry_after_s")) from exc
            raise SubmitRefused(f"{exc.code}: {exc.message}", exc.code) from exc
        d = inspection_to_dict(out.record)
        d["created"] = out.created
        return d

    return submit


def remote_submitter(url: str, api_key: str, line: str, station_name: str, product: str,
                     lot: Optional[str] = None, timeout_s: float = 60.0) -> Submit:
    import httpx
    # a part may take a while to judge (the first one loads the model), but a station PC
    # unplugged must not hold each try for a minute: connecting gets a few seconds
    client = httpx.Client(base_url=url.rstrip("/"), headers={"X-API-Key": api_key},
                          timeout=httpx.Timeout(timeout_s, connect=min(timeout_s, 3.0)))

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
        msg, code, asked = r.text, None, None
        if r.headers.get("content-type", "").startswith("application/json"):
            try:
                err = r.json().get("error") or {}
                msg, code, asked = err.get("message", r.text), err.get("code"), err.get("retry_after_s")
            except (ValueError, AttributeError):
                pass
        if 400 <= r.status_code < 500 and not retried(r.status_code):
            raise SubmitRefused(f"HTTP {r.status_code}: {msg}", code)
        # auth, unknown model, overload, server errors: fix-able or transient; retry later,
        # not before the station's Retry-After (the header, what any HTTP server or proxy
        # sends; else the station's body): sent again 0.5 s after a model timeout, a part
        # joined the queue that had just timed out
        wait = parse_retry_after(r.headers.get("retry-after"))
        meanwhile = _REFUSED_MEANWHILE.get(r.status_code)
        if r.status_code == 404 and code != "no_active_model":
            meanwhile = None      # not the product (an address that is no station's): said as it came
        raise SubmitFailed(f"HTTP {r.status_code}: {msg}" + (f" ({meanwhile})" if meanwhile else ""), code,
                           retry_after_s=wait if wait is not None else asked)

    return submit
