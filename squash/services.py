"""The squashed-image cache: one flattening per image and name at a time, streamed while it is
written, published whole, served at blob speed afterwards, primed in the background, bounded in
size and collected with its manifests.

How one download goes (``squash_open``):

1. the cached row is READY and its file is stored: the caller serves the file (sendfile,
   X-Accel-Redirect or a presigned redirect);
2. otherwise the caller plans the tarball (its exact size comes from the layers' uncompressed
   sizes, before any byte is flattened) and claims the row in a transaction (row lock): with no
   row, a failed one, or one whose flattening died, it becomes the flattening's owner, starts the
   flattening in a background thread writing a local part file, and streams that file as it
   grows; with a live flattening under way it follows the same part file (or, from another
   machine, waits for the published result). There is never a second flattening of one row.

A flattening is alive while it holds an ``flock`` on its part file (released by the kernel when
its process dies, however it dies) and refreshes the row's heartbeat (every
SQUASH_HEARTBEAT_SECONDS); a row whose heartbeat is older than SQUASH_STALE_SECONDS, or whose
part file on this machine is not locked, is taken over by the next request.
"""

from __future__ import annotations

import errno
import fcntl
import io
import logging
import os
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from notifications.events import public_host
from quay_site.faults import pause
from registry import usage
from registry.models import Manifest, Repository
from registry.permissions import Principal
from registry.storage import blob_name, get_blob_store
from squash import selectors
from squash.models import LayerSize, SquashedImage, SquashSettings
from squash.selectors import LayerDescriptor, SquashRefused, SquashTarget
from squash.store import get_squash_store

logger = logging.getLogger("squash")

# The part file is written in chunks of about this size, or whatever is there after this long,
# so that followers see bytes soon (time to first byte) without a system call per tar header.
FLUSH_BYTES = 256 * 1024
FLUSH_SECONDS = 0.05
READ_CHUNK = 1024 * 1024
# Followers with nothing new to read look at the row (is the flattening still alive?) this often.
CHECK_SECONDS = 1.0
# Wakes followers in this process as soon as a flattening here writes (others poll the file).
_grew = threading.Condition()


class SquashFailed(Exception):
    """A flattening that died or failed while a download followed it."""


# ---------------------------------------------------------------------------------------------
# Layer sizes


def _gzip_trailer_size(layer: LayerDescriptor) -> int:
    """The gzip ISIZE trailer (uncompressed size modulo 2**32), lifted to the smallest value that
    is not below what the compressed bytes can hold."""
    store = get_blob_store()
    path = store.local_path(layer.digest)
    if path is not None:
        with open(path, "rb") as f:
            f.seek(max(layer.size - 4, 0))
            tail = f.read(4)
    else:  # S3: a ranged GET of the last 4 bytes
        body = store._bucket.Object(blob_name(layer.digest)).get(Range=f"bytes={max(layer.size - 4, 0)}-")["Body"]
        try:
            tail = body.read()
        finally:
            body.close()
    modulo = int.from_bytes(tail[-4:], "little")
    # Deflate output is never much larger than its input, so a tar far smaller than its
    # compressed form means the trailer wrapped around 4 GiB (that many times).
    floor = layer.size - layer.size // 100 - 1024
    while modulo < floor:
        modulo += 1 << 32
    return modulo


def _head(layer: LayerDescriptor) -> bytes:
    stream = get_blob_store().open_blob(layer.digest)
    try:
        return stream.read(4)
    finally:
        stream.close()


def _measure(layer: LayerDescriptor) -> int:
    """Decompress the whole layer once and count its tar bytes (zstd, multi-member gzip); the
    result is exact and kept for every later plan of an image with this layer."""
    from squash.flatten import uncompressed_size

    total = uncompressed_size(_layer_sources([layer], lambda: None)[0])
    LayerSize.objects.update_or_create(digest=layer.digest, defaults={"uncompressed_size": total})
    return total


class _Sizes:
    """``uncompressed_size_of`` for plan_squash: an exact size measured before, a plain tar's own
    size, the gzip trailer, or a measurement. The bytes decide the encoding, as the flattener's
    do; whether a gzip trailer was trusted is remembered (see _measure_guessed)."""

    def __init__(self, layers: list[LayerDescriptor]):
        self.by_digest = {layer.digest: layer for layer in layers}
        self.known = selectors.known_layer_sizes(list(self.by_digest))
        self.guessed: list[LayerDescriptor] = []

    def __call__(self, source) -> int:
        layer = self.by_digest[source.digest]
        if layer.digest in self.known:
            return self.known[layer.digest]
        head = _head(layer)
        if head[:2] == b"\x1f\x8b":
            self.guessed.append(layer)
            return _gzip_trailer_size(layer)
        if head == b"\x28\xb5\x2f\xfd":
            return _measure(layer)
        return layer.size


# ---------------------------------------------------------------------------------------------
# Layer streams that keep the flattening's heartbeat going


class _BeatingReader(io.RawIOBase):
    """A stored blob read sequentially, calling ``beat`` as it goes (a long read of a lower layer
    with nothing written meanwhile still shows the flattening is alive)."""

    def __init__(self, stream, beat: Callable[[], None]):
        self._stream = stream
        self._beat = beat

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        self._beat()
        readinto = getattr(self._stream, "readinto", None)
        if readinto is not None:
            return readinto(buffer)
        data = self._stream.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)

    def close(self) -> None:
        try:
            self._stream.close()
        finally:
            super().close()


def _layer_sources(layers: list[LayerDescriptor], beat: Callable[[], None]) -> list:
    from squash.flatten import LayerSource

    store = get_blob_store()

    def opener(digest: str):
        return lambda: io.BufferedReader(_BeatingReader(store.open_blob(digest), beat), READ_CHUNK)

    # The contract lists layers from the TOP one down; manifests list them bottom first.
    return [LayerSource(layer.digest, layer.media_type, layer.size, opener(layer.digest)) for layer in reversed(layers)]


@dataclass
class _Planned:
    plan: object
    layers: list[LayerDescriptor]
    sizes: _Sizes
    platform: str
    beat: _BeatHolder


class _BeatHolder:
    """The heartbeat callable, set once the row is claimed (planning reads layers before)."""

    def __init__(self):
        self.beat: Callable[[], None] = lambda: None

    def __call__(self) -> None:
        self.beat()


def _plan(target: SquashTarget) -> _Planned:
    from squash.tarball import plan_squash

    config = selectors.image_config(target.manifest)
    layers = selectors.image_layers(target.manifest)
    holder = _BeatHolder()
    sizes = _Sizes(layers)
    platform = target.platform or str(selectors.Platform.of(config) or "")
    plan = plan_squash(
        layers=_layer_sources(layers, holder),
        config=config,
        repo_tag=target.repo_tag,
        uncompressed_size_of=sizes,
    )
    return _Planned(plan, layers, sizes, platform, holder)


# ---------------------------------------------------------------------------------------------
# Claiming a row


@dataclass(frozen=True)
class Cached:
    """Serve the stored file ``row.storage_name``."""

    row: SquashedImage


@dataclass
class Streaming:
    """Stream ``size`` bytes of a flattening (ours or another request's) as they are written."""

    row_id: int
    owner: str
    size: int
    storage_name: str
    part: io.BufferedReader | None  # the part file on this machine, open; None: wait for the result
    leader: bool

    def __iter__(self) -> Iterator[bytes]:
        return _follow(self)


def _stale_before():
    return timezone.now() - timedelta(seconds=settings.SQUASH_STALE_SECONDS)


def _part_held(path: str) -> bool | None:
    """Whether a live flattening holds the part file at ``path`` on this machine (None: no such
    file here, the flattening runs elsewhere or has not started writing)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except OSError as exc:
        if exc.errno in (errno.EAGAIN, errno.EWOULDBLOCK, errno.EACCES):
            return True
        raise
    finally:
        os.close(fd)
    return False


def _alive(row: SquashedImage) -> bool:
    if row.state != SquashedImage.State.BUILDING or row.heartbeat is None or row.heartbeat < _stale_before():
        return False
    return _part_held(get_squash_store().part_path(row.storage_name)) is not False


def _new_storage_name(row: SquashedImage, owner: str) -> str:
    hexpart = row.manifest.digest.partition(":")[2] if row.manifest_id else uuid.uuid4().hex
    return f"squash/{hexpart[:2]}/{hexpart}-{owner}.tar"


def _open_cached(row: SquashedImage) -> bool:
    # On S3 too (one HEAD, small beside the transfer): a redirect to an object that a lifecycle
    # rule or a racing eviction removed would send the client to a 404 until the row is evicted.
    return bool(row.storage_name) and get_squash_store().exists(row.storage_name)


def squash_open(*, target: SquashTarget) -> Cached | Streaming:
    """What a download of ``target`` gets: the cached file, or a stream of a flattening (the one
    this call starts, or the one under way)."""
    row = selectors.squash_cached(manifest=target.manifest, host=target.host, tag=target.tag)
    if row is not None and row.state == SquashedImage.State.READY and _open_cached(row):
        return Cached(row)
    if row is not None and _alive(row):
        return _follower(row)
    planned = _plan(target)
    kind, row = _claim_with_retry(target, planned)
    if kind == "cached":
        return Cached(row)
    if kind == "follow":
        return _follower(row)
    part_path = get_squash_store().part_path(row.storage_name)
    fd = _create_part(part_path)
    reader = io.BufferedReader(open(part_path, "rb", buffering=0), READ_CHUNK)
    threading.Thread(
        target=_build_thread, args=(row.pk, row.owner, planned, fd, part_path), name="squash-flatten", daemon=True
    ).start()
    return Streaming(row.pk, row.owner, row.size, row.storage_name, reader, leader=True)


def _claim_with_retry(target: SquashTarget, planned: _Planned) -> tuple[str, SquashedImage]:
    # Two first requests may both insert: the unique constraint fails one, which then finds the
    # other's row.
    try:
        return _claim(target, planned)
    except IntegrityError:
        return _claim(target, planned)


def _claim(target: SquashTarget, planned: _Planned) -> tuple[str, SquashedImage]:
    with transaction.atomic():
        row = (
            SquashedImage.objects.select_for_update()
            .select_related("manifest")
            .filter(manifest=target.manifest, host=target.host, tag=target.tag)
            .first()
        )
        if row is not None:
            if row.state == SquashedImage.State.READY and _open_cached(row):
                return "cached", row
            if _alive(row):
                return "follow", row
        owner = uuid.uuid4().hex
        now = timezone.now()
        if row is None:
            row = SquashedImage(
                repository=target.repository, manifest=target.manifest, host=target.host, tag=target.tag
            )
        stale_name = row.storage_name if row.pk else ""
        row.state = SquashedImage.State.BUILDING
        row.platform = planned.platform
        row.owner = owner
        row.size = planned.plan.total_size
        row.sha256 = ""
        row.error = ""
        row.heartbeat = now
        row.finished = None
        row.last_used = now
        row.flattenings += 1
        row.storage_name = _new_storage_name(row, owner)
        row.save()
    if stale_name:
        # A dead or failed attempt's leftovers (its part file here; a published file never is,
        # since publishing and READY go together).
        _remove(get_squash_store().part_path(stale_name))
    return "owner", row


def _create_part(path: str) -> int:
    """The part file, created already locked: it appears under its name only once the lock that
    says "a flattening writes this" is held (the lock stays with the inode across the rename)."""
    temporary = f"{path}.{uuid.uuid4().hex}"
    fd = os.open(temporary, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
    fcntl.flock(fd, fcntl.LOCK_EX)
    os.rename(temporary, path)
    return fd


def _remove(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


def _follower(row: SquashedImage) -> Streaming | Cached | None:
    """Follow a live flattening: its part file when it is on this machine, else its result."""
    path = get_squash_store().part_path(row.storage_name)
    try:
        part = open(path, "rb", buffering=0)
    except FileNotFoundError:
        # Published meanwhile (the row says READY now), or running on another machine.
        fresh = SquashedImage.objects.filter(pk=row.pk).first()
        if fresh is not None and fresh.state == SquashedImage.State.READY and _open_cached(fresh):
            return Cached(fresh)
        part = None
    return Streaming(row.pk, row.owner, row.size, row.storage_name, part and io.BufferedReader(part, READ_CHUNK), False)


# ---------------------------------------------------------------------------------------------
# Flattening


class _Lost(Exception):
    """The row was deleted (garbage collection) or taken over while we flattened."""


class _Heartbeat:
    def __init__(self, row_id: int, owner: str):
        self.row_id, self.owner = row_id, owner
        self.every = settings.SQUASH_HEARTBEAT_SECONDS
        self.last = time.monotonic()

    def __call__(self) -> None:
        now = time.monotonic()
        if now - self.last < self.every:
            return
        self.last = now
        updated = SquashedImage.objects.filter(
            pk=self.row_id, owner=self.owner, state=SquashedImage.State.BUILDING
        ).update(heartbeat=timezone.now())
        if not updated:
            raise _Lost()


class _PartWriter:
    """The ``out`` of write_squash: the part file, written in chunks that wake followers."""

    def __init__(self, fd: int, beat: Callable[[], None]):
        self.fd = fd
        self.beat = beat
        self.buffer = bytearray()
        self.last = time.monotonic()
        self.written = 0

    def write(self, data) -> int:
        size = len(data)
        if not self.buffer and size >= FLUSH_BYTES:
            self._write(data)
        else:
            self.buffer += data
            if len(self.buffer) >= FLUSH_BYTES or time.monotonic() - self.last >= FLUSH_SECONDS:
                self.flush()
        return size

    def flush(self) -> None:
        if self.buffer:
            self._write(self.buffer)
            self.buffer = bytearray()

    def _write(self, data) -> None:
        view = memoryview(data)
        while view:
            done = os.write(self.fd, view)
            view = view[done:]
            self.written += done
        self.last = time.monotonic()
        with _grew:
            _grew.notify_all()
        self.beat()
        pause("squash.writing")  # tests/faults: part of the tarball written


def _build_thread(row_id: int, owner: str, planned: _Planned, fd: int, part_path: str) -> None:
    try:
        squash_build(row_id=row_id, owner=owner, planned=planned, fd=fd, part_path=part_path)
    except Exception:
        logger.exception("squash flattening %s failed", row_id)
    finally:
        connection.close()


def squash_build(*, row_id: int, owner: str, planned: _Planned, fd: int, part_path: str) -> SquashedImage | None:
    """Flatten into the (locked) part file ``fd``, publish it, and mark the row READY; on any
    failure mark it FAILED. Returns the row when it is ready."""
    from squash.tarball import write_squash

    store = get_squash_store()
    beat = _Heartbeat(row_id, owner)
    planned.beat.beat = beat
    row = SquashedImage.objects.filter(pk=row_id).first()
    name = row.storage_name if row is not None else ""
    try:
        if row is None or row.owner != owner:
            raise _Lost()
        writer = _PartWriter(fd, beat)
        result = write_squash(planned.plan, writer)
        writer.flush()
        if writer.written != planned.plan.total_size or result.size != planned.plan.total_size:
            raise RuntimeError(f"wrote {writer.written} bytes, planned {planned.plan.total_size}")
        store.publish(part_path, name)
        with transaction.atomic():
            ready = SquashedImage.objects.filter(pk=row_id, owner=owner, state=SquashedImage.State.BUILDING).update(
                state=SquashedImage.State.READY,
                sha256=result.sha256,
                heartbeat=None,
                finished=timezone.now(),
                size=result.size,
            )
        if not ready:
            raise _Lost()
    except _Lost:
        logger.info("squash %s was deleted or taken over while it was flattened", row_id)
        store.delete(name)
        _remove(part_path)
        return None
    except Exception as exc:
        logger.exception("squash %s failed", row_id)
        _remove(part_path)
        SquashedImage.objects.filter(pk=row_id, owner=owner).update(
            state=SquashedImage.State.FAILED, error=f"{type(exc).__name__}: {exc}"[:2000], heartbeat=None
        )
        _measure_guessed(planned)
        return None
    finally:
        os.close(fd)  # releases the lock: followers now know the flattening has ended
        with _grew:
            _grew.notify_all()
    logger.info("squashed %s (%d bytes)", name, planned.plan.total_size)
    squash_cache_evict(keep=row_id)
    return SquashedImage.objects.filter(pk=row_id).first()


def _measure_guessed(planned: _Planned) -> None:
    """After a failure, measure the gzip layers whose trailer was trusted: a multi-member gzip's
    trailer counts only its last member, and the next attempt then plans with exact sizes."""
    for layer in planned.sizes.guessed:
        try:
            _measure(layer)
        except Exception:
            logger.warning("could not measure layer %s", layer.digest, exc_info=True)


# ---------------------------------------------------------------------------------------------
# Following


def _follow(streaming: Streaming) -> Iterator[bytes]:
    sent = 0
    part = streaming.part
    try:
        if part is None:
            yield from _result_when_ready(streaming)
            return
        checked = time.monotonic()
        while sent < streaming.size:
            chunk = part.read(min(READ_CHUNK, streaming.size - sent))
            if chunk:
                sent += len(chunk)
                yield chunk
                continue
            with _grew:
                _grew.wait(FLUSH_SECONDS)
            if time.monotonic() - checked >= CHECK_SECONDS:
                checked = time.monotonic()
                _check_alive(streaming, part)
    finally:
        if part is not None:
            part.close()


def _check_alive(streaming: Streaming, part) -> None:
    """Raise SquashFailed when the flattening we follow is over without having written it all."""
    try:
        fcntl.flock(part.fileno(), fcntl.LOCK_SH | fcntl.LOCK_NB)
    except OSError as exc:
        if exc.errno in (errno.EAGAIN, errno.EWOULDBLOCK, errno.EACCES):
            return  # still held: still writing
        raise
    fcntl.flock(part.fileno(), fcntl.LOCK_UN)
    # Unlocked: the flattening ended. Complete bytes may still be unread; read again first.
    position = part.tell()
    if os.fstat(part.fileno()).st_size > position:
        return
    raise SquashFailed(f"the flattening of squash {streaming.row_id} ended before its last byte")


def _result_when_ready(streaming: Streaming) -> Iterator[bytes]:
    """A flattening on another machine: wait for its published result, then send that."""
    while True:
        row = SquashedImage.objects.filter(pk=streaming.row_id).first()
        if row is None or row.owner != streaming.owner or row.state == SquashedImage.State.FAILED:
            raise SquashFailed(f"the flattening of squash {streaming.row_id} failed")
        if row.state == SquashedImage.State.READY:
            break
        if row.heartbeat is None or row.heartbeat < _stale_before():
            raise SquashFailed(f"the flattening of squash {streaming.row_id} stopped")
        time.sleep(0.5)
    stream = get_squash_store().open(row.storage_name)
    try:
        while chunk := stream.read(READ_CHUNK):
            yield chunk
    finally:
        stream.close()


# ---------------------------------------------------------------------------------------------
# Use, eviction, garbage collection


def squash_mark_used(*, row: SquashedImage) -> None:
    """Restart a cached tarball's clock for the LRU bound (one small write per download, which
    is itself a large transfer)."""
    SquashedImage.objects.filter(pk=row.pk).update(last_used=timezone.now())


def squash_log_download(*, principal: Principal, repository: Repository, target: SquashTarget, ip: str | None) -> None:
    """One usage log entry per download: a pull, marked as squashed."""
    usage.log_pull(
        actor_id=principal.user.pk if principal.user is not None else None,
        actor_name=principal.name,
        repository_id=repository.pk,
        namespace_id=repository.namespace_id,
        ip=ip,
        metadata={
            "squash": True,
            "tag": target.tag,
            "manifest_digest": target.manifest.digest,
            "platform": target.platform,
        },
    )


def squash_cache_evict(*, keep: int | None = None) -> int:
    """Delete the least recently used ready tarballs until the cache fits SQUASH_CACHE_MAX_BYTES
    (never ``keep``, the one just made). Returns the bytes freed."""
    limit = settings.SQUASH_CACHE_MAX_BYTES
    total = selectors.squash_cache_bytes()
    freed = 0
    store = get_squash_store()
    while total > limit:
        candidates = SquashedImage.objects.filter(state=SquashedImage.State.READY).order_by("last_used", "pk")
        if keep is not None:
            candidates = candidates.exclude(pk=keep)
        victim = candidates.values_list("pk", flat=True).first()
        if victim is None:
            break
        with transaction.atomic():
            row = (
                SquashedImage.objects.select_for_update(skip_locked=True)
                .filter(pk=victim, state=SquashedImage.State.READY)
                .first()
            )
            if row is not None:
                row.delete()
        if row is None:
            total = selectors.squash_cache_bytes()
            continue
        # A download already sending the file keeps its open file (sendfile); new ones rebuild.
        store.delete(row.storage_name)
        logger.info("evicted squash %s (%d bytes)", row.storage_name, row.size)
        total -= row.size
        freed += row.size
    return freed


def squash_storage_collect() -> tuple[int, int]:
    """Delete stored tarballs no row names (their manifest was collected or deleted, or they
    were evicted half-way), and part files of dead flattenings. Returns (files, bytes)."""
    store = get_squash_store()
    named = set(SquashedImage.objects.exclude(storage_name="").values_list("storage_name", flat=True))
    files, freed = 0, 0
    for stored in list(store.published()):
        if stored.name in named:
            continue
        # Looked up again one by one: a claim may have named a new file since the listing.
        if SquashedImage.objects.filter(storage_name=stored.name).exists():
            continue
        store.delete(stored.name)
        files += 1
        freed += stored.size
        logger.info("deleted squashed tarball %s (%d bytes)", stored.name, stored.size)
    for part in list(store.parts()):
        if _part_held(part.name) is False and part.modified < time.time() - settings.SQUASH_STALE_SECONDS:
            _remove(part.name)
            files += 1
            freed += part.size
    return files, freed


# ---------------------------------------------------------------------------------------------
# Priming


def squash_tag_retargeted(*, repository: Repository, name: str, manifest: Manifest) -> None:
    """A tag now points at ``manifest``: when it was squashed before (or the repository squashes
    at push), squash the new image in the background once the change is committed."""
    targets = [list(pair) for pair in selectors.squash_rows_for_tag(repository=repository, tag=name)]
    if not targets and selectors.squash_at_push(repository=repository):
        targets = [[settings.SERVER_HOSTNAME or public_host(), ""]]
    if not targets or repository.kind != Repository.Kind.IMAGE:
        return
    from squash.tasks import squash_prime_task

    repository_id, manifest_id = repository.pk, manifest.pk
    transaction.on_commit(lambda: squash_prime_task.delay(repository_id, name, manifest_id, targets))


def squash_prime(*, repository_id: int, tag: str, manifest_id: int, targets: list[list[str]]) -> list[int]:
    """Squash the image ``tag`` points at for each (host, platform) of ``targets`` unless it is
    cached or being squashed; nothing when the tag has moved on since. Returns the rows made."""
    from registry import selectors as registry_selectors

    repository = Repository.objects.select_related("namespace").filter(pk=repository_id).first()
    if repository is None:
        return []
    alive = registry_selectors.tag_alive(repository=repository, name=tag)
    if alive is None or alive.manifest_id != manifest_id:
        return []
    alive.manifest = Manifest.objects.get(pk=manifest_id)
    made = []
    for host, platform in targets:
        try:
            target = selectors.squash_target(
                repository=repository, tag=alive, host=host, platform=platform or None, check_single=False
            )
            row = selectors.squash_cached(manifest=target.manifest, host=target.host, tag=target.tag)
            if row is not None and (row.state == SquashedImage.State.READY and _open_cached(row) or _alive(row)):
                continue
            planned = _plan(target)
        except SquashRefused as exc:
            logger.info("not priming %s:%s for %s: %s", repository.full_name, tag, platform, exc.message)
            continue
        kind, row = _claim_with_retry(target, planned)
        if kind != "owner":
            continue  # cached meanwhile, or another process is squashing it
        part_path = get_squash_store().part_path(row.storage_name)
        ready = squash_build(
            row_id=row.pk, owner=row.owner, planned=planned, fd=_create_part(part_path), part_path=part_path
        )
        if ready is not None:
            made.append(ready.pk)
    return made


def squash_settings_set(*, repository: Repository, squash_at_push: bool) -> SquashSettings:
    """Switch squashing at push on or off for a repository (its admins)."""
    with transaction.atomic():
        row, _ = SquashSettings.objects.update_or_create(
            repository=repository, defaults={"squash_at_push": squash_at_push}
        )
    return row


def squash_delete(*, row: SquashedImage) -> None:
    """Delete one cached tarball, and its file once that is committed (Django admin)."""
    name = row.storage_name
    row.delete()
    transaction.on_commit(lambda: get_squash_store().delete(name))
