"""``python -m bench.scanning [--distributed]``: security scanning (issue #11) throughput.

What it does, all on this machine, in a fresh DATA_DIR (and, with ``--distributed``, a
throw-away PostgreSQL started by ``.ci/services.sh``):

1. **Indexing**: an image with ``--packages`` packages (half dpkg in a gzip base layer, a
   quarter Python distributions and a quarter npm packages in a zstd layer) is pushed through
   the registry services; the scan (``scanning.services.manifest_index``, what the Celery task
   runs) is timed: layers read, packages composed and matched against a loaded advisory set.
   A second image on the same base layer is timed too (the base is not read again).
2. **Re-match**: ``--manifests`` indexed manifests (rows written in bulk: each with
   ``--per-manifest`` packages drawn from a pool of ``--pool`` distinct package versions, one
   tag each, spread over 100 repositories that each have a ``vulnerability_found`` rule); then
   an OSV import of ``--advisories`` advisories naming pool packages is timed end to end
   (parse, store, re-match, refresh the affected manifests' counts, announce), and the same
   import again (nothing changed).
"""

from __future__ import annotations

import argparse
import shutil
import sys

from bench.project import Project, add_run_options, run_and_report

INDEX = """
import gzip, io, json, tarfile, time, hashlib
import zstandard
from accounts import services as accounts
from registry import services as registry
from registry.models import Manifest
from registry.permissions import Principal
from scanning import services as scanning
from scanning.models import ManifestScan, LayerIndex

def sha(b): return "sha256:" + hashlib.sha256(b).hexdigest()
def tar(files):
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w") as t:
        for path, data in files.items():
            info = tarfile.TarInfo(path); info.size = len(data); t.addfile(info, io.BytesIO(data))
        for n in range(2000):  # ordinary files the indexer must skip
            info = tarfile.TarInfo(f"usr/share/doc/file{n}.txt"); data = b"x" * 512; info.size = len(data)
            t.addfile(info, io.BytesIO(data))
    return raw.getvalue()

n_dpkg, n_py = PACKAGES // 2, PACKAGES // 4
n_npm = PACKAGES - n_dpkg - n_py
status = "\\n".join(
    f"Package: pkg{i}\\nStatus: install ok installed\\nArchitecture: amd64\\nVersion: 1.{i}-1\\nDescription: p\\n"
    for i in range(n_dpkg)
).encode()
base = gzip.compress(tar({"etc/os-release": b'ID=debian\\nVERSION_ID="12"\\n', "var/lib/dpkg/status": status}))
app_files = {
    f"usr/lib/python3/dist-packages/py{i}-2.{i}.dist-info/METADATA": f"Name: py{i}\\nVersion: 2.{i}\\n\\n".encode()
    for i in range(n_py)
}
for i in range(n_npm):
    app_files[f"app/node_modules/js{i}/package.json"] = json.dumps({"name": f"js{i}", "version": f"3.{i}.0"}).encode()
app = zstandard.ZstdCompressor().compress(tar(app_files))

def advisory(osv_id, ecosystem, name, fixed, kind="ECOSYSTEM"):
    events = [{"introduced": "0"}, {"fixed": fixed}]
    package = {"ecosystem": ecosystem, "name": name}
    return {"id": osv_id, "affected": [{"package": package, "ranges": [{"type": kind, "events": events}]}]}

# Advisories already loaded: one per ten packages of each kind (the push-time match runs too).
docs = [advisory(f"DSA-{i}", "Debian:12", f"pkg{i}", f"1.{i}-2") for i in range(0, n_dpkg, 10)]
docs += [advisory(f"PY-{i}", "PyPI", f"py{i}", f"2.{i}.1") for i in range(0, n_py, 10)]
docs += [advisory(f"JS-{i}", "npm", f"js{i}", f"3.{i}.1", "SEMVER") for i in range(0, n_npm, 10)]
path = DATA_DIR + "/index-advisories.json"
import os, zipfile
with zipfile.ZipFile(path + ".zip", "w") as z:
    for d in docs: z.writestr(d["id"] + ".json", json.dumps(d))
scanning.advisories_import(path=path + ".zip")

user = accounts.user_create(username="scanbench", password="bench-password-1")
principal = Principal(kind="user", user=user)
repo = registry.repository_create(namespace=user.namespace, name="indexed", principal=principal)
def store(blob):
    session = registry.upload_start(repository=repo, principal=principal)
    registry.upload_complete(session=session, digest=sha(blob), stream=io.BytesIO(blob), length=len(blob), start=None)
def push(layers, seed, tag):
    config = json.dumps({"architecture": "amd64", "os": "linux", "seed": seed}).encode()
    for blob in [config, *layers]: store(blob)
    types = ["application/vnd.oci.image.layer.v1.tar+gzip", "application/vnd.oci.image.layer.v1.tar+zstd"]
    doc = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": sha(config), "size": len(config)},
        "layers": [{"mediaType": mt, "digest": sha(b), "size": len(b)} for mt, b in zip(types, layers)],
    }
    manifest, _ = registry.manifest_put(
        repository=repo, reference=tag, raw=json.dumps(doc).encode(), content_type=doc["mediaType"],
        principal=principal, ip=None,
    )
    return manifest
first = push([base, app], "one", "one")
start = time.perf_counter()
scan = scanning.manifest_index(manifest_id=first.pk)
first_seconds = time.perf_counter() - start
assert scan.status == "scanned", scan.error
second = push([base, gzip.compress(tar({"etc/motd": b"hi"}))], "two", "two")
start = time.perf_counter()
scan2 = scanning.manifest_index(manifest_id=second.pk)
second_seconds = time.perf_counter() - start
print("INDEX " + json.dumps({
    "packages": scan.summary["packages"], "vulnerabilities": scan.summary["vulnerabilities"],
    "fixable": scan.summary["fixable"], "layer_bytes": len(base) + len(app),
    "seconds": round(first_seconds, 3), "shared_base_seconds": round(second_seconds, 3),
    "shared_base_packages": scan2.summary["packages"], "layers_indexed": LayerIndex.objects.count(),
}))
"""

REMATCH = """
import json, time, hashlib, random
from django.db import transaction
from django.utils import timezone
from accounts import services as accounts
from notifications import services as notifications
from notifications.models import NotificationEvent
from registry import services as registry
from registry.models import Manifest, Tag
from registry.permissions import Principal
from scanning import services as scanning
from scanning.models import ManifestScan, ManifestPackage, Package

rng = random.Random(11)
LAYER = "sha256:" + "0" * 64
user = accounts.user_create(username="rematch", password="bench-password-1")
principal = Principal(kind="user", user=user)
repos = []
for r in range(min(100, MANIFESTS)):
    repo = registry.repository_create(namespace=user.namespace, name=f"r{r}", principal=principal)
    notifications.notification_create(repository=repo, event="vulnerability_found", method="webhook",
        config={"url": "https://hooks.example.com/scan"}, event_config={}, title="", principal=principal, ip=None)
    repos.append(repo)
pool = Package.objects.bulk_create([
    Package(ecosystem="Debian:12", version_format="dpkg", kind="dpkg", name=f"lib{i}", version=f"1.{i % 7}-1",
            match_name=f"src{i // 2}", match_version=f"1.{i % 7}-1") for i in range(POOL)
], batch_size=1000)
pool_ids = list(Package.objects.order_by("pk").values_list("pk", flat=True))
now = timezone.now()
with transaction.atomic():
    manifests = Manifest.objects.bulk_create([
        Manifest(repository=repos[i % len(repos)], digest="sha256:" + hashlib.sha256(f"m{i}".encode()).hexdigest(),
                 media_type="application/vnd.oci.image.manifest.v1+json", raw=b"{}", size=2,
                 config_media_type="application/vnd.oci.image.config.v1+json")
        for i in range(MANIFESTS)
    ], batch_size=1000)
    manifests = list(Manifest.objects.filter(repository__in=repos).order_by("pk"))
    ManifestScan.objects.bulk_create(
        [ManifestScan(manifest=m, status="scanned", ecosystem="Debian:12", indexed=now) for m in manifests],
        batch_size=1000,
    )
    Tag.objects.bulk_create(
        [Tag(repository_id=m.repository_id, name=f"t{n}", manifest=m, lifetime_start=now)
         for n, m in enumerate(manifests)],
        batch_size=1000,
    )
    rows = []
    for m in manifests:
        for pid in rng.sample(pool_ids, PER_MANIFEST):
            rows.append(ManifestPackage(manifest=m, package_id=pid, added_by=LAYER, path="var/lib/dpkg/status"))
    ManifestPackage.objects.bulk_create(rows, batch_size=2000)
EVENTS = [{"introduced": "0"}, {"fixed": "1.4-1"}]
docs = []
for a in range(ADVISORIES):
    source = rng.randrange(POOL // 2)
    docs.append({"id": f"DSA-B{a}", "modified": "2026-11-01T00:00:00Z",
                 "severity": [{"type": "CVSS_V3", "score": "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H"}],
                 "affected": [{"package": {"ecosystem": "Debian:12", "name": f"src{source}"},
                               "ranges": [{"type": "ECOSYSTEM", "events": EVENTS}]}]})
path = DATA_DIR + "/rematch.json.zip"
import zipfile
with zipfile.ZipFile(path, "w") as z:
    for d in docs: z.writestr(d["id"] + ".json", json.dumps(d))
start = time.perf_counter()
record = scanning.advisories_import(path=path)
seconds = time.perf_counter() - start
start = time.perf_counter()
again = scanning.advisories_import(path=path)
again_seconds = time.perf_counter() - start
print("REMATCH " + json.dumps({
    "manifests": len(manifests), "manifest_packages": len(rows), "pool": POOL, "advisories": ADVISORIES,
    "packages_rematched": record.packages_rematched, "findings_added": record.findings_added,
    "manifests_refreshed": record.manifests_refreshed, "events_emitted": record.events_emitted,
    "event_rows": NotificationEvent.objects.filter(kind="vulnerability_found").count(),
    "seconds": round(seconds, 3), "unchanged_seconds": round(again_seconds, 3),
    "unchanged": again.advisories_unchanged,
}))
"""


class Run(Project):
    def __init__(self, options):
        super().__init__(prefix="bench-scanning-", workdir=options.workdir, settings="quay_site.settings")
        self.options = options

    def run(self) -> dict:
        backend = "SQLite (WAL)"
        try:
            if self.options.distributed:
                backend = self.start_services()
            self.manage("migrate", "--noinput", "-v", "0")
            data_dir = self.env["DATA_DIR"]
            index = self.shell(f"PACKAGES = {self.options.packages}\nDATA_DIR = {data_dir!r}\n" + INDEX, "INDEX")
            rematch = self.shell(
                f"MANIFESTS = {self.options.manifests}\nPER_MANIFEST = {self.options.per_manifest}\n"
                f"POOL = {self.options.pool}\nADVISORIES = {self.options.advisories}\nDATA_DIR = {data_dir!r}\n"
                + REMATCH,
                "REMATCH",
                timeout=3600,
            )
        finally:
            self.stop_services()
        return {"backend": backend, "index": index, "rematch": rematch}


def report(result: dict) -> str:
    i, r = result["index"], result["rematch"]
    return "\n".join(
        [
            f"backend: {result['backend']}",
            f"index: {i['packages']} packages ({i['layer_bytes']} layer bytes) in {i['seconds']} s; "
            f"{i['vulnerabilities']} vulnerabilities, {i['fixable']} fixable",
            f"index, second image on the same base: {i['shared_base_packages']} packages in "
            f"{i['shared_base_seconds']} s ({i['layers_indexed']} layers indexed in all)",
            f"re-match: {r['manifests']} manifests ({r['manifest_packages']} package rows, {r['pool']} distinct "
            f"versions), {r['advisories']} advisories in {r['seconds']} s: {r['packages_rematched']} packages "
            f"re-matched, {r['findings_added']} findings, {r['manifests_refreshed']} manifests refreshed, "
            f"{r['events_emitted']} vulnerability_found events",
            f"re-import unchanged: {r['unchanged']} advisories in {r['unchanged_seconds']} s",
        ]
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.scanning", description=__doc__.split("\n\n")[0])
    parser.add_argument("--distributed", action="store_true", help="PostgreSQL instead of SQLite")
    parser.add_argument("--packages", type=int, default=500, help="packages in the indexed image (default %(default)s)")
    parser.add_argument(
        "--manifests", type=int, default=10000, help="indexed manifests to re-match (default %(default)s)"
    )
    parser.add_argument("--per-manifest", type=int, default=50, help="packages per manifest (default %(default)s)")
    parser.add_argument("--pool", type=int, default=5000, help="distinct package versions (default %(default)s)")
    parser.add_argument("--advisories", type=int, default=100, help="advisories imported (default %(default)s)")
    add_run_options(parser, settings=False)
    options = parser.parse_args(argv)
    run = Run(options)
    try:
        return run_and_report(run.run, report, options)[0]
    finally:
        if not options.keep:
            shutil.rmtree(run.workdir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
