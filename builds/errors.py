"""Why a build request, upload or cancel was refused.

Each error carries the HTTP status the REST API answers with, so views map them in one place
(``builds/rest/views.py``) and the web pages can show ``str(error)`` as it is.
"""


class BuildError(Exception):
    """A request about builds that cannot be done as asked; the message is for the user."""

    status = 400
    error_type = "invalid_request"


class BuildsDisabled(BuildError):
    # Quay hides a switched-off feature's endpoints: 404, with a message saying why.
    status = 404
    error_type = "not_found"

    def __init__(self, message: str = "Dockerfile builds are not enabled on this registry"):
        super().__init__(message)


class BuildQueueFull(BuildError):
    status = 429

    def __init__(self, message: str = "Maximum queued build rate exceeded: too many builds waiting in this namespace"):
        super().__init__(message)


class BuildNotCancellable(BuildError):
    def __init__(self, message: str = "Build is currently running or has finished"):
        super().__init__(message)


class BuildForbidden(BuildError):
    status = 403
    error_type = "insufficient_scope"


class BuildNotFound(BuildError):
    status = 404
    error_type = "not_found"


class PackageError(BuildError):
    """The build source is unusable (unknown kind, empty, cut short, unreachable URL)."""


class PackageTooLarge(PackageError):
    status = 413


class PackageAlreadyUploaded(PackageError):
    status = 409

    def __init__(self, message: str = "This file was already uploaded"):
        super().__init__(message)
