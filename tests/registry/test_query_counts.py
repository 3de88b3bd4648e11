"""Pinned query counts for the hot reads: a pull must not grow queries as features arrive."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from tests.registry.conftest import make_image


@pytest.fixture
def pushed(v2, as_alice, repo):
    name = repo.full_name
    image = as_alice.push_image(name, "latest", make_image("counted"))
    return name, image, as_alice.pull(name)


def _count(client, method, path, headers):
    with CaptureQueriesContext(connection) as queries:
        response = getattr(client, method)(path, **headers)
    assert response.status_code in (200, 307), response.content
    return len(queries)


@pytest.mark.parametrize("method", ["get", "head"])
def test_a_manifest_pull_by_digest_or_tag_is_one_query(as_alice, pushed, method):
    name, image, headers = pushed
    # Warm: the token has been verified once (verification is cached per process, no database).
    as_alice.client.get(f"/v2/{name}/manifests/latest", **headers)
    assert _count(as_alice.client, method, f"/v2/{name}/manifests/{image.digest}", headers) == 1
    assert _count(as_alice.client, method, f"/v2/{name}/manifests/latest", headers) == 1


@pytest.mark.parametrize("method", ["get", "head"])
def test_a_blob_pull_is_one_query(as_alice, pushed, method):
    name, image, headers = pushed
    digest = make_image("counted").doc["layers"][0]["digest"]
    as_alice.client.head(f"/v2/{name}/blobs/{digest}", **headers)
    assert _count(as_alice.client, method, f"/v2/{name}/blobs/{digest}", headers) == 1


def test_an_anonymous_pull_of_a_public_manifest_is_one_query(v2, pushed, repo):
    name, image, _ = pushed
    repo.visibility = repo.Visibility.PUBLIC
    repo.save()
    assert _count(v2().client, "get", f"/v2/{name}/manifests/{image.digest}", {}) == 1
