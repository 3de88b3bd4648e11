"""``python -m bench.notifications [--distributed]``: notification delivery throughput and latency.

What it does, all on this machine:

1. a fresh DATA_DIR (and, with ``--distributed``, a throw-away PostgreSQL and Redis started by
   ``.ci/services.sh``); migrations; a user, a repository and ``--webhooks`` webhook
   notifications pointing at a local receiver;
2. the project's worker, started the way ``manage.py serve`` starts it (``celery worker --beat``);
3. ``--events`` push events emitted through ``notifications.services.event_emit``, each in its own
   transaction as a push would, in two phases: a burst (as fast as the emitter goes) and a paced
   run at ``--rate`` events per second;
4. the receiver (a threaded HTTP server in this process) checks every signature and notes when
   each delivery id first arrived.

It prints, per phase, deliveries per second (first emit to last delivery), event-to-delivery
latency (the emit call to the receiver's first byte) p50/p90/p99/max, and what was lost or sent
twice (at-least-once: a duplicate is allowed, a loss is an error).
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

from bench.project import Project
from bench.util import BenchError, HookListener, percentile

SETUP = """
import json
from accounts import services as accounts
from notifications import services as notifications
from registry import services as registry
from registry.permissions import Principal

user = accounts.user_create(username="bench", password="bench-password-1")
principal = Principal(kind="user", user=user)
repo = registry.repository_create(namespace=user.namespace, name="bench", principal=principal)
secrets = {}
for n in range(WEBHOOKS):
    rule, config = notifications.notification_create(
        repository=repo, event="repo_push", method="webhook", config={"url": f"{BASE}/hook/{n}"},
        event_config={}, title=f"bench {n}", principal=principal, ip=None,
    )
    secrets[str(n)] = config["secret"]
print("SETUP " + json.dumps(secrets))
"""

EMIT = """
import json, time
from django.db import transaction
from notifications.services import event_emit
from registry.models import Repository

repo = Repository.objects.select_related("namespace").get(name="bench")
emitted = {}
start = time.time()
for i in range(EVENTS):
    if RATE:
        delay = start + i / RATE - time.time()
        if delay > 0:
            time.sleep(delay)
    tag = f"{PREFIX}{i}"
    emitted[tag] = time.time()
    with transaction.atomic():
        event_emit(event="repo_push", repository=repo, data={"updated_tags": [tag]})
print("EMITTED " + json.dumps({"seconds": time.time() - start, "times": emitted}))
"""

COUNT = """
from notifications.models import Delivery
from django.db.models import Count
print("STATES " + __import__("json").dumps(dict(Delivery.objects.values_list("state").annotate(n=Count("id")))))
"""


class Receiver(HookListener):
    """Records the first arrival of each delivery id, and every duplicate, checking signatures."""

    def __init__(self, secrets: dict[str, str] | None = None):
        self.secrets = secrets or {}
        self.first: dict[str, tuple[float, str]] = {}
        self.duplicates = 0
        self.bad_signatures = 0
        super().__init__()

    def record(self, path: str, headers: dict, body: bytes, arrived: float) -> None:
        from notifications import signing

        index = path.rsplit("/", 1)[-1]
        secret = self.secrets.get(index)
        if secret is None or not signing.verify(secret=secret, headers=headers, body=body):
            with self.lock:
                self.bad_signatures += 1
            return
        delivery_id = {k.lower(): v for k, v in headers.items()}["webhook-id"]
        tag = json.loads(body)["updated_tags"][0]
        with self.lock:
            if delivery_id in self.first:
                self.duplicates += 1
            else:
                self.first[delivery_id] = (arrived, tag)

    def count(self) -> int:
        with self.lock:
            return len(self.first)


class Bench(Project):
    def __init__(self, options):
        super().__init__(
            prefix="bench-notifications-",
            workdir=options.workdir,
            settings=options.settings,
            OUTBOUND_ALLOWED_NETWORKS="127.0.0.1/32",
        )
        self.options = options
        self.worker: subprocess.Popen | None = None

    def start_worker(self) -> None:
        self.worker = self.spawn(
            [
                sys.executable,
                "-m",
                "celery",
                "-A",
                "quay_site",
                "worker",
                "--loglevel=WARNING",
                f"--concurrency={self.options.concurrency}",
                "--without-gossip",
                "--without-mingle",
                "--beat",
            ],
            "worker.log",
        )

    def stop_worker(self) -> None:
        self.stop(self.worker)

    # -- a phase ---------------------------------------------------------------------------------

    def phase(self, receiver: Receiver, name: str, events: int, rate: float) -> dict:
        expected = receiver.count() + events * self.options.webhooks
        code = f"EVENTS = {events}\nRATE = {rate}\nPREFIX = {name + '-'!r}\n" + EMIT
        emitted = self.shell(code, "EMITTED")
        deadline = time.monotonic() + self.options.timeout
        while receiver.count() < expected and time.monotonic() < deadline:
            if self.worker.poll() is not None:
                raise BenchError(f"the worker exited:\n{(self.workdir / 'worker.log').read_text()[-3000:]}")
            time.sleep(0.05)
        times = emitted["times"]
        arrivals = [(arrived, tag) for arrived, tag in list(receiver.first.values()) if tag in times]
        latencies = [arrived - times[tag] for arrived, tag in arrivals]
        delivered = len(arrivals)
        first_emit, last_arrival = min(times.values()), max((a for a, _ in arrivals), default=0.0)
        span = max(last_arrival - first_emit, 1e-9)
        return {
            "phase": name,
            "events": events,
            "rate": rate or "burst",
            "emit_seconds": round(emitted["seconds"], 2),
            "deliveries_expected": events * self.options.webhooks,
            "delivered": delivered,
            "lost": events * self.options.webhooks - delivered,
            "seconds": round(span, 2),
            "deliveries_per_second": round(delivered / span, 1),
            "latency_ms": {
                "p50": round(percentile(latencies, 0.50) * 1000, 1) if latencies else None,
                "p90": round(percentile(latencies, 0.90) * 1000, 1) if latencies else None,
                "p99": round(percentile(latencies, 0.99) * 1000, 1) if latencies else None,
                "max": round(max(latencies) * 1000, 1) if latencies else None,
                "mean": round(statistics.fmean(latencies) * 1000, 1) if latencies else None,
            },
        }

    def run(self) -> dict:
        backend = "SQLite (WAL) + filesystem broker"
        try:
            if self.options.distributed:
                backend = self.start_services()
            self.manage("migrate", "--noinput", "-v", "0")
            receiver = Receiver()
            try:
                base = f"http://127.0.0.1:{receiver.port}"
                receiver.secrets = self.shell(f"WEBHOOKS = {self.options.webhooks}\nBASE = {base!r}\n" + SETUP, "SETUP")
                self.start_worker()
                phases = [self.phase(receiver, "burst", self.options.events, 0)]
                if self.options.rate:
                    phases.append(self.phase(receiver, "paced", self.options.events, self.options.rate))
                time.sleep(1.0)  # late duplicates, if any, arrive now
                states = self.shell(COUNT, "STATES")
            finally:
                self.stop_worker()
                receiver.stop()
            return {
                "configuration": "distributed" if self.options.distributed else "embedded",
                "backend": backend,
                "worker_concurrency": self.options.concurrency,
                "webhooks_per_event": self.options.webhooks,
                "phases": phases,
                "duplicates": receiver.duplicates,
                "bad_signatures": receiver.bad_signatures,
                "delivery_states": states,
            }
        finally:
            if self.options.distributed:
                self.stop_services()
            if not self.options.keep:
                shutil.rmtree(self.workdir, ignore_errors=True)


def report(result: dict) -> str:
    lines = [
        f"Notification delivery, {result['configuration']} ({result['backend']}), "
        f"worker concurrency {result['worker_concurrency']}, {result['webhooks_per_event']} webhooks per event",
        f"{'phase':<8} {'events':>6} {'rate/s':>7} {'deliveries':>10} {'lost':>5} {'seconds':>8} "
        f"{'deliv/s':>8} {'p50 ms':>8} {'p90 ms':>8} {'p99 ms':>8} {'max ms':>8}",
    ]
    for phase in result["phases"]:
        latency = phase["latency_ms"]
        lines.append(
            f"{phase['phase']:<8} {phase['events']:>6} {phase['rate']!s:>7} {phase['delivered']:>10} "
            f"{phase['lost']:>5} {phase['seconds']:>8} {phase['deliveries_per_second']:>8} "
            f"{latency['p50']!s:>8} {latency['p90']!s:>8} {latency['p99']!s:>8} {latency['max']!s:>8}"
        )
    lines.append(
        f"duplicates: {result['duplicates']}, bad signatures: {result['bad_signatures']}, "
        f"delivery rows by state: {result['delivery_states']}"
    )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.notifications", description=__doc__.split("\n\n")[0])
    parser.add_argument("--distributed", action="store_true", help="PostgreSQL + Redis instead of the embedded default")
    parser.add_argument("--events", type=int, default=1000, help="push events per phase (default %(default)s)")
    parser.add_argument("--webhooks", type=int, default=3, help="webhook notifications per event (default %(default)s)")
    parser.add_argument(
        "--rate", type=float, default=25.0, help="events/s of the paced phase; 0 skips it (default %(default)s)"
    )
    parser.add_argument(
        "--concurrency", type=int, default=1, help="worker processes; manage.py serve runs 1 (default %(default)s)"
    )
    parser.add_argument("--timeout", type=float, default=600, help="seconds to wait for a phase's deliveries")
    parser.add_argument(
        "--settings", default="quay_site.settings", help="Django settings module, to try a variant (%(default)s)"
    )
    parser.add_argument("--json", default="", help="also write the figures to this file")
    parser.add_argument("--workdir", default=None, help="where the run's directory is made (default: $TMPDIR)")
    parser.add_argument("--keep", action="store_true", help="keep the run's directory (data, worker log)")
    options = parser.parse_args(argv)
    try:
        result = Bench(options).run()
    except BenchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(report(result))
    if options.json:
        Path(options.json).write_text(json.dumps(result, indent=2) + "\n")
    lost = sum(phase["lost"] for phase in result["phases"])
    return 1 if lost or result["bad_signatures"] else 0


if __name__ == "__main__":
    sys.exit(main())
