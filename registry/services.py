"""Writes of the registry: repositories, uploads, blobs, manifests and tags.

Views call these with validated inputs and a Principal; every multi-row write is atomic, and
nothing becomes visible before it is complete and verified.
"""

from __future__ import annotations

import hashlib
import threading
import uuid
from datetime import datetime, timedelta
from typing import BinaryIO

from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.db.models import F, Q
from django.utils import timezone

from accounts.models import Namespace, Robot, Team, User
from notifications.services import event_emit
from quay_site.faults import pause
from registry import errors, gc, names, selectors
from registry.locks import digest_lock
from registry.manifests import MAX_SIZE, ParsedManifest, digest_of, parse_manifest
from registry.models import (
    Blob,
    Manifest,
    ManifestBlob,
    ManifestChild,
    Repository,
    RepositoryBlob,
    RepositoryPermission,
    Role,
    Star,
    Tag,
    UploadSession,
    UsageLog,
)
from registry.permissions import Principal, can_create_in, repository_role
from registry.rows import RowLoader
from registry.storage import get_blob_store
from registry.usage import log_action
from scanning.services import scan_queue, scan_tag_retargeted
from squash.services import squash_tag_retargeted

# How long a manifest pushed by digest alone is kept alive by a hidden tag (the push of the
# index that will refer to it is still going on).
TEMP_TAG_SECONDS = 3600


# ---------------------------------------------------------------------------------------------
# Repositories


@transaction.atomic
def repository_create(
    *,
    namespace: Namespace,
    name: str,
    principal: Principal,
    visibility: str = Repository.Visibility.PRIVATE,
    kind: str = Repository.Kind.IMAGE,
    description: str = "",
    ip: str | None = None,
) -> Repository:
    """Create a repository; a creator who is not already an admin there gets admin on it."""
    names.split_repository_name(f"{namespace.name}/{name}")
    if not can_create_in(principal, namespace):
        raise errors.Denied({"namespace": namespace.name})
    repository = Repository.objects.create(
        namespace=namespace, name=name, visibility=visibility, kind=kind, description=description
    )
    if repository_role(principal, repository) != Role.ADMIN:
        RepositoryPermission.objects.create(repository=repository, user=principal.user, role=Role.ADMIN)
    log_action(
        UsageLog.Kind.CREATE_REPO,
        principal=principal,
        repository=repository,
        ip=ip,
        metadata={"repo": repository.name, "namespace": namespace.name},
    )
    return repository


def repository_get_or_create_for_push(*, full_name: str, principal: Principal, ip: str | None) -> Repository:
    """The repository a push names, created (private, image) on the first push when allowed."""
    ns_name, repo_name = names.split_repository_name(full_name)
    repository = Repository.objects.select_related("namespace").filter(namespace__name=ns_name, name=repo_name).first()
    if repository is not None:
        return repository
    namespace = Namespace.objects.filter(name=ns_name).first()
    if namespace is None or not can_create_in(principal, namespace):
        raise errors.Denied({"name": full_name})
    try:
        return repository_create(namespace=namespace, name=repo_name, principal=principal, ip=ip)
    except IntegrityError:
        # Two layers of one push may race to create it: the loser uses the winner's row.
        return Repository.objects.select_related("namespace").get(namespace=namespace, name=repo_name)


# ---------------------------------------------------------------------------------------------
# Uploads

# hashlib objects cannot be pickled, so the running SHA-256 of an upload is kept in the process
# that received its bytes; a request landing in another process re-hashes from storage.
_running_hashes: dict[str, tuple[int, hashlib._Hash]] = {}
_running_lock = threading.Lock()


class _HashingReader:
    def __init__(self, stream: BinaryIO, hasher):
        self._stream = stream
        self._hasher = hasher

    def read(self, n: int = -1) -> bytes:
        data = self._stream.read(n)
        self._hasher.update(data)
        return data


def upload_start(
    *, repository: Repository, principal: Principal | None = None, owner: str | None = None
) -> UploadSession:
    """Open a session owned by ``owner`` (a principal key; views pass the token's, no lookup)."""
    session = UploadSession(
        repository=repository,
        owner=owner if owner is not None else principal.key,
        expires=timezone.now() + timedelta(seconds=settings.UPLOAD_SESSION_SECONDS),
    )
    # A plain INSERT: UploadSession has no signals or related rows, and the ORM's save() cost
    # three times as much Python on this per-blob path.
    selectors.upload_rows.insert(session)
    return session


def blob_upload_monolithic(*, repository: Repository, digest: str, stream: BinaryIO, length: int | None) -> Blob:
    """A whole blob in one request: streamed and hashed into a private upload, verified, published.

    No session row is written: there is nothing to resume, and three fewer writes matter when
    many clients push small images at once. An interrupted request leaves only an unlisted
    upload file, which is removed on the spot (or by age, if the process died).
    """
    store = get_blob_store()
    upload_id = f"mono-{uuid.uuid4()}"
    algorithm = digest.split(":", 1)[0]
    hasher = hashlib.new(algorithm)
    parts: list = []
    try:
        size, part = store.upload_append(upload_id, 0, _HashingReader(stream, hasher), length)
        if part is not None:
            parts.append(part)
        if length is not None and size != length:
            raise errors.SizeInvalid({"expected": length, "received": size})
        actual = f"{algorithm}:{hasher.hexdigest()}"
        if actual != digest:
            raise errors.DigestInvalid({"expected": digest, "actual": actual})
    except BaseException:
        store.upload_delete(upload_id, parts)
        raise
    # From the "are the bytes stored?" check until the row is committed (see registry.locks).
    with digest_lock(digest):
        try:
            if store.exists(digest):
                # Stored bytes are always verified ones (published only after their digest check).
                store.upload_delete(upload_id, parts)
            else:
                store.upload_publish(upload_id, size, digest, parts)
        except BaseException:
            store.upload_delete(upload_id, parts)
            raise
        with transaction.atomic():
            return _record_blob(repository, digest, size)


def upload_get(*, repository: Repository, upload_id: str, principal_key: str) -> UploadSession:
    """The caller's live session in this repository; anything else is BLOB_UPLOAD_UNKNOWN."""
    try:
        session_id = uuid.UUID(upload_id)
    except ValueError:
        raise errors.BlobUploadUnknown({"uuid": upload_id}) from None
    session = selectors.upload_session_live(repository=repository, session_id=session_id, owner=principal_key)
    if session is None:
        raise errors.BlobUploadUnknown({"uuid": upload_id})
    # The caller already holds the repository: keep `session.repository` from costing a query.
    session.repository = repository
    return session


def _append_locked(
    session: UploadSession,
    stream: BinaryIO,
    length: int | None,
    start: int | None,
    *,
    refresh: bool = True,
    persist: bool = True,
) -> None:
    """Append under the session lock: ``session`` is refreshed and updated in place.

    ``persist=False`` leaves the row's offset as it was: for the last chunk of an upload that is
    completed (and its row deleted) under the same lock, the write would be thrown away. Should
    the process die in between, the row still names the old offset, and bytes past a row's offset
    are never treated as committed.
    """
    if refresh:
        selectors.upload_session_refresh(session)
    committed = session.offset
    if start is not None and start != committed:
        raise errors.RangeInvalid(
            {"offset": committed, "start": start}, headers={"Range": f"0-{max(committed - 1, 0)}"}
        )
    key = str(session.pk)
    with _running_lock:
        running = _running_hashes.pop(key, None)
    hasher = running[1] if running is not None and running[0] == committed else None
    if hasher is None and committed == 0:
        hasher = hashlib.sha256()
    source = _HashingReader(stream, hasher) if hasher is not None else stream
    store = get_blob_store()
    new_size, part = store.upload_append(key, committed, source, length)
    if length is not None and new_size - committed != length:
        # The client went away mid-body: the bytes are not committed and will be overwritten.
        if part is not None:
            store.discard_part(part)
        raise errors.SizeInvalid({"expected": length, "received": new_size - committed})
    parts = session.parts + [part] if part is not None else session.parts
    updated = (
        UploadSession.objects.filter(pk=session.pk, offset=committed).update(offset=new_size, parts=parts)
        if persist
        else 1
    )
    if not updated:
        if part is not None:
            store.discard_part(part)
        raise errors.RangeInvalid({"reason": "concurrent upload"}, headers={"Range": f"0-{max(committed - 1, 0)}"})
    session.offset, session.parts = new_size, parts
    if hasher is not None:
        with _running_lock:
            _running_hashes[key] = (new_size, hasher)


def upload_append(*, session: UploadSession, stream: BinaryIO, length: int | None, start: int | None) -> UploadSession:
    with get_blob_store().upload_lock(str(session.pk)):
        _append_locked(session, stream, length, start)
    return session


def _upload_digest(session: UploadSession, algorithm: str) -> str:
    key = str(session.pk)
    with _running_lock:
        running = _running_hashes.pop(key, None)
    if algorithm == "sha256" and running is not None and running[0] == session.offset:
        return f"sha256:{running[1].hexdigest()}"
    hasher = hashlib.new(algorithm)
    for chunk in get_blob_store().upload_read(key, session.offset, session.parts):
        hasher.update(chunk)
    return f"{algorithm}:{hasher.hexdigest()}"


def upload_complete(
    *, session: UploadSession, digest: str, stream: BinaryIO | None, length: int | None, start: int | None
) -> Blob:
    """Append the last bytes, verify the digest, publish the blob and link it to the repository.

    On a digest mismatch nothing is stored: the session and its bytes are removed.
    """
    store = get_blob_store()
    key = str(session.pk)
    with store.upload_lock(key):
        selectors.upload_session_refresh(session)
        # An upload that never received a byte has no file or object yet: appending the empty
        # body creates it, so the empty blob can be verified and published like any other.
        if stream is not None and (length is None or length > 0 or session.offset == 0):
            _append_locked(session, stream, length, start, refresh=False, persist=False)
        actual = _upload_digest(session, digest.split(":", 1)[0])
        if actual != digest:
            store.upload_delete(key, session.parts)
            selectors.upload_rows.delete_by_pk(session.pk)
            raise errors.DigestInvalid({"expected": digest, "actual": actual})
        # From the "are the bytes stored?" check until the row is committed (see registry.locks).
        with digest_lock(digest):
            if not store.exists(digest):
                store.upload_publish(key, session.offset, digest, session.parts)
            else:
                store.upload_delete(key, session.parts)
            with transaction.atomic():
                blob = _record_blob(session.repository, digest, session.offset)
                pause("blob.record")  # tests/faults: bytes published, row not committed
                selectors.upload_rows.delete_by_pk(session.pk)
    return blob


_blob_rows = RowLoader(Blob)


def _record_blob(repository: Repository, digest: str, size: int) -> Blob:
    """The blob's row and its link to the repository, one upsert each.

    Upserts instead of get_or_create: no read-then-write round trips and no savepoints, which
    matters when many clients push at once and (on SQLite) every write waits for one lock. Sent
    as SQL (both SQLite and PostgreSQL speak ON CONFLICT ... RETURNING): the ORM's bulk_create
    spent 0.45 ms of Python per blob building these two statements.
    """
    quote = connection.ops.quote_name
    sql = (
        f"INSERT INTO {quote(Blob._meta.db_table)} ({quote('digest')}, {quote('size')}, {quote('created')}) "
        f"VALUES (%s, %s, %s) ON CONFLICT ({quote('digest')}) DO UPDATE SET {quote('size')} = excluded.{quote('size')} "
        f"RETURNING {_blob_rows.select_list()}"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, [digest, size, connection.ops.adapt_datetimefield_value(timezone.now())])
        blob = _blob_rows.build(cursor.fetchone())
    _link_blob(repository, blob)
    return blob


def _link_blob(repository: Repository, blob: Blob) -> None:
    # The upsert refreshes `linked`, the GC grace clock, on every re-upload or mount.
    quote = connection.ops.quote_name
    table, linked = quote(RepositoryBlob._meta.db_table), quote("linked")
    sql = (
        f"INSERT INTO {table} ({quote('repository_id')}, {quote('blob_id')}, {linked}) VALUES (%s, %s, %s) "
        f"ON CONFLICT ({quote('repository_id')}, {quote('blob_id')}) DO UPDATE SET {linked} = excluded.{linked}"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, [repository.pk, blob.pk, connection.ops.adapt_datetimefield_value(timezone.now())])


def upload_cancel(*, session: UploadSession) -> None:
    store = get_blob_store()
    with store.upload_lock(str(session.pk)):
        store.upload_delete(str(session.pk), session.parts)
        selectors.upload_rows.delete_by_pk(session.pk)
    with _running_lock:
        _running_hashes.pop(str(session.pk), None)


def blob_mount(*, repository: Repository, digest: str, source: Repository) -> Blob | None:
    """Link a blob of ``source`` into ``repository`` (the caller may pull from source).

    The source link is locked until the new link is committed: garbage collection skips locked
    links, so the blob cannot lose its last link (and its bytes) in between. A link collected
    before we got to it is simply not found, and the client uploads the blob instead.
    """
    with transaction.atomic():
        link = (
            RepositoryBlob.objects.select_for_update(no_key=True, of=("self",))
            .select_related("blob")
            .filter(repository=source, blob__digest=digest)
            .first()
        )
        if link is None:
            return None
        _link_blob(repository, link.blob)
    return link.blob


def blob_link_refresh(*, link_id: int) -> None:
    """Restart a link's grace clock when a client relies on the blob being there.

    A client that HEADs a blob and finds it skips the upload and pushes its manifest later:
    the link must not be collected in between. Called (by the blob HEAD and GET) only for links
    older than half the grace period, and conditional, so a pull rarely writes anything.
    """
    now = timezone.now()
    RepositoryBlob.objects.filter(pk=link_id, linked__lt=gc.link_stale_before(now)).update(linked=now)


def blob_unlink(*, repository: Repository, digest: str, principal: Principal, ip: str | None) -> None:
    deleted, _ = RepositoryBlob.objects.filter(repository=repository, blob__digest=digest).delete()
    if not deleted:
        raise errors.BlobUnknown({"digest": digest})
    log_action(
        UsageLog.Kind.DELETE_BLOB, principal=principal, repository=repository, ip=ip, metadata={"digest": digest}
    )


# ---------------------------------------------------------------------------------------------
# Manifests and tags


def _check_references(
    repository: Repository, parsed: ParsedManifest, digest: str
) -> tuple[list[int], list[Manifest]]:
    """The ids of the blobs and the child manifests ``parsed`` refers to, all in this repository.

    Runs inside manifest_put's transaction and keeps what the manifest relies on from garbage
    collection (which skips locked rows; see registry.gc) until the commit:

    - links older than half the grace period are locked and their clock restarted; one that
      vanished since it was read (collected) fails the push with MANIFEST_BLOB_UNKNOWN, which
      the client answers by uploading the blob again. Younger links are out of GC's reach
      longer than any push takes, so the usual push (blobs just uploaded) writes nothing here;
    - the child manifests, and the manifest being pushed if it is stored already (it is about
      to be tagged), are locked FOR NO KEY UPDATE, which foreign keys to them do not wait for.
    """
    wanted = {}
    for descriptor in ([parsed.config] if parsed.config else []) + parsed.layers:
        if not descriptor.foreign:
            wanted[descriptor.digest] = descriptor.size
    now = timezone.now()
    stale_before = gc.link_stale_before(now)
    found = {
        blob_digest: (link_id, blob_id, size, linked)
        for link_id, blob_id, blob_digest, size, linked in RepositoryBlob.objects.filter(
            repository=repository, blob__digest__in=list(wanted)
        ).values_list("pk", "blob_id", "blob__digest", "blob__size", "linked")
    }
    for blob_digest, size in wanted.items():
        if blob_digest not in found:
            raise errors.ManifestBlobUnknown({"digest": blob_digest})
        if found[blob_digest][2] != size:
            raise errors.ManifestInvalid({"reason": "descriptor size does not match the blob", "digest": blob_digest})
    stale = {link_id: blob_digest for blob_digest, (link_id, _, _, linked) in found.items() if linked < stale_before}
    if stale:
        # In id order, as garbage collection locks them: two lockers never wait on each other.
        held = set(
            RepositoryBlob.objects.select_for_update(no_key=True)
            .filter(pk__in=list(stale))
            .order_by("pk")
            .values_list("pk", flat=True)
        )
        for link_id, blob_digest in stale.items():
            if link_id not in held:
                raise errors.ManifestBlobUnknown({"digest": blob_digest})
        RepositoryBlob.objects.filter(pk__in=list(held)).update(linked=now)
    child_digests = {d.digest for d in parsed.children}
    by_digest = {
        m.digest: m
        for m in Manifest.objects.select_for_update(no_key=True)
        .filter(repository=repository, digest__in=child_digests | {digest})
        .order_by("pk")
        .only("pk", "digest", "layers_size")
    }
    for child_digest in child_digests:
        if child_digest not in by_digest:
            raise errors.ManifestBlobUnknown({"digest": child_digest})
    children = [by_digest[d] for d in child_digests]
    return [blob_id for _, blob_id, _, _ in found.values()], children


def manifest_put(
    *, repository: Repository, reference: str, raw: bytes, content_type: str, principal: Principal, ip: str | None
) -> tuple[Manifest, ParsedManifest]:
    """Store a manifest byte-exact and point the tag (when ``reference`` is one) at it."""
    parsed = parse_manifest(raw, content_type)
    if names.is_digest(reference):
        names.validate_digest(reference)
        algorithm = reference.split(":", 1)[0]
        actual = digest_of(raw, algorithm)
        if actual != reference:
            raise errors.DigestInvalid({"expected": reference, "actual": actual})
        digest = reference
        tag_name = None
    else:
        tag_name = names.validate_tag(reference)
        digest = parsed.digest
    if repository.kind == Repository.Kind.APPLICATION and parsed.is_image:
        raise errors.Unsupported({"reason": "an application repository holds artifacts, not images"})
    # Read before the transaction: storage I/O has no business holding the database lock.
    expires_after = (
        selectors.expires_after_label(
            media_type=parsed.media_type,
            config_digest=parsed.config.digest if parsed.config else "",
            config_media_type=parsed.config.media_type if parsed.config else "",
            annotations=parsed.annotations,
        )
        if tag_name is not None
        else None
    )

    with transaction.atomic():
        # In the transaction: what the manifest relies on stays locked until it is committed.
        blob_ids, children = _check_references(repository, parsed, digest)
        layers_size = (
            sum(d.size for d in parsed.layers)
            if not parsed.is_index
            # Children with huge foreign layers could overflow the 64-bit column together.
            else min(sum(c.layers_size for c in children), MAX_SIZE)
        )
        manifest, created = Manifest.objects.get_or_create(
            repository=repository,
            digest=digest,
            defaults={
                "media_type": parsed.media_type,
                "raw": raw,
                "size": len(raw),
                "config_media_type": parsed.config.media_type if parsed.config else "",
                "config_digest": parsed.config.digest if parsed.config else "",
                "artifact_type": parsed.artifact_type,
                "subject_digest": parsed.subject.digest if parsed.subject else "",
                "annotations": parsed.annotations,
                "layers_size": layers_size,
            },
        )
        if created:
            ManifestBlob.objects.bulk_create([ManifestBlob(manifest=manifest, blob_id=b) for b in set(blob_ids)])
            ManifestChild.objects.bulk_create([ManifestChild(manifest=manifest, child=c) for c in children])
            # The security scan runs after the commit (scanning/): one row now, a task on commit.
            scan_queue(manifest=manifest)
        pause("manifest.stored")  # tests/faults: manifest row written, tag row not
        if tag_name is None:
            now = timezone.now()
            Tag.objects.create(
                repository=repository,
                name=f"$temp-{uuid.uuid4().hex}",
                manifest=manifest,
                lifetime_start=now,
                expiration=now + timedelta(seconds=TEMP_TAG_SECONDS),
                hidden=True,
            )
        else:
            tag_set(
                repository=repository,
                name=tag_name,
                manifest=manifest,
                principal=principal,
                ip=ip,
                expires_after=expires_after,
            )
            # One repo_push per manifest PUT by tag, written with the push (the notification outbox).
            event_emit(event="repo_push", repository=repository, data={"updated_tags": [tag_name]})
        log_action(
            UsageLog.Kind.PUSH_REPO,
            principal=principal,
            repository=repository,
            ip=ip,
            metadata={"tag": tag_name, "digest": digest, "media_type": parsed.media_type},
        )
        Repository.objects.filter(pk=repository.pk).update(last_modified=timezone.now())
    return manifest, parsed


def _alive(now):
    return Q(lifetime_end__isnull=True) & (Q(expiration__isnull=True) | Q(expiration__gt=now))


# Quay's bounds for an expiration set through the API, counted from the tag's start.
TAG_EXPIRATION_MINIMUM = timedelta(hours=1)
TAG_EXPIRATION_MAXIMUM = timedelta(weeks=104)
# "Leave the expiration as it is", as opposed to None, "no expiration".
KEEP = object()


def _lock_repository(repository: Repository) -> None:
    """Make tag writers of one repository take turns.

    Under READ COMMITTED a mover that waited on the alive row's lock skips that row once the
    winner has ended it and cannot see the row the winner inserted, so it would insert a second
    alive row (and fail on the unique index again on every retry while moves keep coming), and a
    delete would find nothing to end. Locking the repository row first makes each writer read
    the committed state. Garbage collection takes the same lock before it removes a manifest, so
    a restore or a move cannot point a tag at a manifest that is being collected.

    FOR NO KEY UPDATE, not FOR UPDATE: every row that refers to the repository (blob links,
    upload sessions, logs, events) has PostgreSQL share-lock this row for its foreign-key check,
    and FOR UPDATE conflicts with those share locks while NO KEY UPDATE does not. With FOR UPDATE
    a tag writer queued on the row and a committing upload checking its link's key waited on each
    other through the row's versions: "deadlock detected", a 503 to the client, a few times in a
    four-minute mixed load (tests/registry/test_repository_lock.py reproduces it). Writers still
    exclude each other and garbage collection, which takes the same mode.
    """
    Repository.objects.select_for_update(no_key=True).only("pk").get(pk=repository.pk)


def _with_retry(operation):
    """Run ``operation`` in a transaction; once more if it lost a race on the unique index."""
    for attempt in (1, 2):
        try:
            with transaction.atomic():
                return operation()
        except IntegrityError:
            if attempt == 2:
                raise
    raise AssertionError("unreachable")


def _tag_metadata(name: str, **extra) -> dict:
    return {"tag": name, **extra}


def _retarget(
    repository: Repository,
    name: str,
    manifest: Manifest,
    principal: Principal,
    ip: str | None,
    *,
    now: datetime,
    reversion: bool,
    expiration: datetime | None,
) -> tuple[Tag, bool]:
    """End the alive row of ``name`` and start one on ``manifest`` (the caller holds the lock).

    Returns the alive row and whether anything changed: a tag already on the manifest is left
    as it is. An expired row ends at its expiration, and the new row is a creation, not a move.
    """
    current = (
        Tag.objects.select_for_update()
        .only("manifest_id", "expiration", "lifetime_start", "lifetime_end", "name")
        .filter(repository=repository, name=name, lifetime_end__isnull=True)
        .first()
    )
    kind = UsageLog.Kind.CREATE_TAG
    if current is not None:
        expired = current.expiration is not None and current.expiration <= now
        if current.manifest_id == manifest.pk and not expired:
            return current, False
        current.lifetime_end = current.expiration if expired else now
        current.save(update_fields=["lifetime_end"])
        pause("tag.ended")  # tests/faults: old row ended, new row not inserted
        if not expired:
            kind = UsageLog.Kind.MOVE_TAG
    tag = Tag.objects.create(
        repository=repository,
        name=name,
        manifest=manifest,
        lifetime_start=now,
        expiration=expiration,
        reversion=reversion,
    )
    if reversion:
        kind = UsageLog.Kind.REVERT_TAG
    metadata = _tag_metadata(name, digest=manifest.digest)
    log_action(kind, principal=principal, repository=repository, ip=ip, metadata=metadata)
    # A tag squashed before (or any, where the repository squashes at push) is squashed again
    # in the background after the commit, so the next `curl | docker load` is served cached.
    squash_tag_retargeted(repository=repository, name=name, manifest=manifest)
    scan_tag_retargeted(manifest=manifest)  # its findings new for the repository, after the commit
    return tag, True


def tag_set(
    *,
    repository: Repository,
    name: str,
    manifest: Manifest,
    principal: Principal,
    ip: str | None,
    reversion: bool = False,
    expires_after: timedelta | None = None,
) -> Tag:
    """Point a tag at a manifest: end the alive row (if any) and start a new one.

    ``expires_after`` (the ``quay.expires-after`` label) gives the new row an expiration that
    long after its start. The partial unique index allows one alive row per name, so two
    concurrent moves cannot both insert: the loser's transaction fails and is retried once
    against the new state.
    """
    return _with_retry(lambda: _tag_set_once(repository, name, manifest, principal, ip, reversion, expires_after))


def _tag_set_once(repository, name, manifest, principal, ip, reversion, expires_after=None) -> Tag:
    _lock_repository(repository)
    now = timezone.now()
    expiration = now + expires_after if expires_after else None
    tag, _ = _retarget(
        repository, name, manifest, principal, ip, now=now, reversion=reversion, expiration=expiration
    )
    return tag


def _manifest_for_tagging(repository: Repository, digest: str) -> Manifest:
    manifest = selectors.manifest_in_repository(repository=repository, digest=digest)
    if manifest is None:
        raise errors.ManifestUnknown({"digest": digest})
    return manifest


def _still_stored(manifest: Manifest) -> Manifest:
    """The manifest again, under the repository lock: garbage collection may have removed it
    since it was first read (and then no tag may point at it)."""
    if not Manifest.objects.filter(pk=manifest.pk).exists():
        raise errors.ManifestUnknown({"digest": manifest.digest})
    return manifest


def _check_future(expiration: datetime | None) -> None:
    if expiration is not None and expiration <= timezone.now():
        raise RequestRefused("The expiration must be in the future")


def _change_expiration(
    repository: Repository, tag: Tag, expiration: datetime | None, principal: Principal, ip: str | None
) -> Tag:
    """Set an alive row's expiration, kept within Quay's bounds from the tag's start."""
    if expiration is not None:
        start = tag.lifetime_start
        expiration = min(max(expiration, start + TAG_EXPIRATION_MINIMUM), start + TAG_EXPIRATION_MAXIMUM)
    old = tag.expiration
    if expiration == old:
        return tag
    Tag.objects.filter(pk=tag.pk).update(expiration=expiration)
    tag.expiration = expiration
    log_action(
        UsageLog.Kind.CHANGE_TAG_EXPIRATION,
        principal=principal,
        repository=repository,
        ip=ip,
        metadata=_tag_metadata(
            tag.name,
            expiration_date=expiration.isoformat() if expiration else None,
            old_expiration_date=old.isoformat() if old else None,
        ),
    )
    return tag


def tag_create_or_move(
    *,
    repository: Repository,
    name: str,
    manifest_digest: str,
    principal: Principal,
    ip: str | None,
    expiration: datetime | None | object = KEEP,
) -> Tag:
    """Point ``name`` at a stored manifest of the repository (create the tag, or move it).

    The manifest's ``quay.expires-after`` label sets the new row's expiration, as a push would;
    ``expiration`` (a datetime, or None for none) overrides it when given.
    """
    if not names.TAG_RE.match(name):
        raise RequestRefused("Invalid tag name: letters, digits, '_', '.' and '-', at most 128 characters")
    if expiration is not KEEP:
        _check_future(expiration)
    found = _manifest_for_tagging(repository, manifest_digest)
    expires_after = selectors.manifest_expires_after(found)

    def once() -> Tag:
        _lock_repository(repository)
        manifest = _still_stored(found)
        now = timezone.now()
        tag, _ = _retarget(
            repository,
            name,
            manifest,
            principal,
            ip,
            now=now,
            reversion=False,
            expiration=now + expires_after if expires_after else None,
        )
        if expiration is not KEEP:
            _change_expiration(repository, tag, expiration, principal, ip)
        return tag

    return _with_retry(once)


def tag_restore(
    *, repository: Repository, name: str, manifest_digest: str, principal: Principal, ip: str | None
) -> Tag:
    """Move ``name`` back to a manifest it pointed at, recorded as a reversion.

    Only a history entry still in the namespace's time machine can be restored (or the tag's
    current manifest, which changes nothing). A manifest that is no longer stored answers
    MANIFEST_UNKNOWN and no row is written.
    """
    found = _manifest_for_tagging(repository, manifest_digest)
    expires_after = selectors.manifest_expires_after(found)

    def once() -> Tag:
        _lock_repository(repository)
        manifest = _still_stored(found)
        now = timezone.now()
        if not selectors.tag_restorable(repository=repository, name=name, manifest_id=manifest.pk, now=now):
            if Tag.objects.filter(repository=repository, name=name, manifest=manifest, hidden=False).exists():
                raise RequestRefused(
                    f"Tag {name} pointed at {manifest_digest} too long ago: the entry is outside the time machine "
                    "and cannot be restored"
                )
            raise RequestRefused(f"Tag {name} never pointed at {manifest_digest}")
        tag, _ = _retarget(
            repository,
            name,
            manifest,
            principal,
            ip,
            now=now,
            reversion=True,
            expiration=now + expires_after if expires_after else None,
        )
        return tag

    return _with_retry(once)


def _alive_row_for_update(repository: Repository, name: str, now: datetime) -> Tag:
    tag = (
        Tag.objects.select_for_update(of=("self",))
        .select_related("manifest")
        .defer("manifest__raw")
        .filter(_alive(now), repository=repository, name=name, hidden=False)
        .first()
    )
    if tag is None:
        raise errors.ManifestUnknown({"tag": name})
    return tag


def tag_set_expiration(
    *, repository: Repository, name: str, expiration: datetime | None, principal: Principal, ip: str | None
) -> Tag:
    """Change (or, with None, clear) the expiration of an alive tag; no history row is added."""
    _check_future(expiration)
    with transaction.atomic():
        _lock_repository(repository)
        tag = _alive_row_for_update(repository, name, timezone.now())
        return _change_expiration(repository, tag, expiration, principal, ip)


def tag_delete(*, repository: Repository, name: str, principal: Principal, ip: str | None) -> None:
    """End the alive row of a tag; it stays in the time machine for the namespace's window."""
    with transaction.atomic():
        _lock_repository(repository)
        now = timezone.now()
        ended = Tag.objects.filter(_alive(now), repository=repository, name=name, hidden=False).update(lifetime_end=now)
        if not ended:
            raise errors.ManifestUnknown({"tag": name})
        log_action(
            UsageLog.Kind.DELETE_TAG,
            principal=principal,
            repository=repository,
            ip=ip,
            metadata=_tag_metadata(name),
        )


def tag_purge(
    *,
    repository: Repository,
    name: str,
    principal: Principal,
    ip: str | None,
    manifest_digest: str | None = None,
    alive: bool = False,
) -> int:
    """Take a tag out of the time machine for good (an admin's permanent delete).

    ``alive``: end the alive row now, already purged. Otherwise: purge the ended rows of
    ``name`` on ``manifest_digest``. Purged rows are never restorable or listed, and garbage
    collection treats them as past the window. Returns how many rows were purged.
    """
    with transaction.atomic():
        _lock_repository(repository)
        now = timezone.now()
        if alive:
            tag = _alive_row_for_update(repository, name, now)
            Tag.objects.filter(pk=tag.pk).update(lifetime_end=now, purged=True)
            digest, count = tag.manifest.digest, 1
        else:
            if manifest_digest is None:
                raise RequestRefused("manifest_digest is required unless is_alive is true")
            manifest = _manifest_for_tagging(repository, manifest_digest)
            rows = Tag.objects.filter(repository=repository, name=name, manifest=manifest, hidden=False, purged=False)
            # An expired row that nothing has ended yet ends at its expiration.
            count = rows.filter(lifetime_end__isnull=True, expiration__lte=now).update(
                lifetime_end=F("expiration"), purged=True
            )
            count += rows.filter(lifetime_end__isnull=False).update(purged=True)
            if not count:
                raise errors.ManifestUnknown({"tag": name, "digest": manifest_digest})
            digest = manifest.digest
        log_action(
            UsageLog.Kind.PURGE_TAG,
            principal=principal,
            repository=repository,
            ip=ip,
            metadata=_tag_metadata(name, digest=digest, rows=count),
        )
    return count


def manifest_delete(*, repository: Repository, digest: str, principal: Principal, ip: str | None) -> None:
    """Delete a manifest by digest: its tags (and their history) go with it.

    A manifest that an index in the repository still lists cannot be deleted on its own.
    """
    with transaction.atomic():
        manifest = Manifest.objects.filter(repository=repository, digest=digest).first()
        if manifest is None:
            raise errors.ManifestUnknown({"digest": digest})
        if ManifestChild.objects.filter(child=manifest).exists():
            raise errors.Unsupported({"reason": "the manifest is listed by an index; delete the index first"})
        tags = list(
            Tag.objects.filter(_alive(timezone.now()), manifest=manifest, hidden=False).values_list("name", flat=True)
        )
        manifest.delete()
        log_action(
            UsageLog.Kind.DELETE_MANIFEST,
            principal=principal,
            repository=repository,
            ip=ip,
            metadata={"digest": digest, "tags": tags},
        )


# ---------------------------------------------------------------------------------------------
# Repository administration (/api/v1)


class RequestRefused(Exception):
    """A change refused for a reason the caller can fix; the REST API answers 400 with it."""


def repository_set_description(
    *, repository: Repository, description: str, principal: Principal, ip: str | None
) -> Repository:
    with transaction.atomic():
        repository.description = description
        repository.save(update_fields=["description", "last_modified"])
        log_action(
            UsageLog.Kind.SET_REPO_DESCRIPTION,
            principal=principal,
            repository=repository,
            ip=ip,
            metadata={"repo": repository.name, "namespace": repository.namespace.name, "description": description},
        )
    return repository


@transaction.atomic
def repository_set_visibility(
    *, repository: Repository, visibility: str, principal: Principal, ip: str | None
) -> Repository:
    repository.visibility = visibility
    repository.save(update_fields=["visibility", "last_modified"])
    log_action(
        UsageLog.Kind.CHANGE_REPO_VISIBILITY,
        principal=principal,
        repository=repository,
        ip=ip,
        metadata={"repo": repository.name, "namespace": repository.namespace.name, "visibility": visibility},
    )
    return repository


def repository_delete(*, repository: Repository, principal: Principal, ip: str | None) -> None:
    """Delete a repository with its tags, manifests, blob links, permissions and uploads.

    Everything only this repository held goes: once the deletion is committed, its upload
    files are removed and a garbage collection pass limited to the blobs it linked deletes the
    Blob rows and bytes no other repository links (without waiting for the grace period: nothing
    can be pushed to the repository any more). The usage log keeps the delete_repo entry (under
    the namespace) after the repository row is gone.
    """
    with transaction.atomic():
        repository = Repository.objects.select_for_update().select_related("namespace").get(pk=repository.pk)
        uploads = list(UploadSession.objects.filter(repository=repository).values_list("pk", "parts"))
        blob_ids = list(RepositoryBlob.objects.filter(repository=repository).values_list("blob_id", flat=True))
        log_action(
            UsageLog.Kind.DELETE_REPO,
            principal=principal,
            repository=repository,
            ip=ip,
            metadata={"repo": repository.name, "namespace": repository.namespace.name},
        )
        # An index's children are PROTECTed against deletion on their own; the links go first so
        # the whole repository can be deleted in one cascade.
        ManifestChild.objects.filter(manifest__repository=repository).delete()
        repository.delete()

    def collect():
        store = get_blob_store()
        for session_id, parts in uploads:
            store.upload_delete(str(session_id), parts)
        # Records its own errors; whatever it leaves, the periodic pass frees later.
        gc.gc_after_repository_delete(blob_ids=blob_ids)

    transaction.on_commit(collect)


def _refuse_namespace_owner(repository: Repository, username: str) -> None:
    namespace = repository.namespace
    if namespace.kind == Namespace.Kind.USER and namespace.name == username:
        raise RequestRefused("Namespace owner must always be admin.")


@transaction.atomic
def repository_permission_set_user(
    *, repository: Repository, username: str, role: str, principal: Principal, ip: str | None
) -> RepositoryPermission:
    """Give a user or robot a role on the repository.

    A robot belongs to one namespace and may only be given roles on that namespace's
    repositories, as in Quay.
    """
    _refuse_namespace_owner(repository, username)
    user = User.objects.filter(username=username, is_active=True).first()
    if user is None:
        raise RequestRefused(f"Invalid username: {username}")
    if user.is_robot:
        robot = Robot.objects.filter(user=user).only("namespace_id").first()
        if robot is None or robot.namespace_id != repository.namespace_id:
            raise RequestRefused(f"Cannot add robot {username} under namespace {repository.namespace.name}")
    permission, _ = RepositoryPermission.objects.update_or_create(
        repository=repository, user=user, defaults={"role": role}
    )
    log_action(
        UsageLog.Kind.CHANGE_REPO_PERMISSION,
        principal=principal,
        repository=repository,
        ip=ip,
        metadata={"username": username, "repo": repository.name, "namespace": repository.namespace.name, "role": role},
    )
    return permission


@transaction.atomic
def repository_permission_delete_user(
    *, repository: Repository, username: str, principal: Principal, ip: str | None
) -> None:
    _refuse_namespace_owner(repository, username)
    deleted, _ = RepositoryPermission.objects.filter(repository=repository, user__username=username).delete()
    if not deleted:
        raise RequestRefused("User does not have permission for repo.")
    log_action(
        UsageLog.Kind.DELETE_REPO_PERMISSION,
        principal=principal,
        repository=repository,
        ip=ip,
        metadata={"username": username, "repo": repository.name, "namespace": repository.namespace.name},
    )


@transaction.atomic
def repository_permission_set_team(
    *, repository: Repository, team_name: str, role: str, principal: Principal, ip: str | None
) -> RepositoryPermission:
    """Give a team of the repository's organization a role on it."""
    team = Team.objects.filter(organization=repository.namespace, name=team_name).first()
    if team is None:
        raise RequestRefused(f"No team {team_name} in organization {repository.namespace.name}")
    permission, _ = RepositoryPermission.objects.update_or_create(
        repository=repository, team=team, defaults={"role": role}
    )
    log_action(
        UsageLog.Kind.CHANGE_REPO_PERMISSION,
        principal=principal,
        repository=repository,
        ip=ip,
        metadata={"team": team_name, "repo": repository.name, "role": role},
    )
    return permission


@transaction.atomic
def repository_permission_delete_team(
    *, repository: Repository, team_name: str, principal: Principal, ip: str | None
) -> None:
    deleted, _ = RepositoryPermission.objects.filter(repository=repository, team__name=team_name).delete()
    if not deleted:
        raise RequestRefused("Team does not have permission for repo.")
    log_action(
        UsageLog.Kind.DELETE_REPO_PERMISSION,
        principal=principal,
        repository=repository,
        ip=ip,
        metadata={"team": team_name, "repo": repository.name},
    )


def star_add(*, user: User, repository: Repository) -> None:
    Star.objects.get_or_create(user=user, repository=repository)


def star_remove(*, user: User, repository: Repository) -> None:
    Star.objects.filter(user=user, repository=repository).delete()
