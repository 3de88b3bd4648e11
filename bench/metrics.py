"""The measurements of issue #3, one function per metric; each returns a filled ``Metric``.

A function raises BenchError when a server answers wrongly (a wrong status, size or header):
numbers about error answers would be worse than none.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import shutil
import struct
import threading
import time
import traceback
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import quote, urlsplit

from bench import data, tools
from bench.client import (
    MANIFEST_ACCEPT,
    Session,
    Target,
    file_digest,
    image_config,
    image_manifest,
    location_path,
    pull_scope,
    push_scope,
    sha256_digest,
    with_param,
)
from bench.context import X_ACCEL_PREFIX, Context, RssSampler, log
from bench.report import Metric, Row, load_average
from bench.util import BenchError, fmt_rate, mib, run

BLOB_REPO = "bench/blobs"


def _check_get(result: tools.CurlResult, label: str, size: int, status: int = 200) -> None:
    if result.status != status or result.bytes != size:
        raise BenchError(f"{label}: GET answered {result.status} with {result.bytes} bytes, expected {status}/{size}")


def _stamp(path: Path, round_no: int) -> str:
    """Make the file a new blob for this round (its first bytes change); return its digest."""
    with open(path, "r+b") as f:
        f.write(struct.pack(">Q", round_no) + os.urandom(8))
    return file_digest(path)


class BlobSet:
    """Random blob files pushed to the project and Distribution, and linked into nginx's root."""

    def __init__(self, ctx: Context, name: str, size: int):
        self.path = ctx.files / name
        self.size = size
        self.name = name
        if not self.path.exists() or self.path.stat().st_size != size:
            log(f"writing {size / 2**20:.0f} MiB of random data to {self.path.name}")
            self.digest = data.random_file(self.path, size)
        else:
            self.digest = file_digest(self.path)
        self.path.chmod(0o644)
        static = ctx.static_root / name
        if not static.exists():
            try:
                os.link(self.path, static)
            except OSError:  # another filesystem
                shutil.copyfile(self.path, static)
            static.chmod(0o644)
        # The nginx-fronted web process shares the project's data: one push serves both.
        for target in (ctx.project_t, ctx.dist_t):
            ctx.push_file(target, BLOB_REPO, self.path, self.digest, size)

    def path_for(self, repo: str = BLOB_REPO) -> str:
        return f"/v2/{repo}/blobs/{self.digest}"


def _blob_subjects(ctx: Context):
    """(label, target) pairs of the blob GET metrics; nginx static has no target."""
    subjects = [(ctx.project_t.label, ctx.project_t), (ctx.dist_t.label, ctx.dist_t)]
    if ctx.xaccel_t is not None:
        subjects += [(ctx.xaccel_t.label, ctx.xaccel_t), ("nginx static", None)]
    return subjects


def _blob_url(ctx: Context, target: Target | None, blob: BlobSet) -> str:
    if target is None:
        return f"http://127.0.0.1:{ctx.static.port}/{blob.name}"
    return target.url(blob.path_for())


def _auth(target: Target | None, repo: str = BLOB_REPO, min_valid: float = 120) -> dict:
    return target.auth(pull_scope(repo), min_valid=min_valid) if target is not None else {}


def check_x_accel(ctx: Context, blob: BlobSet) -> str:
    """The web process behind nginx answers a blob GET with X-Accel-Redirect and no bytes."""
    web = Target("web process", ctx.xaccel_web.port, ctx.project_t.creds)
    session = Session(web)
    try:
        response = session.request("GET", blob.path_for(), headers=_auth(web), expect=200)
    finally:
        session.close()
    header = response.getheader("X-Accel-Redirect") or ""
    hexpart = blob.digest.split(":", 1)[1]
    expected = f"{X_ACCEL_PREFIX}/blobs/sha256/{hexpart[:2]}/{hexpart}"
    if header != expected or response.data:
        raise BenchError(f"X-Accel-Redirect is {header!r} with {len(response.data)} body bytes; expected {expected}")
    result = tools.curl_get(_blob_url(ctx, ctx.xaccel_t, blob), _auth(ctx.xaccel_t))
    _check_get(result, "project behind nginx", blob.size)
    return header


# ---------------------------------------------------------------------------------------------
# 1-3: blob GETs


def metric_blob_get(ctx: Context, blob: BlobSet) -> Metric:
    m = Metric("1", f"One {blob.size >> 20} MiB blob GET (curl), bytes/s")
    if ctx.xaccel_t is not None:
        header = check_x_accel(ctx, blob)
        m.details.append(f"Behind nginx, the web process answered `X-Accel-Redirect: {header}` and no body.")

    def subject(label, target):
        def fn(_round):
            result = tools.curl_get(_blob_url(ctx, target, blob), _auth(target))
            _check_get(result, label, blob.size)
            return {"": result.speed}

        return label, fn

    ctx.alternate(m, [subject(label, t) for label, t in _blob_subjects(ctx)])
    m.rows.append(_rate_row(m, "1", "blob GET", ctx.project_t.label, ctx.dist_t.label, 1.0))
    if ctx.xaccel_t is not None:
        m.rows.append(_rate_row(m, "1", "blob GET, X-Accel-Redirect", ctx.xaccel_t.label, "nginx static", 0.9))
    m.details.append(f"`curl -o /dev/null -w %{{speed_download}}` of one {blob.size} byte blob, one at a time.")
    return m


def _rate_row(m: Metric, mid: str, what: str, project: str, peer: str, target, unit="B/s") -> Row:
    return Row(
        metric=mid,
        what=what,
        unit=unit,
        project_label=project,
        project=m.med(project),
        peer_label=peer,
        peer=m.med(peer),
        target_ratio=target,
    )


def metric_concurrent_get(ctx: Context, blobs: list[BlobSet]) -> Metric:
    n, size = len(blobs), blobs[0].size
    m = Metric("2", f"{n} concurrent {size >> 20} MiB blob GETs (curl x{n}), aggregate bytes/s")

    def subject(label, target):
        def fn(_round):
            urls = [_blob_url(ctx, target, b) for b in blobs]
            wall, results = tools.curl_parallel_get(urls, _auth(target))
            for r in results:
                _check_get(r, label, size)
            return {"": n * size / wall}

        return label, fn

    ctx.alternate(m, [subject(label, t) for label, t in _blob_subjects(ctx)])
    m.rows.append(_rate_row(m, "2", f"{n} concurrent blob GETs", ctx.project_t.label, ctx.dist_t.label, 1.0))
    if ctx.xaccel_t is not None:
        m.rows.append(_rate_row(m, "2", f"{n} concurrent, X-Accel", ctx.xaccel_t.label, "nginx static", None))
    m.details.append(
        f"{n} curl processes started together, each GETs a different {size} byte blob; total bytes / wall."
    )
    return m


def metric_range(ctx: Context, blob: BlobSet) -> Metric:
    slice_size = mib(ctx.opts.range_mib)
    if slice_size > blob.size:
        raise BenchError("--range-mib is larger than the blob")
    m = Metric("3", f"{ctx.opts.range_mib} MiB Range slices of a {blob.size >> 20} MiB blob (wrk), req/s")
    connections = 4
    last_cmd = {}

    def subject(label, target):
        def fn(_round):
            auth = _auth(target, min_valid=ctx.opts.wrk_seconds + 120)
            url = _blob_url(ctx, target, blob)
            # One slice by curl first: a server that ignored Range would send the whole blob.
            check = tools.curl_get(url, {**auth, "Range": f"bytes={slice_size}-{2 * slice_size - 1}"})
            _check_get(check, label, slice_size, status=206)
            script = tools.range_script(
                ctx.workdir / "range.lua",
                url_path=urlsplit(url).path,
                size=blob.size,
                slice_size=slice_size,
                auth=auth.get("Authorization", ""),
            )
            result = tools.wrk(url, seconds=ctx.opts.wrk_seconds, connections=connections, script=script)
            if result.errors:
                raise BenchError(f"{label}: wrk saw errors: {result.error_text}")
            last_cmd[label] = result.command
            return {"": result.rps}

        return label, fn

    ctx.alternate(m, [subject(label, t) for label, t in _blob_subjects(ctx)])
    m.rows.append(_rate_row(m, "3", "Range slices", ctx.project_t.label, ctx.dist_t.label, 1.0, unit="req/s"))
    if ctx.xaccel_t is not None:
        m.rows.append(_rate_row(m, "3", "Range slices, X-Accel", ctx.xaccel_t.label, "nginx static", None, "req/s"))
    m.details.append(
        f"Random {slice_size}-byte `Range: bytes=a-b` slices (aligned) by a wrk Lua script, {connections} connections; "
        f"e.g. `{last_cmd.get(ctx.project_t.label, '')}`."
    )
    return m


# ---------------------------------------------------------------------------------------------
# 4: pushes


def metric_push(ctx: Context) -> Metric:
    size, chunked, chunk = mib(ctx.opts.push_mib), mib(ctx.opts.chunked_mib), mib(ctx.opts.chunk_mib)
    m = Metric("4", f"Blob push: monolithic {size >> 20} MiB (POST + PUT), chunked {chunked >> 20} MiB in PATCHes")
    mono_path, chunked_path = ctx.files / "push-mono.bin", ctx.files / "push-chunked.bin"
    for path, n in ((mono_path, size), (chunked_path, chunked)):
        if not path.exists() or path.stat().st_size != n:
            data.random_file(path, n)
    repo = "bench/push"
    digests = {}
    memory = {ctx.project_t.label: [], ctx.dist_t.label: []}

    def prepare(round_no):
        digests["mono"] = _stamp(mono_path, round_no)
        digests["chunked"] = _stamp(chunked_path, round_no)

    def mono(target: Target, pids):
        def fn(_round):
            auth = target.auth(push_scope(repo))
            session = Session(target)
            try:
                t0 = time.perf_counter()
                location = session.start_upload(repo, auth)
                url = target.url(with_param(location, "digest", digests["mono"]))
                with RssSampler(pids()) as sampler:
                    result = tools.curl_put_file(url, mono_path, auth)
                wall = time.perf_counter() - t0
            finally:
                session.close()
            if result.status != 201 or result.bytes != size:
                raise BenchError(f"{target.label}: monolithic PUT answered {result.status} after {result.bytes} bytes")
            memory[target.label].append(sampler.growth / 2**20)
            return {"mono": size / wall}

        return target.label, fn

    def chunks(target: Target):
        def fn(_round):
            session = Session(target)
            try:
                times = session.push_blob_chunked(
                    repo, chunked_path, digests["chunked"], chunked, chunk, target.auth(push_scope(repo))
                )
            finally:
                session.close()
            return {"chunked": chunked / times["total"], "final PUT ms": times["final_put"] * 1000}

        return target.label, fn

    dist_pid = ctx.distribution_pid()
    ctx.alternate(
        m,
        [
            mono(ctx.project_t, ctx.project.gunicorn_workers),
            mono(ctx.dist_t, lambda: [dist_pid] if dist_pid else []),
            chunks(ctx.project_t),
            chunks(ctx.dist_t),
        ],
        prepare=prepare,
    )
    p, d = ctx.project_t.label, ctx.dist_t.label
    m.rows.append(Row("4", "monolithic push", "B/s", p, m.med(f"{p} mono"), d, m.med(f"{d} mono"), target_ratio=1.0))
    m.rows.append(Row("4", "chunked push", "B/s", p, m.med(f"{p} chunked"), d, m.med(f"{d} chunked"), target_ratio=1.0))
    counted = slice(ctx.opts.warmup, ctx.opts.warmup + ctx.opts.runs)
    project_mem = max(memory[p][counted], default=float("nan"))
    dist_mem = max(memory[d][counted], default=float("nan"))
    m.samples[f"{p} RSS growth MiB"] = memory[p][counted]
    m.samples[f"{d} RSS growth MiB"] = memory[d][counted]
    m.rows.append(
        Row(
            "4",
            f"server memory growth, {size >> 20} MiB push (max)",
            "MiB",
            p,
            project_mem,
            d,
            dist_mem,
            higher_better=False,
            target_abs=64,
            target_text="< 64 MiB",
            show_ratio=False,
        )
    )
    # Re-reading the upload to hash it would cost at least what hashing it costs here.
    t0 = time.perf_counter()
    hashlib.sha256(chunked_path.read_bytes())
    rehash_ms = (time.perf_counter() - t0) * 1000
    # Distribution keeps its hash state while streaming: its final PUT is the cost without a re-read.
    limit = m.med(f"{d} final PUT ms") + rehash_ms / 2
    m.rows.append(
        Row(
            "4",
            "final PUT of the chunked upload",
            "ms",
            p,
            m.med(f"{p} final PUT ms"),
            d,
            m.med(f"{d} final PUT ms"),
            higher_better=False,
            target_abs=limit,
            target_text=f"no re-read (< {limit:.0f} ms)",
        )
    )
    m.details += [
        f"Monolithic: POST, then `curl -X PUT -T <file> -H 'Expect:'` of {size} bytes; bytes / (POST + PUT) time. "
        "Each round changes the file's first 16 bytes, so every push is a new blob.",
        "Memory: RSS of each gunicorn worker (Distribution: its process) sampled every 20 ms during the push; "
        "the largest rise of one process over its value before the push, max over the counted runs.",
        f"Chunked: one keep-alive connection (as container clients keep one): POST, {chunked // chunk} PATCHes of "
        f"{chunk} bytes with Content-Range, then PUT ?digest= with no body.",
        f"Final PUT: hashing the {chunked >> 20} MiB upload once takes {rehash_ms:.0f} ms in the harness; a "
        "server that re-read the upload to verify the digest would add about that much to a final PUT. The limit "
        "is Distribution's final PUT (which keeps its hash state) plus half of that.",
    ]
    return m


# ---------------------------------------------------------------------------------------------
# 5 and auth: manifests and tokens


def small_image(label: str, layer_bytes: int = 1024) -> tuple[bytes, bytes, bytes]:
    """(layer, config, manifest) of a one-layer image with random, unique content."""
    layer = os.urandom(layer_bytes)
    config = image_config([layer], label)
    return layer, config, image_manifest(config, [layer])


def push_image(target: Target, repo: str, tag: str, image) -> str:
    layer, config, raw = image
    session = Session(target)
    try:
        return session.push_small_image(repo, tag, layer, config, target.auth(push_scope(repo)))
    finally:
        session.close()


def _check_manifest(target: Target, path: str, digest: str, auth: dict) -> None:
    session = Session(target)
    try:
        response = session.request("GET", path, headers={**auth, "Accept": MANIFEST_ACCEPT}, expect=200)
    finally:
        session.close()
    if response.getheader("Docker-Content-Digest") != digest or sha256_digest(response.data) != digest:
        raise BenchError(f"{target.label}: GET {path} did not return the manifest {digest}")


def _wrk_subject(
    ctx: Context, target: Target, path: str, scopes: list[str] | None, m: Metric, accept: str = "", **wrk_kw
):
    """A wrk run as an ``alternate`` subject: req/s and p99 (ms); errors fail the metric."""

    def fn(_round):
        headers = {"Accept": accept} if accept else {}
        if scopes is not None:
            headers["Authorization"] = target.auth_value(scopes, min_valid=ctx.opts.wrk_seconds + 120)
        result = tools.wrk(target.url(path), seconds=ctx.opts.wrk_seconds, headers=headers, **wrk_kw)
        if result.errors:
            raise BenchError(f"{target.label}: wrk saw errors on {path}: {result.error_text}")
        m.commands["wrk"] = result.command
        return {"req/s": result.rps, "p99 ms": result.p99_ms}

    return fn


def metric_manifest(ctx: Context) -> Metric:
    m = Metric("5", "Manifest GET by tag and by digest (wrk), req/s and p99")
    repo = "bench/manifests"
    image = small_image("manifests")
    digest = ""
    for target in (ctx.project_t, ctx.dist_t):
        digest = push_image(target, repo, "latest", image)
    c = ctx.opts.wrk_connections
    p, d = ctx.project_t.label, ctx.dist_t.label
    for kind, ref in (("by tag", "latest"), ("by digest", digest)):
        path = f"/v2/{repo}/manifests/{ref}"
        for target in (ctx.project_t, ctx.dist_t):
            _check_manifest(target, path, digest, target.auth(pull_scope(repo)))
        sub = Metric(f"5 {kind}", "")
        ctx.alternate(
            sub,
            [
                (p, _wrk_subject(ctx, ctx.project_t, path, pull_scope(repo), sub, MANIFEST_ACCEPT, connections=c)),
                (d, _wrk_subject(ctx, ctx.dist_t, path, None, sub, MANIFEST_ACCEPT, connections=c)),
            ],
        )
        for key, values in sub.samples.items():
            m.samples[f"{kind}: {key}"] = values
        m.rows.append(
            Row(
                "5",
                f"manifest GET {kind}",
                "req/s",
                p,
                sub.med(f"{p} req/s"),
                d,
                sub.med(f"{d} req/s"),
                target_ratio=1.0,
            )
        )
        m.rows.append(
            Row(
                "5",
                f"manifest GET {kind}, p99",
                "ms",
                p,
                sub.med(f"{p} p99 ms"),
                d,
                sub.med(f"{d} p99 ms"),
                higher_better=False,
                target_abs=20,
            )
        )
        m.details.append(f"{kind}: `{sub.commands.get('wrk', '')}`")
    m.details.append(
        "The project's requests carry a bearer token for the private repository; Distribution has no auth."
    )
    return m


def metric_auth(ctx: Context) -> Metric:
    m = Metric("auth", "Token endpoint and the cost of auth on a manifest GET")
    p = ctx.project_t
    repo, public = "bench/manifests", "bench/public"
    digest = push_image(p, public, "latest", small_image("public"))
    scope = f"repository:{repo}:pull"
    token_path = f"/v2/auth?service={quote(p.host)}&scope={quote(scope)}"
    robot = ctx.robot_t
    # The robot must be granted pull: a token without actions would be cheaper than a real one.
    for target in (p, robot):
        session = Session(target)
        try:
            response = session.request("GET", token_path, headers={"Authorization": target.basic_header()}, expect=200)
        finally:
            session.close()
        claims = json.loads(_jwt_payload(json.loads(response.data)["token"]))
        if claims["access"] != [{"type": "repository", "name": repo, "actions": ["pull"]}]:
            raise BenchError(f"{target.label}: the token grants {claims['access']}, not pull on {repo}")

    def token_subject(target: Target, min_seconds: int = 1):
        def fn(_round):
            result = tools.wrk(
                target.url(token_path),
                seconds=max(ctx.opts.wrk_seconds, min_seconds),
                connections=4,
                headers={"Authorization": target.basic_header()},
                timeout_s=30,
            )
            if result.errors:
                raise BenchError(f"{target.label}: wrk saw errors on the token endpoint: {result.error_text}")
            m.commands["token"] = result.command
            return {"req/s": result.rps, "p99 ms": result.p99_ms}

        return fn

    # A password check takes about a second on a busy small machine: give wrk time to see some.
    ctx.alternate(m, [("user password", token_subject(p, 3)), ("robot token", token_subject(robot))])
    m.rows.append(Row("auth", "token endpoint, user + password", "req/s", "project", m.med("user password req/s")))
    m.rows.append(Row("auth", "token endpoint, robot + token", "req/s", "project", m.med("robot token req/s")))

    path = f"/v2/{public}/manifests/latest"
    _check_manifest(p, path, digest, {})
    sub = Metric("auth manifest", "")
    c = ctx.opts.wrk_connections
    ctx.alternate(
        sub,
        [
            ("with token", _wrk_subject(ctx, p, path, pull_scope(public), sub, MANIFEST_ACCEPT, connections=c)),
            ("anonymous", _wrk_subject(ctx, p, path, None, sub, MANIFEST_ACCEPT, connections=c)),
        ],
    )
    m.samples.update({f"public manifest GET {k}": v for k, v in sub.samples.items()})
    m.rows.append(
        Row(
            "auth",
            "manifest GET by tag, bearer token vs anonymous",
            "req/s",
            "token",
            sub.med("with token req/s"),
            "anonymous",
            sub.med("anonymous req/s"),
        )
    )
    m.details += [
        f"Token endpoint: `{m.commands.get('token', '')}`: 4 connections repeating one user's credentials, "
        "as a CLI does on every pull. A password check the server has not seen is Django's PBKDF2 at its "
        "default cost (about a second of CPU here); what a repeated one costs is what this row shows.",
        "Robot: `bench+ci` with read permission on the repository (automation logs in that way); its token is "
        "checked by decrypting the stored one (Fernet), no key stretching.",
        f"Auth cost: the same public repository's manifest by tag, with a bearer token (pull) and without any "
        f"Authorization header, {c} connections; ratio = with token / anonymous.",
    ]
    return m


def _jwt_payload(token: str) -> str:
    payload = token.split(".")[1]
    return base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)).decode()


# ---------------------------------------------------------------------------------------------
# 6: burst of small pushes


def metric_burst(ctx: Context) -> Metric:
    images, clients = ctx.opts.burst_images, ctx.opts.burst_clients
    m = Metric("6", f"Burst: {images} small-image pushes from {clients} concurrent clients, images/s")
    errors = {ctx.project_t.label: [], ctx.dist_t.label: []}
    error_text: list[str] = []

    def subject(target: Target):
        def fn(round_no):
            work = [small_image(f"burst-{round_no}-{j}") for j in range(images)]
            repos = [f"bench/burst-c{i}" for i in range(clients)]
            auths = [target.auth(push_scope(r), min_valid=120) for r in repos]
            failed = [0] * clients
            barrier = threading.Barrier(clients + 1)

            def client(i):
                session = Session(target, timeout=120)
                barrier.wait()
                try:
                    for j in range(i, images, clients):
                        layer, config, _ = work[j]
                        try:
                            session.push_small_image(repos[i], f"r{round_no}-{j}", layer, config, auths[i])
                        except Exception as exc:  # counted, reported; the burst goes on
                            failed[i] += 1
                            if len(error_text) < 5:
                                error_text.append(f"{target.label}: {exc}")
                finally:
                    session.close()

            threads = [threading.Thread(target=client, args=(i,), daemon=True) for i in range(clients)]
            for t in threads:
                t.start()
            barrier.wait()
            t0 = time.perf_counter()
            for t in threads:
                t.join()
            wall = time.perf_counter() - t0
            errors[target.label].append(sum(failed))
            return {"": (images - sum(failed)) / wall}

        return target.label, fn

    ctx.alternate(m, [subject(ctx.project_t), subject(ctx.dist_t)])
    p, d = ctx.project_t.label, ctx.dist_t.label
    m.rows.append(_rate_row(m, "6", "small-image push burst", p, d, 1.0, unit="images/s"))
    counted = slice(ctx.opts.warmup, ctx.opts.warmup + ctx.opts.runs)
    m.rows.append(
        Row(
            "6",
            "burst errors (all counted runs)",
            "",
            p,
            float(sum(errors[p][counted])),
            d,
            float(sum(errors[d][counted])),
            higher_better=False,
            target_abs=0,
            target_text="0",
            show_ratio=False,
        )
    )
    m.errors += error_text
    m.details += [
        f"{clients} threads, each with one keep-alive connection and its own repository (bench/burst-c<i>), push "
        f"{images} one-layer images in total; per image: HEAD, POST, PUT for the layer (1 KiB, random) and for the "
        "config, then PUT of the manifest by a new tag. Wall time from the start barrier to the last image.",
        "Bearer tokens (push, pull) are fetched before the clock starts; the token endpoint has its own row.",
    ]
    return m


# ---------------------------------------------------------------------------------------------
# 7: skopeo


def metric_skopeo(ctx: Context) -> Metric:
    layers, total = ctx.opts.skopeo_layers, ctx.opts.skopeo_mb * 1000 * 1000
    m = Metric("7", f"skopeo copy push and pull of an {layers}-layer ~{ctx.opts.skopeo_mb} MB image, wall time")
    repo = "bench/skopeo"
    state = {}
    robot = ctx.robot_t
    env = {**os.environ, "TMPDIR": str(ctx.workdir)}

    def prepare(round_no):
        layout = ctx.workdir / "skopeo-layout"
        shutil.rmtree(layout, ignore_errors=True)
        # New random layers every round: a registry that already has a blob skips its upload.
        state["bytes"] = data.oci_layout(layout, layers=layers, total_bytes=total, tag="latest", label=f"r{round_no}")
        state["layout"] = layout

    def creds(target):
        return ["--dest-creds", ":".join(target.creds)] if target.creds else []

    def push(target: Target, creds_of):
        def fn(round_no):
            dest = f"docker://{target.host}/{repo}:r{round_no}"
            cmd = ["skopeo", "copy", "--quiet", "--preserve-digests", "--dest-tls-verify=false"]
            cmd += creds_of(target) + [f"oci:{state['layout']}:latest", dest]
            t0 = time.perf_counter()
            run(cmd, timeout=1800, env=env)
            m.commands["push"] = " ".join(c if not c.startswith(robot.creds[0]) else "<robot>:<token>" for c in cmd)
            return {"push s": time.perf_counter() - t0}

        return target.label, fn

    def pull(target: Target):
        def fn(round_no):
            dest = ctx.workdir / f"skopeo-pull-{target.port}"
            shutil.rmtree(dest, ignore_errors=True)
            cmd = ["skopeo", "copy", "--quiet", "--src-tls-verify=false", "--dest-oci-accept-uncompressed-layers"]
            if target.creds:
                cmd += ["--src-creds", ":".join(target.creds)]
            cmd += [f"docker://{target.host}/{repo}:r{round_no}", f"oci:{dest}:latest"]
            t0 = time.perf_counter()
            run(cmd, timeout=1800, env=env)
            wall = time.perf_counter() - t0
            got = sum(f.stat().st_size for f in (dest / "blobs" / "sha256").iterdir())
            shutil.rmtree(dest, ignore_errors=True)
            if got < state["bytes"]:
                raise BenchError(f"{target.label}: skopeo pulled {got} bytes of {state['bytes']}")
            m.commands["pull"] = " ".join(c if not c.startswith(robot.creds[0]) else "<robot>:<token>" for c in cmd)
            return {"pull s": wall}

        return target.label, fn

    ctx.alternate(
        m,
        [push(robot, creds), push(ctx.dist_t, creds), pull(robot), pull(ctx.dist_t)],
        prepare=prepare,
    )
    p, d = robot.label, ctx.dist_t.label
    for kind in ("push", "pull"):
        m.rows.append(
            Row(
                "7",
                f"skopeo {kind}",
                "s",
                "project",
                m.med(f"{p} {kind} s"),
                d,
                m.med(f"{d} {kind} s"),
                higher_better=False,
                target_ratio=1.0,
            )
        )
    m.details += [
        f"An OCI layout of {layers} uncompressed tar layers of random data ({state.get('bytes', 0)} bytes in all), "
        "new every round.",
        f"Push: `{m.commands.get('push', '')}`; `--preserve-digests` keeps skopeo from gzipping the layers on "
        "the way (the client's CPU would be measured, not the registry).",
        f"Pull: `{m.commands.get('pull', '')}` into a fresh directory.",
        "The project is logged into as the robot bench+ci (write permission on the repository), as automation "
        "does; each skopeo run fetches its own token.",
    ]
    return m


# ---------------------------------------------------------------------------------------------
# 8: tags/list


def _tag_many(target: Target, repo: str, names: list[str], raw: bytes, threads: int = 8) -> None:
    local = threading.local()
    sessions = []

    def put(name):
        if not hasattr(local, "session"):
            local.session = Session(target, timeout=120)
            sessions.append(local.session)
        # Tagging 10,000 times can outlast one token: take a fresh one when this one runs out.
        local.session.put_manifest(repo, name, raw, target.auth(push_scope(repo), min_valid=30))

    pool = ThreadPoolExecutor(threads)
    try:
        list(pool.map(put, names))
    finally:
        # On Ctrl-C, drop the queued tags instead of waiting for thousands of requests.
        pool.shutdown(wait=True, cancel_futures=True)
        for session in sessions:
            session.close()


def metric_tags(ctx: Context) -> Metric:
    count = ctx.opts.tags
    m = Metric("8", f"tags/list of a repository with {count} tags (wrk), req/s")
    repo = "bench/tags"
    image = small_image("tags")
    layer, config, raw = image
    names = [f"v{i:05d}" for i in range(count)]
    for target in (ctx.project_t, ctx.dist_t):
        push_image(target, repo, names[0], image)
        t0 = time.perf_counter()
        _tag_many(target, repo, names[1:], raw)
        log(f"[8] tagged {count} times in {target.label} in {time.perf_counter() - t0:.1f} s")
    path = f"/v2/{repo}/tags/list"
    sizes = {}
    for target in (ctx.project_t, ctx.dist_t):
        session = Session(target)
        try:
            response = session.request("GET", path, headers=target.auth(pull_scope(repo)), expect=200)
        finally:
            session.close()
        sizes[target.label] = (len(json.loads(response.data)["tags"]), len(response.data), response.getheader("Link"))
    if sizes[ctx.dist_t.label][0] != count:
        raise BenchError(f"Distribution lists {sizes[ctx.dist_t.label][0]} tags, not {count}")

    p, d = ctx.project_t.label, ctx.dist_t.label
    c = ctx.opts.wrk_connections
    ctx.alternate(
        m,
        [
            (p, _wrk_subject(ctx, ctx.project_t, path, pull_scope(repo), m, connections=c)),
            (d, _wrk_subject(ctx, ctx.dist_t, path, None, m, connections=c)),
        ],
    )
    m.rows.append(
        Row("8", "tags/list, first page", "req/s", p, m.med(f"{p} req/s"), d, m.med(f"{d} req/s"), target_ratio=2.0)
    )

    def list_all(target: Target, page: int | None):
        def fn(_round):
            auth = target.auth(pull_scope(repo))
            session = Session(target)
            got, url = 0, path + (f"?n={page}" if page else "")
            t0 = time.perf_counter()
            try:
                while url:
                    response = session.request("GET", url, headers=auth, expect=200)
                    got += len(json.loads(response.data)["tags"])
                    link = response.getheader("Link")
                    url = location_path(link.split(";")[0].strip("<> ")) if link else None
            finally:
                session.close()
            if got != count:
                raise BenchError(f"{target.label}: listing all tags gave {got}, not {count}")
            return {"all tags s": time.perf_counter() - t0}

        return fn

    ctx.alternate(m, [(p, list_all(ctx.project_t, 1000)), (d, list_all(ctx.dist_t, None))])
    m.rows.append(
        Row(
            "8",
            f"all {count} tags (project: pages of 1000)",
            "s",
            p,
            m.med(f"{p} all tags s"),
            d,
            m.med(f"{d} all tags s"),
            higher_better=False,
        )
    )
    pn, pbytes, plink = sizes[p]
    dn, dbytes, _ = sizes[d]
    m.details += [
        f"`GET {path}` without `n`: the project answers its default page ({pn} tags, {pbytes} bytes, "
        f"Link: {plink}); Distribution 2.8 ignores pagination and answers all {dn} tags ({dbytes} bytes).",
        f"wrk: `{m.commands.get('wrk', '')}`.",
        "All tags: one client following Link headers (project, n=1000, its maximum page) against Distribution's "
        "single answer; lower is better.",
        f"Setup: {count} PUTs of one manifest by tag through the API, 8 threads, on each registry.",
    ]
    return m


# ---------------------------------------------------------------------------------------------
# 9: S3 mode


def metric_s3(ctx: Context) -> Metric:
    size = mib(ctx.opts.s3_blob_mib)
    m = Metric("9", f"S3 mode (moto): {size >> 20} MiB blob GET through a presigned redirect")
    target = ctx.s3_t
    path = ctx.files / "s3.bin"
    digest = data.random_file(path, size)
    ctx.push_file(target, "bench/s3", path, digest, size)
    url = target.url(f"/v2/bench/s3/blobs/{digest}")
    auth = target.auth(pull_scope("bench/s3"))
    first = tools.curl_get(url, auth)
    location = first.redirect_url
    parts = urlsplit(location)
    presigned = "X-Amz-Signature=" in parts.query or "Signature=" in parts.query
    ok = first.status == 307 and presigned and parts.netloc == f"127.0.0.1:{ctx.moto.port}" and first.bytes < 1024
    m.rows.append(
        Row(
            "9",
            "blob GET answers 307 to a presigned URL",
            "",
            "project",
            1.0 if ok else 0.0,
            target_text="307, presigned, no body",
            target_abs=1.0,
        )
    )
    m.rows[-1].project_text = f"{first.status}, {'presigned' if presigned else 'NOT presigned'}, {first.bytes} B body"
    m.details.append(
        f"`curl` without following redirects: status {first.status}, body {first.bytes} bytes, "
        f"Location host {parts.netloc}, query parameters {sorted(k.split('=')[0] for k in parts.query.split('&'))}."
    )
    if not ok:
        m.errors.append(f"the S3 blob GET answered {first.status} to {location[:200]!r}")
        return m

    import boto3

    s3 = boto3.client(
        "s3", endpoint_url=ctx.moto.url, region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x"
    )
    hexpart = digest.split(":", 1)[1]
    key = f"blobs/sha256/{hexpart[:2]}/{hexpart}"

    def via_registry(_round):
        t0 = time.perf_counter()
        answer = tools.curl_get(url, target.auth(pull_scope("bench/s3")))
        if answer.status != 307:
            raise BenchError(f"the S3 blob GET answered {answer.status}")
        result = tools.curl_get(answer.redirect_url)
        _check_get(result, "moto via redirect", size)
        wall = time.perf_counter() - t0
        return {"redirect ms": answer.seconds * 1000, "": size / wall}

    def direct(_round):
        presigned_url = s3.generate_presigned_url("get_object", Params={"Bucket": "bench-blobs", "Key": key})
        t0 = time.perf_counter()
        result = tools.curl_get(presigned_url)
        _check_get(result, "moto direct", size)
        return {"": size / (time.perf_counter() - t0)}

    ctx.alternate(m, [("project + S3", via_registry), ("moto direct", direct)])
    m.rows.append(_rate_row(m, "9", "blob GET via the redirect", "project + S3", "moto direct", None))
    # The registry's own part of an S3 pull: answering 307s (wrk does not follow them).
    sub = Metric("9 redirects", "")
    ctx.alternate(
        sub,
        [("project + S3", _wrk_subject(ctx, target, urlsplit(url).path, pull_scope("bench/s3"), sub, connections=32))],
    )
    m.samples.update({f"307 answers: {k}": v for k, v in sub.samples.items()})
    m.rows.append(Row("9", "307 answers (wrk)", "req/s", "project", sub.med("project + S3 req/s")))
    m.rows.append(Row("9", "307 answers (wrk), p99", "ms", "project", sub.med("project + S3 p99 ms")))
    m.details.append(
        f"307 answers: `{sub.commands.get('wrk', '')}` against the project in S3 mode; every answer presigns a "
        "URL (no S3 request). The first answer of each server thread also builds its boto3 client (about "
        "0.2 s), which is why single GETs above are slower than the rate here suggests."
    )
    m.details.append(
        "Timing: the registry's 307 answer plus the GET of its Location from moto (a Python server: its own "
        f"speed, {fmt_rate(m.med('moto direct'))}, bounds the transfer), against a presigned GET made by boto3."
    )
    return m


def run_all(ctx: Context) -> list[Metric]:
    """Every chosen metric in order; one that fails is recorded and the next one runs."""
    results: list[Metric] = []
    blob = concurrent = None

    def attempt(mid: str, title: str, fn):
        if mid not in ctx.opts.metrics:
            return
        load = load_average()
        log(f"metric {mid}: {title} (load average {load})")
        try:
            revived = ctx.revive()
            metric = fn()
            metric.details.append(f"Load average (1, 5, 15 min) at the start / end: {load} / {load_average()}.")
            metric.errors += [f"before this metric, {note}" for note in revived]
            results.append(metric)
        except Exception as exc:  # one metric failing must not lose the others
            if not isinstance(exc, BenchError):
                log(traceback.format_exc())
            text = f"{type(exc).__name__}: {exc}" if not isinstance(exc, BenchError) else str(exc)
            log(f"metric {mid} failed: {text}")
            failed = Metric(mid, title, errors=[text.splitlines()[0][:500]])
            # A server that died explains the failure better than the client's error.
            for note in ctx.revive():
                failed.errors.append(note)
            failed.details.append(f"Failed: {text}")
            failed.rows.append(Row(mid, title, "", "project", float("nan"), error=text.splitlines()[0][:200]))
            results.append(failed)

    def get_blob():
        nonlocal blob
        if blob is None:
            blob = BlobSet(ctx, "big.bin", mib(ctx.opts.blob_mib))
        return blob

    def get_concurrent():
        nonlocal concurrent
        if concurrent is None:
            n = ctx.opts.concurrent
            concurrent = [BlobSet(ctx, f"c{i}.bin", mib(ctx.opts.concurrent_mib)) for i in range(n)]
        return concurrent

    attempt("1", "blob GET", lambda: metric_blob_get(ctx, get_blob()))
    attempt("2", "concurrent blob GETs", lambda: metric_concurrent_get(ctx, get_concurrent()))
    attempt("3", "Range slices", lambda: metric_range(ctx, get_blob()))
    attempt("4", "blob push", lambda: metric_push(ctx))
    attempt("5", "manifest GET", lambda: metric_manifest(ctx))
    attempt("auth", "token endpoint and auth cost", lambda: metric_auth(ctx))
    attempt("6", "push burst", lambda: metric_burst(ctx))
    attempt("7", "skopeo copy", lambda: metric_skopeo(ctx))
    attempt("8", "tags/list", lambda: metric_tags(ctx))
    attempt("9", "S3 redirect", lambda: metric_s3(ctx))
    return results
