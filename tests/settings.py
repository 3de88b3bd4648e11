"""Test settings: the project's settings with a throw-away DATA_DIR and a fast password hasher."""

import os
import tempfile

os.environ.setdefault("DATA_DIR", tempfile.mkdtemp(prefix="quay-test-"))
os.environ.setdefault("FAST_PASSWORD_HASHER", "1")
# Many tests try wrong credentials from the test client's one address; the tests of the limit
# itself lower it again.
os.environ.setdefault("LOGIN_FAILURES_PER_WINDOW", "1000000")
# With REDIS_URL set, each pytest-xdist worker keeps its cache keys, Celery queues and channel
# groups to itself (the live servers the tests start have prefixes of their own).
os.environ.setdefault("REDIS_KEY_PREFIX", f"pytest-{os.environ.get('PYTEST_XDIST_WORKER', 'main')}:")

from quay_site.settings import *  # noqa: F403
