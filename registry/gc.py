"""Garbage collection: what no tag reaches any more leaves the database, then storage.

A pass runs these steps in order, each removing only what the previous ones left unreachable:

1. end expired tags (``lifetime_end = expiration``: the row enters the time machine);
2. drop tag rows past the window: purged rows, ended hidden (push-temporary) tags, and rows that
   ended before their namespace's time-machine window;
3. drop manifests that no remaining tag row, no parent index and no stored subject keeps (the
   signatures and SBOMs of a kept image stay), created before the grace period;
4. drop blob links that no manifest of their repository refers to, linked before the grace
   period;
5. drop Blob rows that nothing links or refers to, created before the grace period, and then
   their stored bytes;
6. clean expired upload sessions with their bytes, and upload files no session owns.

Nothing created, uploaded or linked within ``GC_GRACE_SECONDS`` is collected, so a push that
uploads its blobs before its manifest is never broken by a pass in between.

How a pass stays correct while pushes run
-----------------------------------------
Every delete is conditional, and the condition is evaluated by the statement that deletes,
after the rows have been locked by an earlier statement of the same transaction (``FOR UPDATE
SKIP LOCKED``). On PostgreSQL (READ COMMITTED) a DELETE that has to wait for a row lock
re-evaluates its WHERE clause on the new row version only (EvalPlanQual) while its ``NOT EXISTS``
subqueries keep the snapshot the statement started with, so it would miss the reference a push
committed meanwhile and delete a link that manifest needs. Locking first makes the deleting
statement start after every push that held those rows has committed, and skipping locked rows
keeps GC from ever waiting on (or deadlocking with) a push: what a push holds is in use, and the
next pass looks at it again. On SQLite one writer at a time gives each transaction the latest
state anyway.

The other side of each race:

- A manifest push locks, inside its transaction, the child manifests it lists, the manifest it
  stores if that exists already, and the links it relies on that are older than half the grace
  period (refreshing them); a link GC removed first is missing, and the push fails with
  MANIFEST_BLOB_UNKNOWN (the client uploads the blob again). See services._check_references.
- Tag writers lock the repository row (services._lock_repository); GC takes the same lock
  before it removes manifests of that repository, so no tag can be pointed at one meanwhile.
- A blob HEAD or GET on an old link restarts its clock, so a client that saw a blob and skips
  uploading it finds it still linked when it pushes the manifest.
- Stored bytes go under the digest's lock (registry.locks), which a publisher holds from its
  "are the bytes there?" check until its Blob row is committed, and only once no Blob row has
  that digest: the bytes of a blob that has a row are never deleted.

Whatever a pass could not take (a locked row, a failed batch) stays for the next one.
"""

from __future__ import annotations

import fcntl
import logging
import time
import uuid
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from functools import cache

from django.conf import settings
from django.db import DatabaseError, connection, transaction
from django.db.models import CASCADE, Exists, F, ManyToOneRel, OuterRef, Q, QuerySet
from django.utils import timezone

from accounts.models import Namespace
from observability import metrics
from registry.locks import digest_lock, lock_file
from registry.models import (
    Blob,
    GarbageCollectionRun,
    Manifest,
    ManifestBlob,
    ManifestChild,
    Repository,
    RepositoryBlob,
    Tag,
    UploadSession,
)
from registry.storage import get_blob_store
from squash.services import squash_storage_collect

logger = logging.getLogger("registry.gc")

BATCH_SIZE = 500
# An upload file without a session row is a monolithic upload (whose request may still be
# streaming its body) or the remains of a killed process. Only its age tells them apart, so it
# waits at least this long even when the grace period is shorter (tests run with none).
STRAY_UPLOAD_MIN_AGE = timedelta(hours=1)


def grace_period() -> timedelta:
    return timedelta(seconds=settings.GC_GRACE_SECONDS)


def link_stale_before(now: datetime) -> datetime:
    """Links last linked before this are refreshed (and locked) when a push relies on them.

    A younger link is out of GC's reach for at least half the grace period, long enough for
    any push to commit, so the common push writes nothing for the blobs it just uploaded.
    """
    return now - grace_period() / 2


def pull_refresh_before(now: datetime) -> datetime | None:
    """A blob HEAD or GET restarts the clock of a link last linked before this (None: never).

    Without a grace period there is nothing to protect, and a write per pull would be waste.
    """
    return link_stale_before(now) if settings.GC_GRACE_SECONDS else None


# ---------------------------------------------------------------------------------------------
# Pausing: a backup copies storage after dumping the database, and no pass may delete bytes that
# the dump's rows name meanwhile. Passes hold this lock shared (they never wait for each other);
# a backup holds it exclusively, waiting for running passes, and passes starting then skip.

_PG_PAUSE_LOCK = (0x6763, 0)  # "gc": another class than registry.locks' digest locks


@contextmanager
def collection_lock(*, exclusive: bool) -> Iterator[bool]:
    """Shared (a pass: never waits, yields whether it may run) or exclusive (a backup: waits)."""
    if connection.vendor == "postgresql":
        function = "pg_advisory_lock" if exclusive else "pg_try_advisory_lock_shared"
        with connection.cursor() as cursor:
            cursor.execute(f"SELECT {function}(%s, %s)", list(_PG_PAUSE_LOCK))
            acquired = exclusive or bool(cursor.fetchone()[0])
        try:
            yield acquired
        finally:
            if acquired:
                unlock = "pg_advisory_unlock" if exclusive else "pg_advisory_unlock_shared"
                with connection.cursor() as cursor:
                    cursor.execute(f"SELECT {unlock}(%s, %s)", list(_PG_PAUSE_LOCK))
        return
    with lock_file("gc-pause.lock", fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH | fcntl.LOCK_NB) as acquired:
        yield acquired


PAUSED = "paused: a backup is running"


# ---------------------------------------------------------------------------------------------
# Passes


def gc_run(
    *, trigger: str, repository: Repository | None = None, now: datetime | None = None
) -> GarbageCollectionRun:
    """One pass over the whole registry, or over one repository; returns its recorded run.

    ``now`` moves the pass in time (tests). Errors end the pass early: they are logged and
    stored in the run's ``error``, and the next pass continues where this one stopped.
    """
    now = now or timezone.now()
    cutoff = now - grace_period()
    run = GarbageCollectionRun.objects.create(trigger=trigger, repository=repository)
    clock = time.monotonic()
    with collection_lock(exclusive=False) as running:
        if not running:
            run.error = PAUSED
            return _finish(run, clock)
        _pass(run, now, cutoff, repository)
    return _finish(run, clock)


def _pass(run: GarbageCollectionRun, now: datetime, cutoff: datetime, repository: Repository | None) -> None:
    try:
        run.tags_expired = _expire_tags(now, repository)
        run.tags_dropped = _drop_tags_past_window(now, repository)
        run.manifests_deleted = _delete_manifests(cutoff, repository)
        run.blob_links_deleted, unlinked = _delete_blob_links(cutoff, repository)
        # A repository's pass frees only the blobs whose links it removed; the whole-registry
        # pass also catches blobs left unlinked earlier (blob deletes, interrupted passes).
        run.blobs_deleted, run.bytes_freed = _delete_blobs(cutoff, unlinked if repository is not None else None)
        run.uploads_cleaned = _clean_uploads(now, repository)
        # Squashed tarballs whose rows went with the manifests above (squash/services.py).
        run.bytes_freed += squash_storage_collect()[1]
    except Exception as exc:
        logger.exception("garbage collection failed")
        run.error = f"{type(exc).__name__}: {exc}"


def gc_after_repository_delete(*, blob_ids: Iterable[int]) -> GarbageCollectionRun:
    """Free the blobs a just-deleted repository linked that no other repository links.

    The repository's tags, manifests and links went with its row; its blobs need no grace
    period (nothing of that repository can be pushed any more), and a blob another repository
    links or a publisher is recording is never touched.
    """
    run = GarbageCollectionRun.objects.create(trigger=GarbageCollectionRun.Trigger.REPOSITORY_DELETE)
    clock = time.monotonic()
    with collection_lock(exclusive=False) as running:
        if not running:
            # The blobs stay orphans, which the next whole-registry pass collects.
            run.error = PAUSED
            return _finish(run, clock)
        try:
            run.blobs_deleted, run.bytes_freed = _delete_blobs(None, set(blob_ids))
        except Exception as exc:
            logger.exception("garbage collection after a repository delete failed")
            run.error = f"{type(exc).__name__}: {exc}"
    return _finish(run, clock)


def _finish(run: GarbageCollectionRun, clock: float) -> GarbageCollectionRun:
    run.finished = timezone.now()
    run.save()
    scope = f" of {run.repository.full_name}" if run.repository_id else ""
    logger.info(
        "garbage collection (%s%s): %d tags expired, %d tags dropped, %d manifests, %d blob links and %d blobs "
        "deleted, %d bytes freed, %d uploads cleaned in %.2f s%s",
        run.trigger,
        scope,
        run.tags_expired,
        run.tags_dropped,
        run.manifests_deleted,
        run.blob_links_deleted,
        run.blobs_deleted,
        run.bytes_freed,
        run.uploads_cleaned,
        time.monotonic() - clock,
        f"; stopped by {run.error}" if run.error else "",
    )
    metrics.gc_finished(
        trigger=run.trigger, bytes_freed=run.bytes_freed, blobs_deleted=run.blobs_deleted, failed=bool(run.error)
    )
    return run


# ---------------------------------------------------------------------------------------------
# 1 and 2: tags


def _expire_tags(now: datetime, repository: Repository | None) -> int:
    rows = Tag.objects.filter(lifetime_end__isnull=True, expiration__lte=now)
    if repository is not None:
        rows = rows.filter(repository=repository)
    # A tag writer holding the row makes this wait; it re-checks `lifetime_end IS NULL` on the
    # row the writer left, so a tag that was moved meanwhile keeps the end the writer gave it.
    return rows.update(lifetime_end=F("expiration"))


def _past_window(now: datetime) -> Q:
    """Ended Tag rows that keep nothing: purged, hidden, or ended before the namespace's window.

    The same rule as registry.selectors.tags_past_time_machine (written at the same time for
    the tag API, to be unified); run after step 1, so expired rows have ended already. One
    clause per window in use, not date arithmetic in SQL, which SQLite and PostgreSQL spell
    differently.
    """
    past = Q(hidden=True) | Q(purged=True)
    for seconds in Namespace.objects.order_by().values_list("time_machine_seconds", flat=True).distinct():
        cutoff = now - timedelta(seconds=seconds)
        past |= Q(repository__namespace__time_machine_seconds=seconds, lifetime_end__lte=cutoff)
    return Q(lifetime_end__isnull=False) & past


def _drop_tags_past_window(now: datetime, repository: Repository | None) -> int:
    rows = Tag.objects.filter(_past_window(now))
    if repository is not None:
        rows = rows.filter(repository=repository)
    deleted, _ = rows.delete()
    return deleted


# ---------------------------------------------------------------------------------------------
# 3: manifests


def _collectable_manifests(cutoff: datetime) -> QuerySet[Manifest]:
    """Manifests nothing keeps: no tag row (after step 2 every remaining row is alive or in the
    window), no parent index, no stored subject, and older than the grace period.

    Asking for "no stored subject" rather than "no kept subject" needs no graph walk: an
    unreachable subject goes in one round and its referrers in the next, as do an index and
    then its children.
    """
    return Manifest.objects.filter(created__lt=cutoff).filter(
        ~Exists(Tag.objects.filter(manifest=OuterRef("pk"))),
        ~Exists(ManifestChild.objects.filter(child=OuterRef("pk"))),
        ~Exists(Manifest.objects.filter(repository=OuterRef("repository"), digest=OuterRef("subject_digest"))),
    )


def _delete_manifests(cutoff: datetime, repository: Repository | None) -> int:
    if repository is not None:
        repositories = [repository.pk]
    else:
        repositories = list(
            _collectable_manifests(cutoff).order_by("repository_id").values_list("repository_id", flat=True).distinct()
        )
    return sum(_delete_manifests_of(repository_id, cutoff) for repository_id in repositories)


def _delete_manifests_of(repository_id: int, cutoff: datetime) -> int:
    name = (
        Repository.objects.filter(pk=repository_id)
        .values_list("namespace__name", "name")
        .first()
    )
    if name is None:
        return 0
    label = "/".join(name)
    total = 0
    while True:  # rounds, as long as the previous one freed parents or subjects
        deleted, last = 0, 0
        while True:
            ids = list(
                _collectable_manifests(cutoff)
                .filter(repository_id=repository_id, pk__gt=last)
                .order_by("pk")
                .values_list("pk", flat=True)[:BATCH_SIZE]
            )
            if not ids:
                break
            last = ids[-1]
            deleted += _delete_manifest_batch(repository_id, label, ids, cutoff)
        total += deleted
        if not deleted:
            return total


def _delete_manifest_batch(repository_id: int, label: str, ids: list[int], cutoff: datetime) -> int:
    try:
        with transaction.atomic():
            # Conflicts with the tag writers' lock (services._lock_repository): no tag can be
            # pointed at any of these manifests until this transaction ends. NO KEY: rows that
            # merely refer to the repository (links, logs) are not held up.
            repository = Repository.objects.select_for_update(no_key=True).filter(pk=repository_id)
            if not list(repository.values_list("pk", flat=True)):
                return 0
            # A push that is storing or listing one of them holds it: skipped (see the module doc).
            locked = list(
                Manifest.objects.select_for_update(skip_locked=True)
                .filter(pk__in=ids)
                .order_by("pk")
                .values_list("pk", flat=True)
            )
            doomed = list(_collectable_manifests(cutoff).filter(pk__in=locked).values_list("pk", "digest"))
            if not doomed:
                return 0
            doomed_ids = [pk for pk, _ in doomed]
            for model, field in _manifest_dependents():
                model.objects.filter(**{f"{field}__in": doomed_ids}).delete()
            # A plain DELETE, not the ORM's cascade: were a tag row to reach one of these after
            # all, the foreign key would fail this transaction instead of the tag going along.
            _delete_rows(Manifest, doomed_ids)
    except DatabaseError:
        logger.warning("garbage collection skipped %d manifests of %s", len(ids), label, exc_info=True)
        return 0
    for _, digest in doomed:
        logger.info("deleted manifest %s@%s", label, digest)
    return len(doomed)


# Rows that go with a collected manifest (its blob and child lists, and whatever a later table
# hangs on a manifest with CASCADE), but never tags: a manifest a tag row reaches is not
# collectable, and a PROTECTed reference (an index listing it) makes it not collectable either.
@cache
def _manifest_dependents() -> list[tuple[type, str]]:
    return [
        (relation.related_model, relation.field.name)
        for relation in Manifest._meta.related_objects
        if isinstance(relation, ManyToOneRel) and relation.on_delete is CASCADE and relation.related_model is not Tag
    ]


def _delete_rows(model, ids: list[int]) -> None:
    table = connection.ops.quote_name(model._meta.db_table)
    with connection.cursor() as cursor:
        cursor.execute(f"DELETE FROM {table} WHERE id IN ({', '.join(['%s'] * len(ids))})", ids)


# ---------------------------------------------------------------------------------------------
# 4: blob links


def _unreferenced_links(cutoff: datetime) -> QuerySet[RepositoryBlob]:
    return RepositoryBlob.objects.filter(linked__lt=cutoff).filter(
        ~Exists(ManifestBlob.objects.filter(blob=OuterRef("blob"), manifest__repository=OuterRef("repository")))
    )


# The one statement that removes links: conditions and deletion cannot be split by a commit.
_DELETE_LINKS_SQL = """
    DELETE FROM {link}
    WHERE {link}.id IN ({ids}) AND {link}.linked < %s
      AND NOT EXISTS (
        SELECT 1 FROM {manifest_blob} mb JOIN {manifest} m ON m.id = mb.manifest_id
        WHERE mb.blob_id = {link}.blob_id AND m.repository_id = {link}.repository_id)
    RETURNING {link}.blob_id
"""


def _delete_blob_links(cutoff: datetime, repository: Repository | None) -> tuple[int, set[int]]:
    """Remove unreferenced links; returns how many, and the blobs they linked."""
    candidates = _unreferenced_links(cutoff)
    if repository is not None:
        candidates = candidates.filter(repository=repository)
    deleted, blob_ids, last = 0, set(), 0
    while True:
        ids = list(candidates.filter(pk__gt=last).order_by("pk").values_list("pk", flat=True)[:BATCH_SIZE])
        if not ids:
            return deleted, blob_ids
        last = ids[-1]
        try:
            with transaction.atomic():
                locked = list(
                    RepositoryBlob.objects.select_for_update(skip_locked=True)
                    .filter(pk__in=ids)
                    .order_by("pk")
                    .values_list("pk", flat=True)
                )
                if not locked:
                    continue
                sql = _DELETE_LINKS_SQL.format(
                    link=_table(RepositoryBlob),
                    manifest_blob=_table(ManifestBlob),
                    manifest=_table(Manifest),
                    ids=", ".join(["%s"] * len(locked)),
                )
                with connection.cursor() as cursor:
                    cursor.execute(sql, [*locked, connection.ops.adapt_datetimefield_value(cutoff)])
                    removed = [row[0] for row in cursor.fetchall()]
        except DatabaseError:
            logger.warning("garbage collection skipped %d blob links", len(ids), exc_info=True)
            continue
        deleted += len(removed)
        blob_ids.update(removed)


def _table(model) -> str:
    return connection.ops.quote_name(model._meta.db_table)


# ---------------------------------------------------------------------------------------------
# 5: blobs and their bytes


def _orphan_blobs() -> QuerySet[Blob]:
    return Blob.objects.filter(
        ~Exists(RepositoryBlob.objects.filter(blob=OuterRef("pk"))),
        ~Exists(ManifestBlob.objects.filter(blob=OuterRef("pk"))),
    )


_DELETE_BLOB_SQL = """
    DELETE FROM {blob}
    WHERE {blob}.id = %s {created}
      AND NOT EXISTS (SELECT 1 FROM {link} rb WHERE rb.blob_id = {blob}.id)
      AND NOT EXISTS (SELECT 1 FROM {manifest_blob} mb WHERE mb.blob_id = {blob}.id)
    RETURNING {blob}.size
"""


def _delete_blobs(cutoff: datetime | None, only: set[int] | None) -> tuple[int, int]:
    """Delete orphan Blob rows (older than ``cutoff`` when given; among ``only`` when given)
    and their bytes. Returns how many, and the bytes freed."""
    candidates = _orphan_blobs()
    if cutoff is not None:
        candidates = candidates.filter(created__lt=cutoff)
    if only is not None:
        if not only:
            return 0, 0
        candidates = candidates.filter(pk__in=only)
    store = get_blob_store()
    deleted, freed, last = 0, 0, 0
    while True:
        batch = list(candidates.filter(pk__gt=last).order_by("pk").values_list("pk", "digest")[:BATCH_SIZE])
        if not batch:
            return deleted, freed
        last = batch[-1][0]
        for pk, digest in batch:
            size = _delete_blob(store, pk, digest, cutoff)
            if size is not None:
                deleted += 1
                freed += size


def _delete_blob(store, pk: int, digest: str, cutoff: datetime | None) -> int | None:
    """Delete one orphan blob's row, then its bytes; the size freed, or None if it was kept."""
    with digest_lock(digest, wait=False) as acquired:
        if not acquired:
            return None  # a publisher of these bytes holds the lock: they are about to be linked
        try:
            with transaction.atomic():
                locked = Blob.objects.select_for_update(skip_locked=True).filter(pk=pk).values_list("pk", flat=True)
                if not list(locked):
                    return None
                sql = _DELETE_BLOB_SQL.format(
                    blob=_table(Blob),
                    link=_table(RepositoryBlob),
                    manifest_blob=_table(ManifestBlob),
                    created=f"AND {_table(Blob)}.created < %s" if cutoff is not None else "",
                )
                params = [pk] + ([connection.ops.adapt_datetimefield_value(cutoff)] if cutoff is not None else [])
                with connection.cursor() as cursor:
                    cursor.execute(sql, params)
                    row = cursor.fetchone()
        except DatabaseError:
            logger.warning("garbage collection skipped blob %s", digest, exc_info=True)
            return None
        if row is None:
            return None
        # The row is gone (committed) and no publisher can record a new one while we hold the
        # lock. Looked up once more all the same: bytes that have a Blob row must never go, and
        # an orphan file left by a crash here only costs space.
        if Blob.objects.filter(digest=digest).exists():
            return None
        store.delete_blob(digest)
    logger.info("deleted blob %s (%d bytes)", digest, row[0])
    return row[0]


# ---------------------------------------------------------------------------------------------
# 6: uploads


def _clean_uploads(now: datetime, repository: Repository | None) -> int:
    store = get_blob_store()
    cleaned = 0
    expired = UploadSession.objects.filter(expires__lt=now)
    if repository is not None:
        expired = expired.filter(repository=repository)
    for session_id in list(expired.values_list("pk", flat=True)):
        key = str(session_id)
        # The lock a request appending to or completing the session holds: it either finished
        # (the row is gone) or finds neither row nor bytes afterwards and fails cleanly.
        with store.upload_lock(key):
            parts = UploadSession.objects.filter(pk=session_id, expires__lt=now).values_list("parts", flat=True).first()
            if parts is None:
                continue
            UploadSession.objects.filter(pk=session_id).delete()
            store.upload_delete(key, parts)
        cleaned += 1
    if repository is not None:
        return cleaned
    # Upload files that no session owns: an interrupted monolithic upload, a process killed
    # between writing bytes and recording them.
    before = min(now - grace_period(), now - STRAY_UPLOAD_MIN_AGE)
    for upload_id in store.upload_ids_written_before(before):
        with store.upload_lock(upload_id):
            if _session_exists(upload_id):
                continue
            store.upload_delete(upload_id, [])
        cleaned += 1
    return cleaned


def _session_exists(upload_id: str) -> bool:
    try:
        session_id = uuid.UUID(upload_id)
    except ValueError:
        return False
    return UploadSession.objects.filter(pk=session_id).exists()


# ---------------------------------------------------------------------------------------------
# Dry run


def gc_preview(*, repository: Repository | None = None, now: datetime | None = None) -> GarbageCollectionRun:
    """What a pass now would remove, computed from the rows without changing any (an unsaved run).

    The same rules as the steps above, applied to sets in memory (manifests in rounds, as the
    pass frees parents and subjects); pushes and pulls meanwhile can make the real pass differ.
    Squashed tarballs of collected manifests are not counted in ``bytes_freed``.
    """
    now = now or timezone.now()
    cutoff = now - grace_period()
    run = GarbageCollectionRun(trigger=GarbageCollectionRun.Trigger.COMMAND, repository=repository, started=now)

    def scoped(rows: QuerySet) -> QuerySet:
        return rows.filter(repository=repository) if repository is not None else rows

    # 1 and 2: tags. An expiring row ends at its expiration, then may be past its window.
    expiring = scoped(Tag.objects.filter(lifetime_end__isnull=True, expiration__lte=now))
    run.tags_expired = expiring.count()
    dropped = set(scoped(Tag.objects.filter(_past_window(now))).values_list("pk", flat=True))
    for pk, hidden, purged, expiration, window in expiring.values_list(
        "pk", "hidden", "purged", "expiration", "repository__namespace__time_machine_seconds"
    ):
        if hidden or purged or expiration <= now - timedelta(seconds=window):
            dropped.add(pk)
    run.tags_dropped = len(dropped)

    # 3: manifests, in rounds.
    tagged = {m for pk, m in Tag.objects.values_list("pk", "manifest_id") if pk not in dropped}
    manifests = {
        pk: (repo_id, digest, subject, created)
        for pk, repo_id, digest, subject, created in Manifest.objects.values_list(
            "pk", "repository_id", "digest", "subject_digest", "created"
        )
    }
    parents_of: dict[int, set[int]] = {}
    for parent, child in ManifestChild.objects.values_list("manifest_id", "child_id"):
        parents_of.setdefault(child, set()).add(parent)
    alive = set(manifests)
    deleted: set[int] = set()
    while True:
        stored = {(manifests[pk][0], manifests[pk][1]) for pk in alive}
        doomed = {
            pk
            for pk in alive
            if (repository is None or manifests[pk][0] == repository.pk)
            and manifests[pk][3] < cutoff
            and pk not in tagged
            and not (parents_of.get(pk, set()) & alive)
            and (manifests[pk][0], manifests[pk][2]) not in stored
        }
        if not doomed:
            break
        alive -= doomed
        deleted |= doomed
    run.manifests_deleted = len(deleted)

    # 4 and 5: links, then blobs.
    referenced = {}  # blob -> repositories whose remaining manifests refer to it
    for manifest_id, blob_id in ManifestBlob.objects.values_list("manifest_id", "blob_id"):
        if manifest_id in alive:
            referenced.setdefault(blob_id, set()).add(manifests[manifest_id][0])
    links = scoped(RepositoryBlob.objects.all()).values_list("repository_id", "blob_id", "linked")
    unlinked = {
        (repo_id, blob_id)
        for repo_id, blob_id, linked in links
        if linked < cutoff and repo_id not in referenced.get(blob_id, set())
    }
    run.blob_links_deleted = len(unlinked)
    still_linked = {
        blob_id
        for repo_id, blob_id in RepositoryBlob.objects.values_list("repository_id", "blob_id")
        if (repo_id, blob_id) not in unlinked
    }
    candidates = Blob.objects.filter(created__lt=cutoff)
    if repository is not None:
        candidates = candidates.filter(pk__in={blob_id for _, blob_id in unlinked})
    for blob_id, size in candidates.values_list("pk", "size"):
        if blob_id not in still_linked and blob_id not in referenced:
            run.blobs_deleted += 1
            run.bytes_freed += size

    # 6: uploads (stray files only in a whole-registry pass).
    run.uploads_cleaned = scoped(UploadSession.objects.filter(expires__lt=now)).count()
    if repository is None:
        before = min(now - grace_period(), now - STRAY_UPLOAD_MIN_AGE)
        stray = get_blob_store().upload_ids_written_before(before)
        run.uploads_cleaned += sum(1 for upload_id in stray if not _session_exists(upload_id))
    run.finished = timezone.now()
    return run
