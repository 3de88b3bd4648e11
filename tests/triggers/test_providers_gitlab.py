"""GitLab (self-hosted layout) triggers end to end against a local GitLab: OAuth with expiring
tokens and refresh, namespaces/groups/projects, refs, activation (deploy key + hook with a
token), push and tag push hooks (``X-Gitlab-Token``), replays, deleted branches, Run Now, and
deletion removing the key and hook."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from builds.models import Build
from tests.triggers.fake_providers import MAIN_SHA, TAG_SHA, FakeGitLab, payload
from tests.triggers.provider_support import BASE, Setup, builds_of, fake_fixture, stored_token, webhook_secret
from triggers.models import BuildTrigger

gitlab = fake_fixture(FakeGitLab)
GIT_URL = "git@127.0.0.1:acme-group/widget.git"


@pytest.fixture
def setup(world, gitlab) -> Setup:
    return Setup(world, gitlab)


@pytest.fixture
def trigger(setup) -> BuildTrigger:
    return setup.ready("acme-group/widget")


def test_connect_pick_activate_push_and_delete(setup, gitlab, world):
    trigger_id = setup.create()
    authorize_url = setup.connect_url(trigger_id)
    assert authorize_url.startswith(f"{gitlab.url}/oauth/authorize?")
    assert "response_type=code" in authorize_url and "scope=api" in authorize_url
    response = setup.callback(gitlab.consent(authorize_url))
    assert response.status_code == 302, response.content
    trigger = BuildTrigger.objects.get(uuid=trigger_id)
    assert stored_token(trigger_id) in gitlab.tokens
    assert trigger.auth_refresh_token_encrypted  # GitLab tokens expire: the refresh token is kept
    assert timedelta(seconds=7000) < trigger.auth_token_expires - timezone.now() <= timedelta(seconds=7200)

    namespaces = setup.admin.get(f"{BASE}/{trigger_id}/namespaces").json()["namespaces"]
    assert [(n["id"], n["personal"], n["title"]) for n in namespaces] == [
        ("gl-alice", True, "Alice Lab"),
        ("acme-group", False, "Acme Group"),
    ]
    sources = setup.admin.post(f"{BASE}/{trigger_id}/sources", {"namespace": "acme-group"}).json()["sources"]
    assert sources == [
        {
            "name": "widget",
            "full_name": "acme-group/widget",
            "description": "The widget project",
            "last_updated": 1796032860,
            "url": f"{gitlab.url}/acme-group/widget",
            "has_admin_permissions": True,
            "private": True,
        }
    ]
    personal = setup.admin.post(f"{BASE}/{trigger_id}/sources", {"namespace": "gl-alice"}).json()["sources"]
    assert [s["full_name"] for s in personal] == ["gl-alice/notes"]
    response = setup.admin.post(
        f"{BASE}/{trigger_id}/fields/branch_name", {"config": {"build_source": "acme-group/widget"}}
    )
    assert response.json()["values"] == ["feature/login", "main"]

    response = setup.activate(trigger_id, "acme-group/widget", context="svc", dockerfile_path="svc/Dockerfile")
    assert response.status_code == 200, response.content
    trigger.refresh_from_db()
    assert trigger.config["build_source"] == "acme-group/widget"
    [key] = gitlab.deploy_keys.values()
    assert key == {
        "repo": "acme-group/widget",
        "title": "Quay builder (acme/app)",
        "key": trigger.public_key,
        "can_push": False,
    }
    hook = gitlab.only_hook()
    assert hook["url"] == f"https://quay.example.com/webhooks/gitlab/trigger/{trigger_id}"
    assert hook["push_events"] is True and hook["tag_push_events"] is True
    assert hook["enable_ssl_verification"] is True
    assert hook["token"] == webhook_secret(trigger)
    # The project is addressed by its encoded path.
    assert gitlab.calls("POST", "/api/v4/projects/acme-group%2Fwidget/hooks")

    response = gitlab.deliver(setup.hooks, "Push Hook", payload("gitlab_push.json"), delivery="e1f2-0001")
    assert response.status_code == 200, response.content
    build = Build.objects.get(uuid=response.json()["build_id"])
    assert build.git == {"url": GIT_URL, "sha": MAIN_SHA, "ref": "refs/heads/main"}
    assert build.context == "svc" and build.dockerfile_path == "svc/Dockerfile"
    assert build.tags == ["main", "latest"]
    assert build.trigger_metadata == {
        "commit": MAIN_SHA,
        "ref": "refs/heads/main",
        "default_branch": "main",
        "git_url": GIT_URL,
        "commit_info": {
            # The commit the checkout_sha names, not the first one listed.
            "url": f"https://gitlab.example.com/acme-group/widget/-/commit/{MAIN_SHA}",
            "message": "Add the health check endpoint\n",
            "date": "2026-11-30T11:00:00+01:00",
            "author": {
                "username": "gl-alice",
                "url": f"{gitlab.url}/gl-alice",
                "avatar_url": "https://gitlab.example.com/uploads/-/system/user/avatar/31/avatar.png",
            },
        },
    }
    response = gitlab.deliver(setup.hooks, "Push Hook", payload("gitlab_push.json"), delivery="e1f2-0001")
    assert response.status_code == 200 and response.json()["duplicate"] is True
    assert len(builds_of(trigger)) == 1

    hook_id, key_id = trigger.remote["hook_id"], trigger.remote["deploy_key_id"]
    assert setup.admin.delete(f"{BASE}/{trigger_id}").status_code == 204
    assert gitlab.removed_hooks == [hook_id] and gitlab.removed_keys == [key_id]
    assert not BuildTrigger.objects.filter(uuid=trigger_id).exists()


def test_the_token_header_must_match(setup, gitlab, trigger):
    for token in (False, "wrong", webhook_secret(trigger) + "x"):
        response = gitlab.deliver(setup.hooks, "Push Hook", payload("gitlab_push.json"), token=token)
        assert response.status_code == 403, token
    assert builds_of(trigger) == []


def test_a_tag_push_without_commits_asks_the_api_for_the_commit(setup, gitlab, trigger):
    response = gitlab.deliver(setup.hooks, "Tag Push Hook", payload("gitlab_tag_push.json"))
    assert response.status_code == 200, response.content
    build = Build.objects.get(uuid=response.json()["build_id"])
    assert build.git == {"url": GIT_URL, "sha": TAG_SHA, "ref": "refs/tags/v1.0.0"}
    assert build.tags == ["v1.0.0"]
    info = build.trigger_metadata["commit_info"]
    assert info["url"] == f"{gitlab.url}/acme-group/widget/-/commit/{TAG_SHA}"
    assert info["author"]["username"] == "Alice Lab"
    assert gitlab.calls("GET", f"/api/v4/projects/acme-group%2Fwidget/repository/commits/{TAG_SHA}")


def test_deleted_branches_other_events_and_skip_markers_build_nothing(setup, gitlab, trigger):
    response = gitlab.deliver(setup.hooks, "Push Hook", payload("gitlab_push_delete.json"))
    assert response.status_code == 200 and response.json()["reason"] == "deleted ref"
    response = gitlab.deliver(setup.hooks, "Merge Request Hook", {"object_kind": "merge_request"})
    assert response.status_code == 200 and response.json()["skipped"] is True
    skipped = payload("gitlab_push.json")
    skipped["commits"][1]["message"] = "Typo [skip build]\n"
    response = gitlab.deliver(setup.hooks, "Push Hook", skipped)
    assert response.status_code == 200 and response.json()["skipped"] is True
    wrong_kind = payload("gitlab_push.json")
    wrong_kind["object_kind"] = "note"
    response = gitlab.deliver(setup.hooks, "Push Hook", wrong_kind)
    assert response.status_code == 400
    assert builds_of(trigger) == []


def test_an_expired_token_is_refreshed_before_use(setup, gitlab, trigger):
    old = stored_token(trigger.uuid)
    BuildTrigger.objects.filter(pk=trigger.pk).update(auth_token_expires=timezone.now() - timedelta(minutes=1))
    response = setup.admin.post(f"{BASE}/{trigger.uuid}/start", {"refs": {"kind": "branch", "name": "main"}})
    assert response.status_code == 201, response.content
    [refresh] = [r for r in gitlab.calls("POST", "/oauth/token") if b"grant_type=refresh_token" in r["body"]]
    assert b"client_secret=" + gitlab.client_secret.encode() in refresh["body"]
    new = stored_token(trigger.uuid)
    assert new != old and new in gitlab.tokens
    trigger.refresh_from_db()
    assert trigger.auth_token_expires > timezone.now() + timedelta(hours=1)
    build = Build.objects.get(uuid=response.json()["id"])
    assert build.git["sha"] == MAIN_SHA
    assert build.trigger_metadata["commit_info"]["date"] == "2026-11-30T10:00:30.000+00:00"


def test_a_token_refused_with_401_is_refreshed_once_and_retried(setup, gitlab, trigger):
    gitlab.revoke_all()  # GitLab revoked the access token; the refresh token still works
    response = setup.admin.get(f"{BASE}/{trigger.uuid}/fields/refs")
    assert response.status_code == 200, response.content
    assert response.json()["values"][0] == {"kind": "branch", "name": "main"}  # the default branch first
    assert stored_token(trigger.uuid) in gitlab.tokens
    # Both gone: the user is told to connect again.
    gitlab.revoke_all()
    gitlab.refresh_tokens.clear()
    response = setup.admin.get(f"{BASE}/{trigger.uuid}/fields/refs")
    assert response.status_code == 400
    assert "could not be renewed" in response.json()["error_message"]


def test_run_now_for_an_unknown_tag_is_a_clear_error(setup, gitlab, trigger):
    response = setup.admin.post(f"{BASE}/{trigger.uuid}/start", {"refs": {"kind": "tag", "name": "v9"}})
    assert response.status_code == 400
    assert "Could not find tag v9 in acme-group/widget" in response.json()["error_message"]
    assert builds_of(trigger) == []
