"""Pause points for the crash-safety tests (tests/faults/). TEST-ONLY, off by default.

A few narrow windows matter to crash safety: between writing a blob's bytes and committing its
row, between a manifest row and its tag row, between ending a tag's old row and starting the new
one, between a webhook's answer and recording it, between claiming a build and committing the
claim. Hitting them by timing alone is luck, so the code calls ``pause("<point>")`` there.

With the environment variable QUAY_FAULT_DIR unset (always, outside the tests) ``pause`` returns
at once: one test of a module global, read once at import. With it set to a directory, a point is
armed while a file of its name exists in that directory; a process reaching an armed point
writes its pid to ``<point>.reached`` and waits while the armed file exists, so that a test can
SIGKILL it exactly there (or remove the file to let it go on).
"""

from __future__ import annotations

import os
import time

_DIR = os.environ.get("QUAY_FAULT_DIR", "")
POLL_SECONDS = 0.05


def pause(point: str) -> None:
    """Wait here while ``point`` is armed (tests only; a no-op without QUAY_FAULT_DIR)."""
    if not _DIR:
        return
    armed = os.path.join(_DIR, point)
    if not os.path.exists(armed):
        return
    reached = armed + ".reached"
    with open(reached + ".tmp", "w") as f:
        f.write(str(os.getpid()))
    os.replace(reached + ".tmp", reached)  # whole, so the test never reads a half-written pid
    while os.path.exists(armed):
        time.sleep(POLL_SECONDS)
