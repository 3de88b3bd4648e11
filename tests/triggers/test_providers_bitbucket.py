"""Bitbucket Cloud triggers end to end against a local Bitbucket: OAuth 2 (client credentials as
HTTP Basic, the consumer's registered callback), workspaces and repositories, refs, activation
(deploy key + hook with a secret), signed ``repo:push`` deliveries (``X-Hub-Signature``), tag
pushes, deleted branches, replays, Run Now, and deletion removing the key and hook."""

from __future__ import annotations

import json

import pytest

from builds.models import Build
from tests.triggers.fake_providers import FEATURE_SHA, MAIN_SHA, TAG_SHA, FakeBitbucket, payload
from tests.triggers.provider_support import BASE, Setup, builds_of, fake_fixture, stored_token, webhook_secret
from triggers.models import BuildTrigger

bitbucket = fake_fixture(FakeBitbucket)
GIT_URL = "git@127.0.0.1:acme-ws/widget.git"


@pytest.fixture
def setup(world, bitbucket) -> Setup:
    return Setup(world, bitbucket)


@pytest.fixture
def trigger(setup) -> BuildTrigger:
    return setup.ready("acme-ws/widget")


def test_connect_pick_activate_push_and_delete(setup, bitbucket):
    trigger_id = setup.create()
    authorize_url = setup.connect_url(trigger_id)
    assert authorize_url.startswith(f"{bitbucket.url}/site/oauth2/authorize?")
    assert "redirect_uri" not in authorize_url  # Bitbucket uses the consumer's callback URL
    response = setup.callback(bitbucket.consent(authorize_url))
    assert response.status_code == 302, response.content
    assert stored_token(trigger_id) in bitbucket.tokens
    [exchange] = bitbucket.calls("POST", "/site/oauth2/access_token")
    assert exchange["headers"]["Authorization"].startswith("Basic ")

    namespaces = setup.admin.get(f"{BASE}/{trigger_id}/namespaces").json()["namespaces"]
    assert [(n["id"], n["personal"]) for n in namespaces] == [("bb-alice", True), ("acme-ws", False)]
    assert namespaces[1]["avatar_url"] == f"{bitbucket.url}/workspaces/acme-ws/avatar"
    sources = setup.admin.post(f"{BASE}/{trigger_id}/sources", {"namespace": "acme-ws"}).json()["sources"]
    assert [(s["full_name"], s["has_admin_permissions"]) for s in sources] == [
        ("acme-ws/widget", True),
        ("acme-ws/legacy", False),
    ]
    assert sources[0]["url"] == f"{bitbucket.url}/acme-ws/widget"
    refs = setup.admin.post(f"{BASE}/{trigger_id}/fields/refs", {"config": {"build_source": "acme-ws/widget"}})
    assert refs.json()["values"][-1] == {"kind": "tag", "name": "v1.0.0"}

    response = setup.activate(trigger_id, "acme-ws/widget", branchtag_regex="heads/main|tags/.*")
    assert response.status_code == 200, response.content
    trigger = BuildTrigger.objects.get(uuid=trigger_id)
    [key] = bitbucket.deploy_keys.values()
    assert key == {"repo": "acme-ws/widget", "key": trigger.public_key, "label": "Quay builder (acme/app)"}
    hook = bitbucket.only_hook()
    assert hook["url"] == f"https://quay.example.com/webhooks/bitbucket/trigger/{trigger_id}"
    assert hook["events"] == ["repo:push"] and hook["active"] is True
    assert hook["secret"] == webhook_secret(trigger)
    assert trigger.remote["git_url"] == GIT_URL  # from the API's clone links
    assert trigger.remote["hook_id"].startswith("{")

    response = bitbucket.deliver(setup.hooks, "repo:push", payload("bitbucket_push.json"), delivery="bb-0001")
    assert response.status_code == 200, response.content
    build = Build.objects.get(uuid=response.json()["build_id"])
    assert build.git == {"url": GIT_URL, "sha": MAIN_SHA, "ref": "refs/heads/main"}
    assert build.tags == ["main", "latest"]
    assert build.trigger_metadata == {
        "commit": MAIN_SHA,
        "ref": "refs/heads/main",
        "default_branch": "main",
        "git_url": GIT_URL,
        "commit_info": {
            "url": f"https://bitbucket.org/acme-ws/widget/commits/{MAIN_SHA}",
            "message": "Add the health check endpoint\n",
            "date": "2026-11-30T10:03:00+00:00",
            "author": {
                "username": "bb-alice",
                "url": "https://bitbucket.org/%7B5c1f7e3a-1d2b-4c5d-8e9f-0a1b2c3d4e5f%7D/",
                "avatar_url": "https://avatar-management--avatars.us-west-2.prod.public.atl-paas.net/initials/AB-0.png",
            },
        },
    }
    response = bitbucket.deliver(setup.hooks, "repo:push", payload("bitbucket_push.json"), delivery="bb-0001")
    assert response.json()["duplicate"] is True
    assert len(builds_of(trigger)) == 1

    hook_id, key_id = trigger.remote["hook_id"], trigger.remote["deploy_key_id"]
    assert setup.admin.delete(f"{BASE}/{trigger_id}").status_code == 204
    # The hook's uuid (with braces) went URL-encoded in the path.
    assert bitbucket.removed_hooks == [hook_id] and bitbucket.removed_keys == [key_id]
    assert bitbucket.calls("DELETE", f"/2.0/repositories/acme-ws/widget/hooks/%7B{hook_id[1:-1]}%7D")


def test_signatures_are_checked(setup, bitbucket, trigger):
    body = json.dumps(payload("bitbucket_push.json")).encode()
    for signature in (
        False,
        "sha256=" + "f" * 64,
        bitbucket.sign("nope", body),
        bitbucket.sign(webhook_secret(trigger), b"{}"),
    ):
        response = bitbucket.deliver(setup.hooks, "repo:push", body, signature=signature)
        assert response.status_code == 403
    assert builds_of(trigger) == []


def test_tag_pushes_build_deleted_branches_do_not(setup, bitbucket, trigger):
    response = bitbucket.deliver(setup.hooks, "repo:push", payload("bitbucket_push_tag.json"))
    assert response.status_code == 200, response.content
    build = Build.objects.get(uuid=response.json()["build_id"])
    assert build.git == {"url": GIT_URL, "sha": TAG_SHA, "ref": "refs/tags/v1.0.0"}
    assert build.tags == ["v1.0.0"]
    response = bitbucket.deliver(setup.hooks, "repo:push", payload("bitbucket_push_delete.json"))
    assert response.status_code == 200 and response.json()["reason"] == "deleted ref"
    response = bitbucket.deliver(setup.hooks, "repo:fork", {"fork": {}})
    assert response.status_code == 200 and response.json()["skipped"] is True
    response = bitbucket.deliver(setup.hooks, "repo:push", {"push": {}})
    assert response.status_code == 400
    assert len(builds_of(trigger)) == 1


def test_a_branch_outside_the_filter_or_with_a_skip_marker_is_skipped(setup, bitbucket):
    trigger = setup.ready("acme-ws/widget", branchtag_regex="tags/.*")
    response = bitbucket.deliver(setup.hooks, "repo:push", payload("bitbucket_push.json"))
    assert response.status_code == 200 and response.json()["skipped"] is True
    marked = payload("bitbucket_push_tag.json")
    marked["push"]["changes"][0]["new"]["target"]["message"] = "Release [build skip]\n"
    response = bitbucket.deliver(setup.hooks, "repo:push", marked)
    assert response.status_code == 200 and response.json()["skipped"] is True
    assert builds_of(trigger) == []


def test_run_now_reads_refs_and_commits_from_bitbucket(setup, bitbucket, trigger):
    start = f"{BASE}/{trigger.uuid}/start"
    response = setup.admin.post(start, {"refs": {"kind": "branch", "name": "feature/login"}})
    assert response.status_code == 201, response.content
    build = Build.objects.get(uuid=response.json()["id"])
    assert build.git == {"url": GIT_URL, "sha": FEATURE_SHA, "ref": "refs/heads/feature/login"}
    assert build.trigger_metadata["commit_info"]["author"]["username"] == "bb-alice"
    assert bitbucket.calls("GET", "/2.0/repositories/acme-ws/widget/refs/branches/feature%2Flogin")
    response = setup.admin.post(start, {"commit_sha": TAG_SHA})
    assert response.status_code == 201
    assert Build.objects.get(uuid=response.json()["id"]).git["sha"] == TAG_SHA
    response = setup.admin.post(start, {"refs": {"kind": "branch", "name": "nope"}})
    assert response.status_code == 400
