"""Registry errors as exceptions carrying the OCI distribution-spec error codes.

One handler (``registry.api.base``) renders them as ``{"errors": [{code, message, detail}]}``.
"""


class RegistryError(Exception):
    code = "UNKNOWN"
    status = 500
    message = "unknown error"

    def __init__(self, detail=None, *, message: str | None = None, headers: dict | None = None):
        super().__init__(message or self.message)
        self.detail = detail
        if message:
            self.message = message
        self.headers = headers or {}

    def as_dict(self) -> dict:
        return {"code": self.code, "message": self.message, "detail": self.detail}


def _error(name: str, code: str, status: int, message: str) -> type[RegistryError]:
    return type(name, (RegistryError,), {"code": code, "status": status, "message": message})


BlobUnknown = _error("BlobUnknown", "BLOB_UNKNOWN", 404, "blob unknown to registry")
BlobUploadInvalid = _error("BlobUploadInvalid", "BLOB_UPLOAD_INVALID", 400, "blob upload invalid")
BlobUploadUnknown = _error("BlobUploadUnknown", "BLOB_UPLOAD_UNKNOWN", 404, "blob upload unknown to registry")
DigestInvalid = _error("DigestInvalid", "DIGEST_INVALID", 400, "provided digest did not match uploaded content")
ManifestBlobUnknown = _error(
    "ManifestBlobUnknown", "MANIFEST_BLOB_UNKNOWN", 400, "manifest references a manifest or blob unknown to registry"
)
ManifestInvalid = _error("ManifestInvalid", "MANIFEST_INVALID", 400, "manifest invalid")
ManifestUnknown = _error("ManifestUnknown", "MANIFEST_UNKNOWN", 404, "manifest unknown to registry")
NameInvalid = _error("NameInvalid", "NAME_INVALID", 400, "invalid repository name")
NameUnknown = _error("NameUnknown", "NAME_UNKNOWN", 404, "repository name not known to registry")
SizeInvalid = _error("SizeInvalid", "SIZE_INVALID", 400, "provided length did not match content length")
Unauthorized = _error("Unauthorized", "UNAUTHORIZED", 401, "authentication required")
Denied = _error("Denied", "DENIED", 403, "requested access to the resource is denied")
Unsupported = _error("Unsupported", "UNSUPPORTED", 400, "the operation is unsupported")
MethodNotAllowed = _error("MethodNotAllowed", "UNSUPPORTED", 405, "the method is not allowed here")
TooManyRequests = _error("TooManyRequests", "TOOMANYREQUESTS", 429, "too many requests")
# Storage or the database failed (a full disk, S3 answering errors, a dropped connection): nothing
# was stored, and the same request may succeed later. Distribution's code for it.
Unavailable = _error("Unavailable", "UNAVAILABLE", 503, "service unavailable: storage or database error, try again")


class ManifestTooLarge(RegistryError):
    code = "SIZE_INVALID"
    status = 413
    message = "manifest too large"


class RangeInvalid(BlobUploadInvalid):
    """A chunk that does not start at the committed offset: 416 with the committed Range."""

    status = 416
    message = "requested range not satisfiable"


class BlobRangeNotSatisfiable(RegistryError):
    code = "BLOB_UNKNOWN"
    status = 416
    message = "requested range not satisfiable"
