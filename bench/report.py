"""Results: rows of a table (project vs peer, ratio vs target), the printed table and the Markdown."""

from __future__ import annotations

import os
import platform
import re
import subprocess
from dataclasses import dataclass, field
from datetime import UTC, datetime

from bench.util import REPO_ROOT, fmt_number, median

NOTES_BEGIN = "<!-- notes: kept when the file is regenerated -->"
NOTES_END = "<!-- /notes -->"


@dataclass
class Row:
    metric: str  # "1", "5", "auth" ...
    what: str
    unit: str
    project_label: str
    project: float
    peer_label: str = ""
    peer: float | None = None
    higher_better: bool = True
    target_ratio: float | None = None  # project/peer must reach (or stay under) this
    target_abs: float | None = None  # or the project value itself must
    target_text: str = ""
    error: str = ""  # the measurement itself went wrong (not a missed target)
    project_text: str = ""  # shown instead of the number (checks)
    show_ratio: bool = True  # False where project/peer means nothing (memory, error counts)

    @property
    def ratio(self) -> float | None:
        if self.peer is None or not self.peer or self.project != self.project:
            return None
        return self.project / self.peer

    @property
    def passed(self) -> bool | None:
        if self.error:
            return False
        if self.target_ratio is not None:
            ratio = self.ratio
            if ratio is None:
                return None
            return ratio >= self.target_ratio if self.higher_better else ratio <= self.target_ratio
        if self.target_abs is not None:
            return self.project >= self.target_abs if self.higher_better else self.project <= self.target_abs
        return None

    @property
    def target(self) -> str:
        if self.target_text:
            return self.target_text
        if self.target_ratio is not None:
            return f"{'>=' if self.higher_better else '<='} {self.target_ratio:g}x"
        if self.target_abs is not None:
            return f"{'>=' if self.higher_better else '<='} {fmt_number(self.target_abs, self.unit)}"
        return "(report)"

    @property
    def verdict(self) -> str:
        if self.error:
            return "ERROR"
        return {True: "pass", False: "MISS", None: "-"}[self.passed]

    def miss_note(self) -> str:
        """How far a missed target is, in words."""
        if self.passed is not False or self.error:
            return ""
        if self.target_ratio is not None and self.ratio is not None:
            have, want = self.ratio, self.target_ratio
            return f"{self.what}: {have:.2f}x against {self.target}, {abs(have / want - 1) * 100:.0f}% off"
        if self.target_abs is not None:
            return f"{self.what}: {fmt_number(self.project, self.unit)} against {self.target}"
        return ""


@dataclass
class Metric:
    id: str
    title: str
    rows: list[Row] = field(default_factory=list)
    details: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    samples: dict[str, list[float]] = field(default_factory=dict)
    commands: dict[str, str] = field(default_factory=dict)

    def sample(self, key: str, value: float) -> None:
        self.samples.setdefault(key, []).append(value)

    def med(self, key: str) -> float:
        return median(self.samples.get(key, []))


def _cells(row: Row) -> list[str]:
    peer = f"{fmt_number(row.peer, row.unit)} ({row.peer_label})" if row.peer is not None else ""
    ratio = f"{row.ratio:.2f}x" if row.ratio is not None and row.show_ratio else ""
    project = row.project_text or fmt_number(row.project, row.unit)
    if row.project_label and row.project_label != "project":
        project += f" ({row.project_label})"
    return [row.metric, row.what, project, peer, ratio, row.target, row.verdict]


HEADER = ["#", "metric", "project", "peer", "ratio", "target", "result"]


def text_table(metrics: list[Metric]) -> str:
    rows = [_cells(r) for m in metrics for r in m.rows]
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(HEADER)]
    line = "  ".join(h.ljust(w) for h, w in zip(HEADER, widths, strict=True))
    out = [line, "  ".join("-" * w for w in widths)]
    out += ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in rows]
    return "\n".join(out)


def _md_escape(text: str) -> str:
    return text.replace("|", "\\|")


def markdown_table(metrics: list[Metric]) -> str:
    out = ["| " + " | ".join(HEADER) + " |", "|" + "---|" * len(HEADER)]
    for m in metrics:
        for r in m.rows:
            out.append("| " + " | ".join(_md_escape(c) for c in _cells(r)) + " |")
    return "\n".join(out)


def _git(*args: str) -> str:
    try:
        return subprocess.run(["git", *args], cwd=REPO_ROOT, capture_output=True, text=True, timeout=10).stdout.strip()
    except OSError:
        return ""


def machine_info() -> dict[str, str]:
    model = ""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    mem = ""
    try:
        with open("/proc/meminfo") as f:
            kb = int(f.readline().split()[1])
            mem = f"{kb / 1024 / 1024:.1f} GiB"
    except (OSError, ValueError, IndexError):
        pass
    commit = _git("rev-parse", "HEAD")
    if commit and _git("status", "--porcelain", "--untracked-files=no"):
        commit += " (with uncommitted changes)"
    return {
        "cores": str(os.cpu_count()),
        "cpu": model or platform.processor() or "unknown",
        "memory": mem,
        "kernel": platform.release(),
        "python": platform.python_version(),
        "commit": commit or "unknown",
    }


def load_average() -> str:
    try:
        return " ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "n/a"


def kept_notes(path) -> str:
    """The hand-written notes block of an earlier version of the report, if any."""
    try:
        text = path.read_text()
    except OSError:
        return ""
    match = re.search(re.escape(NOTES_BEGIN) + r".*?" + re.escape(NOTES_END), text, re.S)
    return match.group(0) if match else ""


def markdown_report(
    metrics: list[Metric],
    *,
    command: str,
    settings: list[str],
    started: datetime,
    finished: datetime,
    load_before: str,
    load_after: str,
    machine: dict[str, str],
    versions: dict[str, str],
    notes: str,
) -> str:
    out = [
        "# Benchmarks",
        "",
        "Generated by `python -m bench` (`make bench`); do not edit by hand except inside the notes block.",
        "The project runs the embedded default (`manage.py serve`: gunicorn + Celery, SQLite, filesystem",
        "storage) beside Distribution 2.8 and nginx from `../shared/peers/`, all on 127.0.0.1 of one",
        "machine. Each metric alternates project and peer runs after a warm-up; values are medians.",
        "Only ratios measured side by side count on noisy machines: absolute figures drift.",
        "",
        "Run it with `make bench` (options through `BENCH_ARGS=...`) or `.venv/bin/python -m bench [options]`;",
        "`--help` lists the sizes and run counts, `--smoke` is the quick pass CI runs, `--only 5,auth` picks",
        "metrics, `--env WEB_THREADS=2` passes settings to the project's processes and `--profile DIR` adds",
        "a py-spy profile of one extra (uncounted) round of the project's runs per metric.",
        "",
        f"- Date: {started:%Y-%m-%d %H:%M} UTC (took {int((finished - started).total_seconds())} s)",
        f"- Machine: {machine['cores']} cores, {machine['cpu']}, {machine['memory']} RAM, Linux {machine['kernel']}",
        f"- Load average before / after: {load_before} / {load_after}",
        f"- Commit: `{machine['commit']}`",
        f"- Command: `{command}`",
        f"- Python {machine['python']}; " + "; ".join(f"{k} {v}" for k, v in versions.items()),
        "",
        "Settings of this run: " + ", ".join(settings) + ".",
        "",
        "## Results",
        "",
        markdown_table(metrics),
        "",
    ]
    misses = [r.miss_note() for m in metrics for r in m.rows if r.miss_note()]
    errors = [f"{m.id}: {e}" for m in metrics for e in m.errors]
    if misses:
        out += ["Missed targets:", ""] + [f"- {_md_escape(x)}" for x in misses] + [""]
    if errors:
        out += ["Errors (a measurement did not complete or a check failed):", ""]
        out += [f"- {x}" for x in errors] + [""]
    out += ["## Notes", "", notes or f"{NOTES_BEGIN}\n{NOTES_END}", "", "## Details", ""]
    for m in metrics:
        out += [f"### {m.id}. {m.title}", ""]
        out += [f"- {d}" for d in m.details]
        if m.samples:
            out.append("- Samples (counted runs, in run order):")
            for key, values in m.samples.items():
                shown = ", ".join(f"{v:.4g}" for v in values)
                out.append(f"  - {key}: {shown}")
        out.append("")
    out.append(f"Finished {finished:%Y-%m-%d %H:%M:%S} UTC.")
    return "\n".join(out) + "\n"


def utcnow() -> datetime:
    return datetime.now(UTC)
