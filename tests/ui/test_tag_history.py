"""Tag History (Actions -> View Tags History): each image a tag pointed at and when, Restore on
the entries the time machine keeps (and why the others cannot be restored), restore of deleted
and expired tags, the admins' permanent delete, paging, roles, CSRF, and a fixed number of
queries with 30,000 history rows."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone

from registry import selectors as registry_selectors
from registry import services
from registry.models import Role, Tag, UsageLog
from tests.registry.conftest import grant, make_image, store_image, user_principal
from tests.ui.conftest import BIG_ROWS_PER_TAG, messages_of, text

HISTORY = "/repository/alice/hello?tab=history"


def post_url(repository, action: str) -> str:
    return f"/repository/{repository.full_name}/-/tags/{action}"


def alive_digest(repository, name: str) -> str | None:
    tag = registry_selectors.tag_alive(repository=repository, name=name)
    return tag.manifest.digest if tag is not None else None


def rows(response) -> list[str]:
    """Each history row as text: tag, image, from, until, and what can be done."""
    html = response.content.decode()
    body = re.search(r'<table id="tag-history".*?</table>', html, re.S)
    if body is None:
        return []
    return [
        re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", row)).strip()
        for row in re.findall(r"<tr class=\"history-[a-z-]+\">(.*?)</tr>", body.group(0), re.S)
    ]


@pytest.fixture
def moved(alice, public_repo):
    """alice/hello's ``v1`` pushed with image one, then image two over it (one is overwritten)."""
    one = alive_digest(public_repo, "v1")
    store_image(public_repo, "v1", make_image("two"), user_principal(alice))
    return one, alive_digest(public_repo, "v1")


def test_the_actions_menu_of_the_tags_tab_opens_the_history(as_alice, public_repo):
    html = as_alice.get("/repository/alice/hello?tab=tags").content.decode()
    assert '<a href="/repository/alice/hello?tab=history">View Tags History</a>' in html
    assert "Tag History" in text(as_alice.get(HISTORY))


def test_each_image_a_tag_pointed_at_and_when(as_alice, moved, public_repo):
    one, two = moved
    response = as_alice.get(HISTORY)
    assert response.status_code == 200
    current, overwritten = rows(response)
    assert current.startswith(f"v1 {two[:19]} ") and current.endswith("now Current")
    assert overwritten.startswith(f"v1 {one[:19]} ")
    assert "Restore tag v1 to " + one[:19] in overwritten
    # From and until are the times the tag pointed there: the overwritten entry ends when the
    # current one starts.
    ended = Tag.objects.get(repository=public_repo, name="v1", lifetime_end__isnull=False)
    assert ended.lifetime_end.strftime("%Y-%m-%d %H:%M:%S") in overwritten
    assert ended.lifetime_start.strftime("%Y-%m-%d %H:%M:%S") in overwritten


def test_restore_points_the_tag_back_at_the_overwritten_image(as_alice, alice, moved, public_repo):
    one, two = moved
    response = as_alice.post(post_url(public_repo, "restore"), {"tag": "v1", "manifest_digest": one})
    assert response.status_code == 302 and response["Location"] == HISTORY
    assert alive_digest(public_repo, "v1") == one
    assert UsageLog.objects.filter(kind="revert_tag", actor=alice, metadata__tag="v1").exists()
    page = as_alice.get(response["Location"])
    assert f"Restored tag v1 to {one[:19]}." in messages_of(page)
    newest, middle, oldest = rows(page)
    assert newest.startswith(f"v1 restored {one[:19]}") and newest.endswith("Current")
    assert "Restore tag v1 to " + two[:19] in middle
    # The first entry's image is the tag's image again: nothing to restore there.
    assert oldest.endswith("v1 points at this image again")


def test_a_deleted_tag_comes_back(as_alice, public_repo):
    digest = alive_digest(public_repo, "v1")
    as_alice.post(post_url(public_repo, "delete"), {"tags": "v1"})
    assert alive_digest(public_repo, "v1") is None
    (entry,) = rows(as_alice.get(HISTORY))
    assert "Restore tag v1 to" in entry
    response = as_alice.post(post_url(public_repo, "restore"), {"tag": "v1", "manifest_digest": digest})
    assert response.status_code == 302 and alive_digest(public_repo, "v1") == digest


def test_an_expired_tag_shows_when_it_expired_and_can_be_restored(as_alice, public_repo):
    digest = alive_digest(public_repo, "v1")
    when = timezone.now() - timedelta(hours=2)
    Tag.objects.filter(repository=public_repo, name="v1").update(expiration=when)
    (entry,) = rows(as_alice.get(HISTORY))
    assert f"{when:%Y-%m-%d %H:%M:%S} (expired)" in entry and "Restore tag v1" in entry
    as_alice.post(post_url(public_repo, "restore"), {"tag": "v1", "manifest_digest": digest})
    assert alive_digest(public_repo, "v1") == digest


def test_an_alive_tag_that_will_expire_says_when(as_alice, alice, public_repo):
    when = (timezone.now() + timedelta(days=5)).replace(second=0, microsecond=0)
    services.tag_set_expiration(
        repository=public_repo, name="v1", expiration=when, principal=user_principal(alice), ip=None
    )
    (entry,) = rows(as_alice.get(HISTORY))
    assert entry.endswith(f"now , expires {when:%Y-%m-%d %H:%M} Current")


def test_entries_outside_the_time_machine_say_why_they_cannot_be_restored(as_alice, alice, moved, public_repo):
    one, _ = moved
    alice.namespace.time_machine_seconds = 86400
    alice.namespace.save()
    Tag.objects.filter(repository=public_repo, lifetime_end__isnull=False).update(
        lifetime_start=timezone.now() - timedelta(days=3), lifetime_end=timezone.now() - timedelta(days=2)
    )
    response = as_alice.get(HISTORY)
    _, old = rows(response)
    assert old.endswith("Outside the time machine (1 day): cannot be restored")
    assert "Restore" not in old
    # Posting the restore anyway is refused by the service, and said so.
    response = as_alice.post(post_url(public_repo, "restore"), {"tag": "v1", "manifest_digest": one})
    assert response.status_code == 400
    assert "the entry is outside the time machine and cannot be restored" in text(response)
    assert alive_digest(public_repo, "v1") != one


def test_without_a_time_machine_nothing_is_restorable(as_alice, alice, moved):
    alice.namespace.time_machine_seconds = 0
    alice.namespace.save()
    _, old = rows(as_alice.get(HISTORY))
    assert old.endswith("Outside the time machine (None): cannot be restored")


def test_restoring_an_image_the_tag_never_had_is_explained(as_alice, alice, moved, public_repo):
    store_image(public_repo, "other", make_image("three"), user_principal(alice))
    other = alive_digest(public_repo, "other")
    response = as_alice.post(post_url(public_repo, "restore"), {"tag": "v1", "manifest_digest": other})
    assert response.status_code == 400 and f"Tag v1 never pointed at {other}" in text(response)
    gone = "sha256:" + "0" * 64
    response = as_alice.post(post_url(public_repo, "restore"), {"tag": "v1", "manifest_digest": gone})
    assert response.status_code == 400
    assert "The image sha256:000000000000 is no longer stored: tag v1 cannot go back to it." in text(response)


def test_one_tags_history_and_the_way_back(as_alice, alice, moved, public_repo):
    store_image(public_repo, "other", make_image("three"), user_principal(alice))
    assert len(rows(as_alice.get(HISTORY))) == 3
    only = as_alice.get(f"{HISTORY}&tag=v1")
    assert [row.split()[0] for row in rows(only)] == ["v1", "v1"]
    assert "Tag History: v1" in text(only)
    html = as_alice.get("/repository/alice/hello?tab=tags").content.decode()
    assert '<a href="/repository/alice/hello?tab=history&amp;tag=v1">View Tag History</a>' in html
    assert "Tag nope has no history in alice/hello." in text(as_alice.get(f"{HISTORY}&tag=nope"))
    # A restore from one tag's page comes back to it.
    one, _ = moved
    response = as_alice.post(
        post_url(public_repo, "restore"),
        {"tag": "v1", "manifest_digest": one, "listing_filter": "v1", "listing_page": "1"},
    )
    assert response["Location"] == f"{HISTORY}&tag=v1"


def test_history_pages_run_from_newer_to_older(as_alice, alice, public_repo):
    manifest = public_repo.manifests.get()
    start = timezone.now() - timedelta(days=1)
    Tag.objects.bulk_create(
        Tag(
            repository=public_repo,
            name="busy",
            manifest=manifest,
            lifetime_start=start + timedelta(minutes=n),
            lifetime_end=start + timedelta(minutes=n + 1),
        )
        for n in range(60)
    )
    first = as_alice.get(HISTORY)
    assert len(rows(first)) == 50
    assert f'href="{HISTORY}&amp;page=2">Older</a>' in first.content.decode()
    second = as_alice.get(f"{HISTORY}&page=2")
    assert len(rows(second)) == 11
    assert f'href="{HISTORY}">Newer</a>' in second.content.decode() and "Older" not in text(second)


# --- Roles, permanent delete, CSRF -------------------------------------------------------------------


def test_readers_see_the_history_without_restore(as_bob, bob, moved, public_repo, anonymous):
    one, _ = moved
    grant(public_repo, bob, Role.READ)
    for client in (as_bob, anonymous):
        response = client.get(HISTORY)
        assert response.status_code == 200
        _, old = rows(response)
        assert old.endswith("Restorable by writers")
        table = re.search(r'<table id="tag-history".*?</table>', response.content.decode(), re.S).group(0)
        assert "<form" not in table
    response = as_bob.post(post_url(public_repo, "restore"), {"tag": "v1", "manifest_digest": one})
    assert response.status_code == 403
    assert "You need write permission on alice/hello to do this." in text(response)
    assert alive_digest(public_repo, "v1") != one


def test_writers_restore_but_only_admins_delete_permanently(as_bob, bob, as_alice, alice, moved, public_repo):
    one, _ = moved
    grant(public_repo, bob, Role.WRITE)
    _, old = rows(as_bob.get(HISTORY))
    assert "Restore tag v1" in old and "Delete permanently" not in old
    response = as_bob.post(post_url(public_repo, "purge"), {"tag": "v1", "manifest_digest": one})
    assert response.status_code == 403 and "Only administrators of alice/hello can do this." in text(response)

    _, old = rows(as_alice.get(HISTORY))
    assert "Delete permanently tag v1 on " + one[:19] in old
    response = as_alice.post(post_url(public_repo, "purge"), {"tag": "v1", "manifest_digest": one})
    assert response.status_code == 302
    assert f"Permanently deleted 1 history entry of tag v1 on {one[:19]}." in messages_of(
        as_alice.get(response["Location"])
    )
    assert len(rows(as_alice.get(HISTORY))) == 1
    assert UsageLog.objects.filter(kind="purge_tag", actor=alice).exists()
    assert not registry_selectors.tag_restorable(
        repository=public_repo, name="v1", manifest_id=public_repo.manifests.get(digest=one).pk
    )
    response = as_alice.post(post_url(public_repo, "purge"), {"tag": "v1", "manifest_digest": one})
    assert response.status_code == 400
    assert f"Tag v1 has no ended entry on {one[:19]} to delete." in text(response)


@pytest.mark.parametrize("action", ["restore", "purge"])
def test_history_forms_need_the_csrf_token(alice, moved, public_repo, action):
    one, _ = moved
    client = Client(enforce_csrf_checks=True)
    client.force_login(alice)
    before = list(Tag.objects.values_list("pk", "lifetime_end", "purged"))
    assert client.post(post_url(public_repo, action), {"tag": "v1", "manifest_digest": one}).status_code == 403
    assert list(Tag.objects.values_list("pk", "lifetime_end", "purged")) == before


def test_a_malformed_entry_is_explained(as_alice, public_repo):
    response = as_alice.post(post_url(public_repo, "restore"), {"tag": "<b>", "manifest_digest": ""})
    assert response.status_code == 400 and "Choose a history entry to restore." in text(response)


def test_outsiders_cannot_see_private_history(as_bob, anonymous, alice, private_repo):
    store_image(private_repo, "v1", make_image("p"), user_principal(alice))
    assert as_bob.get("/repository/alice/secret?tab=history").status_code == 404
    assert anonymous.get("/repository/alice/secret?tab=history").status_code == 302


# --- 30,000 history rows ------------------------------------------------------------------------

# Repository by name, session, user, star, the page of rows, which of them the time machine
# keeps, the current image of their tags, the build switch (whether the Builds tab shows); none
# per row.
MAX_QUERIES = 8


@pytest.mark.parametrize(
    ("query", "first"),
    [("", "tag-09999"), ("&page=600", "tag-00049"), ("&tag=tag-04321", "tag-04321")],
)
def test_the_history_with_thirty_thousand_rows(as_scaler, django_assert_max_num_queries, query, first):
    with django_assert_max_num_queries(MAX_QUERIES):
        response = as_scaler.get(f"/repository/scaler/big?tab=history{query}")
    assert response.status_code == 200
    entries = rows(response)
    assert entries[0].startswith(first)
    if "tag=" in query:
        assert len(entries) == BIG_ROWS_PER_TAG and entries[0].endswith("Current")
        assert all("Restore tag tag-04321" in entry for entry in entries[1:])
    else:
        assert len(entries) == 50
