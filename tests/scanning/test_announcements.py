"""vulnerability_found for tags that reach findings without a scan of their own: a tag created on
(or moved to) a manifest scanned before, through the /v2/ push and the REST tag API, and an
index's tag when an import makes one of its children vulnerable. One event per advisory and
repository, never repeated, filtered by each rule's minimum level."""

import pytest

from notifications import services as notification_services
from notifications.models import Delivery
from registry import services as registry_services
from tests.registry.conftest import make_index
from tests.registry_rest.conftest import Api
from tests.scanning.conftest import advisory, dpkg_status, image, import_docs, layer, os_release
from tests.scanning.images import alpine_layers, debian_layers
from tests.scanning.test_matching import events, fixture_advisories

DEBIAN_EVENTS = [
    ("DEBIAN-CVE-2026-0001", "Low", False),
    ("DEBIAN-CVE-2026-0002", "Unknown", True),
    ("DSA-5600-1", "Critical", True),
    ("GHSA-lodash", "High", True),
    ("GHSA-reqs", "Medium", True),
    ("PYSEC-six", "Unknown", False),
]


def rule(repository, principal, **event_config):
    created, _ = notification_services.notification_create(
        repository=repository,
        event="vulnerability_found",
        method="webhook",
        config={"url": "https://hooks.example.com/scan"},
        event_config=event_config,
        title="",
        principal=principal,
        ip=None,
    )
    return created


@pytest.fixture
def watched(repo, principal):
    rule(repo, principal)
    return repo


@pytest.fixture
def tag_api(alice, django_capture_on_commit_callbacks):
    """``tag_api(name, digest)``: PUT /api/v1/repository/alice/app/tag/<name> as alice, with the
    callbacks the commit runs (the announcement) run as a real commit would."""
    api = Api(alice)

    def put(name: str, digest: str) -> None:
        with django_capture_on_commit_callbacks(execute=True):
            response = api.put(f"repository/alice/app/tag/{name}", {"manifest_digest": digest})
        assert response.status_code == 201, response.content

    return put


def clean_image():
    """A Debian 12 image whose only package no advisory names."""
    return image(
        [
            layer(
                {
                    "etc/os-release": os_release("debian", "12", "Debian GNU/Linux 12 (bookworm)"),
                    "var/lib/dpkg/status": dpkg_status(("base-files", "12.4+deb12u5")),
                }
            )
        ],
        seed="clean",
    )


def test_a_new_tag_on_an_already_scanned_manifest_announces_exactly_the_new_findings(push, watched, tmp_path, tag_api):
    import_docs(tmp_path, *fixture_advisories())
    # Pushed by digest: scanned, vulnerable, but no tag reaches it yet.
    debian = push(image(debian_layers()), image(debian_layers()).digest)
    alpine_image = image(alpine_layers(), seed="alpine")
    push(alpine_image, alpine_image.digest)
    base_only = image(debian_layers()[:1], seed="base")
    push(base_only, base_only.digest)
    assert debian.scan.status == "scanned" and events() == []

    # The REST tag API points a new tag at the scanned manifest: its six findings, once each.
    tag_api("v1", debian.digest)
    assert events() == [("app", osv_id, ("v1",), severity, fix) for osv_id, severity, fix in DEBIAN_EVENTS]

    # The push of an existing image under a new tag (the manifest is not scanned again).
    push(alpine_image, "edge")
    assert len(events()) == 7
    assert ("app", "ALPINE-CVE-1", ("edge",), "Medium", True) in events()

    # A manifest whose findings were all announced for this repository already: nothing new.
    tag_api("base", base_only.digest)
    push(base_only, "base2")
    assert len(events()) == 7


def test_a_tag_moved_back_and_forth_repeats_nothing(push, watched, tmp_path, tag_api, principal):
    import_docs(tmp_path, *fixture_advisories())
    vulnerable = push(image(debian_layers()), "v1")
    assert len(events()) == 6
    clean = push(clean_image(), clean_image().digest)
    alpine = push(image(alpine_layers(), seed="alpine"), image(alpine_layers(), seed="alpine").digest)
    assert clean.scan.summary["vulnerabilities"] == 0

    for _ in range(2):
        tag_api("v1", clean.digest)
        tag_api("v1", vulnerable.digest)
    push(image(debian_layers()), "v1")  # already there: nothing changes
    registry_services.tag_restore(
        repository=watched, name="v1", manifest_digest=clean.digest, principal=principal, ip=None
    )
    push(image(debian_layers()), "v1")
    assert len(events()) == 6

    # Moved onto a manifest with a finding new for the repository: that one only, and only once.
    tag_api("v1", alpine.digest)
    tag_api("v1", vulnerable.digest)
    tag_api("v1", alpine.digest)
    assert len(events()) == 7
    assert ("app", "ALPINE-CVE-1", ("v1",), "Medium", True) in events()


def test_an_index_tag_is_announced_when_an_import_makes_a_child_vulnerable(push, watched, tmp_path):
    debian_image, alpine_image = image(debian_layers()), image(alpine_layers(), seed="alpine")
    for child in (debian_image, alpine_image):
        push(child, child.digest)
    index = push(make_index([debian_image, alpine_image]), "multi")
    assert index.scan.status == "scanned" and events() == []

    # Only the alpine child is affected: one event, for the index's tag.
    record = import_docs(tmp_path, fixture_advisories()[-1])
    assert record.events_emitted == 1
    assert events() == [("app", "ALPINE-CVE-1", ("multi",), "Medium", True)]
    assert index.scan.__class__.objects.get(pk=index.scan.pk).summary["vulnerabilities"] == 2

    # The same advisory again, then a new one for a child: exactly one more event.
    import_docs(tmp_path, fixture_advisories()[-1])
    record = import_docs(tmp_path, advisory("ALPINE-CVE-2", "Alpine:v3.19", "musl", fixed="1.2.5-r0"))
    assert record.events_emitted == 1
    assert events() == [
        ("app", "ALPINE-CVE-1", ("multi",), "Medium", True),
        ("app", "ALPINE-CVE-2", ("multi",), "Unknown", True),
    ]


def test_an_index_scanned_untagged_is_announced_when_tagged(push, watched, tmp_path, tag_api):
    import_docs(tmp_path, *fixture_advisories())
    debian_image, alpine_image = image(debian_layers()), image(alpine_layers(), seed="alpine")
    for child in (debian_image, alpine_image):
        push(child, child.digest)
    index_image = make_index([debian_image, alpine_image])
    index = push(index_image, index_image.digest)
    assert index.scan.status == "scanned" and events() == []

    tag_api("multi", index.digest)
    assert events() == [
        ("app", osv_id, ("multi",), severity, fix)
        for osv_id, severity, fix in sorted([*DEBIAN_EVENTS, ("ALPINE-CVE-1", "Medium", True)])
    ]
    tag_api("also", index.digest)
    assert len(events()) == 7


def test_each_rule_gets_the_levels_it_asked_for(push, repo, principal, tmp_path, tag_api):
    everything = rule(repo, principal)
    high = rule(repo, principal, level="High")
    import_docs(tmp_path, *fixture_advisories())
    debian = push(image(debian_layers()), image(debian_layers()).digest)

    tag_api("v1", debian.digest)
    assert [e[1] for e in events()] == [osv_id for osv_id, _, _ in DEBIAN_EVENTS]
    delivered = sorted(
        (d.notification_id, d.event.payload["vulnerability"]["id"]) for d in Delivery.objects.select_related("event")
    )
    assert [osv_id for rule_id, osv_id in delivered if rule_id == high.pk] == ["DSA-5600-1", "GHSA-lodash"]
    assert [osv_id for rule_id, osv_id in delivered if rule_id == everything.pk] == [
        osv_id for osv_id, _, _ in DEBIAN_EVENTS
    ]


def test_only_a_high_rule_sees_no_event_below_its_level(push, repo, principal, tmp_path, tag_api):
    rule(repo, principal, level=1)  # Quay's index: 1 is High
    import_docs(tmp_path, *fixture_advisories())
    debian = push(image(debian_layers()), image(debian_layers()).digest)
    tag_api("v1", debian.digest)
    assert events() == [
        ("app", "DSA-5600-1", ("v1",), "Critical", True),
        ("app", "GHSA-lodash", ("v1",), "High", True),
    ]
    tag_api("v2", debian.digest)
    assert len(events()) == 2


def test_a_tag_on_a_manifest_still_queued_is_announced_by_its_scan_once(push, watched, tmp_path, tag_api):
    from scanning import services

    import_docs(tmp_path, *fixture_advisories())
    alpine_image = image(alpine_layers(), seed="alpine")
    queued = push(alpine_image, alpine_image.digest, scan=False)
    assert queued.scan.status == "queued"
    tag_api("edge", queued.digest)  # the scan has not run: it is the one to announce
    assert events() == []
    services.manifest_index(manifest_id=queued.pk)
    assert events() == [("app", "ALPINE-CVE-1", ("edge",), "Medium", True)]
    assert services.tag_findings_announce(manifest_id=queued.pk) == 0
    assert len(events()) == 1
