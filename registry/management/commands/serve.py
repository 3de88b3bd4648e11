"""``manage.py serve``: run every process of one machine in the foreground.

The web process (gunicorn), the websocket process (Daphne: build workers and live build logs,
on WS_PORT), a Celery worker that also schedules the periodic tasks (garbage collection, build
sweeps), and on the embedded default with builds switched on, one local build worker; Ctrl-C (or
SIGTERM) stops them all, and if one exits, the others are stopped too so nothing runs half-way.
"""

import os
import shutil
import signal
import subprocess
import sys
import time

from django.conf import settings
from django.core.management.base import BaseCommand

from accounts import crypto
from accounts.models import User
from accounts.services import user_create
from builds import selectors as build_selectors
from builds import services as build_services
from observability.processes import remove_dead_process_files
from registry.tokens import signing_key


class Command(BaseCommand):
    help = "Start the web server and the background worker in the foreground (Ctrl-C stops all)."

    def add_arguments(self, parser):
        parser.add_argument("--no-worker", action="store_true", help="Do not start the Celery worker.")
        parser.add_argument(
            "--no-builder", action="store_true", help="Do not start the local build worker (see README: Builds)."
        )

    def handle(self, *args, **options):
        self._ensure_superuser()
        # Create the token signing key before the workers fork, so they all read one key.
        signing_key()
        # Every process started here writes its metrics into one directory (and gunicorn's
        # master cleans up after its workers there); what the previous run left goes first.
        remove_dead_process_files(settings.METRICS_DIR)
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(settings.METRICS_DIR)
        python = sys.executable
        host, port = os.environ.get("HOST", "127.0.0.1"), os.environ.get("PORT", "8000")
        commands = {
            "web": [
                python,
                "-m",
                "gunicorn",
                "quay_site.wsgi:application",
                "-c",
                str(settings.BASE_DIR / "quay_site" / "gunicorn_conf.py"),
            ],
            "ws": [python, "-m", "daphne", "-b", host, "-p", str(settings.WS_PORT), "quay_site.asgi:application"],
        }
        environments = {}
        builder_env = None if options["no_builder"] else self._local_builder_env(host)
        if builder_env is not None:
            commands["builder"] = [python, "-m", "builder"]
            environments["builder"] = builder_env
        if not options["no_worker"]:
            commands["worker"] = [
                python,
                "-m",
                "celery",
                "-A",
                "quay_site",
                "worker",
                "--loglevel=INFO",
                "--concurrency=1",
                "--without-gossip",
                "--without-mingle",
                # Celery beat inside this worker, not a process of its own: one machine runs one
                # worker, so there is exactly one scheduler (two would run every periodic task
                # twice), and nothing more to watch. Its schedule file is
                # CELERY_BEAT_SCHEDULE_FILENAME under DATA_DIR. Where web machines run
                # `serve --no-worker` and workers are started on their own, one
                # `celery -A quay_site beat` serves the whole installation.
                "--beat",
            ]
        # Each child leads its own process group: a terminal's Ctrl-C then reaches only this
        # process, which stops each child once through its master. Signalled directly as well,
        # gunicorn workers got SIGINT and their master's SIGQUIT at once and could deadlock in
        # the nested signal handler, staying alive (and listening) after the master was gone.
        children = {
            name: subprocess.Popen(cmd, cwd=settings.BASE_DIR, start_new_session=True, env=environments.get(name))
            for name, cmd in commands.items()
        }
        self.stdout.write(
            f"Serving http://{host}:{port} and ws://{host}:{settings.WS_PORT} ({', '.join(children)}); Ctrl-C stops."
        )
        stopping = False

        def stop(signum, frame):
            nonlocal stopping
            stopping = True

        signal.signal(signal.SIGINT, stop)
        signal.signal(signal.SIGTERM, stop)
        exit_code = 0
        while not stopping:
            for name, child in children.items():
                if child.poll() is not None:
                    self.stderr.write(f"{name} exited with {child.returncode}; stopping the rest")
                    exit_code = child.returncode or 1
                    stopping = True
            time.sleep(0.2)
        for child in children.values():
            if child.poll() is None:
                child.terminate()
        deadline = time.time() + 20
        for child in children.values():
            try:
                child.wait(timeout=max(deadline - time.time(), 0.1))
            except subprocess.TimeoutExpired:
                pass
            # Whatever is left of the group (a stuck worker, a master past the deadline) goes too.
            try:
                os.killpg(child.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            child.wait()
        sys.exit(exit_code)

    def _local_builder_env(self, host: str) -> dict | None:
        """The environment of the local build worker, or None when there should be none.

        Only on the embedded default (SQLite: one machine, a newcomer's `make run`), with builds
        switched on and something to build with; elsewhere workers are started on their own
        machines (README: Builds). The worker needs the registration secret: when none is set,
        one is made here and stored (encrypted) in the build settings.
        """
        if settings.DATABASES["default"]["ENGINE"] != "django.db.backends.sqlite3":
            return None
        effective = build_selectors.build_settings()
        if not effective.enabled:
            return None
        if not shutil.which("buildah") and not _docker_engine_answers():
            self.stdout.write("Builds are on but neither buildah nor a Docker engine is here: no local build worker.")
            return None
        secret = effective.registration_secret
        if not secret:
            secret = crypto.random_token(48)
            build_services.build_settings_update(registration_secret=secret)
        # Workers reach the websocket on the host it listens on (a wildcard address: loopback).
        ws_host = "127.0.0.1" if host in ("0.0.0.0", "::", "") else host
        return {
            **os.environ,
            "SERVER": f"ws://{ws_host}:{settings.WS_PORT}",
            "BUILDER_REGISTRATION_SECRET": secret,
            "BUILDER_CAPACITY": os.environ.get("BUILDER_CAPACITY", "1"),
            "BUILDER_WORK_DIR": os.environ.get("BUILDER_WORK_DIR", str(settings.DATA_DIR / "builder")),
        }

    def _ensure_superuser(self):
        username = os.environ.get("DJANGO_SUPERUSER_USERNAME")
        password = os.environ.get("DJANGO_SUPERUSER_PASSWORD")
        if not username or not password:
            return
        user = User.objects.filter(username=username).first()
        if user is None:
            user_create(
                username=username,
                password=password,
                email=os.environ.get("DJANGO_SUPERUSER_EMAIL", ""),
                is_superuser=True,
            )
            self.stdout.write(f"Created superuser {username}")
        elif not user.is_superuser:
            user.is_superuser = user.is_staff = True
            user.save(update_fields=["is_superuser", "is_staff"])


def _docker_engine_answers() -> bool:
    if not shutil.which("docker"):
        return False
    try:
        return subprocess.run(["docker", "info"], capture_output=True, timeout=10).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False
