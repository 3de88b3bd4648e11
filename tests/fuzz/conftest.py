"""Hypothesis profiles for the property and fuzz tests.

``ci`` (the default) keeps each property to a bounded number of examples so the whole directory
runs in well under a minute or two on two cores; ``HYPOTHESIS_PROFILE=long`` (or ``dev``) runs far
more for a local hunt. The example database lives in a temporary directory, never in the tree.
"""

import os
import tempfile

from hypothesis import HealthCheck, settings
from hypothesis.configuration import set_hypothesis_home_dir
from hypothesis.database import DirectoryBasedExampleDatabase

# Hypothesis' own files (example database, caches) go to the temporary directory, not ./.hypothesis.
_HOME = os.environ.get("HYPOTHESIS_STORAGE_DIRECTORY") or os.path.join(tempfile.gettempdir(), "quay-hypothesis")
set_hypothesis_home_dir(_HOME)
_DATABASE = DirectoryBasedExampleDatabase(os.path.join(_HOME, "examples"))
# Django's test client, a fresh database row per example, temporary directories: slow-ish and
# function-scoped fixtures are expected here.
_SUPPRESSED = [HealthCheck.too_slow, HealthCheck.function_scoped_fixture, HealthCheck.data_too_large]

settings.register_profile(
    "ci", max_examples=40, deadline=None, database=_DATABASE, suppress_health_check=_SUPPRESSED, print_blob=True
)
settings.register_profile(
    "dev", max_examples=1000, deadline=None, database=_DATABASE, suppress_health_check=_SUPPRESSED
)
settings.register_profile(
    "long", max_examples=20000, deadline=None, database=_DATABASE, suppress_health_check=_SUPPRESSED
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


def examples(n: int) -> int:
    """A property's share of examples: ``n`` per 150 of the profile's (fewer in CI, more with the
    longer profiles); the costlier properties ask for less, the cheap parsers for more."""
    return max(3, settings.default.max_examples * n // 150)
