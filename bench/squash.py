"""``python -m bench.squash``: squashed image downloads (issue #10) on a live server.

What it does, all on this machine:

1. a fresh DATA_DIR, migrations, a user and a repository; the project as ``manage.py serve
   --no-worker --no-builder`` starts it (gunicorn, WEB_WORKERS=2);
2. an image of ``--layers`` gzip layers holding ``--size-mib`` MiB of files in all (half random,
   half text: about 2:1 compression), pushed over /v2/, and tagged once per run so that every
   run squashes afresh (the cache is keyed by tag);
3. **baseline**: ``gzip -dc`` of the same layers to /dev/null, the single-core decode limit;
4. **first download**: ``curl`` of ``/c1/squash/...`` to /dev/null: time to first byte, and the
   whole time against the baseline (target >= 0.7x; >= 1.0x with python-isal);
5. **peak memory**: the highest VmHWM (peak resident set) among the gunicorn workers, before
   and after the squashes (memory must not grow with image size);
6. **cached download** against a plain blob GET (``/v2/.../blobs/<digest>``) of a blob of the
   same size (target >= 0.9x).

Medians of ``--runs`` runs.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import shutil
import statistics
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import requests

from bench.project import Project, add_run_options, run_and_report
from bench.util import BenchError, children_of, cmdline, free_port, http_status

try:
    from isal import igzip as gzip_module  # fast to build the test image; same gzip format
except ImportError:  # pragma: no cover
    import gzip as gzip_module

USER, PASSWORD, REPO = "bench", "bench-password-1", "bench/squashed"

SETUP = """
import json
from accounts import services as accounts
from registry import services as registry
from registry.permissions import Principal

user = accounts.user_create(username="bench", password="bench-password-1")
registry.repository_create(namespace=user.namespace, name="squashed", principal=Principal(kind="user", user=user))
print("SETUP " + json.dumps({}))
"""


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return "sha256:" + digest.hexdigest()


def make_layer(path: Path, index: int, size: int) -> tuple[int, str]:
    """A gzip tar of 4 MiB files totalling ``size`` bytes; returns (tar bytes, diff_id)."""
    file_size = 4 << 20
    text = (b"squash benchmark %d " % index) * (file_size // 40)
    tar_path = path.with_suffix(".tar")
    with tarfile.open(tar_path, "w", format=tarfile.PAX_FORMAT) as tar:
        for n in range(max(1, size // file_size)):
            data = os.urandom(file_size // 2) + text[: file_size // 2]
            info = tarfile.TarInfo(f"layer{index}/file{n:05d}.bin")
            info.size = len(data)
            info.mtime = 1_700_000_000
            tar.addfile(info, io.BytesIO(data))
    tar_size = tar_path.stat().st_size
    diff_id = sha256_file(tar_path)
    with open(tar_path, "rb") as src, gzip_module.open(path, "wb", compresslevel=1) as dst:
        shutil.copyfileobj(src, dst, 1 << 20)
    tar_path.unlink()
    return tar_size, diff_id


def curl(url: str, *headers: str) -> dict:
    """One download to /dev/null; curl's own timings."""
    args = ["curl", "-sS", "-f", "-o", "/dev/null", "-w", "%{time_starttransfer} %{time_total} %{size_download}"]
    for header in headers:
        args += ["-H", header]
    result = subprocess.run([*args, url], capture_output=True, text=True, timeout=3600)
    if result.returncode != 0:
        raise BenchError(f"curl {url} failed: {result.stderr}")
    first, total, size = result.stdout.split()
    return {"ttfb": float(first), "seconds": float(total), "bytes": int(size)}


class Bench(Project):
    def __init__(self, options):
        self.port = free_port()
        super().__init__(
            prefix="bench-squash-",
            workdir=options.workdir,
            settings=options.settings,
            HOST="127.0.0.1",
            PORT=str(self.port),
            WS_PORT=str(free_port()),
            WEB_WORKERS="2",
        )
        self.env["HOME"] = self.env["DATA_DIR"]
        self.options = options
        self.server = None
        self.base = f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        self.manage("migrate", "--noinput", "-v", "0")
        self.shell(SETUP, "SETUP")
        argv = [sys.executable, "manage.py", "serve", "--no-worker", "--no-builder"]
        self.server = self.spawn(argv, "server.log")
        deadline = time.monotonic() + 90
        while http_status(self.port) != 401:
            if self.server.poll() is not None or time.monotonic() > deadline:
                raise BenchError(f"the server did not start:\n{(self.workdir / 'server.log').read_text()[-3000:]}")
            time.sleep(0.2)

    def token(self) -> str:
        response = requests.get(
            f"{self.base}/v2/auth",
            params={"service": f"127.0.0.1:{self.port}", "scope": f"repository:{REPO}:pull,push"},
            auth=(USER, PASSWORD),
            timeout=30,
        )
        response.raise_for_status()
        return response.json()["token"]

    def upload(self, path: Path, digest: str) -> None:
        with open(path, "rb") as f:
            response = requests.post(
                f"{self.base}/v2/{REPO}/blobs/uploads/",
                params={"digest": digest},
                data=f,
                headers={"Authorization": f"Bearer {self.token()}", "Content-Type": "application/octet-stream"},
                timeout=3600,
            )
        if response.status_code != 201:
            raise BenchError(f"blob upload failed: {response.status_code} {response.text}")

    def push_image(self) -> tuple[list[Path], int]:
        layers, descriptors, diff_ids, tar_bytes = [], [], [], 0
        per_layer = self.options.size_mib * (1 << 20) // self.options.layers
        for index in range(self.options.layers):
            path = self.workdir / f"layer{index}.tar.gz"
            size, diff_id = make_layer(path, index, per_layer)
            digest = sha256_file(path)
            self.upload(path, digest)
            layers.append(path)
            tar_bytes += size
            diff_ids.append(diff_id)
            descriptors.append(
                {
                    "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                    "digest": digest,
                    "size": path.stat().st_size,
                }
            )
        config = json.dumps(
            {
                "architecture": "amd64",
                "os": "linux",
                "config": {"Cmd": ["/bin/sh"]},
                "rootfs": {"type": "layers", "diff_ids": diff_ids},
            }
        ).encode()
        config_path = self.workdir / "config.json"
        config_path.write_bytes(config)
        config_digest = sha256_file(config_path)
        self.upload(config_path, config_digest)
        manifest = json.dumps(
            {
                "schemaVersion": 2,
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "config": {
                    "mediaType": "application/vnd.oci.image.config.v1+json",
                    "digest": config_digest,
                    "size": len(config),
                },
                "layers": descriptors,
            }
        ).encode()
        token = self.token()
        for run in range(self.options.runs):
            response = requests.put(
                f"{self.base}/v2/{REPO}/manifests/run{run}",
                data=manifest,
                headers={
                    "Authorization": f"Bearer {token}",
                    "Content-Type": "application/vnd.oci.image.manifest.v1+json",
                },
                timeout=60,
            )
            if response.status_code != 201:
                raise BenchError(f"manifest push failed: {response.status_code} {response.text}")
        return layers, tar_bytes

    def worker_peak_rss(self) -> int:
        """The highest VmHWM among the server's gunicorn workers."""
        peak, stack = 0, [self.server.pid]
        while stack:
            pid = stack.pop()
            stack.extend(children_of(pid))
            if "gunicorn" not in cmdline(pid):
                continue
            try:
                with open(f"/proc/{pid}/status") as f:
                    for line in f:
                        if line.startswith("VmHWM:"):
                            peak = max(peak, int(line.split()[1]) * 1024)
            except OSError:
                continue
        return peak

    def run(self) -> dict:
        try:
            try:
                self.start()  # inside: a start that fails half-way must not leave the server running
                layers, tar_bytes = self.push_image()
                baseline = []
                for _ in range(self.options.runs):
                    started = time.perf_counter()
                    with open(os.devnull, "wb") as null:
                        subprocess.run(["gzip", "-dc", *map(str, layers)], stdout=null, check=True)
                    baseline.append(time.perf_counter() - started)
                memory_before = self.worker_peak_rss()
                auth = f"{USER}:{PASSWORD}@127.0.0.1:{self.port}"
                first = [curl(f"http://{auth}/c1/squash/{REPO}/run{run}") for run in range(self.options.runs)]
                memory_after = self.worker_peak_rss()
                cached = [curl(f"http://{auth}/c1/squash/{REPO}/run0") for _ in range(self.options.runs)]
                # A plain blob of the tarball's size, GET over /v2/ as a registry client would.
                blob = self.workdir / "same-size.bin"
                with open(blob, "wb") as f:
                    remaining = first[0]["bytes"]
                    while remaining > 0:
                        f.write(os.urandom(min(1 << 20, remaining)))
                        remaining -= min(1 << 20, remaining)
                digest = sha256_file(blob)
                self.upload(blob, digest)
                bearer = f"Authorization: Bearer {self.token()}"
                blob_get = [curl(f"{self.base}/v2/{REPO}/blobs/{digest}", bearer) for _ in range(self.options.runs)]
            finally:
                self.stop(self.server)
            squash_seconds = statistics.median(r["seconds"] for r in first)
            zcat_seconds = statistics.median(baseline)
            cached_rate = statistics.median(r["bytes"] / r["seconds"] for r in cached)
            blob_rate = statistics.median(r["bytes"] / r["seconds"] for r in blob_get)
            return {
                "layers": self.options.layers,
                "compressed_bytes": sum(p.stat().st_size for p in layers),
                "tar_bytes": tar_bytes,
                "tarball_bytes": first[0]["bytes"],
                "runs": self.options.runs,
                "zcat_seconds": round(zcat_seconds, 3),
                "squash_seconds": round(squash_seconds, 3),
                "squash_vs_zcat": round(zcat_seconds / squash_seconds, 2),
                "squash_MBps": round(tar_bytes / squash_seconds / 1e6, 1),
                "ttfb_ms": round(statistics.median(r["ttfb"] for r in first) * 1000, 1),
                "worker_peak_rss_before_MiB": round(memory_before / (1 << 20), 1),
                "worker_peak_rss_after_MiB": round(memory_after / (1 << 20), 1),
                "cached_MBps": round(cached_rate / 1e6, 1),
                "blob_MBps": round(blob_rate / 1e6, 1),
                "cached_vs_blob": round(cached_rate / blob_rate, 2),
            }
        finally:
            if not self.options.keep:
                shutil.rmtree(self.workdir, ignore_errors=True)


def report(result: dict) -> str:
    rows = [
        (
            "image",
            f"{result['layers']} gzip layers, {result['tar_bytes'] / 2**20:.0f} MiB of tar, "
            f"{result['compressed_bytes'] / 2**20:.0f} MiB compressed; "
            f"tarball {result['tarball_bytes'] / 2**20:.0f} MiB",
        ),
        ("gzip -dc of the layers (single core)", f"{result['zcat_seconds']} s"),
        (
            "first download (flattened while streamed)",
            f"{result['squash_seconds']} s = {result['squash_MBps']} MB/s of tar",
        ),
        ("squash vs gzip -dc", f"{result['squash_vs_zcat']}x (target >= 0.7x, >= 1.0x with isal)"),
        ("time to first byte", f"{result['ttfb_ms']} ms (target <= 500 ms)"),
        (
            "web worker peak RSS before / after",
            f"{result['worker_peak_rss_before_MiB']} / {result['worker_peak_rss_after_MiB']} MiB",
        ),
        ("cached download", f"{result['cached_MBps']} MB/s"),
        ("blob GET, same size", f"{result['blob_MBps']} MB/s"),
        ("cached vs blob GET", f"{result['cached_vs_blob']}x (target >= 0.9x)"),
    ]
    width = max(len(name) for name, _ in rows)
    lines = [f"Squashed downloads, medians of {result['runs']} runs"]
    lines += [f"{name.ljust(width)}  {value}" for name, value in rows]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.squash", description=__doc__.split("\n\n")[0])
    parser.add_argument("--size-mib", type=int, default=1024, help="MiB of files in the image (default %(default)s)")
    parser.add_argument("--layers", type=int, default=5, help="gzip layers (default %(default)s)")
    parser.add_argument("--runs", type=int, default=3, help="runs of each measurement (default %(default)s)")
    add_run_options(parser)
    options = parser.parse_args(argv)
    return run_and_report(Bench(options).run, report, options)[0]


if __name__ == "__main__":
    sys.exit(main())
