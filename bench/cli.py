"""``python -m bench``: start the project and its peers, run the metrics, print and write the table."""

from __future__ import annotations

import argparse
import shlex
import shutil
import signal
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from bench.context import Context, Options, log
from bench.metrics import run_all
from bench.profile import Profiler, find_py_spy
from bench.report import kept_notes, load_average, machine_info, markdown_report, text_table, utcnow
from bench.util import REPO_ROOT, BenchError, run

METRICS = ["1", "2", "3", "4", "5", "auth", "6", "7", "8", "9"]

# (option, full-run default, smoke default, help)
SIZES = [
    ("runs", 5, 1, "counted runs per metric (after the warm-up)"),
    ("warmup", 1, 0, "warm-up runs per metric, not counted"),
    ("blob_mib", 1024, 8, "size of the blob of metrics 1 and 3 (MiB)"),
    ("concurrent_mib", 256, 4, "size of each blob of metric 2 (MiB)"),
    ("concurrent", 4, 4, "number of concurrent GETs of metric 2"),
    ("range_mib", 16, 1, "size of each Range slice of metric 3 (MiB)"),
    ("push_mib", 1024, 8, "size of the monolithic push of metric 4 (MiB)"),
    ("chunked_mib", 100, 4, "size of the chunked push of metric 4 (MiB)"),
    ("chunk_mib", 5, 1, "size of each PATCH of the chunked push (MiB)"),
    ("wrk_seconds", 10, 1, "duration of each wrk run (s)"),
    ("wrk_connections", 32, 32, "wrk connections for manifest and tags/list GETs"),
    ("burst_images", 200, 20, "images pushed in the burst of metric 6"),
    ("burst_clients", 10, 10, "concurrent clients of the burst"),
    ("skopeo_mb", 300, 8, "total size of the skopeo image of metric 7 (MB)"),
    ("skopeo_layers", 8, 8, "layers of the skopeo image"),
    ("tags", 10000, 50, "tags in the repository of metric 8"),
    ("s3_blob_mib", 64, 2, "size of the blob of metric 9 (MiB)"),
]


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m bench",
        description="Benchmark the registry against Distribution 2.8 and nginx (issue #3); see docs/BENCHMARKS.md.",
    )
    p.add_argument("--smoke", action="store_true", help="one run, tiny sizes, 1 s wrk runs (CI keeps it working)")
    p.add_argument(
        "--only",
        default="",
        help=f"comma-separated metrics to run, of {','.join(METRICS)} (default: all)",
    )
    p.add_argument("--output", default="docs/BENCHMARKS.md", help="Markdown report to write (default: %(default)s)")
    p.add_argument("--peers-dir", default=None, help="the peers' scripts (default: ../shared/peers from the repo)")
    p.add_argument(
        "--workdir", default=None, help="where the run's directory (data, servers, logs) is made (default: $TMPDIR)"
    )
    p.add_argument("--keep", action="store_true", help="keep the work directory (logs, data) at the end")
    p.add_argument("--fail-on-miss", action="store_true", help="exit 2 when a target is missed")
    p.add_argument(
        "--env",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="extra environment for the project's processes, e.g. WEB_THREADS=2 (repeatable)",
    )
    p.add_argument(
        "--profile",
        default=None,
        metavar="DIR",
        help="after each metric, profile one extra round of the project's runs with py-spy into DIR",
    )
    p.add_argument("--py-spy", default=None, help="the py-spy executable for --profile (default: from PATH)")
    for name, full, smoke, text in SIZES:
        p.add_argument(
            "--" + name.replace("_", "-"), type=int, default=None, help=f"{text} (default {full}; --smoke: {smoke})"
        )
    return p


def options(args: argparse.Namespace) -> Options:
    values = {}
    for name, full, smoke, _ in SIZES:
        given = getattr(args, name)
        values[name] = given if given is not None else (smoke if args.smoke else full)
        if values[name] < (0 if name == "warmup" else 1):
            raise SystemExit(f"--{name.replace('_', '-')} must be positive")
    project_env = {}
    for item in args.env:
        name, sep, value = item.partition("=")
        if not sep or not name:
            raise SystemExit(f"--env takes NAME=VALUE, not {item!r}")
        project_env[name] = value
    chosen = [m.strip() for m in args.only.split(",") if m.strip()] or list(METRICS)
    unknown = set(chosen) - set(METRICS)
    if unknown:
        raise SystemExit(f"unknown metrics {sorted(unknown)}; choose from {','.join(METRICS)}")
    peers = Path(args.peers_dir) if args.peers_dir else REPO_ROOT.parent / "shared" / "peers"
    if not (peers / "start-distribution.sh").exists():
        raise SystemExit(f"no peers scripts in {peers} (pass --peers-dir)")
    return Options(
        **values,
        metrics=[m for m in METRICS if m in chosen],
        peers_dir=peers.resolve(),
        smoke=args.smoke,
        project_env=project_env,
    )


def _versions() -> dict[str, str]:
    def first_line(cmd):
        try:
            out = run(cmd, check=False, timeout=20)
        except (BenchError, OSError):
            return "?"
        return ((out.stdout or out.stderr).strip().splitlines() or ["?"])[0]

    return {
        "Distribution": first_line(["/usr/bin/docker-registry", "--version"]).split()[-1],
        "nginx": first_line(["/usr/sbin/nginx", "-v"]).split("/")[-1],
        "curl": first_line(["curl", "--version"]).split()[1],
        "wrk": first_line(["wrk", "--version"]).split()[1],
        "skopeo": first_line(["skopeo", "--version"]).split()[-1],
    }


def _settings_text(opts: Options) -> list[str]:
    return (
        [
            f"{opts.runs} counted run(s) after {opts.warmup} warm-up",
            f"blob {opts.blob_mib} MiB",
            f"{opts.concurrent} x {opts.concurrent_mib} MiB concurrent",
            f"Range slices {opts.range_mib} MiB",
            f"push {opts.push_mib} MiB, chunked {opts.chunked_mib} MiB in {opts.chunk_mib} MiB",
            f"wrk {opts.wrk_seconds} s",
            f"burst {opts.burst_images} images / {opts.burst_clients} clients",
            f"skopeo {opts.skopeo_layers} layers / {opts.skopeo_mb} MB",
            f"{opts.tags} tags",
            f"S3 blob {opts.s3_blob_mib} MiB",
        ]
        + (["smoke mode"] if opts.smoke else [])
        + [f"project env {k}={v}" for k, v in opts.project_env.items()]
    )


def _stop_all(ctx: Context) -> None:
    """Stop every server, side by side: each may take seconds to drain."""
    # A second Ctrl-C (or a SIGTERM) must not leave servers behind.
    previous = {sig: signal.signal(sig, signal.SIG_IGN) for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}

    def stop(fn):
        try:
            fn()
        except Exception as exc:  # keep stopping the others
            log(f"while stopping: {exc}")

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(stop, ctx.stoppers()))
    for sig, handler in previous.items():
        signal.signal(sig, handler)


def _raise_interrupt(signum, frame):
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = parser().parse_args(argv)
    opts = options(args)
    output = Path(args.output)
    if not output.is_absolute():
        output = REPO_ROOT / output
    for tool in ("curl", "wrk", "skopeo", "/usr/sbin/nginx", "/usr/bin/docker-registry"):
        if shutil.which(tool) is None:
            raise SystemExit(f"{tool} is needed (see .ci/run for the Debian packages)")
    # SIGTERM (CI cancelling, kill) unwinds like Ctrl-C, so every server is stopped.
    signal.signal(signal.SIGTERM, _raise_interrupt)
    signal.signal(signal.SIGHUP, _raise_interrupt)

    command = shlex.join([".venv/bin/python", "-m", "bench", *argv])
    started, load_before = utcnow(), load_average()
    # Always a new directory of our own (inside --workdir when given): it is deleted at the end.
    if args.workdir:
        Path(args.workdir).mkdir(parents=True, exist_ok=True)
    workdir = Path(tempfile.mkdtemp(prefix="bench-", dir=args.workdir))
    log(f"work directory {workdir}; load average {load_before}; metrics {','.join(opts.metrics)}")
    profiler = None
    if args.profile:
        profiler = Profiler(Path(args.profile).resolve(), find_py_spy(args.py_spy))
    ctx = Context(opts, workdir, profiler)
    metrics = []
    interrupted = False
    start_error: BenchError | None = None
    try:
        ctx.start()
        metrics = run_all(ctx)
    except KeyboardInterrupt:
        interrupted = True
        log("interrupted: stopping the servers")
    except BenchError as exc:
        start_error = exc
        log(f"could not start the servers: {exc}")
    finally:
        _stop_all(ctx)
        failed = interrupted or start_error or any(m.errors or any(r.error for r in m.rows) for m in metrics)
        if args.keep:
            log(f"kept {workdir}")
        elif failed and ctx.log_dir.exists():
            # The servers' logs explain failures; the data (gigabytes) goes.
            for child in workdir.iterdir():
                if child.is_dir() and child != ctx.log_dir:
                    shutil.rmtree(child, ignore_errors=True)
                elif child.is_file():
                    child.unlink()
            log(f"kept the servers' logs in {ctx.log_dir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    if interrupted:
        return 130
    if start_error:
        return 1

    finished = utcnow()
    table = text_table(metrics)
    print(table)
    report = markdown_report(
        metrics,
        command=command,
        settings=_settings_text(opts),
        started=started,
        finished=finished,
        load_before=load_before,
        load_after=load_average(),
        machine=machine_info(),
        versions=_versions(),
        notes=kept_notes(output),
    )
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(report)
    log(f"wrote {output}")
    errors = [e for m in metrics for e in m.errors] + [r.error for m in metrics for r in m.rows if r.error]
    if errors:
        log(f"{len(errors)} error(s): see the report")
        return 1
    if args.fail_on_miss and any(r.passed is False for m in metrics for r in m.rows):
        return 2
    return 0
