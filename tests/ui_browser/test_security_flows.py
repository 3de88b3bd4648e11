"""Security scanning in Chromium against a live server: push (skopeo) an image holding a Debian
dpkg database, see it Queued in the Tags tab's Security column, have it scanned, import a small
OSV fixture with ``manage.py import_osv`` in the server's environment, then read the column's
counts, open the tag's security page and filter it to the fixable vulnerabilities.

The session's live server runs no Celery worker, so the scan the push queued is run in the
server's environment (``manage.py shell``) by the same service the worker's task calls.
"""

from __future__ import annotations

import json

import pytest

from tests.e2e import images
from tests.e2e.conftest import PASSWORD

pytestmark = [pytest.mark.e2e, pytest.mark.browser]

CREDS = f"alice:{PASSWORD}"
DPKG_STATUS = b"""Package: libssl3
Status: install ok installed
Architecture: amd64
Source: openssl
Version: 3.0.11-1~deb12u1
Description: Secure Sockets Layer toolkit

Package: zlib1g
Status: install ok installed
Architecture: amd64
Source: zlib
Version: 1:1.2.13.dfsg-1
Description: compression library

Package: bash
Status: install ok installed
Architecture: amd64
Version: 5.2.15-2+b2
Description: GNU Bourne Again SHell
"""
OS_RELEASE = b'PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\nID=debian\nVERSION_ID="12"\n'


def debian_image() -> images.HandImage:
    """A two-layer OCI image: os-release and a dpkg database of three packages."""
    layers, diff_ids = [], []
    for files in ({"etc/os-release": OS_RELEASE}, {"var/lib/dpkg/status": DPKG_STATUS}):
        compressed, uncompressed = images.tar_gz(files)
        layers.append(images.Blob(images.OCI_LAYER, compressed))
        diff_ids.append(images.sha256(uncompressed))
    config = images.Blob(
        images.OCI_CONFIG,
        images.canonical_json(
            {"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers", "diff_ids": diff_ids}}
        ),
    )
    manifest = {
        "schemaVersion": 2,
        "mediaType": images.OCI_MANIFEST,
        "config": config.descriptor(),
        "layers": [layer.descriptor() for layer in layers],
    }
    return images.HandImage(manifest=json.dumps(manifest).encode(), config=config, layers=layers)


def osv(osv_id: str, name: str, events: list[dict], **extra) -> dict:
    return {
        "schema_version": "1.6.0",
        "id": osv_id,
        "modified": "2026-11-01T00:00:00Z",
        "summary": f"A flaw in {name}",
        "details": f"The {name} library mishandles its input.",
        "affected": [
            {"package": {"ecosystem": "Debian:12", "name": name}, "ranges": [{"type": "ECOSYSTEM", "events": events}]}
        ],
        "references": [{"type": "ADVISORY", "url": f"https://security-tracker.debian.org/tracker/{osv_id}"}],
        **extra,
    }


def test_the_security_column_and_page(ui, clients, tmp_path):
    image = debian_image()
    layout = images.write_oci_layout(tmp_path / "layout", image)
    host = ui.server.host
    clients.skopeo(
        "copy",
        "--dest-tls-verify=false",
        "--dest-creds",
        CREDS,
        f"oci:{layout}:latest",
        f"docker://{host}/alice/scanned:1.0",
    )

    ui.sign_in("alice")
    ui.goto("/repository/alice/scanned?tab=tags")
    row = ui.page.locator("#tags tbody tr").filter(has_text="1.0")
    assert ui.page.get_by_role("columnheader", name="Security").is_visible()
    assert row.locator(".security-cell").inner_text().strip() == "Queued"
    ui.shot("security-queued")

    # What the worker's task does after the push, in the server's environment.
    status = ui.server.shell(
        "from registry.models import Manifest\n"
        "from scanning import services\n"
        f"manifest = Manifest.objects.get(repository__name='scanned', digest={image.digest!r})\n"
        "print('STATUS', services.manifest_index(manifest_id=manifest.pk).status)"
    )
    assert "STATUS scanned" in status
    ui.goto("/repository/alice/scanned?tab=tags")
    assert row.locator(".security-cell").inner_text().strip() == "Passed"

    advisories = tmp_path / "osv"
    advisories.mkdir()
    critical = "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H"
    docs = [
        osv(
            "DSA-5999-1",
            "openssl",
            [{"introduced": "0"}, {"fixed": "3.0.13-1~deb12u1"}],
            severity=[{"type": "CVSS_V3", "score": critical}],
        ),
        osv("DEBIAN-CVE-2026-1111", "zlib", [{"introduced": "0"}], database_specific={"severity": "low"}),
    ]
    for doc in docs:
        (advisories / f"{doc['id']}.json").write_text(json.dumps(doc))
    output = ui.server.manage("import_osv", str(advisories))
    assert "2 read, 2 imported" in output and "2 findings added" in output

    ui.goto("/repository/alice/scanned?tab=tags")
    cell = row.locator(".security-cell")
    assert " ".join(cell.inner_text().split()) == "1 Critical · 1 fixable 2 in all"
    ui.shot("security-tags-column")

    cell.get_by_role("link").click()
    ui.page.wait_for_url(f"**/repository/alice/scanned/manifest/{image.digest}?tag=1.0")
    page = ui.text()
    assert "Security scan of 1.0" in page
    assert "Operating system Debian GNU/Linux 12 (bookworm) (Debian:12)" in page
    assert "2 vulnerabilities across 2 packages; 1 fixable." in page
    sections = ui.page.locator("section.package-findings")
    assert sections.count() == 2
    first = " ".join(sections.nth(0).inner_text().split())
    assert first.startswith("libssl3 3.0.11-1~deb12u1 dpkg Added by layer 2 of 2")
    assert "DSA-5999-1" in first and "Critical" in first and "Upgrade libssl3 to 3.0.13-1~deb12u1" in first
    assert sections.nth(0).get_by_role("link", name="DSA-5999-1").get_attribute("href") == (
        "https://security-tracker.debian.org/tracker/DSA-5999-1"
    )
    assert "No fixed version yet" in sections.nth(1).inner_text()
    ui.shot("security-page")

    # The filter is a plain GET form: Only fixable keeps the openssl advisory.
    ui.page.get_by_label("Only fixable").check()
    ui.page.get_by_role("button", name="Filter").click()
    ui.page.wait_for_url("**fixable=1**")
    assert "1 vulnerability in 1 package matches the filter; 1 fixable." in ui.text()
    assert ui.page.locator("section.package-findings").count() == 1
    ui.shot("security-page-fixable")
