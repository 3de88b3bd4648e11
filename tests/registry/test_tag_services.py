"""Tag services and the time machine: history after moves, deletes and restores; what may be
restored and what not; expiration set through the services and by the ``quay.expires-after``
label; the admin's permanent delete; the time-machine selectors garbage collection relies on;
and several processes changing one tag at once."""

from __future__ import annotations

import json
import os
import time
from datetime import datetime, timedelta
from urllib.parse import quote

import pytest
from django.core.exceptions import ValidationError
from django.db import connection
from django.utils import timezone

from accounts import services as account_services
from registry import errors, selectors, services
from registry.manifests import DOCKER_MANIFEST, OCI_MANIFEST
from registry.models import Manifest, Tag, UsageLog
from tests.registry.conftest import (
    OCI_CONFIG,
    OCI_LAYER,
    Image,
    assert_error,
    descriptor,
    make_image,
    store_image,
    user_principal,
)
from tests.registry.test_tag_history import _finish, _run

DAY = timedelta(days=1)


def labelled_image(labels: dict, seed: str = "l", *, annotations: dict | None = None, media_type=OCI_MANIFEST):
    """An image whose config carries ``labels`` (what a Dockerfile LABEL writes)."""
    config = json.dumps(
        {"architecture": "amd64", "os": "linux", "config": {"Labels": labels}, "seed": seed}, sort_keys=True
    ).encode()
    layer = f"layer {seed}".encode() * 9
    config_type = "application/vnd.docker.container.image.v1+json" if media_type == DOCKER_MANIFEST else OCI_CONFIG
    layer_type = "application/vnd.docker.image.rootfs.diff.tar.gzip" if media_type == DOCKER_MANIFEST else OCI_LAYER
    doc = {
        "schemaVersion": 2,
        "mediaType": media_type,
        "config": descriptor(config_type, config),
        "layers": [descriptor(layer_type, layer)],
    }
    if annotations:
        doc["annotations"] = annotations
    return Image(raw=json.dumps(doc).encode(), media_type=media_type, blobs=[config, layer])


@pytest.fixture
def principal(alice):
    return user_principal(alice)


@pytest.fixture
def digests(repo, principal):
    """Three images stored by digest in alice/app (no tag yet)."""
    images = [store_image(repo, image.digest, image, principal) for image in map(make_image, ("1", "2", "3"))]
    return [image.digest for image in images]


def history(repo, name="latest"):
    return list(
        Tag.objects.filter(repository=repo, name=name, hidden=False)
        .select_related("manifest")
        .order_by("lifetime_start", "pk")
    )


def kinds(repo):
    return list(
        UsageLog.objects.filter(repository=repo, kind__endswith="_tag").order_by("pk").values_list("kind", flat=True)
    )


def move(repo, principal, digest, name="latest", **extra):
    return services.tag_create_or_move(
        repository=repo, name=name, manifest_digest=digest, principal=principal, ip="10.0.0.1", **extra
    )


def restore(repo, principal, digest, name="latest"):
    return services.tag_restore(repository=repo, name=name, manifest_digest=digest, principal=principal, ip=None)


def age(repo, name, by: timedelta) -> None:
    """Shift a tag's whole history into the past (as if it happened ``by`` ago)."""
    for row in Tag.objects.filter(repository=repo, name=name):
        row.lifetime_start -= by
        row.lifetime_end = row.lifetime_end - by if row.lifetime_end else None
        row.expiration = row.expiration - by if row.expiration else None
        row.save()


# ---------------------------------------------------------------------------------------------
# History


def test_moves_deletes_and_restores_leave_a_complete_history(repo, principal, digests):
    one, two, three = digests
    move(repo, principal, one)
    move(repo, principal, two)
    move(repo, principal, three)
    services.tag_delete(repository=repo, name="latest", principal=principal, ip=None)
    restored = restore(repo, principal, one)
    rows = history(repo)
    assert [row.manifest.digest for row in rows] == [one, two, three, one]
    assert [row.reversion for row in rows] == [False, False, False, True]
    assert rows[-1] == restored and restored.lifetime_end is None
    # A move ends one lifetime exactly where the next begins; the delete left a gap.
    assert rows[0].lifetime_end == rows[1].lifetime_start
    assert rows[1].lifetime_end == rows[2].lifetime_start
    assert rows[2].lifetime_end < rows[3].lifetime_start
    assert kinds(repo) == ["create_tag", "move_tag", "move_tag", "delete_tag", "revert_tag"]
    log = UsageLog.objects.get(kind="revert_tag")
    assert log.metadata == {"tag": "latest", "digest": one} and log.actor == principal.user


def test_moving_a_tag_to_its_own_manifest_changes_nothing(repo, principal, digests):
    first = move(repo, principal, digests[0])
    again = move(repo, principal, digests[0])
    assert again == first and len(history(repo)) == 1
    assert kinds(repo) == ["create_tag"]


def test_an_unknown_manifest_or_bad_name_is_refused_and_writes_nothing(repo, principal, digests):
    with pytest.raises(errors.ManifestUnknown):
        move(repo, principal, "sha256:" + "0" * 64)
    with pytest.raises(services.RequestRefused):
        move(repo, principal, digests[0], name="-bad")
    assert not Tag.objects.filter(hidden=False).exists() and kinds(repo) == []


def test_restoring_the_current_manifest_changes_nothing(repo, principal, digests):
    tag = move(repo, principal, digests[0])
    assert restore(repo, principal, digests[0]) == tag
    assert kinds(repo) == ["create_tag"]


def test_a_restore_needs_a_history_entry_of_that_tag(repo, principal, digests):
    move(repo, principal, digests[0])
    move(repo, principal, digests[1], name="other")
    with pytest.raises(services.RequestRefused, match="never pointed"):
        restore(repo, principal, digests[1])
    assert len(history(repo)) == 1


# ---------------------------------------------------------------------------------------------
# The time machine window


def test_an_entry_older_than_the_window_cannot_be_restored(repo, principal, digests, alice):
    move(repo, principal, digests[0])
    move(repo, principal, digests[1])
    age(repo, "latest", 3 * DAY)
    namespace = alice.namespace
    namespace.time_machine_seconds = 7 * 86400
    namespace.save()
    # Three days ago is inside a week: restorable, and its manifest is kept.
    ended = history(repo)[0]
    assert selectors.tags_in_time_machine(repository=repo).filter(pk=ended.pk).exists()
    namespace.time_machine_seconds = 86400
    namespace.save()
    repo.refresh_from_db()
    assert not selectors.tags_in_time_machine(repository=repo).filter(pk=ended.pk).exists()
    with pytest.raises(services.RequestRefused, match="outside the time machine"):
        restore(repo, principal, digests[0])
    assert len(history(repo)) == 2 and kinds(repo) == ["create_tag", "move_tag"]


def test_a_window_of_zero_keeps_nothing(repo, principal, digests, alice):
    alice.namespace.time_machine_seconds = 0
    alice.namespace.save()
    repo.refresh_from_db()
    move(repo, principal, digests[0])
    move(repo, principal, digests[1])
    with pytest.raises(services.RequestRefused):
        restore(repo, principal, digests[0])
    assert not selectors.tags_in_time_machine(repository=repo).exists()


def test_a_collected_manifest_cannot_be_restored_and_no_tag_dangles(repo, principal, digests):
    move(repo, principal, digests[0])
    move(repo, principal, digests[1])
    # Garbage collection removed the first manifest (its history rows go with it).
    Manifest.objects.filter(digest=digests[0]).delete()
    with pytest.raises(errors.ManifestUnknown):
        restore(repo, principal, digests[0])
    assert [row.manifest.digest for row in history(repo)] == [digests[1]]


def test_a_manifest_collected_while_a_restore_waits_for_the_lock_is_not_tagged(monkeypatch, repo, principal, digests):
    move(repo, principal, digests[0])
    move(repo, principal, digests[1])
    real = selectors.manifest_expires_after

    def collected_meanwhile(manifest):
        # What a concurrent garbage collection does between the restore's first read and its lock.
        result = real(manifest)
        Manifest.objects.filter(pk=manifest.pk).delete()
        return result

    monkeypatch.setattr(selectors, "manifest_expires_after", collected_meanwhile)
    with pytest.raises(errors.ManifestUnknown):
        restore(repo, principal, digests[0])
    assert (
        Tag.objects.filter(repository=repo, lifetime_end__isnull=True, hidden=False).get().manifest.digest
        == (digests[1])
    )
    assert kinds(repo) == ["create_tag", "move_tag"]


def test_rows_in_and_past_the_window_per_namespace(alice, bob, principal, repo):
    """Each namespace's own window decides; hidden, purged and expired rows are classified too."""
    now = timezone.now()
    other = services.repository_create(namespace=bob.namespace, name="app", principal=user_principal(bob))
    bob_manifest = Manifest.objects.create(
        repository=other, digest="sha256:" + "b" * 64, media_type="x", raw=b"", size=0
    )
    manifest = Manifest.objects.create(repository=repo, digest="sha256:" + "a" * 64, media_type="x", raw=b"", size=0)
    alice.namespace.time_machine_seconds = 7 * 86400
    alice.namespace.save()
    bob.namespace.time_machine_seconds = 86400
    bob.namespace.save()

    def row(repository, target, **fields):
        fields.setdefault("lifetime_start", now - 30 * DAY)
        return Tag.objects.create(repository=repository, name=fields.pop("name", "t"), manifest=target, **fields)

    alive = row(repo, manifest, name="alive")
    expiring = row(repo, manifest, name="expiring", expiration=now + DAY)
    recent = row(repo, manifest, lifetime_end=now - 3 * DAY)
    old = row(repo, manifest, lifetime_end=now - 8 * DAY)
    expired = row(repo, manifest, name="expired", expiration=now - 2 * DAY)
    long_expired = row(repo, manifest, name="long-expired", expiration=now - 9 * DAY)
    purged = row(repo, manifest, lifetime_end=now - DAY, purged=True)
    temp_alive = row(repo, manifest, name="$temp-1", hidden=True, expiration=now + DAY)
    temp_expired = row(repo, manifest, name="$temp-2", hidden=True, expiration=now - DAY)
    bob_recent = row(other, bob_manifest, lifetime_end=now - 3 * DAY)
    bob_fresh = row(other, bob_manifest, lifetime_end=now - timedelta(hours=1))

    in_window = set(selectors.tags_in_time_machine(now=now))
    assert in_window == {recent, expired, bob_fresh}
    past = set(selectors.tags_past_time_machine(now=now))
    assert past == {old, long_expired, purged, temp_expired, bob_recent}
    kept = set(selectors.tags_retaining_manifests(now=now))
    assert kept == {alive, expiring, temp_alive, recent, expired, bob_fresh}
    # Every row is exactly one of: kept (alive or in the window), or past the window.
    assert set(Tag.objects.all()) - past == kept and not past & kept
    # Limited to one repository, the same rule.
    assert set(selectors.tags_in_time_machine(now=now, repository=other)) == {bob_fresh}
    assert selectors.time_machine_cutoff(alice.namespace, now) == now - 7 * DAY


def test_an_expired_entry_is_history_and_restorable_within_the_window(repo, principal, digests):
    tag = move(repo, principal, digests[0])
    move(repo, principal, digests[1], name="other")
    Tag.objects.filter(pk=tag.pk).update(lifetime_start=timezone.now() - 2 * DAY, expiration=timezone.now() - DAY)
    assert selectors.tag_alive(repository=repo, name="latest") is None
    with pytest.raises(errors.ManifestUnknown):
        services.tag_delete(repository=repo, name="latest", principal=principal, ip=None)
    restored = restore(repo, principal, digests[0])
    rows = history(repo)
    # The expired row ended at its expiration, not now.
    assert rows[0].lifetime_end == rows[0].expiration and rows[1] == restored and restored.reversion


# ---------------------------------------------------------------------------------------------
# Expiration


def test_setting_changing_and_clearing_an_expiration(repo, principal, digests):
    move(repo, principal, digests[0])
    when = timezone.now() + 3 * DAY
    tag = services.tag_set_expiration(repository=repo, name="latest", expiration=when, principal=principal, ip=None)
    assert tag.expiration == when and Tag.objects.get(pk=tag.pk).expiration == when
    services.tag_set_expiration(repository=repo, name="latest", expiration=None, principal=principal, ip=None)
    assert Tag.objects.get(pk=tag.pk).expiration is None
    logs = UsageLog.objects.filter(kind="change_tag_expiration").order_by("pk")
    assert [entry.metadata["expiration_date"] for entry in logs] == [when.isoformat(), None]
    assert logs[1].metadata["old_expiration_date"] == when.isoformat()
    # No history row for an expiration change.
    assert len(history(repo)) == 1


def test_an_expiration_is_kept_between_an_hour_and_two_years_after_the_start(repo, principal, digests):
    tag = move(repo, principal, digests[0])
    soon = services.tag_set_expiration(
        repository=repo, name="latest", expiration=timezone.now() + timedelta(minutes=5), principal=principal, ip=None
    )
    assert soon.expiration == tag.lifetime_start + timedelta(hours=1)
    late = services.tag_set_expiration(
        repository=repo, name="latest", expiration=timezone.now() + 300 * 7 * DAY, principal=principal, ip=None
    )
    assert late.expiration == tag.lifetime_start + timedelta(weeks=104)


def test_an_expiration_in_the_past_or_on_a_missing_tag_is_refused(repo, principal, digests):
    move(repo, principal, digests[0])
    with pytest.raises(services.RequestRefused):
        services.tag_set_expiration(
            repository=repo, name="latest", expiration=timezone.now() - DAY, principal=principal, ip=None
        )
    with pytest.raises(errors.ManifestUnknown):
        services.tag_set_expiration(
            repository=repo, name="missing", expiration=timezone.now() + DAY, principal=principal, ip=None
        )
    assert not UsageLog.objects.filter(kind="change_tag_expiration").exists()


def test_a_tag_that_expires_ends_by_itself(client, as_alice, repo, principal, digests):
    tag = move(repo, principal, digests[0])
    Tag.objects.filter(pk=tag.pk).update(expiration=timezone.now() - timedelta(seconds=1))
    headers = as_alice.pull("alice/app")
    assert_error(client.get("/v2/alice/app/manifests/latest", **headers), 404, "MANIFEST_UNKNOWN")
    assert client.get("/v2/alice/app/tags/list", **headers).json()["tags"] == []
    # Nothing wrote lifetime_end: reads treat the row as ended on their own.
    assert Tag.objects.get(pk=tag.pk).lifetime_end is None
    # Pushing the name again starts a creation, not a move.
    move(repo, principal, digests[1])
    assert kinds(repo)[-1] == "create_tag"


def test_the_expires_after_label_sets_the_expiration_of_a_pushed_tag(as_alice, repo):
    image = labelled_image({"quay.expires-after": "2w", "maintainer": "alice"})
    as_alice.push_image("alice/app", "v1", image)
    tag = Tag.objects.get(name="v1")
    assert tag.expiration == tag.lifetime_start + timedelta(weeks=2)


@pytest.mark.parametrize("value", ["soon", "0d", "-3d", "5y", "", "3.5h"])
def test_an_invalid_expires_after_label_is_ignored(as_alice, repo, value):
    as_alice.push_image("alice/app", "v1", labelled_image({"quay.expires-after": value}))
    assert Tag.objects.get(name="v1").expiration is None


def test_an_oci_annotation_is_a_label_too_and_wins_over_the_config(as_alice, repo):
    image = labelled_image({"quay.expires-after": "2w"}, annotations={"quay.expires-after": "90m"})
    as_alice.push_image("alice/app", "v1", image)
    tag = Tag.objects.get(name="v1")
    assert tag.expiration == tag.lifetime_start + timedelta(minutes=90)


def test_a_docker_manifest_takes_the_label_from_its_config(as_alice, repo):
    as_alice.push_image("alice/app", "v1", labelled_image({"quay.expires-after": "3d"}, media_type=DOCKER_MANIFEST))
    tag = Tag.objects.get(name="v1")
    assert tag.expiration == tag.lifetime_start + 3 * DAY


def test_a_push_by_digest_ignores_the_label_and_tagging_it_later_applies_it(as_alice, repo, principal):
    image = labelled_image({"quay.expires-after": "1d"})
    as_alice.push_image("alice/app", image.digest, image)
    temporary = Tag.objects.get(hidden=True)
    assert temporary.expiration == temporary.lifetime_start + timedelta(seconds=services.TEMP_TAG_SECONDS)
    tag = move(repo, principal, image.digest, name="later")
    assert tag.expiration == tag.lifetime_start + DAY
    # An explicit expiration overrides the label.
    when = timezone.now() + 5 * DAY
    moved = move(repo, principal, image.digest, name="explicit", expiration=when)
    assert moved.expiration == when


# ---------------------------------------------------------------------------------------------
# Permanent delete


def test_purging_the_alive_tag_ends_it_outside_the_time_machine(repo, principal, digests):
    move(repo, principal, digests[0])
    count = services.tag_purge(repository=repo, name="latest", alive=True, principal=principal, ip=None)
    (row,) = history(repo)
    assert count == 1 and row.purged and row.lifetime_end is not None
    assert not selectors.tags_in_time_machine(repository=repo).exists()
    assert selectors.tags_past_time_machine(repository=repo).get() == row
    with pytest.raises(services.RequestRefused):
        restore(repo, principal, digests[0])
    entry = UsageLog.objects.get(kind="purge_tag")
    assert entry.metadata == {"tag": "latest", "digest": digests[0], "rows": 1}


def test_purging_ended_entries_of_one_manifest(repo, principal, digests):
    move(repo, principal, digests[0])
    move(repo, principal, digests[1])
    move(repo, principal, digests[0])
    move(repo, principal, digests[1])
    count = services.tag_purge(repository=repo, name="latest", manifest_digest=digests[0], principal=principal, ip=None)
    assert count == 2
    assert [(row.manifest.digest, row.purged) for row in history(repo)] == [
        (digests[0], True),
        (digests[1], False),
        (digests[0], True),
        (digests[1], False),
    ]
    with pytest.raises(errors.ManifestUnknown):
        services.tag_purge(repository=repo, name="latest", manifest_digest=digests[0], principal=principal, ip=None)
    with pytest.raises(errors.ManifestUnknown):
        services.tag_purge(repository=repo, name="nope", alive=True, principal=principal, ip=None)


# ---------------------------------------------------------------------------------------------
# Several processes changing one tag


def _database_env(tmp_path) -> dict:
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    env.update(DATA_DIR=str(tmp_path), DJANGO_SETTINGS_MODULE="tests.settings")
    if connection.vendor != "sqlite":
        db = connection.settings_dict
        user, password = quote(db["USER"] or "", safe=""), quote(db["PASSWORD"] or "", safe="")
        env["DATABASE_URL"] = (
            f"postgres://{user}:{password}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"
        )
    return env


@pytest.mark.django_db(transaction=True)
def test_concurrent_moves_restores_and_deletes_keep_one_alive_row_and_every_lifetime(tmp_path):
    env = _database_env(tmp_path)
    _finish(_run(env, "setup"))
    workers, steps = 4, 9
    start = time.time() + 2.0  # after every worker has imported Django
    processes = [_run(env, "mixed", str(start), str(steps)) for _ in range(workers)]
    for process in processes:
        _finish(process)
    rows = [
        (datetime.fromisoformat(begin), end and datetime.fromisoformat(end))
        for begin, end in json.loads(_finish(_run(env, "rows")))
    ]
    logged = json.loads(_finish(_run(env, "logs")))
    # Every worker ended on a move, so the last change of all made the tag alive.
    assert [end for _, end in rows].count(None) == 1 and rows[-1][1] is None
    # Complete: one row per logged creation, move or restore; none lost, none extra.
    created = logged.get("create_tag", 0) + logged.get("move_tag", 0) + logged.get("revert_tag", 0)
    assert len(rows) == created and created >= workers
    # Ordered and without overlap: each lifetime ended before the next began, exactly at its
    # start for a move or restore, earlier when a delete left the name unused for a while.
    gaps = 0
    for (_, earlier_end), (later_start, _) in zip(rows, rows[1:], strict=False):
        assert earlier_end is not None and earlier_end <= later_start
        gaps += earlier_end < later_start
    assert gaps == logged.get("delete_tag", 0)


def test_account_settings_validate_the_window(alice, org):
    with pytest.raises(ValidationError, match="Invalid tag expiration option"):
        account_services.user_tag_expiration_set(user=alice, seconds=3600)
    account_services.user_tag_expiration_set(user=alice, seconds=86400)
    alice.namespace.refresh_from_db()
    assert alice.namespace.time_machine_seconds == 86400
