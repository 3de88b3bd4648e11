# skopeo with private state (auth file, temp dir), as the end-to-end tests use it.
from tests.e2e.conftest import clients  # noqa: F401
