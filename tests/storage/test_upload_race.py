"""Two requests racing on one upload session over S3, where nothing serializes them: the
conditional UPDATE of the session picks one winner and the loser's part object is removed."""

import io

import pytest

from registry import errors, services
from registry.models import Blob, Repository, UploadSession
from registry.permissions import ANONYMOUS
from registry.storage import get_blob_store
from tests.factories import RepositoryFactory
from tests.storage.helpers import digest_of


@pytest.fixture
def session(alice, s3):
    repository = RepositoryFactory(name="raced", kind=Repository.Kind.IMAGE)
    return services.upload_start(repository=repository, principal=ANONYMOUS)


def test_the_losing_request_gets_416_and_its_part_is_discarded(session, s3):
    services.upload_append(session=session, stream=io.BytesIO(b"head-"), length=5, start=0)

    store = get_blob_store()
    real_append = store.upload_append

    def append_then_lose_the_race(upload_id, offset, stream, length):
        result = real_append(upload_id, offset, stream, length)
        # Another request commits its chunk at the same offset while this one is still writing.
        store.upload_append = real_append
        other = UploadSession.objects.get(pk=session.pk)
        services.upload_append(session=other, stream=io.BytesIO(b"winner"), length=6, start=5)
        return result

    store.upload_append = append_then_lose_the_race
    with pytest.raises(errors.RangeInvalid) as caught:
        services.upload_append(session=session, stream=io.BytesIO(b"loser!"), length=6, start=5)

    assert caught.value.status == 416
    session.refresh_from_db()
    assert session.offset == 11
    assert sorted(part[2] for part in session.parts) == s3.keys(f"uploads/{session.pk}/")
    assert b"".join(get_blob_store().upload_read(str(session.pk), 11, session.parts)) == b"head-winner"

    blob = services.upload_complete(
        session=session, digest=digest_of(b"head-winner"), stream=None, length=None, start=None
    )

    assert Blob.objects.get(digest=blob.digest).size == 11
    with get_blob_store().open_blob(blob.digest) as f:
        assert f.read() == b"head-winner"
    assert s3.keys("uploads/") == []
