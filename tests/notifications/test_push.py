"""Pushes over /v2/ announce themselves: one repo_push per manifest PUT by tag, written in the
push's transaction; nothing for a manifest pushed by digest or for a push that fails."""

from __future__ import annotations

from notifications import services
from notifications.models import Delivery, NotificationEvent
from tests.conftest import PASSWORD
from tests.notifications.conftest import as_principal, deliver_due
from tests.registry.conftest import V2, make_image, make_index


def _listen(world, url="https://hooks.example.com/push"):
    rule, _ = services.notification_create(
        repository=world.app,
        event="repo_push",
        method="webhook",
        config={"url": url},
        event_config={},
        title="",
        principal=as_principal(world.alice),
        ip=None,
    )
    return rule


def _pushed_tags() -> list[list[str]]:
    return [event.payload["updated_tags"] for event in NotificationEvent.objects.order_by("id")]


def test_a_push_by_tag_is_one_repo_push_with_that_tag(world):
    rule = _listen(world)
    V2("alice", PASSWORD).push_image("acme/app", "v1")
    assert _pushed_tags() == [["v1"]]
    event = NotificationEvent.objects.get()
    assert event.kind == "repo_push" and event.payload["repository"] == "acme/app"
    assert list(Delivery.objects.values_list("notification_id", "state")) == [(rule.pk, "pending")]


def test_a_multi_architecture_push_is_one_event_for_the_index_tag(world):
    _listen(world)
    client = V2("alice", PASSWORD)
    children = [make_image("amd"), make_image("arm")]
    for child in children:
        client.push_image("acme/app", child.digest, child)  # by digest, as clients push an index's children
    client.push_image("acme/app", "multi", make_index(children))
    assert _pushed_tags() == [["multi"]]


def test_a_push_by_digest_alone_announces_nothing(world):
    _listen(world)
    image = make_image("d")
    V2("alice", PASSWORD).push_image("acme/app", image.digest, image)
    assert _pushed_tags() == []


def test_each_tag_pushed_is_its_own_event(world):
    _listen(world)
    client = V2("alice", PASSWORD)
    image = make_image("t")
    client.push_image("acme/app", "v2", image)
    client.push_image("acme/app", "latest", image)
    assert _pushed_tags() == [["v2"], ["latest"]]


def test_a_failed_push_announces_nothing(world):
    _listen(world)
    image = make_image("missing")
    # The manifest refers to blobs that were never uploaded: refused, nothing stored.
    response = V2("alice", PASSWORD).put_manifest("acme/app", "v3", image.raw, image.media_type)
    assert response.status_code == 400
    assert _pushed_tags() == [] and not Delivery.objects.exists()


def test_a_repository_without_notifications_pushes_as_before(world, receiver):
    V2("alice", PASSWORD).push_image("acme/app", "v1")
    assert not NotificationEvent.objects.exists()
    _listen(world, url=receiver.url())
    V2("alice", PASSWORD).push_image("acme/app", "v2")
    assert deliver_due() == ["delivered"]
    assert receiver.wait_for(1)[0].json()["updated_tags"] == ["v2"]
