"""Event payloads are the guide's JSON field for field, filters work, and emitting writes the
outbox in the caller's transaction (and nothing when no rule listens)."""

from __future__ import annotations

import pytest
from django.db import transaction

from notifications import events, services
from notifications.models import Delivery, NotificationEvent
from tests.notifications.conftest import as_principal

# The keys of each example payload of the guide's chapter 5 (5.1.1 to 5.1.7).
GUIDE_KEYS = {
    "repo_push": {"name", "repository", "namespace", "docker_url", "homepage", "updated_tags"},
    "build_queued": {
        "build_id", "trigger_kind", "name", "repository", "namespace", "docker_url", "trigger_id",
        "docker_tags", "repo", "trigger_metadata", "is_manual", "manual_user", "homepage",
    },
    "build_start": {
        "build_id", "trigger_kind", "name", "repository", "namespace", "docker_url", "trigger_id",
        "docker_tags", "build_name", "trigger_metadata", "homepage",
    },
    "build_success": {
        "build_id", "trigger_kind", "name", "repository", "namespace", "docker_url", "trigger_id",
        "docker_tags", "build_name", "image_id", "trigger_metadata", "homepage", "manifest_digests",
    },
    "build_failure": {
        "build_id", "trigger_kind", "name", "repository", "docker_url", "error_message", "namespace",
        "trigger_id", "docker_tags", "build_name", "trigger_metadata", "homepage",
    },
    "build_cancelled": {
        "build_id", "trigger_kind", "name", "repository", "namespace", "docker_url", "trigger_id",
        "docker_tags", "build_name", "trigger_metadata", "homepage",
    },
    "vulnerability_found": {"repository", "namespace", "name", "docker_url", "homepage", "tags", "vulnerability"},
}  # fmt: skip

BUILD = {
    "build_id": "296ec063-5f86-4706-a469-f0a400bf9df2",
    "trigger_kind": "github",
    "trigger_id": "38b6e180-9521-4ff7-9844-acf371340b9e",
    "docker_tags": ["master", "latest"],
    "trigger_metadata": {"ref": "refs/heads/master", "commit": "b7f7d2b948aacbe844ee465122a85a9368b2b735"},
}
DATA = {
    "repo_push": {"updated_tags": ["latest"]},
    "build_queued": {**BUILD, "is_manual": False, "manual_user": None},
    "build_start": {**BUILD, "build_name": "50bc599"},
    "build_success": {**BUILD, "build_name": "b7f7d2b", "image_id": "sha256:0339", "manifest_digests": ["x@sha256:2a"]},
    "build_failure": {**BUILD, "build_name": "6ae9a86", "error_message": "unknown instruction: GIT"},
    "build_cancelled": {**BUILD, "build_name": "cbce83c"},
    "vulnerability_found": {
        "tags": ["latest", "othertag"],
        "vulnerability": {
            "id": "CVE-1234-5678",
            "description": "This is a bad vulnerability",
            "link": "http://url/to/vuln/info",
            "priority": "Critical",
            "has_fix": True,
        },
    },
}


@pytest.mark.parametrize("event", sorted(GUIDE_KEYS))
def test_each_payload_has_exactly_the_guides_fields(public_host, event):
    payload = events.get_event(event).payload(namespace="dgangaia", name="test", data=DATA[event])
    assert set(payload) == GUIDE_KEYS[event]
    assert payload["repository"] == "dgangaia/test"
    assert payload["namespace"] == "dgangaia" and payload["name"] == "test"
    assert payload["docker_url"] == "registry.example:5000/dgangaia/test"
    if event.startswith("build_"):
        assert (
            payload["homepage"] == f"https://registry.example:5000/repository/dgangaia/test/build/{BUILD['build_id']}"
        )
        assert payload["build_id"] == BUILD["build_id"] and payload["docker_tags"] == ["master", "latest"]
    else:
        assert payload["homepage"] == "https://registry.example:5000/repository/dgangaia/test"


@pytest.mark.parametrize("event", sorted(GUIDE_KEYS))
def test_each_sample_payload_has_the_same_fields_and_a_summary(public_host, event):
    kind = events.get_event(event)
    payload = kind.sample(namespace="acme", name="app", event_config={})
    assert set(payload) == GUIDE_KEYS[event]
    message = kind.message(payload)
    assert "acme/app" in message.summary and message.link == payload["homepage"]
    assert message.level in ("info", "success", "warning", "error")


def test_build_queued_repeats_the_repository_name_as_repo_and_fills_absent_fields():
    payload = events.get_event("build_queued").payload(namespace="acme", name="app", data={"build_id": "b1"})
    assert payload["repo"] == "app"
    assert payload["trigger_metadata"] == {} and payload["docker_tags"] == []
    assert payload["is_manual"] is False and payload["manual_user"] is None and payload["trigger_kind"] is None


def test_the_public_address_defaults_to_the_listening_address(settings, monkeypatch):
    settings.SERVER_HOSTNAME = ""
    settings.PREFERRED_URL_SCHEME = ""
    monkeypatch.setenv("HOST", "0.0.0.0")
    monkeypatch.setenv("PORT", "5000")
    payload = events.get_event("repo_push").payload(namespace="a", name="b", data={"updated_tags": ["v1"]})
    assert payload["docker_url"] == "localhost:5000/a/b"
    assert payload["homepage"] == "http://localhost:5000/repository/a/b"


@pytest.mark.parametrize(
    "event, data, error",
    [
        ("repo_push", {}, "needs updated_tags"),
        ("repo_push", {"updated_tags": ["v1"], "tag": "v1"}, "no field tag"),
        ("repo_push", {"updated_tags": "v1"}, "list of strings"),
        ("build_start", {"build_id": "b", "error_message": "x"}, "no field error_message"),
        ("build_failure", {"docker_tags": ["a"]}, "needs build_id"),
        ("vulnerability_found", {"tags": ["a"], "vulnerability": {"priority": "High"}}, "with an id"),
        ("vulnerability_found", {"tags": ["a"], "vulnerability": {"id": "C", "score": 9}}, "no field score"),
    ],
)
def test_callers_cannot_send_fields_an_event_does_not_have(event, data, error):
    with pytest.raises(events.EventDataError, match=error):
        events.get_event(event).payload(namespace="a", name="b", data=data)


@pytest.mark.parametrize(
    "regex, ref, accepted",
    [
        ("heads/.+", "refs/heads/main", False),  # matched from the start, as Quay does
        ("refs/heads/.+", "refs/heads/main", True),
        ("refs/tags/v[0-9]+", "refs/heads/main", False),
        ("refs/tags/v[0-9]+", "refs/tags/v12", True),
        ("refs/heads/.+", None, False),  # a build without a git ref never matches a ref filter
        ("", None, True),
    ],
)
def test_build_events_filter_on_the_ref(regex, ref, accepted):
    kind = events.get_event("build_success")
    metadata = {"ref": ref} if ref else {}
    payload = kind.payload(namespace="a", name="b", data={"build_id": "x", "trigger_metadata": metadata})
    config = kind.clean_config({"ref-regex": regex})
    assert kind.accepts(payload, config) is accepted


@pytest.mark.parametrize(
    "level, priority, accepted",
    [
        ("0", "Critical", True),  # Quay's index: 0 is Critical
        ("0", "High", False),
        (1, "High", True),
        ("2", "Low", False),
        ("Medium", "High", True),
        ("medium", "Medium", True),
        ("High", "Medium", False),
        ("Defcon1", "Critical", False),
        ("5", "Negligible", True),
        (None, "Low", True),
    ],
)
def test_vulnerability_events_filter_on_a_minimum_severity(level, priority, accepted):
    kind = events.get_event("vulnerability_found")
    data = {"tags": ["latest"], "vulnerability": {"id": "CVE-1", "priority": priority}}
    payload = kind.payload(namespace="a", name="b", data=data)
    assert kind.accepts(payload, kind.clean_config({"level": level} if level is not None else {})) is accepted


@pytest.mark.parametrize(
    "event, config",
    [
        ("build_start", {"ref-regex": "refs/(heads"}),
        ("build_start", {"ref-regex": "x" * 300}),
        ("vulnerability_found", {"level": "9"}),
        ("vulnerability_found", {"level": "Severe"}),
        ("vulnerability_found", {"level": True}),
    ],
)
def test_filters_that_cannot_work_are_refused(event, config):
    with pytest.raises(events.EventConfigError):
        events.get_event(event).clean_config(config)


# ---------------------------------------------------------------------------------------------
# Emitting


def _webhook(world, event="repo_push", event_config=None, url="https://hooks.example.com/x"):
    rule, _ = services.notification_create(
        repository=world.app,
        event=event,
        method="webhook",
        config={"url": url},
        event_config=event_config or {},
        title="hook",
        principal=as_principal(world.alice),
        ip=None,
    )
    return rule


def test_emitting_with_no_rule_writes_nothing(world, django_assert_num_queries):
    with django_assert_num_queries(1):  # the lookup of the rules, nothing else
        assert services.event_emit(event="repo_push", repository=world.app, data={"updated_tags": ["v1"]}) is None
    assert not NotificationEvent.objects.exists()


def test_emitting_writes_one_event_and_one_delivery_per_listening_rule(world, django_capture_on_commit_callbacks):
    first, second = _webhook(world), _webhook(world)
    _webhook(world, event="build_start")
    disabled = _webhook(world)
    disabled.enabled = False
    disabled.save()
    with django_capture_on_commit_callbacks() as callbacks:
        record = services.event_emit(event="repo_push", repository=world.app, data={"updated_tags": ["v1", "v2"]})
    assert record.kind == "repo_push" and record.payload["updated_tags"] == ["v1", "v2"]
    deliveries = Delivery.objects.filter(event=record)
    assert {d.notification_id for d in deliveries} == {first.pk, second.pk}
    assert {d.state for d in deliveries} == {"pending"}
    assert len(callbacks) == 1  # the tasks are queued only once the caller commits


def test_filters_decide_which_rules_get_a_delivery(world):
    _webhook(world, event="build_failure", event_config={"ref-regex": "refs/heads/main"})
    data = {"build_id": "b1", "trigger_metadata": {"ref": "refs/heads/feature"}}
    assert services.event_emit(event="build_failure", repository=world.app, data=data) is None
    data["trigger_metadata"]["ref"] = "refs/heads/main"
    assert services.event_emit(event="build_failure", repository=world.app, data=data) is not None


def test_an_event_whose_change_rolls_back_is_never_announced(world, django_capture_on_commit_callbacks):
    _webhook(world)
    with django_capture_on_commit_callbacks() as callbacks:
        with pytest.raises(RuntimeError):
            with transaction.atomic():
                services.event_emit(event="repo_push", repository=world.app, data={"updated_tags": ["v1"]})
                raise RuntimeError("the push failed after emitting")
    assert not NotificationEvent.objects.exists() and not Delivery.objects.exists()
    assert callbacks == []
