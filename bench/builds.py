"""``python -m bench.builds [--distributed]``: how fast a build request reaches a build worker,
and how many trivial builds two workers finish per minute.

What it does, all on this machine:

1. a fresh DATA_DIR (and, with ``--distributed``, a throw-away PostgreSQL and Redis); migrations;
   a user with an API token and a repository;
2. the project as ``manage.py serve --no-builder`` starts it (gunicorn, Daphne, the Celery worker
   with beat), with builds switched on, and ``--workers`` build workers (``python -m builder``,
   buildah with vfs storage) connected to it;
3. **latency**: ``--latency-runs`` builds one after another, each through Quay's REST API
   (upload with ``filedrop``, then ``POST .../build/``), timed from just before the POST to the
   ``building`` phase entry the manager stamped (same clock: one machine). Quay's build manager
   polls its queue every 10 s; the target is a p50 under 1 s;
4. **throughput**: ``--builds`` builds submitted at once; builds per minute from the first
   request to the last ``complete``.

Each build is an archive holding ``FROM scratch`` + ``COPY`` of a small unique file, so it needs
no base image and every build pushes a new image.
"""

from __future__ import annotations

import argparse
import io
import shutil
import statistics
import sys
import tarfile
import time
from datetime import datetime

import requests

from bench.project import Project, add_run_options, run_and_report
from bench.util import BenchError, free_port, http_status, percentile

SECRET = "bench-registration-secret-0123456789"

SETUP = """
import json
from accounts import services as accounts
from registry import services as registry
from registry.permissions import Principal

user = accounts.user_create(username="bench", password="bench-password-1")
_, token = accounts.oauth_token_create(user=user, scopes=["repo:read", "repo:write", "repo:admin", "repo:create"])
registry.repository_create(namespace=user.namespace, name="built", principal=Principal(kind="user", user=user))
print("SETUP " + json.dumps({"token": token}))
"""

WORKERS = """
from builds.models import BuildWorker
print("WORKERS " + __import__("json").dumps(BuildWorker.objects.filter(state="idle").count()))
"""


def archive(n: int) -> bytes:
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w:gz") as tar:
        for name, content in (("Dockerfile", b"FROM scratch\nCOPY hello.txt /hello.txt\n"), ("hello.txt", b"%d\n" % n)):
            info = tarfile.TarInfo(name)
            info.size = len(content)
            tar.addfile(info, io.BytesIO(content))
    return raw.getvalue()


class Bench(Project):
    def __init__(self, options):
        self.port, self.ws_port = free_port(), free_port()
        super().__init__(
            prefix="bench-builds-",
            workdir=options.workdir,
            settings=options.settings,
            HOST="127.0.0.1",
            PORT=str(self.port),
            WS_PORT=str(self.ws_port),
            FEATURE_BUILD_SUPPORT="1",
            BUILDER_REGISTRATION_SECRET=SECRET,
            WEB_WORKERS="2",
        )
        self.env["HOME"] = self.env["DATA_DIR"]  # gunicorn's control socket stays in the run
        self.options = options
        self.server = None
        self.workers = []
        self.session = requests.Session()
        self.base = f"http://127.0.0.1:{self.port}/api/v1"

    # -- processes -------------------------------------------------------------------------------

    def start(self) -> None:
        self.manage("migrate", "--noinput", "-v", "0")
        token = self.shell(SETUP, "SETUP")["token"]
        self.session.headers["Authorization"] = f"Bearer {token}"
        self.server = self.spawn([sys.executable, "manage.py", "serve", "--no-builder"], "server.log")
        deadline = time.monotonic() + 90
        while http_status(self.port) != 401:
            if self.server.poll() is not None or time.monotonic() > deadline:
                raise BenchError(f"the server did not start:\n{(self.workdir / 'server.log').read_text()[-3000:]}")
            time.sleep(0.2)
        for n in range(self.options.workers):
            env = {
                **self.env,
                "SERVER": f"ws://127.0.0.1:{self.ws_port}",
                "BUILDER_WORK_DIR": str(self.workdir / f"builder-{n}"),
                "BUILDER_HOST": f"bench-{n}",
            }
            self.workers.append(self.spawn([sys.executable, "-m", "builder"], f"builder-{n}.log", env=env))
        deadline = time.monotonic() + 90
        while self.shell(WORKERS, "WORKERS") < self.options.workers:
            if time.monotonic() > deadline:
                raise BenchError("the build workers did not register")
            time.sleep(0.5)

    def stop_all(self) -> None:
        for worker in self.workers:
            self.stop(worker, timeout=60)
        self.stop(self.server)

    # -- API -------------------------------------------------------------------------------------

    def submit(self, n: int) -> tuple[str, float]:
        drop = self.session.post(f"{self.base}/filedrop/", json={"mimeType": "application/gzip"}, timeout=60)
        drop.raise_for_status()
        self.session.put(drop.json()["url"], data=archive(n), timeout=60).raise_for_status()
        requested = time.time()
        response = self.session.post(
            f"{self.base}/repository/bench/built/build/",
            json={"file_id": drop.json()["file_id"], "docker_tags": [f"b{n}"]},
            timeout=60,
        )
        if response.status_code != 201:
            raise BenchError(f"build request refused: {response.status_code} {response.text}")
        return response.json()["id"], requested

    def wait(self, build_id: str) -> dict:
        deadline = time.monotonic() + self.options.timeout
        while True:
            view = self.session.get(f"{self.base}/repository/bench/built/build/{build_id}", timeout=60).json()
            if view["phase"] in ("complete", "error", "internalerror", "cancelled"):
                if view["phase"] != "complete":
                    raise BenchError(f"build {build_id} ended {view['phase']}: {view.get('error')}")
                return view
            if time.monotonic() > deadline:
                raise BenchError(f"build {build_id} still {view['phase']} after {self.options.timeout} s")
            time.sleep(0.05)

    def building_at(self, build_id: str) -> float:
        logs = self.session.get(
            f"{self.base}/repository/bench/built/build/{build_id}/logs", params={"start": 0}, timeout=60
        ).json()["logs"]
        stamp = next(e["data"]["datetime"] for e in logs if e.get("type") == "phase" and e["message"] == "building")
        return datetime.fromisoformat(stamp).timestamp()

    # -- phases ----------------------------------------------------------------------------------

    def latency(self) -> dict:
        latencies = []
        for n in range(self.options.latency_runs):
            build_id, requested = self.submit(n)
            self.wait(build_id)
            latencies.append(self.building_at(build_id) - requested)
        return {
            "runs": len(latencies),
            "p50_ms": round(statistics.median(latencies) * 1000, 1),
            "p90_ms": round(percentile(latencies, 0.9) * 1000, 1),
            "max_ms": round(max(latencies) * 1000, 1),
        }

    def throughput(self) -> dict:
        start = time.time()
        ids = [self.submit(10_000 + n)[0] for n in range(self.options.builds)]
        for build_id in ids:
            self.wait(build_id)
        seconds = time.time() - start
        return {
            "builds": len(ids),
            "seconds": round(seconds, 1),
            "builds_per_minute": round(len(ids) / seconds * 60, 1),
        }

    def run(self) -> dict:
        backend = "SQLite (WAL) + filesystem broker"
        try:
            if self.options.distributed:
                backend = self.start_services()
            try:
                # Inside the try: a start that fails half-way must not leave workers running.
                self.start()
                result = {"latency": self.latency(), "throughput": self.throughput()}
            finally:
                self.stop_all()
            return {
                "configuration": "distributed" if self.options.distributed else "embedded",
                "backend": backend,
                "workers": self.options.workers,
                **result,
            }
        finally:
            if self.options.distributed:
                self.stop_services()
            if not self.options.keep:
                shutil.rmtree(self.workdir, ignore_errors=True)


def report(result: dict) -> str:
    latency, throughput = result["latency"], result["throughput"]
    return "\n".join(
        [
            f"Builds, {result['configuration']} ({result['backend']}), "
            f"{result['workers']} build workers (buildah, vfs)",
            f"request -> building: {latency['runs']} runs, p50 {latency['p50_ms']} ms, "
            f"p90 {latency['p90_ms']} ms, max {latency['max_ms']} ms "
            "(Quay polls its queue every 10 s; target p50 < 1 s)",
            f"throughput: {throughput['builds']} trivial builds at once in {throughput['seconds']} s = "
            f"{throughput['builds_per_minute']} builds/min",
        ]
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.builds", description=__doc__.split("\n\n")[0])
    parser.add_argument("--distributed", action="store_true", help="PostgreSQL + Redis instead of the embedded default")
    parser.add_argument("--workers", type=int, default=2, help="build workers (default %(default)s)")
    parser.add_argument("--latency-runs", type=int, default=10, help="sequential builds timed (default %(default)s)")
    parser.add_argument("--builds", type=int, default=20, help="builds submitted at once (default %(default)s)")
    parser.add_argument("--timeout", type=float, default=300, help="seconds to wait for one build")
    add_run_options(parser)
    options = parser.parse_args(argv)
    return run_and_report(Bench(options).run, report, options)[0]


if __name__ == "__main__":
    sys.exit(main())
