"""GitHub (Enterprise layout) triggers end to end against a local GitHub: connect through OAuth,
pick the organization, repository and refs, activate (deploy key + signed push webhook), signed
deliveries (push, ping, tag, deleted branch, skip markers, replays, bad signatures), Run Now, and
deletion removing the key and hook."""

from __future__ import annotations

import json

import pytest

from builds.models import Build, Phase
from registry.models import UsageLog
from tests.triggers.fake_providers import FEATURE_SHA, MAIN_SHA, TAG_SHA, FakeGitHub, payload
from tests.triggers.provider_support import BASE, Setup, builds_of, fake_fixture, stored_token, webhook_secret
from triggers.models import BuildTrigger, TriggerDelivery

github = fake_fixture(FakeGitHub)
GIT_URL = "git@127.0.0.1:acme-corp/widget.git"  # what the fake's API says (ssh_url)


@pytest.fixture
def setup(world, github) -> Setup:
    return Setup(world, github)


@pytest.fixture
def trigger(setup) -> BuildTrigger:
    return setup.ready("acme-corp/widget")


# ---------------------------------------------------------------------------------------------
# The whole flow


def test_connect_pick_activate_push_and_delete(setup, github, world):
    trigger_id = setup.create()

    # Connect: the authorize URL is GitHub's, for our OAuth app, with a signed state.
    authorize_url = setup.connect_url(trigger_id)
    assert authorize_url.startswith(f"{github.url}/login/oauth/authorize?")
    assert f"client_id={github.client_id}" in authorize_url
    response = setup.callback(github.consent(authorize_url))
    assert response.status_code == 302
    assert response["Location"] == f"/repository/acme/app?tab=builds&trigger_setup={trigger_id}"
    [exchange] = github.calls("POST", "/login/oauth/access_token")
    assert b"client_secret=" + github.client_secret.encode() in exchange["body"]
    assert stored_token(trigger_id) in github.tokens
    trigger = BuildTrigger.objects.get(uuid=trigger_id)
    assert trigger.connected_user == world.alice
    assert trigger.is_active is False

    # Pick: namespaces (the user, then organizations), repositories, refs.
    response = setup.admin.get(f"{BASE}/{trigger_id}/namespaces")
    assert response.status_code == 200, response.content
    namespaces = response.json()["namespaces"]
    assert [(n["id"], n["personal"]) for n in namespaces] == [("octo-alice", True), ("acme-corp", False)]
    assert namespaces[0]["title"] == "Alice Octo"
    assert namespaces[1]["url"] == f"{github.url}/acme-corp"

    response = setup.admin.post(f"{BASE}/{trigger_id}/sources", {"namespace": "acme-corp"})
    assert response.status_code == 200, response.content
    sources = {s["full_name"]: s for s in response.json()["sources"]}
    assert set(sources) == {"acme-corp/widget", "acme-corp/docs"}
    assert sources["acme-corp/widget"]["has_admin_permissions"] is True
    assert sources["acme-corp/docs"]["has_admin_permissions"] is False
    assert sources["acme-corp/widget"]["private"] is True
    assert sources["acme-corp/widget"]["last_updated"] == 1796032740
    assert (
        setup.admin.post(f"{BASE}/{trigger_id}/sources", {"namespace": "octo-alice"}).json()["sources"][0]["full_name"]
        == "octo-alice/dotfiles"
    )
    assert setup.admin.post(f"{BASE}/{trigger_id}/sources", {"namespace": "nobody"}).json() == {"sources": []}

    response = setup.admin.post(f"{BASE}/{trigger_id}/fields/refs", {"config": {"build_source": "acme-corp/widget"}})
    assert response.status_code == 200, response.content
    assert response.json()["values"] == [
        {"kind": "branch", "name": "feature/login"},
        {"kind": "branch", "name": "main"},
        {"kind": "tag", "name": "v1.0.0"},
    ]

    # Activate: deploy key and webhook at GitHub.
    response = setup.activate(
        trigger_id, "acme-corp/widget", branchtag_regex="heads/.+|tags/v.+", tag_templates=["git-${short_sha}"]
    )
    assert response.status_code == 200, response.content
    view = response.json()
    assert view["is_active"] is True
    assert view["build_source"] == "acme-corp/widget"
    assert view["repository_url"] == f"{github.url}/acme-corp/widget"
    trigger.refresh_from_db()
    # GitHub holds the hook and its secret: only the deploy key is shown.
    assert view["config"]["credentials"] == [{"name": "SSH Public Key", "value": trigger.public_key}]
    [key] = github.deploy_keys.values()
    assert key["repo"] == "acme-corp/widget"
    assert key["key"] == trigger.public_key
    assert key["read_only"] is True
    hook = github.only_hook()
    assert hook["repo"] == "acme-corp/widget"
    assert hook["events"] == ["push"]
    assert hook["config"]["url"] == f"https://quay.example.com/webhooks/github/trigger/{trigger_id}"
    assert hook["config"]["content_type"] == "json"
    assert hook["config"]["secret"] == webhook_secret(trigger)
    assert trigger.remote["git_url"] == GIT_URL
    assert trigger.remote["default_branch"] == "main"
    assert UsageLog.objects.filter(kind="setup_repo_trigger", metadata__trigger_id=trigger_id).exists()

    # GitHub pings the new hook, then a push arrives.
    response = github.deliver(setup.hooks, "ping", payload("github_ping.json"))
    assert response.status_code == 200
    assert response.json()["skipped"] is True and response.json()["reason"] == "ping"

    response = github.deliver(setup.hooks, "push", payload("github_push.json"), delivery="d1a2b3c4-0001")
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["skipped"] is False
    build = Build.objects.get(uuid=body["build_id"])
    assert build.phase == Phase.WAITING
    assert build.git == {"url": GIT_URL, "sha": MAIN_SHA, "ref": "refs/heads/main"}
    assert build.tags == [f"git-{MAIN_SHA[:7]}", "main", "latest"]
    assert build.started_by is None
    assert build.trigger_metadata == {
        "commit": MAIN_SHA,
        "ref": "refs/heads/main",
        "default_branch": "main",
        "git_url": GIT_URL,
        "commit_info": {
            "url": f"https://github.com/acme-corp/widget/commit/{MAIN_SHA}",
            "message": "Add the health check endpoint\n\nThe load balancer probes /healthz.",
            "date": "2026-11-30T10:59:00+01:00",
            "author": {
                "username": "octo-alice",
                "url": "https://github.com/octo-alice",
                "avatar_url": "https://avatars.githubusercontent.com/u/5150?v=4",
            },
            "committer": {"username": "bob-builder", "url": f"{github.url}/bob-builder", "avatar_url": ""},
        },
    }

    # GitHub redelivers the same delivery: no second build.
    response = github.deliver(setup.hooks, "push", payload("github_push.json"), delivery="d1a2b3c4-0001")
    assert response.status_code == 200
    assert response.json()["duplicate"] is True and response.json()["skipped"] is True
    assert len(builds_of(trigger)) == 1

    # Delete: hook and key go at GitHub, then the trigger.
    hook_id, key_id = trigger.remote["hook_id"], trigger.remote["deploy_key_id"]
    response = setup.admin.delete(f"{BASE}/{trigger_id}")
    assert response.status_code == 204, response.content
    assert github.removed_hooks == [hook_id] and github.removed_keys == [key_id]
    assert github.hooks == {} and github.deploy_keys == {}
    assert not BuildTrigger.objects.filter(uuid=trigger_id).exists()
    assert not TriggerDelivery.objects.filter(trigger_id=trigger.pk).exists()
    # Every API call carried the token GitHub issued at the exchange, with GitHub's media type.
    api_calls = [r for r in github.requests if r["path"].startswith("/api/v3/")]
    assert len(api_calls) >= 10
    assert {r["headers"]["Authorization"] for r in api_calls} == {"Bearer " + next(iter(github.tokens))}
    assert {r["headers"]["Accept"] for r in api_calls} == {"application/vnd.github+json"}


# ---------------------------------------------------------------------------------------------
# Deliveries


def test_bad_missing_or_foreign_signatures_are_refused(setup, github, trigger):
    body = json.dumps(payload("github_push.json")).encode()
    secret = webhook_secret(trigger)
    for signature in (
        False,  # none
        "sha256=" + "0" * 64,
        github.sign("another-secret", body),
        github.sign(secret, body + b" "),  # signed, then the body changed
        "sha1=" + "0" * 40,  # the old SHA-1 header format is not accepted
    ):
        response = github.deliver(setup.hooks, "push", body, signature=signature)
        assert response.status_code == 403, (signature, response.content)
        assert response.json()["error_message"] == "Missing or wrong webhook signature"
    # The body signed but sent with the wrong signature header name is refused too.
    hook_path = f"/webhooks/github/trigger/{trigger.uuid}"
    response = setup.hooks.post(
        hook_path,
        data=body,
        content_type="application/json",
        HTTP_X_GITHUB_EVENT="push",
        HTTP_X_GITHUB_DELIVERY="x",
        HTTP_X_HUB_SIGNATURE=github.sign(secret, body),
    )
    assert response.status_code == 403
    assert builds_of(trigger) == []
    assert TriggerDelivery.objects.count() == 0


def test_unknown_trigger_and_wrong_service_are_404(setup, github, trigger):
    body = json.dumps(payload("github_push.json")).encode()
    response = setup.hooks.post(
        "/webhooks/github/trigger/6b1f1a52-7d0b-4f3f-8c0e-1d2b3c4d5e6f", data=body, content_type="application/json"
    )
    assert response.status_code == 404
    response = setup.hooks.post(f"/webhooks/gitlab/trigger/{trigger.uuid}", data=body, content_type="application/json")
    assert response.status_code == 404
    # The custom git receiver does not take provider triggers.
    response = setup.hooks.post(f"/webhooks/push/trigger/{trigger.uuid}", data=body, content_type="application/json")
    assert response.status_code == 404
    assert setup.hooks.get(f"/webhooks/github/trigger/{trigger.uuid}").status_code == 405


def test_tag_push_builds_the_tag(setup, github, trigger):
    response = github.deliver(setup.hooks, "push", payload("github_push_tag.json"))
    assert response.status_code == 200, response.content
    build = Build.objects.get(uuid=response.json()["build_id"])
    assert build.git == {"url": GIT_URL, "sha": TAG_SHA, "ref": "refs/tags/v1.0.0"}
    assert build.tags == ["v1.0.0"]
    assert build.trigger_metadata["commit_info"]["message"] == "Release the widget"


def test_deleted_branch_missing_delivery_id_other_events_and_bad_payloads(setup, github, trigger):
    response = github.deliver(setup.hooks, "push", payload("github_push_delete.json"))
    assert response.status_code == 200
    assert response.json() == {
        "status": 200,
        "skipped": True,
        "build_id": None,
        "reason": "deleted ref",
        "duplicate": False,
    }
    response = github.deliver(setup.hooks, "issues", {"action": "opened"})
    assert response.status_code == 200 and response.json()["reason"] == "event 'issues' ignored"
    response = github.deliver(setup.hooks, "push", b"{not json")
    assert response.status_code == 400 and "not valid JSON" in response.json()["error_message"]
    broken = payload("github_push.json")
    broken["head_commit"]["id"] = "not-a-sha"
    response = github.deliver(setup.hooks, "push", broken)
    assert response.status_code == 400
    assert response.json()["error_message"].startswith("Invalid payload: commit must be")
    response = github.deliver(setup.hooks, "push", {"zen": "no ref"})
    assert response.status_code == 400
    # A signed delivery without its delivery id.
    body = json.dumps(payload("github_push.json")).encode()
    response = setup.hooks.post(
        f"/webhooks/github/trigger/{trigger.uuid}",
        data=body,
        content_type="application/json",
        HTTP_X_GITHUB_EVENT="push",
        HTTP_X_HUB_SIGNATURE_256=github.sign(webhook_secret(trigger), body),
    )
    assert response.status_code == 400 and "X-GITHUB-DELIVERY" in response.json()["error_message"]
    assert builds_of(trigger) == []


@pytest.mark.parametrize("marker", ["[skip build]", "[build skip]"])
def test_skip_markers_and_the_ref_filter(setup, github, marker):
    trigger = setup.ready("acme-corp/widget", branchtag_regex="heads/main")
    skipped = payload("github_push.json")
    skipped["head_commit"]["message"] = f"Docs only {marker}"
    response = github.deliver(setup.hooks, "push", skipped)
    assert response.status_code == 200 and response.json()["skipped"] is True
    filtered = payload("github_push.json")
    filtered["ref"] = "refs/heads/feature/login"
    response = github.deliver(setup.hooks, "push", filtered)
    assert response.status_code == 200 and response.json()["skipped"] is True
    assert builds_of(trigger) == []
    # Each was recorded: the same deliveries again are duplicates, not new work.
    assert TriggerDelivery.objects.filter(trigger=trigger).count() == 2


def test_a_disabled_trigger_answers_400_and_the_delivery_can_be_retried(setup, github, trigger):
    setup.admin.put(f"{BASE}/{trigger.uuid}", {"enabled": False})
    response = github.deliver(setup.hooks, "push", payload("github_push.json"), delivery="retry-me")
    assert response.status_code == 400
    assert "disabled" in response.json()["error_message"]
    setup.admin.put(f"{BASE}/{trigger.uuid}", {"enabled": True})
    response = github.deliver(setup.hooks, "push", payload("github_push.json"), delivery="retry-me")
    assert response.status_code == 200 and response.json()["skipped"] is False


# ---------------------------------------------------------------------------------------------
# Run Now


def test_run_now_resolves_branches_tags_and_commits_through_github(setup, github, trigger):
    start = f"{BASE}/{trigger.uuid}/start"
    response = setup.admin.post(start, {"refs": {"kind": "branch", "name": "feature/login"}})
    assert response.status_code == 201, response.content
    build = Build.objects.get(uuid=response.json()["id"])
    assert build.git == {"url": GIT_URL, "sha": FEATURE_SHA, "ref": "refs/heads/feature/login"}
    assert build.tags == ["feature-login"]
    assert build.started_by == setup.world.alice
    info = build.trigger_metadata["commit_info"]
    assert info["message"] == "Release the widget"
    assert info["author"] == {
        "username": "octo-alice",
        "url": f"{github.url}/octo-alice",
        "avatar_url": "https://avatars.githubusercontent.com/u/5150?v=4",
    }
    assert info["committer"]["username"] == "web-flow"
    assert github.calls("GET", "/api/v3/repos/acme-corp/widget/commits/heads/feature/login")

    response = setup.admin.post(start, {"refs": {"kind": "tag", "name": "v1.0.0"}})
    assert response.status_code == 201
    assert Build.objects.get(uuid=response.json()["id"]).git["sha"] == TAG_SHA

    response = setup.admin.post(start, {"branch_name": "main"})
    assert response.status_code == 201
    assert Build.objects.get(uuid=response.json()["id"]).tags == ["main", "latest"]

    response = setup.admin.post(start, {"commit_sha": MAIN_SHA})
    assert response.status_code == 201
    build = Build.objects.get(uuid=response.json()["id"])
    assert build.git == {"url": GIT_URL, "sha": MAIN_SHA, "ref": ""}

    response = setup.admin.post(start, {})
    assert response.status_code == 201  # the default branch
    assert Build.objects.get(uuid=response.json()["id"]).git["ref"] == "refs/heads/main"

    response = setup.admin.post(start, {"refs": {"kind": "branch", "name": "gone"}})
    assert response.status_code == 400
    assert "Could not find branch gone in acme-corp/widget" in response.json()["error_message"]


# ---------------------------------------------------------------------------------------------
# Activation and deletion failures


def test_a_failed_hook_creation_removes_the_key_and_leaves_the_trigger_inactive(setup, github):
    trigger_id = setup.create()
    setup.connect(trigger_id)
    github.failures[("POST", "/api/v3/repos/acme-corp/widget/hooks")] = 422
    response = setup.activate(trigger_id, "acme-corp/widget")
    assert response.status_code == 400
    assert "Unable to create the webhook on acme-corp/widget" in response.json()["error_message"]
    trigger = BuildTrigger.objects.get(uuid=trigger_id)
    assert trigger.is_active is False
    assert github.deploy_keys == {} and len(github.removed_keys) == 1
    assert "deploy_key_id" not in trigger.remote and "activating" not in trigger.remote
    # The secret was kept before the hook was asked for: GitHub's ping (sent as a hook is
    # created) is verified and answered, while a push to a trigger not yet active is refused.
    body = json.dumps(payload("github_ping.json")).encode()
    headers = {"HTTP_X_GITHUB_DELIVERY": "p-1", "HTTP_X_HUB_SIGNATURE_256": github.sign(webhook_secret(trigger), body)}
    path = f"/webhooks/github/trigger/{trigger_id}"
    response = setup.hooks.post(path, data=body, content_type="application/json", HTTP_X_GITHUB_EVENT="ping", **headers)
    assert response.status_code == 200 and response.json()["reason"] == "ping"
    response = setup.hooks.post(path, data=body, content_type="application/json", HTTP_X_GITHUB_EVENT="push", **headers)
    assert response.status_code == 400 and response.json()["error_message"] == "This build trigger is not activated yet"
    # Fixed at GitHub: activation works.
    github.failures.clear()
    assert setup.activate(trigger_id, "acme-corp/widget").status_code == 200
    assert len(github.deploy_keys) == 1 and len(github.hooks) == 1


def test_activation_refuses_unknown_repositories_and_bad_sources(setup, github):
    trigger_id = setup.create()
    setup.connect(trigger_id)
    response = setup.activate(trigger_id, "acme-corp/nope")
    assert response.status_code == 400
    assert "Unable to find GitHub repository acme-corp/nope" in response.json()["error_message"]
    for bad in ("widget", "git@github.com:acme-corp/widget.git", "../x/y", "acme-corp/../etc"):
        response = setup.activate(trigger_id, bad)
        assert response.status_code == 400, bad
    response = setup.admin.post(
        f"{BASE}/{trigger_id}/activate", {"config": {"build_source": "acme-corp/widget", "x": 1}}
    )
    assert response.status_code == 400 and "unknown config key" in response.json()["error_message"]
    assert github.deploy_keys == {} and github.hooks == {}


def test_a_failed_removal_keeps_the_trigger_until_retried_or_forced(setup, github, trigger):
    hook_id, key_id = trigger.remote["hook_id"], trigger.remote["deploy_key_id"]
    github.failures[("DELETE", f"/api/v3/repos/acme-corp/widget/hooks/{hook_id}")] = 500
    response = setup.admin.delete(f"{BASE}/{trigger.uuid}")
    assert response.status_code == 502, response.content
    assert response.json()["error_type"] == "provider_error"
    assert "force=true" in response.json()["error_message"]
    trigger.refresh_from_db()
    # The key went; the hook is still recorded for the next attempt.
    assert github.removed_keys == [key_id]
    assert trigger.remote.get("hook_id") == hook_id and "deploy_key_id" not in trigger.remote

    response = setup.admin.delete(f"{BASE}/{trigger.uuid}", force="true")
    assert response.status_code == 204
    assert not BuildTrigger.objects.filter(pk=trigger.pk).exists()
    log = UsageLog.objects.get(kind="delete_repo_trigger", metadata__trigger_id=str(trigger.uuid))
    assert log.metadata["remote_leftovers"] == {"hook_id": hook_id}
    assert "Injected failure" in log.metadata["remote_errors"][0]


def test_removal_retried_after_a_failure_succeeds(setup, github, trigger):
    hook_id = trigger.remote["hook_id"]
    github.failures[("DELETE", f"/api/v3/repos/acme-corp/widget/hooks/{hook_id}")] = 503
    assert setup.admin.delete(f"{BASE}/{trigger.uuid}").status_code == 502
    github.failures.clear()
    assert setup.admin.delete(f"{BASE}/{trigger.uuid}").status_code == 204
    assert github.removed_hooks == [hook_id] and github.hooks == {}


def test_already_removed_hook_and_key_count_as_removed(setup, github, trigger):
    github.hooks.clear()
    github.deploy_keys.clear()
    assert setup.admin.delete(f"{BASE}/{trigger.uuid}").status_code == 204


# ---------------------------------------------------------------------------------------------
# Who may do what


def test_only_the_connected_user_browses_and_activates(setup, github, world):
    trigger_id = setup.create()
    setup.connect(trigger_id)
    root = world.api("superuser")  # administers every repository, but is not the GitHub account holder
    for response in (
        root.get(f"{BASE}/{trigger_id}/namespaces"),
        root.post(f"{BASE}/{trigger_id}/sources", {"namespace": "acme-corp"}),
        root.post(f"{BASE}/{trigger_id}/fields/refs", {"config": {"build_source": "acme-corp/widget"}}),
        root.post(f"{BASE}/{trigger_id}/activate", {"config": {"build_source": "acme-corp/widget"}}),
    ):
        assert response.status_code == 403, response.content
    # Readers and strangers never get that far.
    assert world.api("member").get(f"{BASE}/{trigger_id}/namespaces").status_code == 403
    assert world.api("user").get(f"{BASE}/{trigger_id}/namespaces").status_code == 404
    assert world.api(None).get(f"{BASE}/{trigger_id}/namespaces").status_code == 401


def test_pickers_need_a_connected_account(setup, github):
    trigger_id = setup.create()
    response = setup.admin.get(f"{BASE}/{trigger_id}/namespaces")
    assert response.status_code == 400
    assert response.json()["error_message"] == "Connect an account to the trigger first"
    assert setup.admin.post(f"{BASE}/{trigger_id}/fields/nothing").status_code in (400, 404)


def test_a_revoked_token_says_to_connect_again(setup, github):
    trigger_id = setup.create()
    setup.connect(trigger_id)
    github.revoke_all()
    response = setup.admin.get(f"{BASE}/{trigger_id}/namespaces")
    assert response.status_code == 400
    assert "connect the account again" in response.json()["error_message"]


def test_unknown_fields_are_404(setup, github):
    trigger_id = setup.create()
    setup.connect(trigger_id)
    assert setup.admin.post(f"{BASE}/{trigger_id}/fields/nothing").status_code == 404
    response = setup.admin.get(f"{BASE}/{trigger_id}/fields/branch_name")
    assert response.status_code == 200 and response.json() == {"values": []}  # no repository picked yet
