"""The Tags tab's Security column and an image's security page: counts per tag from the scanner's
cached summaries (one query for a page of tags), each scan state, the page's vulnerabilities
grouped by package with the fixed version as the remedy, its severity and fixability filters,
and who may see it. Images are built with real package databases and scanned by the real task;
advisories come from a small OSV fixture imported by the real importer."""

from __future__ import annotations

import re

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from registry.models import Repository, Role
from tests.registry.conftest import grant, user_principal
from tests.scanning.conftest import Layer, image, import_docs, layer, os_release, principal, push, repo  # noqa: F401
from tests.scanning.images import alpine_layers, debian_layers
from tests.scanning.test_matching import fixture_advisories
from tests.ui.conftest import text as page_text

TAGS = "/repository/alice/app?tab=tags"


def text(response) -> str:
    """The visible text, without the spaces inline markup leaves before punctuation."""
    return re.sub(r"\s+([.,;)])", r"\1", page_text(response))


def page_url(manifest, **query) -> str:
    url = f"/repository/alice/app/manifest/{manifest.digest}"
    if query:
        url += "?" + "&".join(
            f"{k}={v}" for k, values in query.items() for v in (values if isinstance(values, list) else [values])
        )
    return url


def security_cells(response) -> dict[str, str]:
    """Tag name -> the visible text of its Security cell."""
    html = response.content.decode()
    rows = re.findall(
        r'<th scope="row" class="tag-name">([^<]+)</th>.*?<td class="security-cell">(.*?)</td>', html, re.S
    )
    return {name: re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", cell)).strip() for name, cell in rows}


@pytest.fixture
def scanned(push, tmp_path):  # noqa: F811
    """alice/app with one tag per scan state, and the OSV fixture imported."""
    debian = push(image(debian_layers()), "debian")
    alpine = push(image(alpine_layers(), seed="alpine"), "alpine")
    clean = push(
        image([layer({"etc/os-release": os_release("alpine", "3.19.1", "Alpine Linux v3.19")})], seed="c"), "clean"
    )
    failed = push(image([layer({"lib/apk/db/installed": b"garbage\n"})], seed="bad"), "broken")
    odd = push(image([Layer(b"not a tar", "application/vnd.example.blob")], seed="odd"), "odd")
    queued = push(image(alpine_layers(), seed="later"), "later", scan=False)
    import_docs(tmp_path, *fixture_advisories())
    return {"debian": debian, "alpine": alpine, "clean": clean, "broken": failed, "odd": odd, "later": queued}


# --- The Tags tab ---------------------------------------------------------------------------------


def test_each_tag_shows_its_highest_severity_fixable_count_and_state(as_alice, scanned):
    response = as_alice.get(TAGS)
    assert response.status_code == 200
    assert "Manifest Security" in text(response)
    assert security_cells(response) == {
        "later": "Queued",
        "odd": "Unsupported",
        "broken": "Failed",
        "clean": "Passed",
        # Alpine: two Medium advisories on openssl's binaries, both fixed in 3.1.4-r3.
        "alpine": "2 Medium · 2 fixable",
        # Debian: 6 vulnerabilities (Critical 1, High 1, Medium 1, Low 1, Unknown 2), 4 fixable.
        "debian": "1 Critical · 4 fixable 6 in all",
    }
    html = response.content.decode()
    debian = scanned["debian"]
    link = f'href="/repository/alice/app/manifest/{debian.digest}?tag=debian"'
    assert link in html
    cell = re.search(re.escape(link) + r'[^>]*title="([^"]+)"', html).group(1)
    assert cell == "6 vulnerabilities in 6 packages: 1 Critical 1 High 1 Medium 1 Low 2 Unknown; 4 fixable"
    # The failure's reason is in the cell's title.
    assert re.search(r'class="security-failed" title="[^"]*lib/apk/db/installed', html)


def test_the_column_costs_one_query_for_the_whole_page(as_alice, scanned, settings):
    with CaptureQueriesContext(connection) as with_column:
        as_alice.get(TAGS)
    settings.FEATURE_SECURITY_SCANNER = False
    with CaptureQueriesContext(connection) as without_column:
        response = as_alice.get(TAGS)
    assert "Security" not in text(response) and "security-cell" not in response.content.decode()
    assert len(with_column) - len(without_column) == 1
    extra = [q["sql"] for q in with_column.captured_queries if "scanning_manifestscan" in q["sql"]]
    assert len(extra) == 1


def test_application_repositories_have_no_security_column(as_alice, alice):
    from registry import services

    services.repository_create(
        namespace=alice.namespace, name="charts", principal=user_principal(alice), kind=Repository.Kind.APPLICATION
    )
    assert "Security" not in text(as_alice.get("/repository/alice/charts?tab=tags"))


# --- The security page ----------------------------------------------------------------------------


def test_the_page_lists_vulnerabilities_by_package_with_their_remedy(as_alice, scanned):
    debian = scanned["debian"]
    response = as_alice.get(page_url(debian, tag="debian"))
    assert response.status_code == 200
    body = text(response)
    assert "Security scan of debian" in body
    assert "Status Scanned" in body
    assert "Operating system Debian GNU/Linux 12 (bookworm) (Debian:12)" in body
    assert "Packages 9 installed, 6 affected" in body
    assert "6 vulnerabilities across 6 packages; 4 fixable." in body
    assert "1 Critical 1 High 1 Medium 1 Low 2 Unknown" in body
    html = response.content.decode()
    sections = re.findall(r'<section class="package-findings" aria-label="([^"]+)">(.*?)</section>', html, re.S)
    assert [name for name, _ in sections] == [
        "libssl3 3.0.11-1~deb12u1",
        "lodash 4.17.20",
        "Requests 2.28.1",
        "zlib1g 1:1.2.13.dfsg-1",
        "bash 5.2.15-2+b2",
        "six 1.16.0",
    ]
    ssl = sections[0][1]
    # The base layer (1 of 3) added it; the advisory is linked, with its severity and remedy.
    layers = [d["digest"] for d in __import__("json").loads(bytes(debian.raw))["layers"]]
    assert "Added by layer 1 of 3" in ssl and f'title="{layers[0]}"' in ssl
    assert (
        '<a href="https://security.example/DSA-5600-1" rel="noopener noreferrer" target="_blank">DSA-5600-1</a>' in ssl
    )
    assert "CVSS 9.8" in ssl
    assert '<span class="sev sev-critical">Critical</span>' in ssl
    assert "openssl is affected by DSA-5600-1" in ssl
    assert "Upgrade libssl3 to 3.0.11-1~deb12u2" in ssl
    assert "Added by layer 2 of 3" in sections[1][1] and "Upgrade lodash to 4.17.21" in sections[1][1]
    assert "No fixed version yet" in sections[5][1]
    assert "var/lib/dpkg/status" in sections[3][1]


def test_filters_by_severity_and_fixability(as_alice, scanned):
    debian = scanned["debian"]
    response = as_alice.get(page_url(debian, severity=["Critical", "High"], fixable="1", tag="debian"))
    body, html = text(response), response.content.decode()
    assert "2 vulnerabilities in 2 packages match the filter; 2 fixable." in body
    assert re.findall(r'<section class="package-findings" aria-label="([^" ]+) ', html) == ["libssl3", "lodash"]
    assert '<input type="checkbox" name="severity" value="Critical" checked>' in html
    assert '<input type="checkbox" name="severity" value="Low">' in html
    assert '<input type="checkbox" name="fixable" value="1" checked>' in html
    # The summary stays the whole scan's.
    assert "6 vulnerabilities across 6 packages; 4 fixable." in body
    only_fixable = text(as_alice.get(page_url(debian, fixable="1")))
    assert "4 vulnerabilities in 4 packages match the filter; 4 fixable." in only_fixable
    assert "No fixed version yet" not in only_fixable
    low = text(as_alice.get(page_url(debian, severity="Low")))
    assert "1 vulnerability in 1 package matches the filter; 0 fixable." in low and "zlib1g" in low
    # Unknown levels are ignored; a filter keeping nothing says so.
    assert "6 vulnerabilities in 6 packages;" in text(as_alice.get(page_url(debian, severity="Bogus")))
    nothing = text(as_alice.get(page_url(debian, severity="Negligible")))
    assert "No vulnerability matches the filter." in nothing


@pytest.mark.parametrize(
    ("tag", "status", "message"),
    [
        ("later", "Queued", "This image is queued for scanning"),
        ("odd", "Unsupported", "This manifest cannot be scanned: layer"),
        ("broken", "Failed", "The scan of this image failed: layer"),
        ("clean", "Scanned", "No known vulnerability: 0 packages checked"),
    ],
)
def test_the_page_of_each_state(as_alice, scanned, tag, status, message):
    body = text(as_alice.get(page_url(scanned[tag], tag=tag)))
    assert f"Status {status}" in body and message in body
    assert "Only fixable" not in body


def test_read_permission_like_the_tags_tab(as_alice, as_bob, anonymous, bob, scanned, repo, settings):  # noqa: F811
    url = page_url(scanned["debian"])
    assert as_bob.get(url).status_code == 404
    response = anonymous.get(url)
    assert response.status_code == 302 and response["Location"].startswith("/signin?next=")
    grant(repo, bob, Role.READ)
    assert as_bob.get(url).status_code == 200
    Repository.objects.filter(pk=repo.pk).update(visibility=Repository.Visibility.PUBLIC)
    assert "Upgrade libssl3 to" in text(anonymous.get(url))
    # Unknown, malformed, or another repository's digests: 404.
    assert as_alice.get(f"/repository/alice/app/manifest/sha256:{'0' * 64}").status_code == 404
    assert as_alice.get("/repository/alice/app/manifest/sha256:nothex").status_code == 404
    settings.FEATURE_SECURITY_SCANNER = False
    off = as_alice.get(url)
    assert off.status_code == 404 and "Security scanning is not enabled on this registry." in text(off)


def test_the_page_reads_a_bounded_number_of_queries(as_alice, scanned, django_assert_max_num_queries):
    # Session, user, repository, role, manifest, scan, summary, packages, findings.
    with django_assert_max_num_queries(10):
        assert as_alice.get(page_url(scanned["debian"])).status_code == 200


def test_a_multi_architecture_tag_shows_its_images_together(as_alice, push, tmp_path):  # noqa: F811
    from tests.registry.conftest import make_index

    children = [image(debian_layers(), seed="amd64"), image(alpine_layers(), seed="arm64")]
    for child in children:
        push(child, child.digest)
    index = push(make_index(children), "multi")
    import_docs(tmp_path, *fixture_advisories())
    # Debian's 6 and Alpine's 2 findings, on distinct packages.
    assert security_cells(as_alice.get(TAGS))["multi"] == "1 Critical · 6 fixable 8 in all"
    body = text(as_alice.get(page_url(index, tag="multi")))
    assert "8 vulnerabilities across 8 packages; 6 fixable." in body
    assert "Upgrade libssl3 to 3.0.11-1~deb12u2" in body and "Upgrade libcrypto3 to 3.1.4-r3" in body
