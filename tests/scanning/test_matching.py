"""Advisory imports (OSV .json, .zip, directories; command and admin upload), matching with exact
counts, re-matching without reading layers, and vulnerability_found announced once."""

import io
import json
import os
import zipfile

import pytest
from django.core.management import CommandError, call_command

from notifications import services as notification_services
from notifications.models import NotificationEvent
from scanning import selectors
from scanning.models import Advisory, AdvisoryImport, Finding, LayerIndex, ManifestScan
from tests.scanning.conftest import advisory, image, import_docs
from tests.scanning.images import alpine_layers, debian_layers

CRITICAL = "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H"  # 9.8
MEDIUM = "CVSS:3.1/AV:N/AC:L/PR:N/UI:R/S:C/C:L/I:L/A:N"  # 6.1


def fixture_advisories():
    return [
        advisory(
            "DSA-5600-1",
            "Debian:12",
            "openssl",
            fixed="3.0.11-1~deb12u2",
            severity=[{"type": "CVSS_V3", "score": CRITICAL}],
        ),
        advisory("DEBIAN-CVE-2026-0001", "Debian:12", "zlib", database_specific={"severity": "low"}),
        # Binary NMU: the installed 5.2.15-2+b2 is built from source 5.2.15-2, which is affected.
        advisory("DEBIAN-CVE-2026-0002", "Debian:12", "bash", fixed="5.2.15-2+deb12u1"),
        advisory("DSA-OLD", "Debian:11", "openssl", fixed="9.9"),  # another release: no match
        advisory("GHSA-reqs", "PyPI", "requests", fixed="2.31.0", severity=[{"type": "CVSS_V3", "score": MEDIUM}]),
        advisory("GHSA-lodash", "npm", "lodash", fixed="4.17.21", database_specific={"severity": "HIGH"}),
        advisory("GHSA-scoped", "npm", "@scope/pkg", fixed="2.0.0"),  # whited out of the image
        advisory("PYSEC-six", "PyPI", "six", last_affected="1.16.0"),
        advisory(
            "ALPINE-CVE-1", "Alpine:v3.19", "openssl", fixed="3.1.4-r3", database_specific={"severity": "moderate"}
        ),
    ]


@pytest.fixture
def watched(repo, principal):
    notification_services.notification_create(
        repository=repo,
        event="vulnerability_found",
        method="webhook",
        config={"url": "https://hooks.example.com/scan"},
        event_config={},
        title="",
        principal=principal,
        ip=None,
    )
    return repo


def events():
    return sorted(
        (
            e.repository.name,
            e.payload["vulnerability"]["id"],
            tuple(e.payload["tags"]),
            e.payload["vulnerability"]["priority"],
            e.payload["vulnerability"]["has_fix"],
        )
        for e in NotificationEvent.objects.filter(kind="vulnerability_found").select_related("repository")
    )


def test_counts_and_fixable_counts_are_exact(push, tmp_path):
    debian = push(image(debian_layers()))
    alpine = push(image(alpine_layers(), seed="alpine"), "alpine")
    record = import_docs(tmp_path, *fixture_advisories())
    assert (record.state, record.advisories_read, record.advisories_imported, record.rejected) == ("done", 9, 9, [])

    summaries = selectors.manifest_summaries(manifest_ids=[debian.pk, alpine.pk])
    d = summaries[debian.pk]
    assert (d.status, d.packages, d.affected_packages, d.vulnerabilities, d.fixable) == ("scanned", 9, 6, 6, 4)
    assert d.by_severity == {"Critical": 1, "High": 1, "Medium": 1, "Low": 1, "Negligible": 0, "Unknown": 2}
    assert d.fixable_by_severity == {"Critical": 1, "High": 1, "Medium": 1, "Low": 0, "Negligible": 0, "Unknown": 1}
    assert (d.highest, d.highest_count) == ("Critical", 1)
    a = summaries[alpine.pk]
    assert (a.packages, a.affected_packages, a.vulnerabilities, a.fixable) == (3, 2, 2, 2)
    assert a.by_severity["Medium"] == 2

    grouped = selectors.manifest_vulnerabilities(manifest=debian)
    assert [(p.name, [(v.id, v.severity, v.fixed_by) for v in p.vulnerabilities]) for p in grouped] == [
        ("libssl3", [("DSA-5600-1", "Critical", "3.0.11-1~deb12u2")]),
        ("lodash", [("GHSA-lodash", "High", "4.17.21")]),
        ("Requests", [("GHSA-reqs", "Medium", "2.31.0")]),
        ("zlib1g", [("DEBIAN-CVE-2026-0001", "Low", "")]),
        ("bash", [("DEBIAN-CVE-2026-0002", "Unknown", "5.2.15-2+deb12u1")]),
        ("six", [("PYSEC-six", "Unknown", "")]),
    ]
    fixable_high = selectors.manifest_vulnerabilities(manifest=debian, severities={"Critical", "High"}, fixable=True)
    assert [p.name for p in fixable_high] == ["libssl3", "lodash"]
    unfixable = selectors.manifest_vulnerabilities(manifest=debian, fixable=False)
    assert [p.name for p in unfixable] == ["zlib1g", "six"]
    assert len(selectors.manifest_vulnerabilities(manifest=debian, include_clean=True)) == 9


def test_a_push_after_the_import_matches_at_once(push, tmp_path):
    import_docs(tmp_path, *fixture_advisories())
    alpine = push(image(alpine_layers()))
    assert ManifestScan.objects.get(manifest=alpine).summary["vulnerabilities"] == 2


def test_an_import_rematches_without_reading_layers_and_announces_only_new_findings(push, watched, tmp_path, settings):
    manifest = push(image(debian_layers()))
    assert events() == []
    # The layers are gone from storage: the re-match must work from the index alone.
    for name in os.listdir(settings.STORAGE_DIR):
        if name == "blobs":
            import shutil

            shutil.rmtree(os.path.join(settings.STORAGE_DIR, name))
    indexed = LayerIndex.objects.count()

    first = fixture_advisories()[:2]
    import_docs(tmp_path, *first)
    assert events() == [
        ("app", "DEBIAN-CVE-2026-0001", ("latest",), "Low", False),
        ("app", "DSA-5600-1", ("latest",), "Critical", True),
    ]
    # The same data again plus one advisory: exactly one more event.
    record = import_docs(tmp_path, *first, fixture_advisories()[4])
    assert (record.advisories_imported, record.advisories_unchanged, record.events_emitted) == (1, 2, 1)
    assert len(events()) == 3 and ("app", "GHSA-reqs", ("latest",), "Medium", True) in events()
    # A changed fix version is no new finding: no event, the counts follow.
    changed = advisory(
        "DSA-5600-1",
        "Debian:12",
        "openssl",
        fixed="3.0.11-1~deb12u3",
        severity=[{"type": "CVSS_V3", "score": CRITICAL}],
    )
    import_docs(tmp_path, changed)
    assert len(events()) == 3
    assert Finding.objects.get(advisory__osv_id="DSA-5600-1").fixed_by == "3.0.11-1~deb12u3"
    # A severity that rises is announced again, once.
    raised = advisory(
        "GHSA-reqs", "PyPI", "requests", fixed="2.31.0", severity=[{"type": "CVSS_V3", "score": CRITICAL}]
    )
    import_docs(tmp_path, raised)
    import_docs(tmp_path, raised)
    assert len(events()) == 4 and ("app", "GHSA-reqs", ("latest",), "Critical", True) in events()
    assert ManifestScan.objects.get(manifest=manifest).summary["by_severity"] == {"Critical": 2, "Low": 1}
    # A withdrawn advisory's findings go.
    withdrawn = dict(first[1], withdrawn="2026-11-20T00:00:00Z")
    import_docs(tmp_path, withdrawn)
    assert ManifestScan.objects.get(manifest=manifest).summary["vulnerabilities"] == 2
    assert LayerIndex.objects.count() == indexed


def test_a_new_tag_in_the_same_repository_is_not_announced_again_and_levels_filter(
    push, watched, other_repo, principal, tmp_path
):
    notification_services.notification_create(
        repository=other_repo,
        event="vulnerability_found",
        method="webhook",
        config={"url": "https://hooks.example.com/scan"},
        event_config={"level": "High"},
        title="",
        principal=principal,
        ip=None,
    )
    import_docs(tmp_path, *fixture_advisories())
    img = image(debian_layers())
    push(img, "v1")
    assert len(events()) == 6
    push(image(debian_layers()[:1], seed="two"), "v2")
    assert len(events()) == 6
    push(img, "prod", repository=other_repo)
    other = [e for e in events() if e[0] == "other"]
    # The rule's minimum level keeps Critical and High only.
    assert other == [
        ("other", "DSA-5600-1", ("prod",), "Critical", True),
        ("other", "GHSA-lodash", ("prod",), "High", True),
    ]


def test_malformed_advisories_are_rejected_with_reasons_and_the_rest_imported(db, tmp_path):
    directory = tmp_path / "mixed"
    directory.mkdir()
    (directory / "bad.json").write_text("{not json")
    (directory / "noid.json").write_text(json.dumps({"affected": []}))
    bad_version = advisory("DSA-BAD", "Debian:12", "openssl", fixed="not a version!")
    (directory / "badversion.json").write_text(json.dumps(bad_version))
    good = advisory("DSA-GOOD", "Debian:12", "openssl", fixed="3.0.12-1")
    (directory / "good.json").write_text(json.dumps(good))
    out, err = io.StringIO(), io.StringIO()
    with pytest.raises(CommandError, match="3 advisories rejected"):
        call_command("import_osv", str(directory), stdout=out, stderr=err)
    assert "4 read, 1 imported, 0 unchanged, 3 rejected" in out.getvalue()
    assert "bad.json is not JSON" in err.getvalue()
    assert "the advisory has no id" in err.getvalue()
    assert "DSA-BAD: affected[0].ranges[0]: not a Debian version: 'not a version!'" in err.getvalue()
    assert list(Advisory.objects.values_list("osv_id", flat=True)) == ["DSA-GOOD"]
    record = AdvisoryImport.objects.get()
    assert len(record.rejected) == 3 and record.state == "done"


def test_the_command_reads_the_zip_archives_osv_publishes(tmp_path, push):
    push(image(alpine_layers()))
    archive = tmp_path / "all.zip"
    with zipfile.ZipFile(archive, "w") as z:
        for doc in fixture_advisories():
            z.writestr(f"{doc['id']}.json", json.dumps(doc))
    out = io.StringIO()
    call_command("import_osv", str(archive), stdout=out)
    assert "9 read, 9 imported, 0 unchanged, 0 rejected" in out.getvalue()
    assert "2 findings added" in out.getvalue()
    with pytest.raises(CommandError, match="no such file"):
        call_command("import_osv", str(tmp_path / "missing.zip"))
