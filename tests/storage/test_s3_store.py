"""S3BlobStore against a real S3 API (moto's server): chunked uploads, publish, cleanup."""

import io
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from registry import errors
from registry.storage import S3BlobStore, blob_name, get_blob_store
from tests.storage.helpers import digest_of


class Trickle(io.RawIOBase):
    """A stream that hands out at most ``step`` bytes per read, like a socket does."""

    def __init__(self, data: bytes, step: int):
        self._data = memoryview(data)
        self._step = step

    def readable(self):
        return True

    def read(self, n=-1):
        n = self._step if n is None or n < 0 else min(n, self._step)
        chunk, self._data = bytes(self._data[:n]), self._data[n:]
        return chunk


def append_all(store, upload_id: str, chunks: list[bytes]) -> tuple[int, list]:
    offset, parts = 0, []
    for chunk in chunks:
        offset, part = store.upload_append(upload_id, offset, io.BytesIO(chunk), len(chunk))
        parts.append(part)
    return offset, parts


@pytest.fixture
def store(s3):
    store = get_blob_store()
    assert isinstance(store, S3BlobStore)
    return store


def test_it_reads_back_several_parts_in_order(store, s3):
    upload_id = str(uuid.uuid4())
    chunks = [b"a" * 1000, b"bb" * 700, b"c" * 3]
    size, parts = append_all(store, upload_id, chunks)

    assert size == 2403
    assert [p[:2] for p in parts] == [[0, 1000], [1000, 1400], [2400, 3]]
    # One object per PATCH, all under the session's prefix.
    assert len(s3.keys(f"uploads/{upload_id}/")) == 3
    assert b"".join(store.upload_read(upload_id, size, parts)) == b"".join(chunks)
    # Re-hashing after a resumed session reads exactly the committed size.
    assert b"".join(store.upload_read(upload_id, 1500, parts)) == b"".join(chunks)[:1500]


def test_it_appends_a_stream_of_unknown_length_delivered_in_short_reads(store):
    upload_id = str(uuid.uuid4())
    data = bytes(range(256)) * 4096  # 1 MiB

    size, part = store.upload_append(upload_id, 0, Trickle(data, 64 * 1024), None)

    assert size == len(data)
    assert b"".join(store.upload_read(upload_id, size, [part])) == data


def test_it_publishes_a_verified_upload_and_only_then_shows_the_blob(store, s3):
    upload_id = str(uuid.uuid4())
    chunks = [b"first part ", b"second part ", b"third part"]
    data = b"".join(chunks)
    digest = digest_of(data)
    size, parts = append_all(store, upload_id, chunks)

    assert not store.exists(digest)
    assert s3.keys("blobs/") == []

    store.upload_publish(upload_id, size, digest, parts)

    assert store.exists(digest)
    assert s3.keys("blobs/") == [blob_name(digest)]
    assert s3.get(blob_name(digest)) == data
    assert store.open_blob(digest).read() == data
    # Publishing removes the parts.
    assert s3.keys("uploads/") == []


def test_it_publishes_a_multi_part_blob_larger_than_the_multipart_threshold(store, s3):
    # Parts smaller than S3's 5 MiB multipart minimum: publish must regroup them.
    upload_id = str(uuid.uuid4())
    chunks = [bytes([i]) * (3 * 1024 * 1024 + i) for i in range(4)]
    data = b"".join(chunks)
    digest = digest_of(data)
    size, parts = append_all(store, upload_id, chunks)

    store.upload_publish(upload_id, size, digest, parts)

    published = s3.get(blob_name(digest))
    assert len(published) == len(data)
    assert digest_of(published) == digest


def test_the_presigned_url_serves_the_blob(store, s3):
    upload_id = str(uuid.uuid4())
    data = b"presigned bytes"
    digest = digest_of(data)
    size, parts = append_all(store, upload_id, [data])
    store.upload_publish(upload_id, size, digest, parts)

    url = store.redirect_url(digest)

    assert url.startswith(f"{s3.endpoint}/{s3.name}/{blob_name(digest)}?")
    assert "X-Amz-Signature=" in url or "Signature=" in url
    response = requests.get(url, timeout=10)
    assert response.status_code == 200
    assert response.content == data


def test_upload_delete_removes_every_part(store, s3):
    upload_id, other_id = str(uuid.uuid4()), str(uuid.uuid4())
    _, parts = append_all(store, upload_id, [b"one", b"two", b"three"])
    append_all(store, other_id, [b"untouched"])

    store.upload_delete(upload_id, parts)

    assert s3.keys(f"uploads/{upload_id}/") == []
    assert len(s3.keys(f"uploads/{other_id}/")) == 1


def test_a_losing_concurrent_part_is_discarded_and_does_not_disturb_the_winner(store, s3):
    upload_id = str(uuid.uuid4())
    _, first = store.upload_append(upload_id, 0, io.BytesIO(b"committed"), 9)
    # Two requests both start at the committed offset 9; each writes its own object.
    _, winner = store.upload_append(upload_id, 9, io.BytesIO(b"-winner"), 7)
    _, loser = store.upload_append(upload_id, 9, io.BytesIO(b"-loser!"), 7)
    assert winner[2] != loser[2]

    store.discard_part(loser)

    assert s3.keys(f"uploads/{upload_id}/") == sorted([first[2], winner[2]])
    assert b"".join(store.upload_read(upload_id, 16, [first, winner])) == b"committed-winner"


def test_a_gap_in_the_parts_is_upload_data_lost(store):
    upload_id = str(uuid.uuid4())
    _, parts = append_all(store, upload_id, [b"0123456789", b"abcdef"])

    with pytest.raises(errors.BlobUploadInvalid):
        list(store.upload_read(upload_id, 16, [parts[1]]))
    with pytest.raises(errors.BlobUploadInvalid):
        list(store.upload_read(upload_id, 20, parts))


def test_a_part_object_gone_from_the_bucket_is_upload_data_lost(store, s3):
    upload_id = str(uuid.uuid4())
    size, parts = append_all(store, upload_id, [b"0123456789", b"abcdef"])
    s3.client.delete_object(Bucket=s3.name, Key=parts[1][2])

    with pytest.raises(errors.BlobUploadInvalid):
        list(store.upload_read(upload_id, size, parts))
    with pytest.raises(errors.BlobUploadInvalid):
        store.upload_publish(upload_id, size, digest_of(b"0123456789abcdef"), parts)
    assert s3.keys("blobs/") == []


def test_open_blob_of_a_missing_digest_is_blob_unknown_in_every_thread(store):
    with pytest.raises(errors.BlobUnknown):
        store.open_blob(digest_of(b"never stored"))

    # gthread workers serve requests from several threads; django-storages gives each thread
    # its own boto3 session, hence its own exception classes.
    with ThreadPoolExecutor(max_workers=1) as pool:
        future = pool.submit(store.open_blob, digest_of(b"never stored either"))
        with pytest.raises(errors.BlobUnknown):
            future.result()


def test_delete_blob_removes_the_object(store, s3):
    upload_id = str(uuid.uuid4())
    digest = digest_of(b"doomed")
    size, parts = append_all(store, upload_id, [b"doomed"])
    store.upload_publish(upload_id, size, digest, parts)

    store.delete_blob(digest)

    assert not store.exists(digest)
    assert s3.keys("blobs/") == []
