"""Tag history at scale: the REST tag listing of a repository with 10,000 tags and 100,000
history rows (issue #5).

    .venv/bin/python -m bench.tags_scale [--tags 10000] [--rows-per-tag 10] [--seconds 5]

Builds a throw-away DATA_DIR (embedded default: SQLite and files; ``--database-url`` for
PostgreSQL), fills it with ``build_tag_history`` (also what the scale tests use), starts the
project with ``manage.py serve --no-worker`` and measures three GETs of
``/api/v1/repository/<r>/tag/``: the first page, a deep page, and one tag's history
(``specificTag``). For each it prints the median latency of sequential requests and the median
request rate and p50 latency of ``wrk`` runs.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import shutil
import sys
import tempfile
import time
from datetime import datetime, timedelta
from pathlib import Path

from bench.servers import ProjectServer
from bench.tools import wrk
from bench.util import BenchError, free_port, median

MANIFESTS = 100


def build_tag_history(*, repository, tags: int = 10_000, rows_per_tag: int = 10, now: datetime | None = None) -> None:
    """``tags`` names in ``repository``, each with ``rows_per_tag`` lifetimes (the last alive).

    Lifetimes follow one another without gaps, as moves leave them, over the week before
    ``now`` (inside the default time machine window), on ``MANIFESTS`` small manifests. Written
    with bulk inserts: this is data for measuring reads, not a test of the tag services.
    """
    from django.db import connection
    from django.utils import timezone

    from registry.manifests import OCI_MANIFEST
    from registry.models import Manifest, Tag

    now = now or timezone.now()
    Manifest.objects.bulk_create(
        Manifest(
            repository=repository,
            digest=f"sha256:{n:064x}",
            media_type=OCI_MANIFEST,
            raw=b"{}",
            size=2,
            layers_size=1_000_000 + n,
        )
        for n in range(MANIFESTS)
    )
    ids = list(Manifest.objects.filter(repository=repository).order_by("digest").values_list("pk", flat=True))
    step = timedelta(days=7) / (tags * rows_per_tag)
    base = now - timedelta(days=7)
    batch: list[Tag] = []
    for generation in range(rows_per_tag):
        alive = generation == rows_per_tag - 1
        for n in range(tags):
            start = base + step * (generation * tags + n)
            batch.append(
                Tag(
                    repository=repository,
                    name=f"tag-{n:05}",
                    manifest_id=ids[(n + generation) % len(ids)],
                    lifetime_start=start,
                    lifetime_end=None if alive else base + step * ((generation + 1) * tags + n),
                )
            )
            if len(batch) == 5000:
                Tag.objects.bulk_create(batch)
                batch = []
    if batch:
        Tag.objects.bulk_create(batch)
    if connection.vendor == "postgresql":
        # What autovacuum would soon do: without statistics the planner takes 100,000 fresh rows
        # for a handful.
        with connection.cursor() as cursor:
            cursor.execute("ANALYZE registry_tag")


SETUP = """
import json
from accounts import scopes
from accounts import services as account_services
from registry import services
from registry.permissions import Principal
from bench.tags_scale import build_tag_history
user = account_services.user_create(username="scaler", password="scaler-password-1")
repository = services.repository_create(
    namespace=user.namespace, name="big", principal=Principal(kind="user", user=user)
)
build_tag_history(repository=repository, tags={tags}, rows_per_tag={rows})
_, token = account_services.oauth_token_create(user=user, scopes=scopes.ALL)
print("BENCH " + json.dumps({{"token": token}}))
"""


def _get(port: int, path: str, token: str) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    try:
        conn.request("GET", path, headers={"Authorization": f"Bearer {token}"})
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def _sequential_ms(port: int, path: str, token: str, count: int) -> float:
    timings = []
    for _ in range(count):
        t0 = time.perf_counter()
        status, body = _get(port, path, token)
        timings.append((time.perf_counter() - t0) * 1000)
        if status != 200:
            raise BenchError(f"GET {path} answered {status}: {body[:300]!r}")
    return median(timings)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.tags_scale", description=__doc__.split("\n\n")[0])
    p.add_argument("--tags", type=int, default=10_000, help="tag names (default: %(default)s)")
    p.add_argument("--rows-per-tag", type=int, default=10, help="history rows per name (default: %(default)s)")
    p.add_argument("--seconds", type=float, default=5, help="duration of each wrk run (default: %(default)s)")
    p.add_argument("--runs", type=int, default=3, help="wrk runs per request, the median is shown (default: 3)")
    p.add_argument("--requests", type=int, default=30, help="sequential requests per measure (default: 30)")
    p.add_argument("--connections", type=int, default=8, help="wrk connections (default: %(default)s)")
    p.add_argument("--database-url", default=None, help="measure on this database instead of SQLite")
    p.add_argument("--keep", action="store_true", help="keep the work directory")
    args = p.parse_args(argv)

    workdir = Path(tempfile.mkdtemp(prefix="bench-tags-"))
    port = free_port()
    extra = {"DATABASE_URL": args.database_url} if args.database_url else {}
    server = ProjectServer(
        name="project",
        data_dir=workdir / "data",
        port=port,
        username="admin",
        password="bench-admin-password",
        log_dir=workdir,
        extra_env=extra,
        worker=False,
    )
    rows = args.tags * args.rows_per_tag
    pages = rows // 100
    paths = {
        "first page (limit 100)": "/api/v1/repository/scaler/big/tag/?limit=100&page=1",
        f"deep page ({pages - 1} of {pages})": f"/api/v1/repository/scaler/big/tag/?limit=100&page={pages - 1}",
        "one tag's history (specificTag)": "/api/v1/repository/scaler/big/tag/?specificTag=tag-04321",
        "alive tags, first page (onlyActiveTags)": "/api/v1/repository/scaler/big/tag/?onlyActiveTags=true&limit=100",
    }
    try:
        print(f"building {args.tags} tags, {rows} history rows in {workdir} ...", flush=True)
        server.data_dir.mkdir(parents=True)
        server.manage("migrate", "--noinput")
        t0 = time.perf_counter()
        token = server.shell(SETUP.format(tags=args.tags, rows=args.rows_per_tag), timeout=1800)["token"]
        print(f"  built in {time.perf_counter() - t0:.1f} s", flush=True)
        server.start()
        headers = {"Authorization": f"Bearer {token}"}
        results = []
        for label, path in paths.items():
            status, body = _get(port, path, token)
            if status != 200:
                raise BenchError(f"GET {path} answered {status}: {body[:300]!r}")
            count = len(json.loads(body)["tags"])
            sequential = _sequential_ms(port, path, token, args.requests)
            runs = [
                wrk(
                    f"http://127.0.0.1:{port}{path}",
                    seconds=args.seconds,
                    connections=args.connections,
                    headers=headers,
                )
                for _ in range(args.runs)
            ]
            errors = sum(r.errors for r in runs)
            if errors:
                raise BenchError(f"wrk saw {errors} errors on {path}: {runs[0].error_text}")
            results.append((label, count, sequential, median([r.rps for r in runs]), median([r.p50_ms for r in runs])))
        database = "PostgreSQL" if args.database_url else "SQLite (embedded default)"
        load = ", ".join(f"{value:.1f}" for value in os.getloadavg())
        print(f"\n{args.tags} tags, {rows} history rows, {database}; wrk {args.connections} connections")
        print(f"load average at the end: {load} ({os.cpu_count()} CPUs)")
        print(f"{'request':44} {'entries':>7} {'sequential ms':>14} {'wrk req/s':>10} {'wrk p50 ms':>11}")
        for label, count, sequential, rps, p50 in results:
            print(f"{label:44} {count:>7} {sequential:>14.1f} {rps:>10.0f} {p50:>11.1f}")
        return 0
    except BenchError as exc:
        print(f"error: {exc}\n--- server log:\n{server.log_tail()}", file=sys.stderr)
        return 1
    finally:
        server.stop()
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
        else:
            print(f"kept {workdir}")


if __name__ == "__main__":
    sys.exit(main())
