"""Optional profiles of the project's server processes with py-spy (``--profile DIR``).

After a metric's counted runs, one more round of the project's subjects runs with py-spy
attached to the server (all its processes), so the profiler never slows a counted run. Each
profile is kept as py-spy's collapsed stacks (``.txt``) with a summary beside it (``.top.txt``):
where the samples are, by function, in the project's own code and overall.
"""

from __future__ import annotations

import re
import shutil
import signal
import subprocess
from collections import Counter
from contextlib import contextmanager
from pathlib import Path

from bench.util import REPO_ROOT

# py-spy's raw format: "frame;frame;...;frame COUNT", a frame being "function (path:line)".
_FRAME_RE = re.compile(r"^(?P<func>.*?) \((?P<file>[^()]*?)(?::(?P<line>\d+))?\)$")


def find_py_spy(given: str | None) -> str:
    path = shutil.which(given or "py-spy")
    if path is None:
        raise SystemExit("--profile needs py-spy (pip install py-spy, or pass --py-spy PATH)")
    return path


class Profiler:
    def __init__(self, out_dir: Path, py_spy: str, rate: int = 200):
        self.out_dir = out_dir
        self.py_spy = py_spy
        self.rate = rate
        out_dir.mkdir(parents=True, exist_ok=True)

    @contextmanager
    def record(self, name: str, pid: int):
        raw = self.out_dir / f"{_slug(name)}.txt"
        cmd = [self.py_spy, "record", "--pid", str(pid), "--subprocesses", "--rate", str(self.rate)]
        cmd += ["--format", "raw", "--output", str(raw), "--nonblocking"]
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        try:
            yield raw
        finally:
            # py-spy writes its output when interrupted.
            proc.send_signal(signal.SIGINT)
            try:
                _, err = proc.communicate(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()
                err = "py-spy did not stop"
        if raw.exists():
            (self.out_dir / f"{_slug(name)}.top.txt").write_text(summarize(raw.read_text()))
        else:
            (self.out_dir / f"{_slug(name)}.top.txt").write_text(f"no profile: {err[-2000:]}")


def _slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", name).strip("-")


def _parse(frame: str) -> tuple[str, str]:
    match = _FRAME_RE.match(frame.strip())
    if not match:
        return frame.strip(), ""
    return match.group("func"), match.group("file")


# The project's packages: py-spy names files relative to the sys.path entry they came from.
_OWN = tuple(f"{p.name}/" for p in REPO_ROOT.iterdir() if (p / "__init__.py").exists() and p.name != "bench")


def _own(file: str) -> bool:
    root = str(REPO_ROOT) + "/"
    if file.startswith(root):
        file = file[len(root) :]
    return file.startswith(_OWN)


def _short(func: str, file: str) -> str:
    root = str(REPO_ROOT) + "/"
    if file.startswith(root):
        file = file[len(root) :]
    elif "site-packages/" in file:
        file = file.split("site-packages/", 1)[1]
    return f"{func} ({file})" if file else func


def summarize(raw: str, top: int = 25) -> str:
    """Self and inclusive sample shares by function, overall and for the project's own code."""
    self_counts: Counter = Counter()
    incl_counts: Counter = Counter()
    own_incl: Counter = Counter()
    total = 0
    for line in raw.splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        total += n
        frames = [_parse(f) for f in stack.split(";") if f and not f.startswith("process ")]
        frames = [f for f in frames if f[1]]  # thread and process labels carry no file
        if not frames:
            continue
        self_counts[_short(*frames[-1])] += n
        seen = set()
        for func, file in frames:
            key = _short(func, file)
            if key in seen:
                continue
            seen.add(key)
            incl_counts[key] += n
            if _own(file):
                own_incl[key] += n
    if not total:
        return "no samples (the server was idle, or py-spy could not attach)\n"

    def table(title: str, counter: Counter) -> list[str]:
        lines = [title]
        for key, n in counter.most_common(top):
            lines.append(f"  {100 * n / total:5.1f}%  {key}")
        return lines + [""]

    out = [f"{total} samples (active threads only)", ""]
    out += table("Self time (where the CPU is):", self_counts)
    out += table("Inclusive, the project's code:", own_incl)
    out += table("Inclusive, everything:", incl_counts)
    return "\n".join(out)
