"""The referrers API: an OCI index of the manifests whose subject is a digest."""

from urllib.parse import urlencode

import pytest

from registry import services
from registry.manifests import OCI_INDEX, OCI_MANIFEST
from tests.registry.conftest import EMPTY_CONFIG, HELM_CONFIG, assert_error, make_image, sha256, user_principal

SIG = "application/vnd.example.signature"
SBOM = "application/spdx+json"


@pytest.fixture
def subject(as_alice, repo):
    return as_alice.push_image("alice/app", "v1")


@pytest.fixture
def referrers(as_alice, subject):
    """Two signatures and an SBOM (annotated) of ``subject``, pushed by digest as oras does."""
    pushed = []
    for seed, artifact_type, annotations in (
        ("sig1", SIG, None),
        ("sig2", SIG, None),
        ("sbom", SBOM, {"org.opencontainers.image.created": "2024-01-01T00:00:00Z"}),
    ):
        image = make_image(
            seed, config_type=EMPTY_CONFIG, artifact_type=artifact_type, subject=subject, annotations=annotations
        )
        pushed.append(as_alice.push_image("alice/app", image.digest, image))
    return pushed


def get(client, caller, digest, query=""):
    return client.get(f"/v2/alice/app/referrers/{digest}{query}", **caller.pull("alice/app"))


def assert_index(response) -> list[dict]:
    assert response.status_code == 200, response.content
    assert response["Content-Type"] == OCI_INDEX
    body = response.json()
    assert body["schemaVersion"] == 2
    assert body["mediaType"] == OCI_INDEX
    return body["manifests"]


def test_an_unknown_digest_has_an_empty_index(client, as_alice, repo):
    response = get(client, as_alice, sha256(b"nothing refers to me"))
    assert assert_index(response) == []
    assert "OCI-Filters-Applied" not in response
    assert "Link" not in response


def test_it_lists_every_referrer_with_its_type_and_annotations(client, as_alice, subject, referrers):
    manifests = assert_index(get(client, as_alice, subject.digest))
    expected = [
        {
            "mediaType": OCI_MANIFEST,
            "digest": image.digest,
            "size": len(image.raw),
            "artifactType": image.doc["artifactType"],
            **({"annotations": image.doc["annotations"]} if "annotations" in image.doc else {}),
        }
        for image in referrers
    ]
    assert manifests == sorted(expected, key=lambda d: d["digest"])


def test_an_image_referrer_without_artifact_type_reports_its_config_type(client, as_alice, subject):
    chart = make_image("chart", config_type=HELM_CONFIG, subject=subject)
    as_alice.push_image("alice/app", chart.digest, chart)
    assert [d["artifactType"] for d in assert_index(get(client, as_alice, subject.digest))] == [HELM_CONFIG]


def test_the_artifact_type_filter(client, as_alice, subject, referrers):
    response = get(client, as_alice, subject.digest, "?" + urlencode({"artifactType": SBOM}))
    manifests = assert_index(response)
    assert [d["digest"] for d in manifests] == [referrers[2].digest]
    assert response["OCI-Filters-Applied"] == "artifactType"
    response = get(client, as_alice, subject.digest, "?artifactType=application/vnd.none")
    assert assert_index(response) == []
    assert response["OCI-Filters-Applied"] == "artifactType"


def test_paging_with_n_and_link(client, as_alice, subject, referrers):
    all_digests = sorted(image.digest for image in referrers)
    response = get(client, as_alice, subject.digest, "?n=2")
    assert [d["digest"] for d in assert_index(response)] == all_digests[:2]
    link = response["Link"]
    last = all_digests[1].replace(":", "%3A")
    assert link == f'</v2/alice/app/referrers/{subject.digest}?n=2&last={last}>; rel="next"'
    next_path = link[1 : link.index(">")]
    response = client.get(next_path, **as_alice.pull("alice/app"))
    assert [d["digest"] for d in assert_index(response)] == all_digests[2:]
    assert "Link" not in response


def test_paging_keeps_the_filter_in_the_link(client, as_alice, subject, referrers):
    response = get(client, as_alice, subject.digest, f"?artifactType={SIG}&n=1")
    assert len(assert_index(response)) == 1
    assert "artifactType=application%2Fvnd.example.signature" in response["Link"]


def test_referrers_of_another_repository_are_not_listed(client, as_alice, alice, subject, referrers):
    services.repository_create(namespace=alice.namespace, name="other", principal=user_principal(alice))
    response = client.get(f"/v2/alice/other/referrers/{subject.digest}", **as_alice.pull("alice/other"))
    assert assert_index(response) == []


def test_a_deleted_referrer_is_no_longer_listed(client, as_alice, subject, referrers):
    response = client.delete(f"/v2/alice/app/manifests/{referrers[0].digest}", **as_alice.delete("alice/app"))
    assert response.status_code == 202
    digests = [d["digest"] for d in assert_index(get(client, as_alice, subject.digest))]
    assert referrers[0].digest not in digests and len(digests) == 2


def test_a_malformed_digest_is_digest_invalid(client, as_alice, repo):
    assert_error(get(client, as_alice, "sha256:short"), 400, "DIGEST_INVALID")
