"""Pages stay fast with 10,000 tags: the repository page reads a few newest tags and counts the
rest in the database; the list aggregates per page. Query counts are pinned."""

from datetime import timedelta

import pytest
from django.utils import timezone

from registry.models import Tag
from tests.registry.conftest import make_image, store_image, user_principal
from tests.ui.conftest import text

TAGS = 10_000


@pytest.fixture
def big_repo(alice, public_repo):
    manifest = store_image(public_repo, "base", make_image("big"), user_principal(alice))
    manifest_row = public_repo.manifests.get(digest=manifest.digest)
    start = timezone.now() - timedelta(days=1)
    Tag.objects.bulk_create(
        [
            Tag(
                repository=public_repo,
                name=f"t{n:05d}",
                manifest=manifest_row,
                lifetime_start=start + timedelta(seconds=n),
            )
            for n in range(TAGS)
        ],
        batch_size=2000,
    )
    return public_repo


def test_the_repository_page_with_ten_thousand_tags(as_alice, big_repo, django_assert_max_num_queries):
    # 11: one of them is the build switch (whether the Builds tab shows).
    with django_assert_max_num_queries(11):
        response = as_alice.get("/repository/alice/hello")
    body = text(response)
    assert f"The 10 newest of {TAGS + 2} tags." in body
    assert "t09999" in body and "t00000" not in body


def test_the_repository_list_with_ten_thousand_tags(as_alice, big_repo, django_assert_max_num_queries):
    with django_assert_max_num_queries(9):
        assert "alice/hello" in text(as_alice.get("/"))
