"""Refusals of the station, each with the HTTP status the API answers with.

The status lives here (not in the server) so every source (HTTP, hot folder, camera)
classifies a bad part the same way; the message says what to do next.
"""
from __future__ import annotations

from ..vision.errors import LineguardError


class StationError(LineguardError):
    http_status = 400
    code = "bad_request"

    def __init__(self, message: str, **details: object):
        self.message = message
        self.details = details     # extra JSON fields of the answer (e.g. what differs)
        super().__init__(message)


class UploadTooLarge(StationError):
    http_status = 413
    code = "upload_too_large"


class ImageTooLarge(StationError):
    """More pixels than the station decodes (checked from the header, nothing decoded)."""
    http_status = 413
    code = "image_too_large"


class NotAnImage(StationError):
    http_status = 415
    code = "not_an_image"


class CorruptImage(StationError):
    http_status = 422
    code = "corrupt_image"


class PhotoTooDeep(StationError):
    """A 16-bit photo past the camera depth the model learned from (another camera, or
    its bit depth changed): refused, not judged as a white part."""
    http_status = 422
    code = "photo_too_deep"


class EmptyUpload(StationError):
    http_status = 400
    code = "empty_upload"


class NotFound(StationError):
    http_status = 404
    code = "not_found"


class NoActiveModel(NotFound):
    code = "no_active_model"


class InvalidModel(StationError):
    http_status = 422
    code = "invalid_model"


class ModelLoadFailed(StationError):
    http_status = 503
    code = "model_unavailable"


class StationBusy(StationError):
    """More requests at once than the station serves (every database connection in use for
    the whole wait): overload, not a failure of the request nor of the station. Nothing was
    done; the same request sent again after ``retry_after_s`` is answered as usual, and a
    source (hot folder, camera) waits it out like any outage, never taking it for the
    part's own fault as it would an HTTP 500."""
    http_status = 503
    code = "busy"
    # soon: the request already waited the database pool's whole wait (30 s) in vain, and
    # a source tries again 0.5 to 5 s apart anyway
    RETRY_AFTER_S = 5

    @classmethod
    def no_connection(cls) -> "StationBusy":
        """No database connection came in the pool's whole wait (SQLAlchemy's TimeoutError):
        every one was in use by other requests."""
        return cls("the station is busy: more requests at once than it can serve (every database connection was "
                   f"in use for the whole wait); send the request again in {cls.RETRY_AFTER_S} s",
                   retry_after_s=cls.RETRY_AFTER_S)


class InvalidRequest(StationError):
    """A well-formed request whose values the station cannot use (a date out of range...)."""
    http_status = 422
    code = "invalid_request"


class StorageUnavailable(StationError):
    """The data folder or database cannot be written: nothing was stored, try again later."""
    http_status = 503
    code = "storage_unavailable"


class Conflict(StationError):
    http_status = 409
    code = "conflict"


class ReviewChanged(Conflict):
    """The part's latest review is no longer the one the reviewer saw (``seen_review``):
    another person judged it meanwhile. Nothing stored; the answer names that review."""
    code = "review_changed"


class RejectsGoodParts(Conflict):
    """The version judges most of the product's latest good parts NG: a model of another
    product or camera. Activated anyway only when the request says ``force``."""
    code = "rejects_good_parts"


class PassesDefects(Conflict):
    """The version judges most of the product's latest parts reviewed as defects OK, more
    than the line passed: it would ship them. Activated anyway only when the request says
    ``force``."""
    code = "passes_reviewed_defects"


class ActiveChanged(Conflict):
    """Another activation or rollback of the product/line came first: the version active
    is not the one this change was sent against."""
    code = "active_changed"


class ModelFileMissing(Conflict):
    """The version's file is gone from the station's models folder: no retry brings it
    back (not a 503), an upload of the same file does (the store is content-addressed)."""
    code = "model_file_missing"


class ModelFileDamaged(Conflict):
    """The version's file is in the models folder but cannot be a model (truncated, emptied,
    overwritten, or its last load refused it): no retry mends it (not a 503), the same
    file uploaded again writes it back (ModelRegistry.put_file)."""
    code = "model_file_damaged"


class DefectTypesChanged(Conflict):
    """A product's defect types are not the list the sender read (``expected``): another
    engineer saved theirs meanwhile. Nothing stored; the answer carries the stored list."""
    code = "defect_types_changed"
