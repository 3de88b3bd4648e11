"""Test settings: the project's settings with a throw-away DATA_DIR and a fast password hasher."""

import os
import tempfile

os.environ.setdefault("DATA_DIR", tempfile.mkdtemp(prefix="quay-test-"))
os.environ.setdefault("FAST_PASSWORD_HASHER", "1")

from quay_site.settings import *  # noqa: F403
