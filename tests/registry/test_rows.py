"""registry.rows: plain-SQL reads and writes must give what the ORM gives, on every backend."""

import uuid
from datetime import timedelta

from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from registry import selectors
from registry.models import Repository, UploadSession, UsageLog
from registry.rows import RowLoader
from registry.usage import log_action
from tests.registry.conftest import user_principal


def _fields(instance) -> dict:
    return {f.attname: getattr(instance, f.attname) for f in instance._meta.concrete_fields}


def test_repository_by_name_matches_the_orm_and_brings_its_namespace(repo):
    expected = Repository.objects.select_related("namespace").get(pk=repo.pk)
    with CaptureQueriesContext(connection) as queries:
        found = selectors.repository_by_name("alice/app")
        assert found.namespace.name == "alice"
    assert len(queries) == 1
    assert _fields(found) == _fields(expected)
    assert _fields(found.namespace) == _fields(expected.namespace)
    assert found._state.adding is False
    assert selectors.repository_by_name("alice/missing") is None
    assert selectors.repository_by_name("nobody/app") is None


def test_an_upload_session_round_trips_uuid_json_and_times(repo):
    session = UploadSession(repository=repo, owner="user:1", expires=timezone.now() + timedelta(hours=1))
    session.parts = [{"key": "part-0", "size": 5}]
    RowLoader(UploadSession).insert(session)
    stored = UploadSession.objects.get(pk=session.pk)
    assert _fields(stored) == _fields(session)
    assert stored.started is not None  # auto_now_add applied on the way in
    live = selectors.upload_session_live(repository=repo, session_id=session.pk, owner="user:1")
    assert _fields(live) == _fields(stored)
    assert selectors.upload_session_live(repository=repo, session_id=session.pk, owner="user:2") is None
    assert selectors.upload_session_live(repository=repo, session_id=uuid.uuid4(), owner="user:1") is None
    assert RowLoader(UploadSession).delete_by_pk(session.pk) == 1
    assert not UploadSession.objects.filter(pk=session.pk).exists()


def test_an_expired_session_is_not_live(repo):
    session = UploadSession(repository=repo, owner="o", expires=timezone.now() - timedelta(seconds=1))
    RowLoader(UploadSession).insert(session)
    assert selectors.upload_session_live(repository=repo, session_id=session.pk, owner="o") is None


def test_log_action_writes_the_row_the_orm_reads(alice, repo):
    entry = log_action(
        UsageLog.Kind.PUSH_REPO,
        principal=user_principal(alice),
        repository=repo,
        ip="127.0.0.1",
        metadata={"tag": "latest", "n": [1, 2]},
    )
    stored = UsageLog.objects.get(pk=entry.pk)
    assert _fields(stored) == _fields(entry)
    assert stored.metadata == {"tag": "latest", "n": [1, 2]}
    assert stored.actor_id == alice.pk and stored.namespace_id == repo.namespace_id
