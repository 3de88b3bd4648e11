"""Quay's security API over HTTP: shape (against the published schema), statuses, permissions."""

import pytest
from drf_spectacular.generators import SchemaGenerator

from registry.models import Repository, RepositoryPermission
from tests.registry.conftest import make_index
from tests.registry_rest.conftest import Api, problem
from tests.scanning.conftest import image, import_docs, layer
from tests.scanning.images import alpine_layers, debian_layers
from tests.scanning.test_matching import fixture_advisories
from tests.test_openapi_schema import mismatches

PATH = "/api/v1/repository/{repo}/manifest/{digest}/security"


@pytest.fixture(scope="module")
def schema(django_db_blocker):
    import json

    with django_db_blocker.unblock():
        document = SchemaGenerator().get_schema(request=None, public=True)
    return json.loads(json.dumps(document, default=str))


def documented(schema):
    operation = schema["paths"]["/api/v1/repository/{repository}/manifest/{manifestref}/security"]["get"]
    assert operation["operationId"] == "getRepoManifestSecurity"
    return operation["responses"]["200"]["content"]["application/json"]["schema"]


def test_a_scanned_manifest_has_quays_shape_with_vulnerabilities(push, alice, tmp_path, schema):
    manifest = push(image(debian_layers()))
    import_docs(tmp_path, *fixture_advisories())
    answer = Api(alice).get(PATH.format(repo="alice/app", digest=manifest.digest), vulnerabilities="true")
    assert answer.status_code == 200, answer.content
    body = answer.json()
    assert mismatches(schema, body, documented(schema)) == []
    assert body["status"] == "scanned"
    layer_doc = body["data"]["Layer"]
    assert (layer_doc["Name"], layer_doc["NamespaceName"], layer_doc["IndexedByVersion"]) == (
        manifest.digest,
        "Debian:12",
        1,
    )
    features = {f["Name"]: f for f in layer_doc["Features"]}
    assert len(features) == 9
    ssl = features["libssl3"]
    assert (ssl["Version"], ssl["VersionFormat"], ssl["NamespaceName"]) == ("3.0.11-1~deb12u1", "dpkg", "Debian:12")
    assert ssl["Vulnerabilities"] == [
        {
            "Name": "DSA-5600-1",
            "NamespaceName": "Debian:12",
            "Description": "A flaw in openssl.",
            "Link": "https://security.example/DSA-5600-1",
            "Severity": "Critical",
            "FixedBy": "3.0.11-1~deb12u2",
            "Metadata": {
                "UpdatedBy": "",
                "RepoName": None,
                "RepoLink": None,
                "DistroName": "Debian GNU/Linux 12 (bookworm)",
                "DistroVersion": "12",
                "Aliases": [],
                "NVD": {"CVSSv3": {"Vectors": "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H", "Score": 9.8}},
            },
        }
    ]
    assert features["six"]["Vulnerabilities"][0]["FixedBy"] == ""
    assert features["curl"]["Vulnerabilities"] == []
    # Without ?vulnerabilities=true the lists are empty.
    plain = Api(alice).get(PATH.format(repo="alice/app", digest=manifest.digest)).json()
    assert all(f["Vulnerabilities"] == [] for f in plain["data"]["Layer"]["Features"])


def test_queued_failed_and_unsupported_have_no_data(push, alice, schema):
    api = Api(alice)
    queued = push(image(alpine_layers()), "queued", scan=False)
    failed = push(image([layer({"lib/apk/db/installed": b"garbage\n"})], seed="bad"), "bad")
    children = [image(alpine_layers(), seed="c1")]
    push(children[0], children[0].digest)
    index = push(make_index(children), "multi")
    for manifest, status in ((queued, "queued"), (failed, "failed"), (index, "unsupported")):
        body = api.get(PATH.format(repo="alice/app", digest=manifest.digest)).json()
        assert body == {"status": status, "data": None}
    # ``data`` is documented as nullable (the schema checker of tests/test_openapi_schema.py
    # follows the reference and does not see the flag beside it).
    data = documented(schema)
    data = schema["components"]["schemas"][data["$ref"].split("/")[-1]]["properties"]["data"]
    assert data.get("nullable") is True, data


def test_read_permission_is_required(push, alice, bob, repo):
    manifest = push(image(alpine_layers()))
    url = PATH.format(repo="alice/app", digest=manifest.digest)
    problem(Api().get(url), 401)
    problem(Api(bob).get(url), 404)
    RepositoryPermission.objects.create(repository=repo, user=bob, role="read")
    assert Api(bob).get(url).status_code == 200
    problem(Api(alice).get(PATH.format(repo="alice/app", digest="sha256:" + "0" * 64)), 404)
    Repository.objects.filter(pk=repo.pk).update(visibility=Repository.Visibility.PUBLIC)
    assert Api().get(url).json()["status"] == "scanned"
