"""``python -m bench.load [--distributed]``: a bounded mixed workload from many clients (issue #13).

What it does, all on this machine:

1. the project as ``manage.py serve --no-builder`` starts it (gunicorn, Daphne, the Celery worker
   with beat) with builds switched on and ``--workers`` build workers, on the embedded default or,
   with ``--distributed``, on a throw-away PostgreSQL and Redis (the set-up of ``bench.builds``);
   a webhook notification on ``repo_push`` of ``bench/load`` pointing at a local receiver;
2. ``--clients`` threads, each on its own keep-alive connection, for ``--seconds``: pushes of
   small unique images (HEAD, upload, manifest PUT), pulls of what was pushed (manifest by tag,
   each blob, digests checked), tag moves (a manifest PUT of an earlier image under the client's
   moving tag, read back at once), and REST API reads (repository, tag list); meanwhile a build
   every ``--build-interval`` seconds through the REST API;
3. the resident memory of the server's processes (``manage.py serve`` and all its descendants)
   sampled every 2 s;
4. at the end: every build must complete and its image be pullable (the time from request to
   ``building`` is reported: the build dispatch waits in the one Celery worker's queue), every
   ``repo_push`` (pushes and moves) must reach the receiver, signed (at-least-once delivery: a
   duplicate is reported, not failed), every pushed tag and each client's moving tag
   is pulled again, manifest and blobs, and checked byte for byte, and the server's log must hold
   no ERROR line or traceback.

It prints operations per second and p50/p99 latency per kind, errors, what was lost, and memory
after the warm-up (the first quarter of the run), at the end and at its highest. Memory is flat
when it grew from the end of the warm-up to the end of the run by at most 50 MiB or 10 %,
whichever is larger. The exit status is non-zero on any error, loss, missing delivery, bad
signature, unfinished build, server log error or memory growth beyond that.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import shutil
import sys
import threading
import time

from bench import builds, util
from bench.client import (
    MANIFEST_ACCEPT,
    Session,
    Target,
    image_config,
    image_manifest,
    pull_scope,
    push_scope,
    sha256_digest,
)
from bench.project import add_run_options, run_and_report
from bench.util import BenchError, HookListener, children_of, cmdline, rss_bytes

REPO = "bench/load"
PASSWORD = "bench-password-1"

NOTIFY = """
import json
from notifications import services as notifications
from registry import services as registry
from registry.permissions import Principal
from accounts.models import User

user = User.objects.get(username="bench")
principal = Principal(kind="user", user=user)
repo = registry.repository_create(namespace=user.namespace, name="load", principal=principal)
_, config = notifications.notification_create(
    repository=repo, event="repo_push", method="webhook", config={"url": "URL"},
    event_config={}, title="load", principal=principal, ip=None,
)
print("NOTIFY " + json.dumps(config["secret"]))
"""

KINDS = ("push", "pull", "move", "api")
WEIGHTS = (3, 4, 1, 2)
# Generous: the machine may be shared and loaded; a request slower than this is still an error.
CLIENT_TIMEOUT = 120
MEMORY_SAMPLE_SECONDS = 2
# Server memory is flat when it grows after the warm-up by at most the larger of these.
MEMORY_GROWTH_MIB = 50
MEMORY_GROWTH_FRACTION = 0.10
LOG_ERROR_RE = re.compile(r"\b(ERROR|CRITICAL)\b|^Traceback ")
# The closing line of a traceback ("psycopg2.OperationalError: ..."): what went wrong, kept in
# the samples so that a rare failure is explained by the run that met it.
EXCEPTION_LINE_RE = re.compile(r"^(?:[A-Za-z_][\w.]*\.)?[A-Z]\w*(?:Error|Exception|Warning|Failure)\b.*")


def percentile(values: list[float], fraction: float) -> float:
    return util.percentile(values, fraction) if values else float("nan")


class Receiver(HookListener):
    """Counts the webhook deliveries by their delivery id (``webhook-id``) and by tag, each signature checked."""

    def __init__(self):
        self.secret = ""
        self.ids: dict[str, int] = {}
        self.tags: dict[str, int] = {}
        self.bad_signatures = 0
        super().__init__()

    def record(self, path: str, headers: dict, body: bytes, arrived: float) -> None:
        from notifications import signing

        if not signing.verify(secret=self.secret, headers=headers, body=body):
            with self.lock:
                self.bad_signatures += 1
            return
        delivery_id = {k.lower(): v for k, v in headers.items()}["webhook-id"]
        tags = json.loads(body).get("updated_tags", [])
        with self.lock:
            self.ids[delivery_id] = self.ids.get(delivery_id, 0) + 1
            if self.ids[delivery_id] == 1:  # a duplicate delivery is not a second event
                for tag in tags:
                    self.tags[tag] = self.tags.get(tag, 0) + 1

    def delivered(self) -> int:
        with self.lock:
            return len(self.ids)


class Client:
    """One simulated user: its own connection, its own images and its own moving tag."""

    def __init__(self, bench: Bench, n: int):
        self.bench = bench
        self.n = n
        self.session = Session(bench.target, timeout=CLIENT_TIMEOUT)
        self.random = random.Random(n)
        self.images: list[tuple[str, str, bytes, list[bytes]]] = []  # (tag, digest, manifest, blobs)
        self.pushed = 0
        self.moved: tuple[str, str, bytes, list[bytes]] | None = None  # what the moving tag points at last

    def auth(self, scopes) -> dict:
        return self.bench.target.auth(scopes)

    def push(self) -> None:
        layer = os.urandom(self.random.randint(2048, 65536))
        config = image_config([layer], f"client {self.n} image {self.pushed}")
        tag = f"c{self.n}-{self.pushed}"
        digest = self.session.push_small_image(REPO, tag, layer, config, self.auth(push_scope(REPO)))
        self.images.append((tag, digest, image_manifest(config, [layer]), [layer, config]))
        self.pushed += 1
        self.bench.count_event(tag)

    def pull(self, image=None) -> None:
        if not self.images:
            return self.push()
        tag, digest, _, blobs = image or self.random.choice(self.images)
        auth = self.auth(pull_scope(REPO))
        response = self.session.request(
            "GET", f"/v2/{REPO}/manifests/{tag}", headers={**auth, "Accept": MANIFEST_ACCEPT}, expect=200
        )
        if sha256_digest(response.data) != digest:
            raise BenchError(f"{REPO}:{tag} answered another manifest")
        for blob in blobs:
            got = self.session.request("GET", f"/v2/{REPO}/blobs/{sha256_digest(blob)}", headers=auth, expect=200)
            if got.data != blob:
                raise BenchError(f"a blob of {REPO}:{tag} came back different")

    def move(self) -> None:
        if not self.images:
            return self.push()
        tag, digest, raw, blobs = self.random.choice(self.images)
        moving = f"moving-{self.n}"
        self.session.put_manifest(REPO, moving, raw, self.auth(push_scope(REPO)))
        self.moved = (moving, digest, raw, blobs)
        self.bench.count_event(moving)
        response = self.session.request(
            "GET",
            f"/v2/{REPO}/manifests/{moving}",
            headers={**self.auth(pull_scope(REPO)), "Accept": MANIFEST_ACCEPT},
            expect=200,
        )
        if sha256_digest(response.data) != digest:
            raise BenchError(f"{REPO}:{moving} does not point where it was just moved")

    def api(self) -> None:
        headers = {"Authorization": f"Bearer {self.bench.api_token}"}
        path = self.random.choice(["/api/v1/repository/bench/load", "/api/v1/repository/bench/load/tag/?limit=50"])
        self.session.request("GET", path, headers=headers, expect=200)

    def loop(self, deadline: float) -> None:
        while time.monotonic() < deadline:
            kind = self.random.choices(KINDS, WEIGHTS)[0]
            start = time.perf_counter()
            try:
                getattr(self, kind)()
            except Exception as exc:  # every failure is counted and reported
                self.bench.record_error(kind, exc)
                self.session.close()
                self.session = Session(self.bench.target, timeout=CLIENT_TIMEOUT)
                continue
            self.bench.record(kind, time.perf_counter() - start)


class Bench(builds.Bench):
    def __init__(self, options):
        super().__init__(options)
        self.env["OUTBOUND_ALLOWED_NETWORKS"] = "127.0.0.1/32"  # the receiver is on loopback
        self.receiver = Receiver()
        self.target = None
        self.api_token = ""
        self.lock = threading.Lock()
        self.latencies: dict[str, list[float]] = {kind: [] for kind in KINDS}
        self.errors: list[str] = []
        self.error_kinds: dict[str, int] = {}
        self.events: dict[str, int] = {}
        self.memory: list[tuple[float, int, dict[str, int]]] = []  # (seconds, total RSS, RSS by process kind)
        self.backlog: list[tuple[float, int]] = []  # (seconds, tasks waiting in the Celery queue)
        self.builds: list[tuple[str, int, float]] = []  # (build id, number, requested at)

    def record(self, kind: str, seconds: float) -> None:
        with self.lock:
            self.latencies[kind].append(seconds)

    def record_error(self, kind: str, exc: Exception) -> None:
        with self.lock:
            self.errors.append(f"{kind}: {type(exc).__name__}: {str(exc)[:300]}")
            self.error_kinds[kind] = self.error_kinds.get(kind, 0) + 1

    def count_event(self, tag: str) -> None:
        with self.lock:
            self.events[tag] = self.events.get(tag, 0) + 1

    # -- memory ----------------------------------------------------------------------------------

    def server_rss(self) -> tuple[int, dict[str, int]]:
        """The RSS of ``manage.py serve`` and all its descendants, in total and by kind of process."""
        by_kind: dict[str, int] = {}
        todo = [self.server.pid]
        while todo:
            pid = todo.pop()
            todo.extend(children_of(pid))
            kind = process_kind(cmdline(pid))
            by_kind[kind] = by_kind.get(kind, 0) + (rss_bytes(pid) or 0)
        return sum(by_kind.values()), by_kind

    def queue_length(self) -> int | None:
        """Tasks waiting in the Celery queues (the filesystem broker's files, or the Redis lists)."""
        if "REDIS_URL" in self.env:
            import redis

            client = redis.Redis.from_url(self.env["REDIS_URL"])
            try:
                prefix = self.env.get("REDIS_KEY_PREFIX", "")
                return sum(client.llen(prefix + name) for name in ("celery", "builds", "notifications"))
            finally:
                client.close()
        folder = self.workdir / "data" / "celery-queue"
        return sum(1 for name in os.listdir(folder) if name.endswith(".msg")) if folder.exists() else None

    def sample_memory(self, stop: threading.Event, start: float) -> None:
        """Every MEMORY_SAMPLE_SECONDS: the server's memory and the Celery backlog."""
        while True:
            total, by_kind = self.server_rss()
            self.memory.append((time.monotonic() - start, total, by_kind))
            try:
                backlog = self.queue_length()
            except Exception:  # a figure only: a failed look at the queue must not stop the sampling
                backlog = None
            if backlog is not None:
                self.backlog.append((time.monotonic() - start, backlog))
            if stop.wait(MEMORY_SAMPLE_SECONDS):
                return

    def backlog_figures(self) -> dict:
        """The Celery queue's length after the warm-up, at the end and at most (not a pass/fail)."""
        warm = [n for t, n in self.backlog if t >= self.options.seconds / 4]
        if not warm:
            return {"after_warmup": None, "end": None, "max": None}
        return {"after_warmup": warm[0], "end": warm[-1], "max": max(warm)}

    def memory_figures(self) -> dict:
        """After the warm-up (the first quarter), at the end and at most; growth beyond the allowance fails."""
        warm = [sample for sample in self.memory if sample[0] >= self.options.seconds / 4]
        if len(warm) < 2:
            raise BenchError(f"too few memory samples after the warm-up ({len(self.memory)} in all)")
        after, end = warm[0], warm[-1]
        growth = end[1] - after[1]
        allowed = max(MEMORY_GROWTH_MIB * 2**20, MEMORY_GROWTH_FRACTION * after[1])
        return {
            "samples": len(self.memory),
            "after_warmup_mib": mib(after[1]),
            "end_mib": mib(end[1]),
            "max_mib": mib(max(sample[1] for sample in warm)),
            "growth_mib": mib(growth),
            "allowed_growth_mib": mib(allowed),
            "flat": growth <= allowed,
            # About a dozen points of the whole run, to tell a slow warm-up from a steady climb.
            "trace_mib": [[round(t), mib(total)] for t, total, _ in self.memory[:: max(1, len(self.memory) // 12)]],
            "by_process_mib": {
                kind: {"after_warmup": mib(after[2].get(kind, 0)), "end": mib(end[2].get(kind, 0))}
                for kind in sorted(set(after[2]) | set(end[2]))
            },
        }

    # -- builds ----------------------------------------------------------------------------------

    def submit_builds(self, stop: threading.Event) -> None:
        n = 0
        while not stop.wait(self.options.build_interval):
            try:
                build_id, requested = self.submit(20_000 + n)
                self.builds.append((build_id, 20_000 + n, requested))
            except Exception as exc:
                self.record_error("build", exc)
            n += 1

    def verify_builds(self) -> dict:
        """Each build complete and its image pullable; request -> ``building`` per build."""
        waits, complete = [], 0
        for build_id, n, requested in self.builds:
            try:
                self.wait(build_id)
                waits.append(self.building_at(build_id) - requested)
                Session(self.target, timeout=CLIENT_TIMEOUT).request(
                    "GET",
                    f"/v2/bench/built/manifests/b{n}",
                    headers={**self.target.auth(pull_scope("bench/built")), "Accept": MANIFEST_ACCEPT},
                    expect=200,
                )
                complete += 1
            except Exception as exc:
                self.record_error("build", exc)
        return {
            "builds": len(self.builds),
            "builds_complete": complete,
            "build_wait_p50_s": round(percentile(waits, 0.5), 1) if waits else None,
            "build_wait_max_s": round(max(waits), 1) if waits else None,
        }

    # -- verification ----------------------------------------------------------------------------

    def verify(self, clients: list[Client]) -> dict:
        """Every build complete, every push event delivered once, every pushed or moved tag intact."""
        checks = self.verify_builds()
        expected = sum(self.events.values())
        deadline = time.monotonic() + self.options.timeout
        while self.receiver.delivered() < expected and time.monotonic() < deadline:
            time.sleep(0.2)
        time.sleep(1.0)  # a late duplicate, if any, arrives now
        with self.receiver.lock:
            duplicates = sum(count - 1 for count in self.receiver.ids.values())
            undelivered = sum(max(0, n - self.receiver.tags.get(tag, 0)) for tag, n in self.events.items())
        lost_images = 0
        for client in clients:
            client.session = Session(self.target, timeout=CLIENT_TIMEOUT)
            for image in client.images + ([client.moved] if client.moved else []):
                try:
                    client.pull(image)
                except Exception as exc:
                    lost_images += 1
                    self.record_error("verify", exc)
            client.session.close()
        return {
            "images_pushed": sum(len(c.images) for c in clients),
            "tags_checked": sum(len(c.images) + bool(c.moved) for c in clients),
            "images_lost": lost_images,
            "events": expected,
            "deliveries": self.receiver.delivered(),
            "deliveries_missing": undelivered,
            "duplicate_deliveries": duplicates,
            "bad_signatures": self.receiver.bad_signatures,
            **checks,
        }

    def server_log_errors(self) -> list[str]:
        """ERROR/CRITICAL lines and tracebacks the server's processes logged (a client may not see them)."""
        log = self.workdir / "server.log"
        lines = log.read_text(errors="replace").splitlines() if log.exists() else []
        return [line[:300] for line in lines if LOG_ERROR_RE.search(line) or EXCEPTION_LINE_RE.match(line)]

    # -- the run ---------------------------------------------------------------------------------

    def workload(self) -> dict:
        url = f"http://127.0.0.1:{self.receiver.port}/hook"
        self.receiver.secret = self.shell(NOTIFY.replace("URL", url), "NOTIFY")
        self.api_token = self.session.headers["Authorization"].split(" ", 1)[1]
        self.target = Target("project", self.port, creds=("bench", PASSWORD))
        clients = [Client(self, n) for n in range(self.options.clients)]
        stop = threading.Event()
        load_before = os.getloadavg()
        start = time.monotonic()
        helpers = [
            threading.Thread(target=self.sample_memory, args=(stop, start), daemon=True),
            threading.Thread(target=self.submit_builds, args=(stop,), daemon=True),
        ]
        for thread in helpers:
            thread.start()
        deadline = start + self.options.seconds
        threads = [threading.Thread(target=c.loop, args=(deadline,)) for c in clients]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        elapsed = time.monotonic() - start
        load_after = os.getloadavg()
        stop.set()
        for thread in helpers:
            thread.join()
        for client in clients:
            client.session.close()
        checks = self.verify(clients)
        memory = self.memory_figures()
        operations = {
            kind: {
                "count": len(values),
                "per_second": round(len(values) / elapsed, 1),
                "p50_ms": round(percentile(values, 0.5) * 1000, 1) if values else None,
                "p99_ms": round(percentile(values, 0.99) * 1000, 1) if values else None,
            }
            for kind, values in self.latencies.items()
        }
        log_errors = self.server_log_errors()
        return {
            "seconds": round(elapsed, 1),
            "clients": self.options.clients,
            "build_interval": self.options.build_interval,
            "load_average": {"before": [round(x, 2) for x in load_before], "after": [round(x, 2) for x in load_after]},
            "operations": operations,
            "operations_per_second": round(sum(len(v) for v in self.latencies.values()) / elapsed, 1),
            "errors": len(self.errors),
            "errors_by_kind": self.error_kinds,
            "error_samples": self.errors[:10],
            "server_log_errors": len(log_errors),
            # Distinct lines: one traceback's header repeated would crowd out its closing line.
            "server_log_error_samples": list(dict.fromkeys(log_errors))[:20],
            "memory": memory,
            "celery_backlog": self.backlog_figures(),
            **checks,
        }

    def run(self) -> dict:
        backend = "SQLite (WAL) + filesystem broker"
        outcome = None
        try:
            if self.options.distributed:
                backend = self.start_services()
            try:
                self.start()
                result = self.workload()
            finally:
                self.stop_all()
                self.receiver.stop()
            configuration = "distributed" if self.options.distributed else "embedded"
            outcome = {"configuration": configuration, "backend": backend, **result}
            return outcome
        finally:
            if self.options.distributed:
                self.stop_services()
            # A failed run keeps its logs (server, PostgreSQL): the failure may be rare.
            if outcome is not None and failures(outcome) and not self.options.keep:
                print(f"run failed: logs kept in {self.workdir}", file=sys.stderr)
            elif not self.options.keep:
                shutil.rmtree(self.workdir, ignore_errors=True)


def process_kind(command: str) -> str:
    for kind in ("gunicorn", "daphne", "celery", "serve"):
        if kind in command:
            return kind
    return "other"


def mib(n: float) -> float:
    return round(n / 2**20, 1)


def failures(result: dict) -> list[str]:
    """Why the run failed, if it did: any error, loss, missing delivery, bad signature or growth."""
    memory = result["memory"]
    checks = [
        (result["errors"], f"{result['errors']} errors"),
        (result["server_log_errors"], f"{result['server_log_errors']} error lines in the server log"),
        (result["images_lost"], f"{result['images_lost']} tags lost or changed"),
        (result["deliveries_missing"], f"{result['deliveries_missing']} push events not delivered"),
        (result["bad_signatures"], f"{result['bad_signatures']} deliveries with a bad signature"),
        (result["builds_complete"] < result["builds"], "builds not complete"),
        (
            not memory["flat"],
            f"server memory grew {memory['growth_mib']} MiB after the warm-up "
            f"(allowed {memory['allowed_growth_mib']} MiB)",
        ),
    ]
    return [text for failed, text in checks if failed]


def report(result: dict) -> str:
    load = result["load_average"]
    lines = [
        f"Mixed load, {result['configuration']} ({result['backend']}): {result['clients']} clients for "
        f"{result['seconds']} s, a build every {result['build_interval']:g} s; load average "
        f"{load['before'][0]} before, {load['after'][0]} at the end",
        f"{'kind':<6} {'count':>7} {'per s':>7} {'p50 ms':>8} {'p99 ms':>8}",
    ]
    for kind, figures in result["operations"].items():
        lines.append(
            f"{kind:<6} {figures['count']:>7} {figures['per_second']:>7} {figures['p50_ms']!s:>8} "
            f"{figures['p99_ms']!s:>8}"
        )
    memory, backlog = result["memory"], result["celery_backlog"]
    lines += [
        f"all    {sum(f['count'] for f in result['operations'].values()):>7} {result['operations_per_second']:>7}",
        f"errors: {result['errors']} {result['error_samples'] if result['errors'] else ''}".rstrip(),
        f"server log errors: {result['server_log_errors']} "
        f"{result['server_log_error_samples'] if result['server_log_errors'] else ''}".rstrip(),
        f"images pushed {result['images_pushed']}, tags re-pulled {result['tags_checked']}, lost "
        f"{result['images_lost']}; push events {result['events']}, delivered {result['deliveries']} (missing "
        f"{result['deliveries_missing']}, duplicates {result['duplicate_deliveries']}, bad signatures "
        f"{result['bad_signatures']})",
        f"builds {result['builds']}, complete {result['builds_complete']}; request -> building p50 "
        f"{result['build_wait_p50_s']} s, max {result['build_wait_max_s']} s; Celery tasks waiting: "
        f"{backlog['after_warmup']} after warm-up, {backlog['end']} at the end, {backlog['max']} at most",
        f"server memory (RSS, all processes): {memory['after_warmup_mib']} MiB after warm-up, {memory['end_mib']} MiB "
        f"at the end, {memory['max_mib']} MiB at most; growth {memory['growth_mib']} MiB "
        f"(allowed {memory['allowed_growth_mib']} MiB): {'flat' if memory['flat'] else 'GROWING'}",
    ]
    problems = failures(result)
    lines.append("result: " + ("FAIL: " + "; ".join(problems) if problems else "pass"))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.load", description=__doc__.split("\n\n")[0])
    parser.add_argument("--distributed", action="store_true", help="PostgreSQL + Redis instead of the embedded default")
    parser.add_argument("--seconds", type=float, default=240, help="length of the workload (default %(default)s)")
    parser.add_argument("--clients", type=int, default=16, help="concurrent clients (default %(default)s)")
    parser.add_argument("--workers", type=int, default=1, help="build workers (default %(default)s)")
    parser.add_argument("--build-interval", type=float, default=10, help="seconds between builds (default %(default)s)")
    parser.add_argument("--timeout", type=float, default=300, help="seconds to wait for builds and deliveries")
    add_run_options(parser)
    options = parser.parse_args(argv)
    status, result = run_and_report(Bench(options).run, report, options)
    if result is not None and failures(result):
        status = 1
    return status


if __name__ == "__main__":
    sys.exit(main())
