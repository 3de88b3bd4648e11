"""Race tests run their workers as separate processes, as gunicorn and Celery workers are: each
with its own database connection (threads would share the suite's in-memory SQLite)."""

import subprocess
import sys

from django.conf import settings


def start_worker(module: str, env: dict, *args: str) -> subprocess.Popen:
    """``python -m module args...`` from the project root, its output captured as text."""
    return subprocess.Popen(
        [sys.executable, "-m", module, *args],
        env=env,
        cwd=settings.BASE_DIR,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
