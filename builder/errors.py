"""The one exception a job ends with, carrying the error kind reported to the manager."""

# The kinds the manager knows (builds.models.Build.ErrorKind).
PACKAGE = "package"
GIT = "git"
PULL = "pull"
DOCKERFILE = "dockerfile"
BUILD = "build"
PUSH = "push"
INTERNAL = "internal"


class JobError(Exception):
    """A job failed for a reason the user should read; ``kind`` is one of the constants above."""

    def __init__(self, kind: str, message: str):
        super().__init__(message)
        self.kind = kind
        self.message = message
