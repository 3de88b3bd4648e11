"""The Tags tab: the table (Tag, Size, Last Modified, Expires, short copyable digest), paging and
filter, the gear menu's Add New Tag (with the confirmation before a move), Move Tag, Change
Expiration and Delete Tag, the multi-select delete; who may do what, CSRF, errors explained with
the input kept, and a fixed number of queries with 10,000 tags."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone

from registry import selectors as registry_selectors
from registry import services
from registry.models import Repository, Role, Tag, UsageLog
from tests.registry.conftest import grant, make_image, store_image, user_principal
from tests.ui.conftest import make_repository, messages_of, text

TAGS = "/repository/alice/hello?tab=tags"


def words(response) -> str:
    """The page's text without the spaces that inline markup leaves around punctuation."""
    return re.sub(r"\(\s+", "(", re.sub(r"\s+([.,)])", r"\1", text(response)))


def post_url(repository, action: str) -> str:
    return f"/repository/{repository.full_name}/-/tags/{action}"


def alive(repository, name: str) -> Tag | None:
    return registry_selectors.tag_alive(repository=repository, name=name)


@pytest.fixture
def two_images(alice, public_repo):
    """alice/hello: ``v1`` (image one) and ``v2`` (image two); returns their digests."""
    store_image(public_repo, "v2", make_image("two"), user_principal(alice))
    return alive(public_repo, "v1").manifest.digest, alive(public_repo, "v2").manifest.digest


# --- The table ------------------------------------------------------------------------------------


def test_the_table_shows_each_tag_with_size_dates_and_a_short_copyable_digest(as_alice, alice, two_images):
    one, two = two_images
    services.tag_set_expiration(
        repository=Repository.objects.get(name="hello"),
        name="v1",
        expiration=timezone.now() + timedelta(days=3),
        principal=user_principal(alice),
        ip=None,
    )
    response = as_alice.get(TAGS)
    assert response.status_code == 200
    html, body = response.content.decode(), text(response)
    assert "Tag Size Last Modified Expires Manifest" in body
    # Newest first; v2 never expires, v1 has the date just set.
    assert body.index("v2") < body.index(" v1 ")
    assert re.search(r"v2 \d+ bytes 0 minutes ago Never " + re.escape(two[:19]), body)
    v1_row = re.search(r"<tr>(?:(?!</tr>).)*?>v1</th>.*?</tr>", html, re.S).group(0)
    assert (timezone.now() + timedelta(days=3)).strftime("%Y-%m-%d") in v1_row
    # The digest is shown short (sha256: and 12 hex digits); the Copy button holds all of it.
    assert f'<code title="{one}">{one[:19]}</code>' in html
    assert f'data-copy-text="{one}"' in html and f'data-copy-text="{two}"' in html
    assert "2 tags" in body


def test_writers_get_the_whole_gear_menu_and_the_multi_select(as_bob, bob, public_repo):
    grant(public_repo, bob, Role.WRITE)
    html = as_bob.get(TAGS).content.decode()
    menu = re.search(r'<details class="menu menu-light tag-menu">.*?</details>', html, re.S).group(0)
    items = re.findall(r"<a href=\"([^\"]+)\">([^<]+)</a>", menu)
    assert [label for _, label in items] == [
        "Add New Tag",
        "Move Tag",
        "Change Expiration",
        "Delete Tag",
        "Fetch Tag",
        "View Tag History",
    ]
    assert items[0][0] == "/repository/alice/hello?tab=tags&amp;tag=v1&amp;action=add"
    assert 'aria-label="Actions for tag v1"' in menu
    assert 'form="tags-bulk"' in html and "Delete selected" in html


@pytest.mark.parametrize("client_name", ["reader", "anonymous"])
def test_readers_and_visitors_read_tags_and_fetch_them_only(client_name, bob, public_repo, anonymous, as_bob):
    if client_name == "reader":
        grant(public_repo, bob, Role.READ)
    client = as_bob if client_name == "reader" else anonymous
    response = client.get(TAGS)
    assert response.status_code == 200
    html = response.content.decode()
    menu = re.search(r'<details class="menu menu-light tag-menu">.*?</details>', html, re.S).group(0)
    assert re.findall(r">([^<>]+)</a>", menu) == ["Fetch Tag", "View Tag History"]
    assert "tags-bulk" not in html and "Delete selected" not in html
    for action in ("add", "move", "expiration", "delete"):
        answer = client.get(f"{TAGS}&tag=v1&action={action}")
        assert answer.status_code == 403, action
        assert "You need write permission on alice/hello to do this." in text(answer)
    assert client.get(f"{TAGS}&tag=v1&action=fetch").status_code == 200


def test_private_tags_are_hidden_from_outsiders(as_bob, anonymous, alice, private_repo):
    store_image(private_repo, "v1", make_image("p"), user_principal(alice))
    assert as_bob.get("/repository/alice/secret?tab=tags").status_code == 404
    response = anonymous.get("/repository/alice/secret?tab=tags")
    assert response.status_code == 302 and response["Location"].startswith("/signin?next=")
    assert as_bob.post(post_url(private_repo, "delete"), {"tags": "v1"}).status_code == 404
    assert alive(private_repo, "v1") is not None


def test_an_empty_repository_says_how_to_add_tags(as_alice, private_repo):
    body = text(as_alice.get("/repository/alice/secret?tab=tags"))
    assert "This repository has no tags: push an image to it to add one." in body


# --- Paging and filter ----------------------------------------------------------------------------


@pytest.fixture
def many_tags(alice, public_repo):
    """120 more tags on v1's image, ``t000`` (oldest) to ``t119`` (newest)."""
    manifest = alive(public_repo, "v1").manifest
    start = timezone.now() - timedelta(days=1)
    Tag.objects.bulk_create(
        Tag(repository=public_repo, name=f"t{n:03d}", manifest=manifest, lifetime_start=start + timedelta(seconds=n))
        for n in range(120)
    )
    return public_repo


def tag_names(response) -> list[str]:
    return re.findall(r'<th scope="row" class="tag-name">([^<]+)</th>', response.content.decode())


def test_tags_come_fifty_to_a_page(as_alice, many_tags):
    first = as_alice.get(TAGS)
    assert tag_names(first)[:3] == ["v1", "t119", "t118"] and len(tag_names(first)) == 50
    assert "121 tags, 1–50 shown" in text(first) and "Page 1 of 3" in text(first)
    last = as_alice.get(f"{TAGS}&page=3")
    assert tag_names(last) == [f"t{n:03d}" for n in range(20, -1, -1)]
    assert 'href="/repository/alice/hello?tab=tags&amp;page=2">Previous</a>' in last.content.decode()
    # A page past the end shows the last one; nonsense shows the first.
    assert tag_names(as_alice.get(f"{TAGS}&page=99")) == tag_names(last)
    assert tag_names(as_alice.get(f"{TAGS}&page=-4")) == tag_names(first)
    assert tag_names(as_alice.get(f"{TAGS}&page=abc")) == tag_names(first)


def test_the_filter_keeps_to_names_containing_the_text_across_pages_and_panels(as_alice, many_tags):
    response = as_alice.get(f"{TAGS}&filter=t11")
    assert tag_names(response) == [f"t11{n}" for n in range(9, -1, -1)]
    assert "10 tags matching “t11”" in text(response)
    html = response.content.decode()
    # The gear menu's panels keep the filter, and so do the forms they hold.
    assert "/repository/alice/hello?tab=tags&amp;filter=t11&amp;tag=t119&amp;action=add" in html
    panel = as_alice.get(f"{TAGS}&filter=t11&tag=t119&action=add").content.decode()
    assert '<input type="hidden" name="listing_filter" value="t11">' in panel
    nothing = as_alice.get(f"{TAGS}&filter=zzz")
    assert "No tag matches “zzz”." in text(nothing)


def test_the_filter_text_is_escaped(as_alice, public_repo):
    evil = '"><script>alert(1)</script>'
    html = as_alice.get("/repository/alice/hello", {"tab": "tags", "filter": evil}).content.decode()
    assert "<script>alert(1)</script>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html


# --- Add New Tag, and the confirmation before a move ----------------------------------------------


def test_add_new_tag_from_a_tags_gear_menu(as_alice, alice, two_images, many_tags):
    one, _ = two_images
    panel = as_alice.get(f"{TAGS}&page=2&tag=v1&action=add")
    assert panel.status_code == 200
    body, html = words(panel), panel.content.decode()
    assert "Add New Tag: v1" in body and f"A new name for the image of tag v1 ({one[:19]})" in body
    assert f'name="manifest_digest" value="{one}"' in html and 'name="source" value="v1"' in html
    response = as_alice.post(
        post_url(many_tags, "add"),
        {"name": "stable", "manifest_digest": one, "source": "v1", "listing_page": "2", "listing_filter": ""},
    )
    assert response.status_code == 302
    assert response["Location"] == "/repository/alice/hello?tab=tags&page=2"
    assert alive(many_tags, "stable").manifest.digest == one
    assert UsageLog.objects.filter(kind="create_tag", actor=alice, metadata__tag="stable").exists()
    page = as_alice.get(response["Location"])
    assert f"Added tag stable to {one[:19]}." in messages_of(page)


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("-bad", "“-bad” is not a valid tag name."),
        ("has space", "“has space” is not a valid tag name."),
        ("x" * 129, "is not a valid tag name."),
        ("", "This field is required."),
    ],
)
def test_a_bad_tag_name_is_explained_with_the_input_kept(as_alice, two_images, public_repo, name, message):
    one, _ = two_images
    response = as_alice.post(post_url(public_repo, "add"), {"name": name, "manifest_digest": one, "source": "v1"})
    assert response.status_code == 400
    assert message in text(response)
    html = response.content.decode()
    assert "Add New Tag: v1" in text(response)
    if name:
        assert f'value="{name}"' in html
    assert Tag.objects.filter(repository=public_repo).count() == 2


def test_an_existing_name_asks_to_confirm_a_move_rather_than_an_add(as_alice, alice, two_images, public_repo):
    one, two = two_images
    data = {"name": "v2", "manifest_digest": one, "source": "v1"}
    response = as_alice.post(post_url(public_repo, "add"), data)
    assert response.status_code == 200
    body = words(response)
    assert f"The tag v2 already exists and points at {two[:19]}. Move it to {one[:19]}, the image of v1" in body
    html = response.content.decode()
    assert '<input type="hidden" name="confirm_move" value="on">' in html
    assert ">Move Tag</button>" in html
    # Nothing moved yet.
    assert alive(public_repo, "v2").manifest.digest == two

    response = as_alice.post(post_url(public_repo, "add"), {**data, "confirm_move": "on"})
    assert response.status_code == 302
    assert alive(public_repo, "v2").manifest.digest == one
    assert UsageLog.objects.filter(kind="move_tag", actor=alice, metadata__tag="v2").exists()
    assert f"Moved tag v2 from {two[:19]} to {one[:19]}." in messages_of(as_alice.get(response["Location"]))
    # The old lifetime is history now.
    assert Tag.objects.filter(repository=public_repo, name="v2", lifetime_end__isnull=False).count() == 1


def test_adding_a_name_that_already_points_at_the_image_is_explained(as_alice, two_images, public_repo):
    one, _ = two_images
    response = as_alice.post(post_url(public_repo, "add"), {"name": "v1", "manifest_digest": one, "source": "v1"})
    assert response.status_code == 400
    assert "The tag v1 already points at this image." in text(response)


def test_an_image_that_is_gone_is_explained(as_alice, public_repo):
    gone = "sha256:" + "0" * 64
    response = as_alice.post(post_url(public_repo, "add"), {"name": "new", "manifest_digest": gone, "source": "v1"})
    assert response.status_code == 400
    assert "The image sha256:000000000000 is no longer in this repository." in text(response)
    assert alive(public_repo, "new") is None


# --- Move Tag --------------------------------------------------------------------------------------


def test_move_tag_to_the_image_of_another_tag_or_a_digest(as_alice, alice, two_images, public_repo):
    one, two = two_images
    panel = text(as_alice.get(f"{TAGS}&tag=v1&action=move"))
    assert "Move Tag: v1" in panel and "Move to the image of" in panel
    response = as_alice.post(post_url(public_repo, "move"), {"tag": "v1", "target": "v2"})
    assert response.status_code == 302
    assert alive(public_repo, "v1").manifest.digest == two
    assert f"Moved tag v1 to {two[:19]}." in messages_of(as_alice.get(response["Location"]))
    response = as_alice.post(post_url(public_repo, "move"), {"tag": "v1", "target": one})
    assert response.status_code == 302 and alive(public_repo, "v1").manifest.digest == one
    assert UsageLog.objects.filter(kind="move_tag", actor=alice, metadata__tag="v1").count() == 2


@pytest.mark.parametrize(
    ("target", "message"),
    [
        ("nope", "No tag or manifest “nope” in alice/hello."),
        ("sha256:" + "1" * 64, "No tag or manifest “sha256:" + "1" * 64 + "” in alice/hello."),
        ("not a tag!", "No tag or manifest “not a tag!” in alice/hello."),
        ("v1", "The tag v1 already points at sha256:"),
    ],
)
def test_a_bad_move_target_is_explained_with_the_input_kept(as_alice, two_images, public_repo, target, message):
    response = as_alice.post(post_url(public_repo, "move"), {"tag": "v1", "target": target})
    assert response.status_code == 400
    assert message in text(response)
    assert f'value="{target}"' in response.content.decode()
    assert "Move Tag: v1" in text(response)


# --- Change Expiration -----------------------------------------------------------------------------


def local_input(moment) -> str:
    return timezone.localtime(moment).strftime("%Y-%m-%dT%H:%M")


def test_change_expiration_sets_and_clears_it(as_alice, alice, public_repo):
    panel = as_alice.get(f"{TAGS}&tag=v1&action=expiration").content.decode()
    assert 'type="datetime-local"' in panel and "Expires at (UTC)" in panel
    when = (timezone.now() + timedelta(days=10)).replace(second=0, microsecond=0)
    response = as_alice.post(post_url(public_repo, "expiration"), {"tag": "v1", "expiration": local_input(when)})
    assert response.status_code == 302
    assert alive(public_repo, "v1").expiration == when
    assert f"Tag v1 expires at {when:%Y-%m-%d %H:%M} UTC." in messages_of(as_alice.get(response["Location"]))
    assert UsageLog.objects.filter(kind="change_tag_expiration", actor=alice).exists()
    # The panel shows the current value; an empty field clears it.
    assert f'value="{local_input(when)}"' in as_alice.get(f"{TAGS}&tag=v1&action=expiration").content.decode()
    response = as_alice.post(post_url(public_repo, "expiration"), {"tag": "v1", "expiration": ""})
    assert response.status_code == 302 and alive(public_repo, "v1").expiration is None
    assert "Tag v1 no longer expires." in messages_of(as_alice.get(response["Location"]))


def test_an_expiration_soon_after_the_push_is_moved_to_the_first_hour_and_said_so(as_alice, public_repo):
    when = (timezone.now() + timedelta(minutes=5)).replace(second=0, microsecond=0)
    response = as_alice.post(post_url(public_repo, "expiration"), {"tag": "v1", "expiration": local_input(when)})
    assert response.status_code == 302
    tag = alive(public_repo, "v1")
    assert tag.expiration == tag.lifetime_start + timedelta(hours=1)
    assert "(A tag lives at least one hour after it was pushed.)" in " ".join(
        messages_of(as_alice.get(response["Location"]))
    )


@pytest.mark.parametrize(
    ("delta", "message"),
    [
        (timedelta(days=-1), "The expiration must be in the future"),
        (timedelta(weeks=105), "An expiration can be at most 104 weeks after the tag was pushed"),
    ],
)
def test_a_past_or_too_distant_expiration_is_explained_with_the_input_kept(as_alice, public_repo, delta, message):
    typed = local_input(timezone.now() + delta)
    response = as_alice.post(post_url(public_repo, "expiration"), {"tag": "v1", "expiration": typed})
    assert response.status_code == 400
    assert message in text(response)
    assert f'value="{typed}"' in response.content.decode()
    assert alive(public_repo, "v1").expiration is None


def test_a_malformed_date_is_explained(as_alice, public_repo):
    response = as_alice.post(post_url(public_repo, "expiration"), {"tag": "v1", "expiration": "next tuesday"})
    assert response.status_code == 400 and "Enter a valid date/time." in text(response)
    assert 'value="next tuesday"' in response.content.decode()


def test_the_expiration_of_a_tag_that_is_gone_is_explained(as_alice, public_repo):
    typed = local_input(timezone.now() + timedelta(days=2))
    response = as_alice.post(post_url(public_repo, "expiration"), {"tag": "gone", "expiration": typed})
    assert response.status_code == 400
    assert "There is no tag gone in alice/hello any more." in text(response)


# --- Delete Tag and the multi-select delete ------------------------------------------------------


def test_delete_tag_asks_first_then_deletes_and_says_how_to_restore(as_alice, alice, two_images, public_repo):
    panel = as_alice.get(f"{TAGS}&tag=v1&action=delete")
    body = text(panel)
    assert "Delete Tag: v1" in body and "deletes any image unique to it" in body
    assert "for 2 weeks, it can be restored from Tag History" in body
    assert alive(public_repo, "v1") is not None
    response = as_alice.post(post_url(public_repo, "delete"), {"tags": "v1"})
    assert response.status_code == 302
    assert alive(public_repo, "v1") is None and alive(public_repo, "v2") is not None
    assert UsageLog.objects.filter(kind="delete_tag", actor=alice, metadata__tag="v1").exists()
    page = as_alice.get(response["Location"])
    assert "Deleted tag v1. Restore it from Tag History within 2 weeks." in messages_of(page)
    assert tag_names(page) == ["v2"]


def test_the_multi_select_deletes_every_chosen_tag(as_alice, two_images, many_tags):
    response = as_alice.post(
        post_url(many_tags, "delete"), {"tags": ["t001", "t002", "v2"], "listing_page": "3", "listing_filter": "t"}
    )
    assert response.status_code == 302 and response["Location"] == "/repository/alice/hello?tab=tags&filter=t&page=3"
    assert all(alive(many_tags, name) is None for name in ("t001", "t002", "v2"))
    assert "Deleted 3 tags: t001, t002, v2." in " ".join(messages_of(as_alice.get(response["Location"])))


def test_a_selection_with_a_missing_tag_deletes_nothing(as_alice, two_images, public_repo):
    response = as_alice.post(post_url(public_repo, "delete"), {"tags": ["v1", "gone", "v2"]})
    assert response.status_code == 400
    assert "There is no tag gone in alice/hello any more: nothing was deleted." in text(response)
    assert alive(public_repo, "v1") is not None and alive(public_repo, "v2") is not None


@pytest.mark.parametrize(
    ("data", "message"),
    [({}, "Choose at least one tag."), ({"tags": "../../x"}, "“../../x” is not a valid tag name.")],
)
def test_a_bad_selection_is_explained(as_alice, public_repo, data, message):
    response = as_alice.post(post_url(public_repo, "delete"), data)
    assert response.status_code == 400 and message in text(response)
    assert alive(public_repo, "v1") is not None


def test_without_a_time_machine_the_delete_says_it_is_final(as_alice, alice, public_repo):
    alice.namespace.time_machine_seconds = 0
    alice.namespace.save()
    assert "The time machine of alice is off: this cannot be undone." in text(
        as_alice.get(f"{TAGS}&tag=v1&action=delete")
    )
    response = as_alice.post(post_url(public_repo, "delete"), {"tags": "v1"})
    assert "Deleted tag v1. The time machine of alice is off: this cannot be undone." in messages_of(
        as_alice.get(response["Location"])
    )


# --- Who may change tags ---------------------------------------------------------------------------

CHANGES = [
    ("add", {"name": "new", "manifest_digest": "sha256:" + "0" * 64, "source": "v1"}),
    ("move", {"tag": "v1", "target": "v1"}),
    ("expiration", {"tag": "v1", "expiration": ""}),
    ("delete", {"tags": "v1"}),
]


@pytest.mark.parametrize(("action", "data"), CHANGES, ids=[action for action, _ in CHANGES])
def test_readers_cannot_change_tags(as_bob, bob, public_repo, action, data):
    grant(public_repo, bob, Role.READ)
    response = as_bob.post(post_url(public_repo, action), data)
    assert response.status_code == 403
    assert "You need write permission on alice/hello to do this." in text(response)
    assert alive(public_repo, "v1") is not None


@pytest.mark.parametrize(("action", "data"), CHANGES, ids=[action for action, _ in CHANGES])
def test_anonymous_visitors_sign_in_first(anonymous, public_repo, action, data):
    response = anonymous.post(post_url(public_repo, action), data)
    assert response.status_code == 302 and response["Location"].startswith("/signin?next=")


@pytest.mark.parametrize(("action", "data"), CHANGES, ids=[action for action, _ in CHANGES])
def test_every_tag_form_needs_the_csrf_token(alice, public_repo, action, data):
    client = Client(enforce_csrf_checks=True)
    client.force_login(alice)
    before = list(Tag.objects.values_list("pk", "name", "lifetime_end", "expiration"))
    assert client.post(post_url(public_repo, action), data).status_code == 403
    assert list(Tag.objects.values_list("pk", "name", "lifetime_end", "expiration")) == before


def test_the_tokens_of_the_page_work(alice, two_images, public_repo):
    client = Client(enforce_csrf_checks=True)
    client.force_login(alice)
    html = client.get(f"{TAGS}&tag=v1&action=delete").content.decode()
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', html).group(1)
    response = client.post(post_url(public_repo, "delete"), {"tags": "v1", "csrfmiddlewaretoken": token})
    assert response.status_code == 302 and alive(public_repo, "v1") is None


def test_the_tags_of_a_read_only_repository_do_not_change(as_alice, public_repo):
    Repository.objects.filter(pk=public_repo.pk).update(state=Repository.State.READ_ONLY)
    response = as_alice.post(post_url(public_repo, "delete"), {"tags": "v1"})
    assert response.status_code == 403
    assert "alice/hello is read-only: its tags cannot change." in text(response)
    assert alive(public_repo, "v1") is not None


def test_a_panel_for_a_tag_that_is_gone_says_so(as_alice, public_repo):
    body = text(as_alice.get(f"{TAGS}&tag=gone&action=add"))
    assert "There is no tag gone in alice/hello: it may have been deleted, or it expired." in body


def test_an_organization_repository_follows_the_team_roles(as_bob, alice, org, member_team, bob):
    repository = make_repository(org, "tools", alice)
    store_image(repository, "v1", make_image("org"), user_principal(alice))
    services.repository_permission_set_team(
        repository=repository, team_name="devs", role=Role.WRITE, principal=user_principal(alice), ip=None
    )
    response = as_bob.post(post_url(repository, "delete"), {"tags": "v1"})
    assert response.status_code == 302 and alive(repository, "v1") is None


# --- 10,000 tags -----------------------------------------------------------------------------------

# Repository by name, session, user, star, tag count, the page of tags with their manifests, the
# build switch (whether the Builds tab shows; the owner's role needs no query), the Security
# column's scan summaries of the page's manifests (one query for the page).
MAX_QUERIES = 8


@pytest.mark.parametrize(
    ("query", "first"),
    [
        ("", "tag-09999"),
        ("&page=200", "tag-00049"),
        ("&filter=tag-0432", "tag-04329"),
        ("&page=57&tag=tag-04321&action=fetch", "tag-07199"),
        ("&page=57&tag=tag-04321&action=add", "tag-07199"),
    ],
)
def test_the_tags_tab_with_ten_thousand_tags(as_scaler, django_assert_max_num_queries, query, first):
    # One more query for the panel's tag, none per row; Fetch Tag one more for the robots its
    # Squashed Docker Image choice offers.
    limit = MAX_QUERIES + (1 if "action" in query else 0) + (1 if "action=fetch" in query else 0)
    with django_assert_max_num_queries(limit):
        response = as_scaler.get(f"/repository/scaler/big?tab=tags{query}")
    assert response.status_code == 200
    names, body = tag_names(response), text(response)
    if "filter" in query:
        assert names == [f"tag-0432{n}" for n in range(9, -1, -1)] and "10 tags matching" in body
    else:
        assert names[0] == first and len(names) == 50
        assert "10000 tags" in body and "of 200" in body


def test_moving_a_tag_deleted_meanwhile_adds_it_again(as_alice, two_images, public_repo):
    one, _ = two_images
    response = as_alice.post(post_url(public_repo, "move"), {"tag": "gone", "target": "v1"})
    assert response.status_code == 302 and alive(public_repo, "gone").manifest.digest == one
    assert f"Added tag gone to {one[:19]}." in messages_of(as_alice.get(response["Location"]))


def test_tags_of_a_nested_repository_name(as_alice, alice):
    repository = make_repository(alice.namespace, "team/app", alice)
    store_image(repository, "1.0", make_image("nested"), user_principal(alice))
    html = as_alice.get("/repository/alice/team/app?tab=tags").content.decode()
    assert '<form id="tags-bulk" method="post" action="/repository/alice/team/app/-/tags/delete"' in html
    assert "/repository/alice/team/app?tab=tags&amp;tag=1.0&amp;action=delete" in html
    response = as_alice.post("/repository/alice/team/app/-/tags/delete", {"tags": "1.0"})
    assert response.status_code == 302 and response["Location"] == "/repository/alice/team/app?tab=tags"
    assert alive(repository, "1.0") is None
