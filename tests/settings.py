"""Test settings: the project's settings with a throw-away DATA_DIR and a fast password hasher."""

import os
import tempfile

os.environ.setdefault("DATA_DIR", tempfile.mkdtemp(prefix="quay-test-"))
os.environ.setdefault("FAST_PASSWORD_HASHER", "1")
# Many tests try wrong credentials from the test client's one address; the tests of the limit
# itself lower it again.
os.environ.setdefault("LOGIN_FAILURES_PER_WINDOW", "1000000")
# With REDIS_URL set, each test process (pytest-xdist worker) keeps its cache keys, Celery queues
# and channel groups to itself: their databases number rows alike, so "builder-1" would otherwise
# be two processes' group. By pid, as Django may be set up before xdist names the worker. (The
# live servers the tests start have prefixes of their own.)
os.environ["REDIS_KEY_PREFIX"] = f"pytest-{os.getpid()}:"  # not inherited from the xdist controller

from quay_site.settings import *  # noqa: F403

# Each test process counts its metrics in a directory of its own (the suite's DATA_DIR is shared
# by the xdist workers), so a test reading /metrics sees only the requests of its own process.
METRICS_DIR = tempfile.mkdtemp(prefix="quay-metrics-")
