"""The project's processes for the end-to-end benchmarks (notifications, builds): a fresh
DATA_DIR, optionally a throw-away PostgreSQL and Redis (``.ci/services.sh``), ``manage.py``
commands and Python run in the project's environment, and child processes stopped as a group."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

from bench.util import REPO_ROOT, BenchError, run


class Project:
    def __init__(self, *, prefix: str, workdir: str | None, settings: str, **env: str):
        self.workdir = Path(tempfile.mkdtemp(prefix=prefix, dir=workdir))
        self.env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": settings,
            "DATA_DIR": str(self.workdir / "data"),
            "GC_INTERVAL_SECONDS": "0",
            "FAST_PASSWORD_HASHER": "1",
            "LOG_LEVEL": "WARNING",
            "PYTHONUNBUFFERED": "1",
            **env,
        }
        for name in ("DATABASE_URL", "REDIS_URL", "CELERY_BROKER_URL"):
            self.env.pop(name, None)
        # Not inside the workdir (mode 700): run as root, PostgreSQL's own user must reach it.
        self.services_dir = Path(tempfile.gettempdir()) / f"{self.workdir.name}-services"

    def start_services(self) -> str:
        env = {**self.env, "QUAY_SERVICES_DIR": str(self.services_dir)}
        result = run(["bash", str(REPO_ROOT / ".ci" / "services.sh"), "start"], env=env, cwd=REPO_ROOT)
        for line in result.stdout.splitlines():
            if line.startswith("export "):
                name, _, value = line[len("export ") :].partition("=")
                self.env[name] = value.strip().strip("'\"")
        return f"PostgreSQL {self.env['DATABASE_URL'].rsplit('@', 1)[-1]}, Redis {self.env['REDIS_URL']}"

    def stop_services(self) -> None:
        if self.services_dir.exists():
            # services.sh removes its directory: the database's log stays with the run's own.
            pg_log = self.services_dir / "pg" / "server.log"
            if pg_log.exists() and self.workdir.exists():
                shutil.copyfile(pg_log, self.workdir / "postgresql.log")
            env = {**self.env, "QUAY_SERVICES_DIR": str(self.services_dir)}
            run(["bash", str(REPO_ROOT / ".ci" / "services.sh"), "stop"], env=env, cwd=REPO_ROOT, check=False)

    def manage(self, *args: str, timeout: float = 900) -> str:
        return run([sys.executable, "manage.py", *args], env=self.env, cwd=REPO_ROOT, timeout=timeout).stdout

    def shell(self, code: str, marker: str, timeout: float = 900):
        """Run ``code`` in the project's environment; the JSON after its ``marker`` line."""
        out = self.manage("shell", "-c", code, timeout=timeout)
        line = next((line for line in out.splitlines() if line.startswith(marker + " ")), None)
        if line is None:
            raise BenchError(f"no {marker} line in:\n{out[-2000:]}")
        return json.loads(line[len(marker) + 1 :])

    def spawn(self, argv: list[str], log_name: str, env: dict | None = None) -> subprocess.Popen:
        """A child in a session of its own, logging to ``log_name`` in the workdir."""
        with open(self.workdir / log_name, "ab") as log:
            return subprocess.Popen(
                argv,
                cwd=REPO_ROOT,
                env=env or self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    @staticmethod
    def stop(process: subprocess.Popen | None, timeout: float = 20) -> None:
        if process is None:
            return
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                pass
        try:
            os.killpg(process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        process.wait()


def add_run_options(parser, *, settings: bool = True) -> None:
    """The options every end-to-end benchmark takes: settings variant, JSON output, workdir."""
    if settings:
        parser.add_argument("--settings", default="quay_site.settings", help="Django settings module (%(default)s)")
    parser.add_argument("--json", default="", help="also write the figures to this file")
    parser.add_argument("--workdir", default=None, help="where the run's directory is made (default: $TMPDIR)")
    parser.add_argument("--keep", action="store_true", help="keep the run's directory (data, logs)")


def run_and_report(run, report, options) -> tuple[int, dict | None]:
    """Call ``run()``, print ``report(result)`` and write ``--json``; (exit status, result)."""
    try:
        result = run()
    except BenchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1, None
    print(report(result))
    if options.json:
        Path(options.json).write_text(json.dumps(result, indent=2) + "\n")
    return 0, result
