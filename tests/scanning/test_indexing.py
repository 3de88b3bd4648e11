"""Indexing pushed images: the push hook, OS and packages of every kind with the layer that added
them, whiteouts, layers read once, indexes through their children, and failures recorded."""

import os

from django.conf import settings

from registry.models import Manifest
from registry.storage import blob_name
from scanning.models import LayerIndex, ManifestPackage, ManifestScan
from tests.registry.conftest import HELM_CONFIG, make_image, make_index, store_image
from tests.scanning.conftest import dpkg_status, image, layer, os_release
from tests.scanning.images import alpine_layers, debian_layers


def packages_of(manifest):
    return sorted(
        (mp.package.kind, mp.package.name, mp.package.version, mp.package.ecosystem, mp.added_by)
        for mp in ManifestPackage.objects.filter(manifest=manifest).select_related("package")
    )


def test_the_push_queues_a_scan_that_records_the_os_and_every_kind_of_package(push):
    layers = debian_layers()
    manifest = push(image(layers))
    scan = ManifestScan.objects.get(manifest=manifest)
    assert (scan.status, scan.error) == ("scanned", "")
    assert (scan.os_id, scan.os_version, scan.os_name, scan.ecosystem) == (
        "debian",
        "12",
        "Debian GNU/Linux 12 (bookworm)",
        "Debian:12",
    )
    base, app, top = (f"sha256:{__import__('hashlib').sha256(item.data).hexdigest()}" for item in layers)
    assert packages_of(manifest) == sorted(
        [
            ("dpkg", "libssl3", "3.0.11-1~deb12u1", "Debian:12", base),
            ("dpkg", "zlib1g", "1:1.2.13.dfsg-1", "Debian:12", base),
            ("dpkg", "bash", "5.2.15-2+b2", "Debian:12", base),
            # The second layer rewrote the status file: only the new entry is its own.
            ("dpkg", "curl", "7.88.1-10+deb12u4", "Debian:12", app),
            ("python", "Requests", "2.28.1", "PyPI", app),
            ("python", "six", "1.16.0", "PyPI", app),
            ("npm", "lodash", "4.17.20", "npm", app),
            # @scope/pkg was deleted by the top layer's whiteout; gpg-pubkey is not a package.
            ("rpm", "tzdata", "2024a-1.el9", "Debian:12", top),
            ("rpm", "openssl-libs", "1:3.0.7-25.el9", "Debian:12", top),
        ]
    )
    # Source packages are what distribution advisories name.
    bash = ManifestPackage.objects.get(manifest=manifest, package__name="bash").package
    assert (bash.match_name, bash.match_version) == ("bash", "5.2.15-2")
    ssl = ManifestPackage.objects.get(manifest=manifest, package__name="openssl-libs").package
    assert ssl.match_name == "openssl"
    requests = ManifestPackage.objects.get(manifest=manifest, package__name="Requests").package
    assert requests.match_name == "requests"
    assert scan.summary["packages"] == 9 and scan.summary["vulnerabilities"] == 0


def test_alpine_packages_are_matched_by_origin(push):
    manifest = push(image(alpine_layers()))
    scan = ManifestScan.objects.get(manifest=manifest)
    assert (scan.status, scan.ecosystem) == ("scanned", "Alpine:v3.19")
    names = {(p.package.name, p.package.match_name, p.package.version) for p in manifest.scan_packages.all()}
    assert names == {
        ("musl", "musl", "1.2.4_git20230717-r4"),
        ("libcrypto3", "openssl", "3.1.4-r1"),
        ("libssl3", "openssl", "3.1.4-r1"),
    }


def test_a_layer_already_indexed_is_not_read_again(push):
    layers = debian_layers()
    push(image(layers))
    assert LayerIndex.objects.count() == 3
    # Remove the shared base layer's bytes: a second image built on it still scans, so the
    # scanner did not open the blob again.
    base_digest = f"sha256:{__import__('hashlib').sha256(layers[0].data).hexdigest()}"
    extra = layer({"usr/lib/python3/dist-packages/idna-3.4.dist-info/METADATA": b"Name: idna\nVersion: 3.4\n\n"})
    second = image([layers[0], extra], seed="second")
    manifest = push(second, "second", scan=False)
    os.unlink(os.path.join(settings.STORAGE_DIR, blob_name(base_digest)))
    from scanning import tasks

    tasks.index_manifest(manifest.pk)
    scan = ManifestScan.objects.get(manifest=manifest)
    assert scan.status == "scanned", scan.error
    assert LayerIndex.objects.count() == 4
    assert {p.package.name for p in manifest.scan_packages.all()} == {"libssl3", "zlib1g", "bash", "idna"}


def test_whiteouts_remove_a_package_database_and_opaque_directories_empty_one(push):
    base = layer(
        {"etc/os-release": os_release("debian", "12", "Debian 12"), "var/lib/dpkg/status": dpkg_status(*[("a", "1.0")])}
    )
    removed = push(image([base, layer(whiteouts=["var/lib/dpkg/.wh.status"])], seed="w"), "w")
    assert packages_of(removed) == []
    opaque = push(image([base, layer(whiteouts=["var/lib/.wh..wh..opq"])], seed="o"), "o")
    assert packages_of(opaque) == []
    # A deleted and re-created database belongs to the layer that re-created it.
    again = layer({"var/lib/dpkg/status": dpkg_status(("a", "1.0"))}, whiteouts=["var/lib/.wh.dpkg"])
    recreated = push(image([base, again], seed="r"), "r")
    assert [row[1] for row in packages_of(recreated)] == ["a"]
    assert packages_of(recreated)[0][4] == f"sha256:{__import__('hashlib').sha256(again.data).hexdigest()}"


def test_distroless_status_d_entries_are_packages(push):
    files = {
        "etc/os-release": os_release("debian", "12", "Distroless"),
        "var/lib/dpkg/status.d/libc6": dpkg_status(("libc6", "2.36-9+deb12u4", "glibc")),
        "var/lib/dpkg/status.d/libc6.md5sums": b"d41d8cd98f00b204e9800998ecf8427e  lib/x\n",
        "var/lib/dpkg/status.d/tzdata": dpkg_status(("tzdata", "2024a-0+deb12u1")),
    }
    manifest = push(image([layer(files)]))
    assert [row[1:3] for row in packages_of(manifest)] == [("libc6", "2.36-9+deb12u4"), ("tzdata", "2024a-0+deb12u1")]


def test_a_malformed_package_database_is_a_clear_scan_failure(push):
    broken = layer({"var/lib/dpkg/status": b"Package: a\nVersion: 1.0\nthis line is not a field\n"})
    manifest = push(image([broken]))
    scan = ManifestScan.objects.get(manifest=manifest)
    assert scan.status == "failed"
    assert "/var/lib/dpkg/status: line 3: not a 'Field: value' line" in scan.error
    assert LayerIndex.objects.get().state == "failed"

    no_version = layer({"lib/apk/db/installed": b"P:musl\nA:x86_64\n\n"})
    scan = ManifestScan.objects.get(manifest=push(image([no_version], seed="apk"), "apk"))
    assert (
        scan.status == "failed"
        and "/lib/apk/db/installed: the entry ending at line 3 has no P: or V: line" in scan.error
    )

    not_sqlite = layer({"var/lib/rpm/rpmdb.sqlite": b"SQLite format 2 - or rather not at all" * 10})
    scan = ManifestScan.objects.get(manifest=push(image([not_sqlite], seed="rpm"), "rpm"))
    assert scan.status == "failed" and "/var/lib/rpm/rpmdb.sqlite: not an rpm sqlite database" in scan.error


def test_a_layer_that_is_not_a_tar_is_a_clear_scan_failure(push):
    from tests.scanning.conftest import GZIP_LAYER, Layer

    garbage = Layer(b"\x1f\x8b\x08\x00" + b"not deflate data" * 20, GZIP_LAYER)
    scan = ManifestScan.objects.get(manifest=push(image([garbage])))
    assert scan.status == "failed"
    assert "the layer is not a readable tar archive" in scan.error


def test_an_artifact_is_unsupported_without_a_task(repo, principal, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        store_image(repo, "chart", make_image("helm", config_type=HELM_CONFIG), principal)
    scan = ManifestScan.objects.get()
    assert (scan.status, scan.error) == ("unsupported", "not a container image (an artifact has no layers to index)")
    assert callbacks == []


def test_an_index_is_scanned_through_its_children(push, repo, principal):
    debian, alpine = image(debian_layers(), seed="amd64"), image(alpine_layers(), seed="arm64")
    # Children pushed by digest (as clients do) are scanned on their own; the index composes.
    for child in (debian, alpine):
        push(child, child.digest)
    index = make_index([debian, alpine])
    manifest = push(index, "multi")
    assert manifest.is_index
    scan = ManifestScan.objects.get(manifest=manifest)
    assert scan.status == "scanned"
    assert scan.summary["packages"] == 9 + 3
    children = Manifest.objects.filter(digest__in=[debian.digest, alpine.digest])
    assert {c.scan.status for c in children} == {"scanned"}


def test_an_index_whose_child_was_not_scanned_yet_scans_it(push):
    child = image(alpine_layers(), seed="late")
    push(child, child.digest, scan=False)
    manifest = push(make_index([child]), "multi")
    assert ManifestScan.objects.get(manifest=manifest).status == "scanned"
    assert ManifestScan.objects.get(manifest__digest=child.digest).status == "scanned"
