"""Tag history: every move ends one row and starts another; one alive row per name, even
under concurrent moves."""

import json
import os
import time
from datetime import datetime
from urllib.parse import quote

import pytest
from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from registry import services
from registry.models import Manifest, Tag
from tests.registry.conftest import make_image, store_image, user_principal
from tests.workers import start_worker


def test_pushing_a_tag_twice_keeps_both_lifetimes(as_alice, alice):
    first = as_alice.push_image("alice/app", "latest")
    second = as_alice.push_image("alice/app", "latest", make_image("second"))
    rows = list(Tag.objects.filter(name="latest").order_by("lifetime_start", "id").select_related("manifest"))
    assert [row.manifest.digest for row in rows] == [first.digest, second.digest]
    old, alive = rows
    assert old.lifetime_end is not None and old.lifetime_end >= old.lifetime_start
    assert alive.lifetime_end is None
    assert alive.lifetime_start >= old.lifetime_end
    # The old manifest stays (time machine), only the tag moved.
    assert Manifest.objects.filter(digest=first.digest).exists()


def test_pushing_the_same_manifest_again_adds_no_row(as_alice, alice):
    image = as_alice.push_image("alice/app", "latest")
    as_alice.push_image("alice/app", "latest", image)
    assert Tag.objects.filter(name="latest").count() == 1


def test_delete_ends_the_alive_row(client, as_alice, alice):
    as_alice.push_image("alice/app", "latest")
    client.delete("/v2/alice/app/manifests/latest", **as_alice.delete("alice/app"))
    row = Tag.objects.get(name="latest")
    assert row.lifetime_end is not None
    # Pushing the name again starts a new lifetime beside the ended one.
    as_alice.push_image("alice/app", "latest")
    assert Tag.objects.filter(name="latest").count() == 2
    assert Tag.objects.filter(name="latest", lifetime_end__isnull=True).count() == 1


@pytest.fixture
def two_manifests(alice, repo):
    principal = user_principal(alice)
    images = [store_image(repo, image.digest, image, principal) for image in (make_image("1"), make_image("2"))]
    return [Manifest.objects.get(digest=image.digest) for image in images]


def test_the_database_refuses_a_second_alive_row(alice, repo, two_manifests):
    now = timezone.now()
    Tag.objects.create(repository=repo, name="latest", manifest=two_manifests[0], lifetime_start=now)
    with pytest.raises(IntegrityError), transaction.atomic():
        Tag.objects.create(repository=repo, name="latest", manifest=two_manifests[1], lifetime_start=now)
    # Ended rows are history: any number may share the name.
    Tag.objects.filter(name="latest").update(lifetime_end=now)
    Tag.objects.create(repository=repo, name="latest", manifest=two_manifests[1], lifetime_start=now)
    assert Tag.objects.filter(name="latest").count() == 2


def test_a_move_that_loses_the_race_is_retried_against_the_new_state(monkeypatch, alice, repo, two_manifests):
    real = services._tag_set_once
    calls = []

    def lose_once(*args):
        calls.append(args)
        if len(calls) == 1:
            # What the other writer's committed insert does to ours: the unique index fires.
            Tag.objects.create(repository=repo, name="latest", manifest=two_manifests[0], lifetime_start=timezone.now())
            raise IntegrityError("tag_one_alive_per_name")
        return real(*args)

    monkeypatch.setattr(services, "_tag_set_once", lose_once)
    tag = services.tag_set(
        repository=repo, name="latest", manifest=two_manifests[1], principal=user_principal(alice), ip=None
    )
    assert len(calls) == 2
    assert tag.manifest == two_manifests[1]
    assert Tag.objects.filter(name="latest", lifetime_end__isnull=True).get() == tag


def test_a_move_that_loses_twice_fails_loudly(monkeypatch, alice, repo, two_manifests):
    def always_lose(*args):
        raise IntegrityError("tag_one_alive_per_name")

    monkeypatch.setattr(services, "_tag_set_once", always_lose)
    with pytest.raises(IntegrityError):
        services.tag_set(
            repository=repo, name="latest", manifest=two_manifests[1], principal=user_principal(alice), ip=None
        )


def _run(env, *args):
    return start_worker("tests.registry.tag_race", env, *args)


def _finish(process) -> str:
    out, err = process.communicate(timeout=60)
    assert process.returncode == 0, err
    return out


@pytest.mark.django_db(transaction=True)
def test_concurrent_moves_from_several_processes_leave_one_alive_row(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    env.update(DATA_DIR=str(tmp_path), DJANGO_SETTINGS_MODULE="tests.settings")
    if connection.vendor != "sqlite":
        # The workers meet in this test's own database (committed here, flushed afterwards).
        db = connection.settings_dict
        user, password = quote(db["USER"] or "", safe=""), quote(db["PASSWORD"] or "", safe="")
        env["DATABASE_URL"] = (
            f"postgres://{user}:{password}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"
        )
    _finish(_run(env, "setup"))
    workers, moves = 3, 4
    start = time.time() + 1.5  # after every worker has imported Django
    processes = [_run(env, "move", str(start), str(moves)) for _ in range(workers)]
    for process in processes:
        _finish(process)
    rows = [
        (datetime.fromisoformat(begin), end and datetime.fromisoformat(end))
        for begin, end in json.loads(_finish(_run(env, "rows")))
    ]
    assert [end for _, end in rows].count(None) == 1
    assert len(rows) > 1
    # No two lifetimes overlap: each ended before the next began.
    for (_, earlier_end), (later_start, _) in zip(rows, rows[1:], strict=False):
        assert earlier_end is not None and earlier_end <= later_start
