"""The custom git trigger (guide chapters 3 and 4) through its webhook: payload validation, the
secret, skipping, the branch/tag filter, tags, the queue limit, and the auto-disable."""

from __future__ import annotations

import json

import pytest
from cryptography.hazmat.primitives import serialization
from django.test import override_settings

from builds import services as build_services
from builds.models import Build, Phase
from registry.models import Repository
from tests.triggers.conftest import GIT_URL, SHA, make_trigger, push_payload
from triggers import metadata as md
from triggers import selectors, services
from triggers.models import BuildTrigger

# ---------------------------------------------------------------------------------------------
# A push that builds


def test_it_queues_a_git_build_with_the_trigger_metadata(hook, world):
    response = hook.post(push_payload())
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["skipped"] is False
    build = Build.objects.get(uuid=body["build_id"])
    assert build.repository == world.app
    assert build.phase == Phase.WAITING
    assert build.source == Build.Source.GIT
    assert build.git == {"url": GIT_URL, "sha": SHA, "ref": "refs/heads/main"}
    assert build.trigger_uuid == hook.trigger.uuid
    assert build.tags == ["main", "latest"]
    assert build.display_name == SHA[:7]
    assert build.started_by is None
    assert build.context == ""
    assert build.dockerfile_path == "Dockerfile"
    meta = build.trigger_metadata
    assert meta["commit"] == SHA
    assert meta["ref"] == "refs/heads/main"
    assert meta["default_branch"] == "main"
    assert meta["git_url"] == GIT_URL
    assert meta["commit_info"]["message"] == "Add the health check"
    assert meta["commit_info"]["author"] == {
        "username": "alice",
        "url": "https://git.example.com/alice",
        "avatar_url": "https://a/x.png",
    }
    assert meta["commit_info"]["committer"]["username"] == "bob"


def test_the_minimal_payload_of_the_guide_is_enough(hook):
    response = hook.post({"commit": "1c002dd", "ref": "refs/heads/master", "default_branch": "master"})
    assert response.status_code == 200, response.content
    build = Build.objects.get(uuid=response.json()["build_id"])
    assert build.tags == ["master", "latest"]
    assert "commit_info" not in build.trigger_metadata


def test_unknown_keys_are_ignored_as_in_quays_schema(hook):
    response = hook.post({**push_payload(), "pusher": {"name": "x"}, "repository": "whatever"})
    assert response.status_code == 200
    assert "pusher" not in Build.objects.get().trigger_metadata


def test_the_trigger_config_sets_context_dockerfile_and_pull_robot(world):
    hook = make_trigger(world, context="/web", dockerfile_path="/web/Containerfile", pull_robot=world.bot)
    response = hook.post(push_payload())
    assert response.status_code == 200, response.content
    build = Build.objects.get()
    assert (build.context, build.dockerfile_path) == ("web", "web/Containerfile")
    assert build.pull_robot == world.bot


def test_quays_older_subdir_setting_is_the_context(world):
    hook = make_trigger(world, subdir="services/api")
    assert hook.trigger.config["context"] == "services/api"
    assert hook.trigger.config["dockerfile_path"] == "services/api/Dockerfile"
    assert hook.post(push_payload()).status_code == 200
    assert Build.objects.get().dockerfile_path == "services/api/Dockerfile"


# ---------------------------------------------------------------------------------------------
# Payload validation: every rule, with its reason, and nothing queued


def _without(payload: dict, *path: str) -> dict:
    copy = json.loads(json.dumps(payload))
    node = copy
    for key in path[:-1]:
        node = node[key]
    del node[path[-1]]
    return copy


def _with(payload: dict, value, *path: str) -> dict:
    copy = json.loads(json.dumps(payload))
    node = copy
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    return copy


FULL = push_payload()

BAD_PAYLOADS = [
    ("not an object", ["commit"], "the payload must be a JSON object"),
    ("a string", "commit", "the payload must be a JSON object"),
    ("no commit", _without(FULL, "commit"), "commit is required"),
    ("commit a number", _with(FULL, 1234567, "commit"), "commit must be a string"),
    ("commit too short", _with(FULL, "1c002d", "commit"), "commit must be at least 7 hexadecimal characters"),
    ("commit not hex", _with(FULL, "1c002dz", "commit"), "commit must be at least 7 hexadecimal characters"),
    ("commit with spaces", _with(FULL, " 1c002dd", "commit"), "commit must be at least 7 hexadecimal characters"),
    ("no ref", _without(FULL, "ref"), "ref is required"),
    ("ref null", _with(FULL, None, "ref"), "ref must be a string"),
    ("ref a bare branch", _with(FULL, "master", "ref"), "ref must look like refs/heads/<branch>"),
    ("ref of a pull request", _with(FULL, "refs/pull/1/head", "ref"), "ref must look like refs/heads/<branch>"),
    ("ref without a name", _with(FULL, "refs/heads/", "ref"), "ref must look like refs/heads/<branch>"),
    ("no default_branch", _without(FULL, "default_branch"), "default_branch is required"),
    ("default_branch a list", _with(FULL, ["main"], "default_branch"), "default_branch must be a string"),
    ("commit_info a string", _with(FULL, "x", "commit_info"), "commit_info must be an object"),
    ("commit_info without url", _without(FULL, "commit_info", "url"), "commit_info.url is required"),
    ("commit_info without message", _without(FULL, "commit_info", "message"), "commit_info.message is required"),
    ("commit_info without date", _without(FULL, "commit_info", "date"), "commit_info.date is required"),
    ("commit_info.date a number", _with(FULL, 1700000000, "commit_info", "date"), "commit_info.date must be a string"),
    ("commit_info.message null", _with(FULL, None, "commit_info", "message"), "commit_info.message must be a string"),
    ("author a string", _with(FULL, "alice", "commit_info", "author"), "commit_info.author must be an object"),
    (
        "author without username",
        _without(FULL, "commit_info", "author", "username"),
        "commit_info.author.username is required",
    ),
    ("author without url", _without(FULL, "commit_info", "author", "url"), "commit_info.author.url is required"),
    (
        "author without avatar_url",
        _without(FULL, "commit_info", "author", "avatar_url"),
        "commit_info.author.avatar_url is required",
    ),
    (
        "committer without username",
        _without(FULL, "commit_info", "committer", "username"),
        "commit_info.committer.username is required",
    ),
    (
        "committer without url",
        _without(FULL, "commit_info", "committer", "url"),
        "commit_info.committer.url is required",
    ),
    (
        "committer without avatar_url",
        _without(FULL, "commit_info", "committer", "avatar_url"),
        "commit_info.committer.avatar_url is required",
    ),
    ("committer a list", _with(FULL, [], "commit_info", "committer"), "commit_info.committer must be an object"),
    (
        "committer.avatar_url a number",
        _with(FULL, 5, "commit_info", "committer", "avatar_url"),
        "commit_info.committer.avatar_url must be a string",
    ),
]


@pytest.mark.parametrize("case, payload, reason", BAD_PAYLOADS, ids=[case for case, _, _ in BAD_PAYLOADS])
def test_a_bad_payload_answers_400_with_the_reason(hook, case, payload, reason):
    response = hook.post(payload)
    assert response.status_code == 400, response.content
    assert response.json()["error_message"].startswith(f"Invalid payload: {reason}")
    assert not Build.objects.exists()


def test_optional_parts_may_be_left_out(hook):
    for payload in (
        _without(FULL, "commit_info"),
        _without(FULL, "commit_info", "author"),
        _without(FULL, "commit_info", "committer"),
        _without(_without(FULL, "commit_info", "author"), "commit_info", "committer"),
    ):
        assert hook.post(payload).status_code == 200
    assert Build.objects.count() == 4


def test_a_long_commit_sha_in_capitals_is_accepted(hook):
    assert hook.post(push_payload(commit=SHA.upper())).status_code == 200


def test_tags_and_remotes_refs_are_accepted(hook):
    assert hook.post(push_payload(ref="refs/tags/v1.0")).status_code == 200
    assert hook.post(push_payload(ref="refs/remotes/origin/main")).status_code == 200


def test_json_is_required(hook):
    response = hook.post(raw=b"commit=1c002dd", content_type="application/x-www-form-urlencoded")
    assert response.status_code == 400
    assert response.json()["error_message"] == "The request needs a Content-Type header of application/json"
    response = hook.post(raw=json.dumps(FULL).encode(), content_type="text/plain")
    assert response.status_code == 400
    assert not Build.objects.exists()


def test_a_charset_parameter_is_fine(hook):
    assert hook.post(raw=json.dumps(FULL).encode(), content_type="application/json; charset=utf-8").status_code == 200


def test_a_body_that_is_not_json_or_empty_is_refused(hook):
    response = hook.post(raw=b"{not json")
    assert response.status_code == 400
    assert response.json()["error_message"].startswith("The payload is not valid JSON")
    # The test client drops the content type of an empty body; a git hook's curl sends it.
    response = hook.post(raw=b"", CONTENT_TYPE="application/json")
    assert response.status_code == 400
    assert response.json()["error_message"] == "Missing expected payload"
    assert not Build.objects.exists()


# ---------------------------------------------------------------------------------------------
# The secret, the trigger


def test_the_webhook_url_of_the_credentials_works_as_given(hook):
    from urllib.parse import urlsplit

    credentials = services.credentials_of(hook.trigger)
    url = urlsplit(credentials.webhook_url)
    assert (url.scheme, url.hostname) == ("https", "quay.example.com")
    assert url.username == "$token"
    assert url.password == hook.secret
    assert url.path == hook.path
    assert hook.post(FULL, secret=url.password).status_code == 200


def test_the_secret_is_stored_hashed_and_encrypted_never_in_clear(hook):
    row = BuildTrigger.objects.get(pk=hook.trigger.pk)
    dumped = json.dumps([getattr(row, field.attname) for field in row._meta.fields], default=str)
    assert hook.secret not in dumped
    assert row.webhook_secret_hash == services.crypto.token_hash(hook.secret)


def test_a_wrong_or_missing_secret_answers_403(hook, world):
    other = make_trigger(world)
    for secret in (None, "wrong", hook.secret[:-1], other.secret):
        response = hook.post(FULL, secret=secret)
        assert response.status_code == 403, secret
        assert response.json()["error_message"] == "Missing or wrong webhook secret"
    # The right secret under another user name than $token is not the trigger's credential.
    from tests.conftest import basic

    assert hook.post(FULL, HTTP_AUTHORIZATION=basic("alice", hook.secret)).status_code == 403
    assert hook.post(FULL, HTTP_AUTHORIZATION="Basic !!!").status_code == 403
    assert not Build.objects.exists()


def test_the_secret_may_come_in_a_header_or_the_query(hook):
    assert hook.post(FULL, secret=None, HTTP_X_TRIGGER_TOKEN=hook.secret).status_code == 200
    assert hook.post(FULL, secret=None, path=f"{hook.path}?token={hook.secret}").status_code == 200
    assert hook.post(FULL, secret=None, path=f"{hook.path}?token=nope").status_code == 403
    assert Build.objects.count() == 2


def test_the_secret_is_checked_before_the_payload(hook):
    assert hook.post(raw=b"junk", secret="wrong").status_code == 403


def test_an_unknown_trigger_answers_404(hook):
    for path in ("/webhooks/push/trigger/6b1f1a52-7d0b-4f3f-8c0e-1d2b3c4d5e6f", "/webhooks/push/trigger/nope"):
        response = hook.post(FULL, path=path)
        assert response.status_code == 404
        assert response.json()["error_message"] == "No such build trigger"


def test_only_post_is_allowed(hook):
    assert hook.client.get(hook.path).status_code == 405


def test_a_deleted_trigger_answers_404(hook, world):
    from tests.registry_rest.conftest import as_principal

    services.trigger_delete(trigger=hook.trigger, principal=as_principal(world.alice))
    assert hook.post(FULL).status_code == 404


def test_a_disabled_trigger_queues_nothing(hook, world):
    from tests.registry_rest.conftest import as_principal

    services.trigger_update(trigger=hook.trigger, enabled=False, principal=as_principal(world.alice))
    response = hook.post(FULL)
    assert response.status_code == 400
    assert "currently disabled" in response.json()["error_message"]
    assert not Build.objects.exists()


def test_an_inactive_trigger_has_no_secret_to_present(world):
    from tests.registry_rest.conftest import as_principal
    from tests.triggers.conftest import Hook

    trigger = services.trigger_create(repository=world.app, service="custom-git", principal=as_principal(world.alice))
    assert Hook(trigger, "").post(FULL, secret=None).status_code == 403
    assert services.credentials_of(trigger) is None


def test_builds_switched_off_answer_400_with_the_reason(hook, settings):
    settings.FEATURE_BUILD_SUPPORT = False
    response = hook.post(FULL)
    assert response.status_code == 400
    assert "not enabled" in response.json()["error_message"]


def test_a_read_only_repository_answers_503(hook, world):
    Repository.objects.filter(pk=world.app.pk).update(state=Repository.State.READ_ONLY)
    assert hook.post(FULL).status_code == 503
    assert not Build.objects.exists()


def test_a_full_queue_answers_429(hook):
    build_services.build_settings_update(max_queued_per_namespace=1)
    assert hook.post(FULL).status_code == 200
    response = hook.post(FULL)
    assert response.status_code == 429
    assert "Maximum queued build" in response.json()["error_message"]
    assert Build.objects.count() == 1


# ---------------------------------------------------------------------------------------------
# Skipping (chapter 4) and the branch/tag filter


@pytest.mark.parametrize(
    "message",
    ["[skip build]", "Fix typo [skip build]", "[build skip] docs only", "multi\nline\n\n[build skip]\n"],
)
def test_a_commit_asking_to_skip_queues_nothing_and_answers_200(hook, message):
    payload = _with(FULL, message, "commit_info", "message")
    response = hook.post(payload)
    assert response.status_code == 200
    assert response.json() == {"status": 200, "skipped": True, "build_id": None}
    assert not Build.objects.exists()


@pytest.mark.parametrize("message", ["[skip-build]", "skip build", "[Skip Build]", "[ci skip]"])
def test_other_words_do_not_skip(hook, message):
    assert hook.post(_with(FULL, message, "commit_info", "message")).json()["skipped"] is False


def test_the_branch_regex_filters_pushes(world):
    hook = make_trigger(world, branchtag_regex="heads/release-.*")
    skipped = hook.post(push_payload(ref="refs/heads/main"))
    assert skipped.status_code == 200
    assert skipped.json()["skipped"] is True
    # The expression must match the whole ref name.
    assert hook.post(push_payload(ref="refs/heads/release-1/hotfix-x")).json()["skipped"] is False
    assert hook.post(push_payload(ref="refs/heads/pre-release-1")).json()["skipped"] is True
    built = hook.post(push_payload(ref="refs/heads/release-2"))
    assert built.json()["skipped"] is False
    assert Build.objects.count() == 2


def test_the_tag_regex_filters_pushes(world):
    hook = make_trigger(world, branchtag_regex=r"tags/v\d+(\.\d+)*")
    assert hook.post(push_payload(ref="refs/heads/main")).json()["skipped"] is True
    assert hook.post(push_payload(ref="refs/tags/nightly")).json()["skipped"] is True
    response = hook.post(push_payload(ref="refs/tags/v2.1"))
    assert response.json()["skipped"] is False
    assert Build.objects.get().tags == ["v2.1"]


# ---------------------------------------------------------------------------------------------
# Tags


META = {"commit": SHA, "ref": "refs/heads/main", "default_branch": "main", "git_url": GIT_URL}


@pytest.mark.parametrize(
    "config, metadata, tags",
    [
        ({}, META, ["main", "latest"]),
        ({}, {**META, "ref": "refs/heads/dev"}, ["dev"]),
        ({}, {**META, "ref": "refs/tags/v1.2"}, ["v1.2"]),
        # A tag named like the default branch is not the default branch.
        ({}, {**META, "ref": "refs/tags/main"}, ["main"]),
        ({}, {**META, "ref": "refs/heads/feature/login"}, ["feature-login"]),
        ({}, {**META, "ref": "refs/heads/.hidden"}, ["hidden"]),
        ({"latest_for_default_branch": False}, META, ["main"]),
        ({"default_tag_from_ref": False}, META, ["latest"]),
        ({"default_tag_from_ref": False, "latest_for_default_branch": False}, META, [SHA[:7]]),
        ({"tag_templates": ["${commit_info.short_sha}"]}, META, [SHA[:7], "main", "latest"]),
        ({"tag_templates": ["${short_sha}", "${commit}"]}, META, [SHA[:7], SHA, "main", "latest"]),
        ({"tag_templates": ["build-${branch}-${short_sha}"]}, META, [f"build-main-{SHA[:7]}", "main", "latest"]),
        ({"tag_templates": ["${parsed_ref.branch}-x", "${name}"]}, META, ["main-x", "main", "latest"]),
        # A template naming something this push lacks gives no tag.
        ({"tag_templates": ["release-${tag}"]}, META, ["main", "latest"]),
        ({"tag_templates": ["release-${tag}"]}, {**META, "ref": "refs/tags/v3"}, ["release-v3", "v3"]),
        ({"tag_templates": ["${commit_info.author.username}"]}, META, ["main", "latest"]),
        (
            {"tag_templates": ["by-${commit_info.author.username}"]},
            {**META, "commit_info": {"message": "m", "url": "u", "date": "d", "author": {"username": "al"}}},
            ["by-al", "main", "latest"],
        ),
        (
            {"tag_templates": ["fixed"], "default_tag_from_ref": False, "latest_for_default_branch": False},
            META,
            ["fixed"],
        ),
        # Run Now on a bare commit: no ref.
        ({}, {"commit": SHA, "git_url": GIT_URL}, [SHA[:7]]),
    ],
)
def test_tags_come_from_templates_the_ref_and_the_default_branch(config, metadata, tags):
    assert md.tags_for(config, metadata) == tags


def test_templates_tag_a_pushed_build(world):
    hook = make_trigger(world, tag_templates=["${commit_info.short_sha}", "${branch}-${commit_info.date}"])
    assert hook.post(push_payload(ref="refs/heads/dev")).status_code == 200
    # The date has characters a tag cannot hold (":" and "+"): they become "-".
    assert Build.objects.get().tags == [SHA[:7], "dev-2026-11-30T10-00-00-00-00", "dev"]


# ---------------------------------------------------------------------------------------------
# The key pair


def test_the_private_key_matches_the_public_key_and_is_stored_encrypted(hook):
    private = selectors.trigger_private_key(hook.trigger.uuid)
    assert private.startswith("-----BEGIN OPENSSH PRIVATE KEY-----")
    key = serialization.load_ssh_private_key(private.encode(), password=None)
    public = key.public_key().public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
    assert hook.trigger.public_key.startswith(public.decode() + " ")
    assert hook.trigger.public_key.startswith("ssh-ed25519 ")
    row = BuildTrigger.objects.get(pk=hook.trigger.pk)
    assert "PRIVATE KEY" not in row.private_key_encrypted
    assert selectors.trigger_private_key(str(hook.trigger.uuid)) == private


def test_there_is_no_private_key_for_an_unknown_trigger(db):
    assert selectors.trigger_private_key("6b1f1a52-7d0b-4f3f-8c0e-1d2b3c4d5e6f") is None
    assert selectors.trigger_private_key("garbage") is None
    assert selectors.trigger_private_key(None) is None


def test_each_trigger_gets_its_own_key_and_secret(world, hook):
    other = make_trigger(world)
    assert other.trigger.public_key != hook.trigger.public_key
    assert other.secret != hook.secret


# ---------------------------------------------------------------------------------------------
# Auto-disable after successive failures


def _finish(build: Build, phase: str) -> BuildTrigger | None:
    Build.objects.filter(pk=build.pk).update(phase=phase)
    build.refresh_from_db()
    return services.trigger_build_finished(build)


def _fire(hook) -> Build:
    response = hook.post(FULL)
    assert response.status_code == 200, response.content
    return Build.objects.get(uuid=response.json()["build_id"])


@override_settings(TRIGGER_DISABLE_AFTER_FAILURES=3, TRIGGER_DISABLE_AFTER_INTERNAL_ERRORS=2)
def test_successive_failures_disable_the_trigger(hook):
    _finish(_fire(hook), Phase.ERROR)
    _finish(_fire(hook), Phase.ERROR)
    trigger = _finish(_fire(hook), Phase.ERROR)
    assert trigger.enabled is False
    assert trigger.disabled_reason == "successive_build_failures"
    assert trigger.successive_failure_count == 3
    response = hook.post(FULL)
    assert response.status_code == 400
    assert "currently disabled" in response.json()["error_message"]


@override_settings(TRIGGER_DISABLE_AFTER_FAILURES=3, TRIGGER_DISABLE_AFTER_INTERNAL_ERRORS=2)
def test_a_success_resets_the_counters(hook):
    _finish(_fire(hook), Phase.ERROR)
    _finish(_fire(hook), Phase.INTERNAL_ERROR)
    trigger = _finish(_fire(hook), Phase.COMPLETE)
    assert (trigger.successive_failure_count, trigger.successive_internal_error_count) == (0, 0)
    _finish(_fire(hook), Phase.ERROR)
    trigger = _finish(_fire(hook), Phase.ERROR)
    assert trigger.enabled is True
    assert trigger.successive_failure_count == 2


@override_settings(TRIGGER_DISABLE_AFTER_FAILURES=3, TRIGGER_DISABLE_AFTER_INTERNAL_ERRORS=2)
def test_successive_internal_errors_disable_the_trigger(hook):
    trigger = _finish(_fire(hook), Phase.INTERNAL_ERROR)
    assert trigger.enabled is True
    trigger = _finish(_fire(hook), Phase.INTERNAL_ERROR)
    assert trigger.enabled is False
    assert trigger.disabled_reason == "successive_build_internal_errors"
    assert trigger.disabled_at is not None


@override_settings(TRIGGER_DISABLE_AFTER_FAILURES=3, TRIGGER_DISABLE_AFTER_INTERNAL_ERRORS=2)
def test_a_failure_breaks_a_run_of_internal_errors_and_cancel_counts_nothing(hook):
    _finish(_fire(hook), Phase.INTERNAL_ERROR)
    trigger = _finish(_fire(hook), Phase.ERROR)
    assert trigger.successive_internal_error_count == 0
    trigger = _finish(_fire(hook), Phase.CANCELLED)
    assert (trigger.successive_failure_count, trigger.successive_internal_error_count) == (1, 0)
    assert _finish(_fire(hook), Phase.INTERNAL_ERROR).enabled is True


def test_the_default_thresholds_are_quays(hook, settings):
    assert (settings.TRIGGER_DISABLE_AFTER_FAILURES, settings.TRIGGER_DISABLE_AFTER_INTERNAL_ERRORS) == (100, 5)
    BuildTrigger.objects.filter(pk=hook.trigger.pk).update(successive_failure_count=98)
    assert _finish(_fire(hook), Phase.ERROR).enabled is True
    trigger = _finish(_fire(hook), Phase.ERROR)
    assert (trigger.enabled, trigger.successive_failure_count) == (False, 100)


@override_settings(TRIGGER_DISABLE_AFTER_FAILURES=1)
def test_enabling_again_gives_a_fresh_allowance(hook, world):
    from tests.registry_rest.conftest import as_principal

    trigger = _finish(_fire(hook), Phase.ERROR)
    assert trigger.enabled is False
    trigger = services.trigger_update(trigger=trigger, enabled=True, principal=as_principal(world.alice))
    assert (trigger.enabled, trigger.disabled_reason, trigger.successive_failure_count) == (True, "", 0)
    assert hook.post(FULL).status_code == 200


def test_a_build_without_a_trigger_or_of_a_deleted_one_is_ignored(hook, world):
    from tests.registry_rest.conftest import as_principal

    build = _fire(hook)
    services.trigger_delete(trigger=hook.trigger, principal=as_principal(world.alice))
    assert _finish(build, Phase.ERROR) is None
    Build.objects.filter(pk=build.pk).update(trigger_uuid=None)
    build.refresh_from_db()
    assert services.trigger_build_finished(build) is None
