"""The benchmark harness (``python -m bench``) in smoke mode, against the real servers.

It starts the project, Distribution, nginx (static and with deploy/nginx.conf) and moto, runs
every metric once with tiny sizes, and must write a report holding a measured row for each
metric, then leave no server behind.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

# Starts everything it needs itself, whatever the suite's DATABASE_URL says: CI runs it once.
pytestmark = [pytest.mark.e2e, pytest.mark.config_independent]

BASE_DIR = Path(__file__).resolve().parents[1]
METRICS = {"1", "2", "3", "4", "5", "auth", "6", "7", "8", "9"}


def _processes_mentioning(text: str) -> list[str]:
    """Processes whose command line or environment names ``text`` (our servers' work directory)."""
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        if int(pid) == os.getpid():
            continue
        for part in ("cmdline", "environ"):
            try:
                with open(f"/proc/{pid}/{part}", "rb") as f:
                    if text.encode() in f.read():
                        found.append(f"{pid}: {open(f'/proc/{pid}/cmdline', 'rb').read()[:200]!r}")
                        break
            except OSError:
                continue
    return found


def _table_rows(markdown: str) -> list[list[str]]:
    section = markdown.split("## Results", 1)[1].split("##", 1)[0]
    lines = [line for line in section.splitlines() if line.startswith("| ")]
    assert lines[0].startswith("| # | metric | project | peer | ratio | target | result |")
    return [[cell.strip() for cell in line.strip("|").split(" | ")] for line in lines[1:]]


def test_smoke_run_measures_every_metric_and_stops_its_servers(tmp_path):
    output = tmp_path / "BENCHMARKS.md"
    workdir = tmp_path / "work"
    result = subprocess.run(
        [sys.executable, "-m", "bench", "--smoke", "--output", str(output), "--workdir", str(workdir)],
        cwd=BASE_DIR,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, f"stdout:\n{result.stdout[-3000:]}\nstderr:\n{result.stderr[-6000:]}"
    assert not _processes_mentioning(str(workdir)), "servers left running"

    markdown = output.read_text()
    for heading in ("- Machine: ", "- Commit: ", "- Command: `.venv/bin/python -m bench --smoke", "- Date: "):
        assert heading in markdown
    assert f"{os.cpu_count()} cores" in markdown

    rows = _table_rows(markdown)
    assert {row[0] for row in rows} == METRICS
    for metric, what, project, peer, ratio, target, verdict in rows:
        assert verdict in ("pass", "MISS", "-"), f"{metric} {what}: {verdict}"
        assert re.match(r"^\d", project), f"{metric} {what}: no project value ({project!r})"
        if peer:
            assert re.match(r"^\d", peer), f"{metric} {what}: no peer value ({peer!r})"
        if target.startswith(">=") and "x" in target:
            assert re.fullmatch(r"\d+\.\d\dx", ratio), f"{metric} {what}: no ratio ({ratio!r})"
    by_what = {row[1]: row for row in rows}
    # Correctness the harness checks, whatever the speed: S3 redirects, bursts without errors.
    assert by_what["blob GET answers 307 to a presigned URL"][6] == "pass"
    assert by_what["burst errors (all counted runs)"][6] == "pass"
    assert "(Distribution)" in by_what["manifest GET by digest"][3]
    assert "(nginx static)" in by_what["blob GET, X-Accel-Redirect"][3]

    # The same table goes to stdout.
    assert "manifest GET by tag" in result.stdout and "token endpoint, robot + token" in result.stdout


@pytest.mark.parametrize(
    ("module", "args", "expected"),
    [
        ("bench.notifications", ["--events", "10", "--rate", "0"], "duplicates: 0, bad signatures: 0"),
        ("bench.builds", ["--latency-runs", "2", "--builds", "2"], "request -> building: 2 runs"),
        ("bench.squash", ["--size-mib", "10", "--runs", "1"], "cached vs blob GET"),
        (
            "bench.scanning",
            ["--packages", "20", "--manifests", "50", "--per-manifest", "5", "--pool", "30", "--advisories", "5"],
            "re-match: 50 manifests",
        ),
    ],
)
def test_smoke_runs_of_the_issue_benchmarks(tmp_path, module, args, expected):
    """The notification, build and squash benchmarks (issues #7, #8 and #10) still run end to end, tiny."""
    result = subprocess.run(
        [sys.executable, "-m", module, *args, "--workdir", str(tmp_path), "--json", str(tmp_path / "out.json")],
        cwd=BASE_DIR,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert expected in result.stdout, result.stdout
    assert (tmp_path / "out.json").exists()
    assert not _processes_mentioning(str(tmp_path)), "a benchmark left a process behind"


def test_smoke_run_of_the_mixed_load(tmp_path):
    """The mixed load (issue #13) for a few seconds: no error, nothing lost, every push delivered, a build done."""
    out, workdir = tmp_path / "out.json", tmp_path / "work"
    workdir.mkdir()
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench.load",
            *("--seconds", "15", "--clients", "4", "--build-interval", "5"),
            *("--workdir", str(workdir), "--json", str(out)),
        ],
        cwd=BASE_DIR,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "result: pass" in result.stdout, result.stdout
    figures = json.loads(out.read_text())
    assert figures["errors"] == 0 and figures["server_log_errors"] == 0, figures
    assert all(figures["operations"][kind]["count"] > 0 for kind in ("push", "pull", "move", "api")), figures
    assert figures["images_lost"] == 0 and figures["tags_checked"] >= figures["images_pushed"] > 0, figures
    assert figures["deliveries"] == figures["events"] > 0, figures
    assert figures["deliveries_missing"] == 0 and figures["bad_signatures"] == 0, figures
    assert figures["builds"] >= 1 and figures["builds_complete"] == figures["builds"], figures
    assert figures["memory"]["flat"] and figures["memory"]["samples"] >= 4, figures
    assert not _processes_mentioning(str(tmp_path)), "the load benchmark left a process behind"
