"""The tag listing at scale: a repository with 10,000 tags and 100,000 history rows answers its
first page, a deep page, one tag's history and the alive tags in a fixed number of queries,
whatever the page size or position, each query served in order by an index."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from accounts import services as account_services
from accounts.models import User
from bench.tags_scale import build_tag_history
from registry import services
from registry.models import Repository, Tag
from registry.permissions import Principal
from tests.conftest import PASSWORD
from tests.registry_rest.conftest import Api

TAGS, ROWS_PER_TAG = 10_000, 10
PATH = "repository/scaler/big/tag/"
# Token, repository by name, the page of rows (with their manifests); nothing per row.
MAX_QUERIES = 3


@dataclass
class Big:
    user_id: int
    repository_id: int


@pytest.fixture(scope="module")
def big(django_db_setup, django_db_blocker):
    """Built once per module (bulk inserts outside the tests' transactions), removed at the end."""
    with django_db_blocker.unblock():
        user = account_services.user_create(username="scaler", password=PASSWORD)
        repository = services.repository_create(
            namespace=user.namespace, name="big", principal=Principal(kind="user", user=user)
        )
        build_tag_history(repository=repository, tags=TAGS, rows_per_tag=ROWS_PER_TAG)
    yield Big(user.pk, repository.pk)
    with django_db_blocker.unblock():
        Tag.objects.filter(repository_id=repository.pk).delete()
        Repository.objects.filter(pk=repository.pk).delete()
        User.objects.filter(pk=user.pk).delete()


@pytest.fixture
def api(db, big):
    return Api(User.objects.get(pk=big.user_id))


def get(api, **params):
    with CaptureQueriesContext(connection) as queries:
        response = api.get(PATH, **params)
    assert response.status_code == 200, response.content
    return response.json(), queries


def test_there_are_ten_thousand_tags_and_a_hundred_thousand_rows(db, big):
    assert Tag.objects.filter(repository_id=big.repository_id).count() == TAGS * ROWS_PER_TAG
    alive = Tag.objects.filter(repository_id=big.repository_id, lifetime_end__isnull=True)
    assert alive.count() == TAGS


def test_the_first_page_is_the_newest_and_costs_a_fixed_number_of_queries(api):
    body, queries = get(api, limit=100)
    assert len(queries) <= MAX_QUERIES, [q["sql"] for q in queries]
    assert [t["name"] for t in body["tags"][:2]] == ["tag-09999", "tag-09998"]
    assert all("end_ts" not in t for t in body["tags"]) and body["has_additional"] is True
    small, fewer = get(api, limit=1)
    assert len(fewer) == len(queries) and small["tags"][0] == body["tags"][0]


def test_a_deep_page_costs_the_same(api):
    pages = TAGS * ROWS_PER_TAG // 100
    body, queries = get(api, limit=100, page=pages)
    assert len(queries) <= MAX_QUERIES
    # The oldest lifetimes: the first generation, ended, the very first row last.
    assert body["has_additional"] is False and len(body["tags"]) == 100
    assert body["tags"][-1]["name"] == "tag-00000" and all("end_ts" in t for t in body["tags"])
    before, _ = get(api, limit=100, page=pages - 1)
    assert before["has_additional"] is True
    assert before["tags"][-1]["start_ts"] >= body["tags"][0]["start_ts"]


def test_one_tags_history_costs_the_same(api):
    body, queries = get(api, specificTag="tag-04321")
    assert len(queries) <= MAX_QUERIES
    tags = body["tags"]
    assert len(tags) == ROWS_PER_TAG and {t["name"] for t in tags} == {"tag-04321"}
    assert "end_ts" not in tags[0] and all(t["end_ts"] == u["start_ts"] for t, u in zip(tags[1:], tags, strict=False))


def test_alive_tags_and_a_name_filter_cost_the_same(api):
    body, queries = get(api, onlyActiveTags="true", limit=100)
    assert len(queries) <= MAX_QUERIES
    assert len(body["tags"]) == 100 and all("end_ts" not in t for t in body["tags"])
    deep, queries = get(api, onlyActiveTags="true", limit=100, page=TAGS // 100)
    assert len(queries) <= MAX_QUERIES and deep["tags"][-1]["name"] == "tag-00000"
    assert deep["has_additional"] is False
    named, queries = get(api, filter_tag_name="like:tag-0432", limit=100)
    assert len(queries) <= MAX_QUERIES
    assert len(named["tags"]) == 100 and {t["name"][:8] for t in named["tags"]} == {"tag-0432"}


def _plan(sql: str, params) -> str:
    with connection.cursor() as cursor:
        if connection.vendor == "sqlite":
            cursor.execute(f"EXPLAIN QUERY PLAN {sql}", params)
            return "\n".join(str(row[-1]) for row in cursor.fetchall())
        cursor.execute(f"EXPLAIN {sql}", params)
        return "\n".join(row[0] for row in cursor.fetchall())


@pytest.mark.parametrize(
    "params, index",
    [
        ({"limit": 100}, "tag_listing_idx"),
        ({"limit": 100, "page": 900}, "tag_listing_idx"),
        ({"specificTag": "tag-04321"}, "tag_history_idx"),
        ({"onlyActiveTags": "true", "limit": 100}, "tag_alive_listing_idx"),
    ],
)
def test_the_page_is_found_in_order_in_an_index(api, params, index):
    """Only the page's own rows are sorted (by the outer query); the rows before it are skipped
    as index entries, in index order."""
    _, queries = get(api, **params)
    (listing,) = [q["sql"] for q in queries if "registry_tag" in q["sql"]]
    # The logged statement has its parameters inlined.
    plan = _plan(listing, [])
    if connection.vendor == "sqlite":
        assert any(line.startswith("SEARCH U0 USING") and index in line for line in plan.splitlines()), plan
    else:
        assert f"using {index} on registry_tag u0" in plan.lower(), plan
    if connection.vendor == "sqlite":
        assert "SCAN registry_tag" not in plan and "SCAN U0" not in plan, plan
    else:
        assert "Seq Scan on registry_tag" not in plan, plan
