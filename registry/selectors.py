"""Reads of the registry. Hot paths are one indexed query each."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from django.db import connection
from django.db.models import Count, Max, Q, QuerySet
from django.db.models.functions import TruncDate
from django.utils import timezone

from accounts.models import Namespace, Team, TeamMember, User
from registry import errors, gc, labels, names
from registry.models import Blob, Manifest, Repository, RepositoryPermission, Star, Tag, UploadSession, UsageLog
from registry.permissions import Principal, visible_repositories
from registry.rows import RowLoader
from registry.storage import get_blob_store

_repository_rows = RowLoader(Repository)
_namespace_rows = RowLoader(Namespace)
upload_rows = RowLoader(UploadSession)
_NAMESPACE_FIELD = Repository._meta.get_field("namespace")


def upload_session_live(*, repository: Repository, session_id, owner: str) -> UploadSession | None:
    """The unexpired upload session ``session_id`` of ``owner`` in ``repository``, in one query."""
    db_id = UploadSession._meta.pk.get_db_prep_value(session_id, connection)
    now = connection.ops.adapt_datetimefield_value(timezone.now())
    sql = (
        f"SELECT {upload_rows.select_list('u')} FROM {UploadSession._meta.db_table} u "
        "WHERE u.uuid = %s AND u.repository_id = %s AND u.owner = %s AND u.expires > %s"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, [db_id, repository.pk, owner, now])
        row = cursor.fetchone()
    return upload_rows.build(row) if row is not None else None


def upload_session_refresh(session: UploadSession) -> None:
    """Re-read ``offset`` and ``parts`` (another request may have appended since)."""
    db_id = UploadSession._meta.pk.get_db_prep_value(session.pk, connection)
    sql = f"SELECT {upload_rows.select_list('u')} FROM {UploadSession._meta.db_table} u WHERE u.uuid = %s"
    with connection.cursor() as cursor:
        cursor.execute(sql, [db_id])
        row = cursor.fetchone()
    if row is None:
        raise UploadSession.DoesNotExist(session.pk)
    fresh = upload_rows.build(row)
    session.offset, session.parts = fresh.offset, fresh.parts


def repository_by_name(full_name: str) -> Repository | None:
    """The repository (with its namespace loaded) named ``namespace/name``, in one query."""
    ns_name, repo_name = names.split_repository_name(full_name)
    sql = (
        f"SELECT {_repository_rows.select_list('r')}, {_namespace_rows.select_list('n')} "
        f"FROM {Repository._meta.db_table} r JOIN {Namespace._meta.db_table} n ON n.id = r.namespace_id "
        "WHERE n.name = %s AND r.name = %s"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, [ns_name, repo_name])
        row = cursor.fetchone()
    if row is None:
        return None
    split = len(_repository_rows.columns)
    repository = _repository_rows.build(row[:split])
    _NAMESPACE_FIELD.set_cached_value(repository, _namespace_rows.build(row[split:]))
    return repository


@dataclass(frozen=True, slots=True)
class PullTarget:
    """What a pull needs to know about a repository and the object asked for (None if absent)."""

    repository_id: int
    namespace_id: int
    is_public: bool
    digest: str | None = None
    media_type: str | None = None
    raw: bytes | None = None
    size: int | None = None
    # A blob link whose garbage-collection clock the pull should restart (services.blob_link_refresh).
    refresh_link: int | None = None


# The two hottest reads of the registry, as one statement each: building them with the ORM
# costs more CPU than running them (about 0.4 ms per query here), and a pull does little else.
_REPOSITORY_SQL = """
    SELECT r.id, r.namespace_id, r.visibility, {columns}
    FROM registry_repository r
    JOIN accounts_namespace n ON n.id = r.namespace_id
    {joins}
    WHERE n.name = %s AND r.name = %s
"""
_MANIFEST_BY_TAG_SQL = _REPOSITORY_SQL.format(
    columns="m.digest, m.media_type, m.raw",
    joins="""
    LEFT JOIN registry_tag t ON t.repository_id = r.id AND t.name = %s AND t.lifetime_end IS NULL
        AND t.hidden = %s AND (t.expiration IS NULL OR t.expiration > %s)
    LEFT JOIN registry_manifest m ON m.id = t.manifest_id""",
)
_MANIFEST_BY_DIGEST_SQL = _REPOSITORY_SQL.format(
    columns="m.digest, m.media_type, m.raw",
    joins="LEFT JOIN registry_manifest m ON m.repository_id = r.id AND m.digest = %s",
)
_BLOB_SQL = _REPOSITORY_SQL.format(
    columns="l.size, l.id, l.linked < %s",
    joins="""
    LEFT JOIN (SELECT rb.id, rb.repository_id, rb.linked, b.size FROM registry_repositoryblob rb
        JOIN registry_blob b ON b.id = rb.blob_id WHERE b.digest = %s) l ON l.repository_id = r.id""",
)


def _fetch_target(sql: str, params: list) -> PullTarget | None:
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        row = cursor.fetchone()
    if row is None:
        return None
    repository_id, namespace_id, visibility = row[0], row[1], row[2]
    public = visibility == Repository.Visibility.PUBLIC
    digest, media_type, raw = row[3], row[4], row[5]
    if digest is None:
        return PullTarget(repository_id, namespace_id, public)
    return PullTarget(repository_id, namespace_id, public, digest, media_type, bytes(raw), len(raw))


def manifest_for_pull(full_name: str, reference: str) -> PullTarget | None:
    """The repository (None if missing) and the manifest a tag or digest names, in one query."""
    ns_name, repo_name = names.split_repository_name(full_name)
    if names.is_digest(reference):
        return _fetch_target(_MANIFEST_BY_DIGEST_SQL, [reference, ns_name, repo_name])
    now = connection.ops.adapt_datetimefield_value(timezone.now())
    return _fetch_target(_MANIFEST_BY_TAG_SQL, [reference, False, now, ns_name, repo_name])


def blob_for_pull(full_name: str, digest: str) -> PullTarget | None:
    """The repository (None if missing) and the size of a blob it links, in one query; and the
    link, when it is old enough that garbage collection could soon take it (``refresh_link``)."""
    ns_name, repo_name = names.split_repository_name(full_name)
    before = gc.pull_refresh_before(timezone.now())
    before = connection.ops.adapt_datetimefield_value(before) if before is not None else None
    with connection.cursor() as cursor:
        cursor.execute(_BLOB_SQL, [before, digest, ns_name, repo_name])
        row = cursor.fetchone()
    if row is None:
        return None
    repository_id, namespace_id, visibility, size, link_id, stale = row
    public = visibility == Repository.Visibility.PUBLIC
    if size is None:
        return PullTarget(repository_id, namespace_id, public)
    return PullTarget(
        repository_id, namespace_id, public, digest=digest, size=size, refresh_link=link_id if stale else None
    )


def alive_tags(repository: Repository):
    now = timezone.now()
    return Tag.objects.filter(repository=repository, lifetime_end__isnull=True, hidden=False).exclude(
        expiration__lte=now
    )


def manifest_by_reference(repository: Repository, reference: str) -> Manifest | None:
    """A manifest by digest, or the one an alive tag points at."""
    if names.is_digest(reference):
        return (
            Manifest.objects.filter(repository=repository, digest=reference)
            .only("digest", "media_type", "raw", "size", "subject_digest")
            .first()
        )
    tag = (
        alive_tags(repository)
        .filter(name=reference)
        .select_related("manifest")
        .only("manifest__digest", "manifest__media_type", "manifest__raw", "manifest__size", "manifest__subject_digest")
        .first()
    )
    return tag.manifest if tag is not None else None


def blob_in_repository(repository: Repository, digest: str) -> Blob | None:
    return Blob.objects.filter(digest=digest, repository_links__repository=repository).first()


def tag_names_page(repository: Repository, *, n: int, last: str | None) -> tuple[list[str], bool]:
    query = alive_tags(repository).order_by("name")
    if last:
        query = query.filter(name__gt=last)
    page = list(query.values_list("name", flat=True)[: n + 1])
    return page[:n], len(page) > n


def catalog_page(principal: Principal, *, n: int, last: str | None) -> tuple[list[str], bool]:
    """Full names of the repositories the principal may pull, sorted, after ``last``."""
    query = visible_repositories(principal).select_related("namespace").order_by("namespace__name", "name")
    if last:
        ns_name, _, repo_name = last.partition("/")
        from django.db.models import Q

        query = query.filter(Q(namespace__name__gt=ns_name) | Q(namespace__name=ns_name, name__gt=repo_name))
    rows = list(query.values_list("namespace__name", "name")[: n + 1])
    return [f"{ns}/{name}" for ns, name in rows[:n]], len(rows) > n


def referrers(repository: Repository, digest: str, *, artifact_type: str | None) -> list[dict]:
    """Descriptors of the manifests whose subject is ``digest``, as an OCI index lists them."""
    query = Manifest.objects.filter(repository=repository, subject_digest=digest).order_by("digest")
    if artifact_type:
        query = query.filter(artifact_type=artifact_type)
    result = []
    for manifest in query.only("digest", "media_type", "size", "artifact_type", "annotations"):
        descriptor = {"mediaType": manifest.media_type, "digest": manifest.digest, "size": manifest.size}
        if manifest.artifact_type:
            descriptor["artifactType"] = manifest.artifact_type
        if manifest.annotations:
            descriptor["annotations"] = manifest.annotations
        result.append(descriptor)
    return result


def referrers_index(descriptors: list[dict]) -> bytes:
    return json.dumps(
        {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json", "manifests": descriptors},
        separators=(",", ":"),
    ).encode()


# ---------------------------------------------------------------------------------------------
# Reads of the REST API (/api/v1)


def _permitted_q(user: User) -> Q:
    """Repositories a user may read through a role, whether or not they are public."""
    admin_orgs = Team.objects.filter(members=user, role=Team.Role.ADMIN).values("organization_id")
    granted = RepositoryPermission.objects.filter(Q(user=user) | Q(team__members=user)).values("repository_id")
    return Q(namespace__user=user) | Q(namespace_id__in=admin_orgs) | Q(pk__in=granted)


def repositories_visible(
    *, user: User | None, include_public: bool, namespace: str | None = None, kind: str | None = None
) -> QuerySet[Repository]:
    """Repositories the user has a role on, plus public ones when asked (Quay's listing rule:
    public repositories of others appear only with ``public=true``)."""
    visible = Q(pk__in=[])
    if user is not None:
        visible |= _permitted_q(user)
    if include_public:
        visible |= Q(visibility=Repository.Visibility.PUBLIC)
    query = Repository.objects.filter(visible).select_related("namespace")
    if namespace is not None:
        query = query.filter(namespace__name=namespace)
    if kind is not None:
        query = query.filter(kind=kind)
    return query.order_by("pk")


def repositories_starred(*, user: User, kind: str | None = None) -> QuerySet[Repository]:
    """The user's starred repositories that they can still see."""
    query = Repository.objects.filter(
        _permitted_q(user) | Q(visibility=Repository.Visibility.PUBLIC), stars__user=user
    ).select_related("namespace")
    if kind is not None:
        query = query.filter(kind=kind)
    return query.order_by("pk")


def page_after_id(query: QuerySet, *, after_id: int | None, limit: int) -> tuple[list, bool]:
    """One page of a queryset ordered by primary key, and whether more follow."""
    if after_id is not None:
        query = query.filter(pk__gt=after_id)
    rows = list(query[: limit + 1])
    return rows[:limit], len(rows) > limit


def repository_starred_ids(*, user: User, repository_ids: list[int]) -> set[int]:
    return set(
        Star.objects.filter(user=user, repository_id__in=repository_ids).values_list("repository_id", flat=True)
    )


def repository_last_tag_starts(*, repository_ids: list[int]) -> dict[int, datetime]:
    """When each repository's most recent tag started (Quay's ``last_modified`` in listings)."""
    rows = (
        Tag.objects.filter(repository_id__in=repository_ids, hidden=False)
        .values("repository_id")
        .annotate(latest=Max("lifetime_start"))
    )
    return {row["repository_id"]: row["latest"] for row in rows}


def repository_action_counts(*, repository_ids: list[int], since: datetime) -> dict[int, int]:
    """Usage log entries per repository since a time (Quay's ``popularity``)."""
    rows = (
        UsageLog.objects.filter(repository_id__in=repository_ids, created__gte=since)
        .values("repository_id")
        .annotate(total=Count("pk"))
    )
    return {row["repository_id"]: row["total"] for row in rows}


def repository_daily_action_counts(*, repository: Repository, since: datetime) -> dict[date, int]:
    rows = (
        UsageLog.objects.filter(repository=repository, created__gte=since)
        .annotate(day=TruncDate("created", tzinfo=UTC))
        .values("day")
        .annotate(total=Count("pk"))
    )
    return {row["day"]: row["total"] for row in rows}


def repository_tags_for_view(*, repository: Repository, limit: int) -> list[Tag]:
    """Alive tags with their manifests, newest first, at most ``limit``."""
    return list(alive_tags(repository).select_related("manifest").order_by("-lifetime_start", "name")[:limit])


def repository_user_permissions(*, repository: Repository) -> list[RepositoryPermission]:
    return list(
        RepositoryPermission.objects.filter(repository=repository, user__isnull=False)
        .select_related("user")
        .order_by("user__username")
    )


def repository_user_permission(*, repository: Repository, username: str) -> RepositoryPermission | None:
    return (
        RepositoryPermission.objects.filter(repository=repository, user__username=username)
        .select_related("user")
        .first()
    )


def repository_team_permissions(*, repository: Repository) -> list[RepositoryPermission]:
    return list(
        RepositoryPermission.objects.filter(repository=repository, team__isnull=False)
        .select_related("team")
        .order_by("team__name")
    )


def repository_team_permission(*, repository: Repository, team_name: str) -> RepositoryPermission | None:
    return (
        RepositoryPermission.objects.filter(repository=repository, team__name=team_name)
        .select_related("team")
        .first()
    )


def organization_member_ids(*, organization: Namespace, user_ids: list[int]) -> set[int]:
    """Which of the users are in a team of the organization."""
    return set(
        TeamMember.objects.filter(team__organization=organization, user_id__in=user_ids).values_list(
            "user_id", flat=True
        )
    )


@dataclass(frozen=True)
class LogCursor:
    """Where the next page of a newest-first log listing starts."""

    created: datetime
    pk: int


def _usage_log_query(
    *,
    start: datetime,
    end: datetime,
    repository: Repository | None = None,
    namespace: Namespace | None = None,
    performer: str | None = None,
) -> QuerySet[UsageLog]:
    query = UsageLog.objects.filter(created__gte=start, created__lt=end)
    if repository is not None:
        query = query.filter(repository=repository)
    if namespace is not None:
        query = query.filter(namespace=namespace)
    if performer:
        query = query.filter(actor_name=performer)
    return query


def usage_logs_page(
    *,
    start: datetime,
    end: datetime,
    limit: int,
    repository: Repository | None = None,
    namespace: Namespace | None = None,
    performer: str | None = None,
    after: LogCursor | None = None,
) -> tuple[list[UsageLog], LogCursor | None]:
    """Entries in [start, end), newest first; pull entries are written in batches, so the order is
    by time and then id, never by id alone."""
    query = _usage_log_query(start=start, end=end, repository=repository, namespace=namespace, performer=performer)
    if after is not None:
        query = query.filter(Q(created__lt=after.created) | Q(created=after.created, pk__lt=after.pk))
    rows = list(
        query.select_related("actor", "namespace", "namespace__user").order_by("-created", "-pk")[: limit + 1]
    )
    page = rows[:limit]
    following = LogCursor(created=page[-1].created, pk=page[-1].pk) if len(rows) > limit else None
    return page, following


def usage_log_daily_counts(
    *,
    start: datetime,
    end: datetime,
    repository: Repository | None = None,
    namespace: Namespace | None = None,
    performer: str | None = None,
) -> list[tuple[str, date, int]]:
    """(kind, day, count) for each kind and UTC day in [start, end)."""
    rows = (
        _usage_log_query(start=start, end=end, repository=repository, namespace=namespace, performer=performer)
        .annotate(day=TruncDate("created", tzinfo=UTC))
        .values("kind", "day")
        .annotate(total=Count("pk"))
        .order_by("day", "kind")
    )
    return [(row["kind"], row["day"], row["total"]) for row in rows]


def namespace_by_name(name: str) -> Namespace | None:
    return Namespace.objects.filter(name=name).select_related("user").first()


def repository_is_starred(*, user: User, repository: Repository) -> bool:
    return Star.objects.filter(user=user, repository=repository).exists()


def repository_granted_roles(*, repository: Repository, username: str) -> list[str]:
    """The roles granted on the repository to a user directly and through their teams."""
    return list(
        RepositoryPermission.objects.filter(
            Q(user__username=username) | Q(team__members__username=username), repository=repository
        )
        .order_by("pk")
        .values_list("role", flat=True)
    )


# ---------------------------------------------------------------------------------------------
# Tag history and the time machine
#
# A row has ended when its lifetime_end is set, or when its expiration has passed (an expired
# row counts as ended at its expiration even before anything writes lifetime_end). An ended row
# is in its namespace's time machine while it ended less than ``time_machine_seconds`` ago and
# it is neither hidden (temporary push tags) nor purged (ended permanently by an admin): such a
# row can be restored, and its manifest (with the blobs) must be kept. This is the one place
# that rule is written; restore, the tag API and garbage collection all use these functions.


def time_machine_cutoff(namespace: Namespace, now: datetime) -> datetime:
    """Rows of this namespace that ended after this moment are in the time machine."""
    return now - timedelta(seconds=namespace.time_machine_seconds)


def _alive_q(now: datetime) -> Q:
    return Q(lifetime_end__isnull=True) & (Q(expiration__isnull=True) | Q(expiration__gt=now))


def _ended_after_q(cutoff: datetime, now: datetime) -> Q:
    """Ended (explicitly, or by expiration before ``now``) at a time after ``cutoff``."""
    return Q(lifetime_end__gt=cutoff) | Q(lifetime_end__isnull=True, expiration__lte=now, expiration__gt=cutoff)


def _ended_by_q(cutoff: datetime) -> Q:
    """Ended (explicitly, or by expiration) at or before ``cutoff``."""
    return Q(lifetime_end__lte=cutoff) | Q(lifetime_end__isnull=True, expiration__lte=cutoff)


def _in_window_q(now: datetime, cutoff: datetime) -> Q:
    return Q(hidden=False, purged=False) & _ended_after_q(cutoff, now)


def _past_window_q(now: datetime, cutoff: datetime) -> Q:
    ended = Q(lifetime_end__isnull=False) | Q(expiration__lte=now)
    return ended & (Q(hidden=True) | Q(purged=True) | _ended_by_q(cutoff))


def _per_namespace_window(build, now: datetime, repository: Repository | None) -> Q:
    """``build(now, cutoff)`` with each row's own namespace window.

    Windows are one of a few settings (TAG_EXPIRATION_OPTIONS), so the condition is one clause
    per distinct window in use rather than date arithmetic in SQL, which SQLite and PostgreSQL
    spell differently.
    """
    if repository is not None:
        return Q(repository=repository) & build(now, time_machine_cutoff(repository.namespace, now))
    windows = Namespace.objects.order_by().values_list("time_machine_seconds", flat=True).distinct()
    condition = Q(pk__in=[])
    for seconds in windows:
        cutoff = now - timedelta(seconds=seconds)
        condition |= Q(repository__namespace__time_machine_seconds=seconds) & build(now, cutoff)
    return condition


def tags_in_time_machine(*, now: datetime | None = None, repository: Repository | None = None) -> QuerySet[Tag]:
    """Ended rows inside their namespace's window: restorable, and their manifests must be kept."""
    now = now or timezone.now()
    return Tag.objects.filter(_per_namespace_window(_in_window_q, now, repository))


def tags_past_time_machine(*, now: datetime | None = None, repository: Repository | None = None) -> QuerySet[Tag]:
    """Ended rows that no longer protect anything: past the window, purged, or hidden and expired.

    Garbage collection may delete these rows; a manifest is collectable once no row of
    ``tags_retaining_manifests`` (and no index) refers to it.
    """
    now = now or timezone.now()
    return Tag.objects.filter(_per_namespace_window(_past_window_q, now, repository))


def tags_retaining_manifests(*, now: datetime | None = None, repository: Repository | None = None) -> QuerySet[Tag]:
    """Rows that keep their manifest: alive ones (hidden temporary tags too, until they expire)
    and ended ones in the time machine."""
    now = now or timezone.now()
    alive = _alive_q(now) if repository is None else Q(repository=repository) & _alive_q(now)
    return Tag.objects.filter(alive | _per_namespace_window(_in_window_q, now, repository))


def tag_restorable(*, repository: Repository, name: str, manifest_id: int, now: datetime | None = None) -> bool:
    """Whether ``name`` may be restored to the manifest: the tag points there now, or pointed
    there in a history entry that is still in the time machine."""
    now = now or timezone.now()
    rows = Tag.objects.filter(repository=repository, name=name, manifest_id=manifest_id, hidden=False)
    return rows.filter(_alive_q(now) | _in_window_q(now, time_machine_cutoff(repository.namespace, now))).exists()


def tag_alive(*, repository: Repository, name: str, now: datetime | None = None) -> Tag | None:
    """The alive, visible, unexpired row of a tag name, with its manifest's digest."""
    now = now or timezone.now()
    return (
        Tag.objects.filter(_alive_q(now), repository=repository, name=name, hidden=False)
        .select_related("manifest")
        .only(
            "name",
            "lifetime_start",
            "lifetime_end",
            "expiration",
            "reversion",
            "manifest__digest",
            "manifest__config_digest",
            "manifest__config_media_type",
            "manifest__media_type",
        )
        .first()
    )


TAG_NAME_FILTER_OPERATIONS = ("like", "eq")


def tag_history_page(
    *,
    repository: Repository,
    page: int,
    limit: int,
    specific_tag: str | None = None,
    only_active: bool = False,
    name_filter: tuple[str, str] | None = None,
    now: datetime | None = None,
) -> tuple[list[Tag], bool]:
    """One page of a repository's tag history (or one tag's), newest first, and whether more follow.

    Quay's listing: every visible row, alive and ended, ordered by start time then name, with
    offset pages numbered from 1. Purged rows are gone from history. One query: the inner
    SELECT finds the page's ids in order from a partial index that covers it (``tag_listing_idx``,
    ``tag_alive_listing_idx``, or for one tag ``tag_history_idx``), so skipping to a deep page
    reads index entries only, never rows or joined manifests; the outer one loads those rows.
    """
    now = now or timezone.now()
    query = Tag.objects.filter(repository=repository, hidden=False, purged=False)
    if specific_tag is not None:
        query = query.filter(name=specific_tag)
    if name_filter is not None:
        operation, value = name_filter
        query = query.filter(name__contains=value) if operation == "like" else query.filter(name=value)
    if only_active:
        query = query.filter(_alive_q(now))
    order = ("-lifetime_start", "name", "-pk")
    offset = (page - 1) * limit
    ids = query.order_by(*order).values("pk")[offset : offset + limit + 1]
    rows = list(
        Tag.objects.filter(pk__in=ids)
        .select_related("manifest")
        .only(
            "name",
            "reversion",
            "lifetime_start",
            "lifetime_end",
            "expiration",
            "manifest__digest",
            "manifest__media_type",
            "manifest__layers_size",
        )
        .order_by(*order)
    )
    return rows[:limit], len(rows) > limit


# ---------------------------------------------------------------------------------------------
# Manifest details (the tag and manifest pages of the REST API and UI)


def manifest_in_repository(*, repository: Repository, digest: str) -> Manifest | None:
    return Manifest.objects.filter(repository=repository, digest=digest).first()


def image_config(digest: str) -> dict | None:
    """An image config blob as a JSON object, read from storage; None when it is missing, over
    the read limit, or not a JSON object."""
    try:
        stream = get_blob_store().open_blob(digest)
    except (errors.BlobUnknown, OSError):
        return None
    try:
        raw = stream.read(labels.CONFIG_READ_LIMIT + 1)
    except OSError:
        return None
    finally:
        stream.close()
    if len(raw) > labels.CONFIG_READ_LIMIT:
        return None
    return labels.parse_config(raw)


def manifest_config(manifest: Manifest) -> dict | None:
    """The manifest's image config (None for artifacts and indexes)."""
    if not manifest.config_digest or not labels.has_config_labels(manifest.media_type, manifest.config_media_type):
        return None
    return image_config(manifest.config_digest)


def manifest_labels(manifest: Manifest, config: dict | None = None) -> dict[str, str]:
    """The labels Quay shows for a manifest: config labels, then OCI annotations."""
    if config is None:
        config = manifest_config(manifest)
    return labels.manifest_labels(media_type=manifest.media_type, config=config, annotations=manifest.annotations)


@dataclass(frozen=True)
class ManifestLayer:
    """A layer of an image manifest with what the config's history says about it."""

    index: int
    blob_digest: str
    compressed_size: int
    media_type: str
    is_remote: bool
    urls: list[str] | None
    command: list[str] | None
    comment: str | None
    author: str | None
    created: datetime | None


@dataclass(frozen=True)
class ManifestPlatform:
    """An entry of an index: a child manifest and the platform it is for."""

    digest: str
    media_type: str
    size: int
    os: str | None
    architecture: str | None
    variant: str | None
    os_version: str | None
    layers_size: int | None


@dataclass(frozen=True)
class ManifestDetails:
    manifest: Manifest
    config: dict | None
    layers: list[ManifestLayer] | None
    platforms: list[ManifestPlatform] | None


def _history_time(value) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _text(value) -> str | None:
    return value if isinstance(value, str) and value else None


def _manifest_layers(doc: dict, config: dict | None) -> list[ManifestLayer]:
    descriptors = [d for d in doc.get("layers") or [] if isinstance(d, dict)]
    history = config.get("history") if isinstance(config, dict) else None
    history = history if isinstance(history, list) else None
    steps = [h for h in history or [] if isinstance(h, dict) and not h.get("empty_layer")]
    # History describes layers only when it has one non-empty step per layer, in order.
    if len(steps) != len(descriptors):
        steps = [{}] * len(descriptors)
    layers = []
    for index, (descriptor, step) in enumerate(zip(descriptors, steps, strict=True)):
        urls = descriptor.get("urls") if isinstance(descriptor.get("urls"), list) else None
        created_by = _text(step.get("created_by"))
        layers.append(
            ManifestLayer(
                index=index,
                blob_digest=str(descriptor.get("digest", "")),
                compressed_size=descriptor.get("size") if isinstance(descriptor.get("size"), int) else 0,
                media_type=str(descriptor.get("mediaType", "")),
                is_remote=bool(urls),
                urls=urls,
                command=[created_by] if created_by else None,
                comment=_text(step.get("comment")),
                author=_text(step.get("author")),
                created=_history_time(step.get("created")),
            )
        )
    return layers


def _manifest_platforms(repository: Repository, doc: dict) -> list[ManifestPlatform]:
    entries = [d for d in doc.get("manifests") or [] if isinstance(d, dict)]
    digests = [d.get("digest") for d in entries if isinstance(d.get("digest"), str)]
    sizes = dict(
        Manifest.objects.filter(repository=repository, digest__in=digests).values_list("digest", "layers_size")
    )
    platforms = []
    for entry in entries:
        platform = entry.get("platform") if isinstance(entry.get("platform"), dict) else {}
        digest = str(entry.get("digest", ""))
        platforms.append(
            ManifestPlatform(
                digest=digest,
                media_type=str(entry.get("mediaType", "")),
                size=entry.get("size") if isinstance(entry.get("size"), int) else 0,
                os=_text(platform.get("os")),
                architecture=_text(platform.get("architecture")),
                variant=_text(platform.get("variant")),
                os_version=_text(platform.get("os.version")),
                layers_size=sizes.get(digest),
            )
        )
    return platforms


def manifest_details(*, repository: Repository, digest: str) -> ManifestDetails | None:
    """A stored manifest with its config, its layers (images) or its platforms (indexes)."""
    manifest = manifest_in_repository(repository=repository, digest=digest)
    if manifest is None:
        return None
    doc = labels.parse_config(bytes(manifest.raw)) or {}
    if manifest.is_index:
        return ManifestDetails(manifest, None, None, _manifest_platforms(repository, doc))
    config = manifest_config(manifest)
    return ManifestDetails(manifest, config, _manifest_layers(doc, config), None)


def expires_after_label(
    *, media_type: str, config_digest: str, config_media_type: str, annotations: dict | None
) -> timedelta | None:
    """The tag lifetime a manifest's ``quay.expires-after`` label asks for (config read from storage)."""
    config = None
    if config_digest and labels.has_config_labels(media_type, config_media_type):
        config = image_config(config_digest)
    return labels.expires_after(labels.manifest_labels(media_type=media_type, config=config, annotations=annotations))


def manifest_expires_after(manifest: Manifest) -> timedelta | None:
    return expires_after_label(
        media_type=manifest.media_type,
        config_digest=manifest.config_digest,
        config_media_type=manifest.config_media_type,
        annotations=manifest.annotations,
    )


# ---------------------------------------------------------------------------------------------
# The web UI's Tags and Tag History tabs: bounded reads beside ``tag_history_page``


def alive_tag_count(*, repository: Repository, name_contains: str = "", now: datetime | None = None) -> int:
    """How many alive, visible tags the repository has (those whose name contains
    ``name_contains``): a partial index on alive rows finds them, however long the history."""
    now = now or timezone.now()
    query = Tag.objects.filter(_alive_q(now), repository=repository, hidden=False, purged=False)
    if name_contains:
        query = query.filter(name__contains=name_contains)
    return query.count()


def tag_ids_in_time_machine(*, repository: Repository, tag_ids: list[int], now: datetime | None = None) -> set[int]:
    """Which of these history rows are ended and still in the namespace's time machine (the
    entries a Restore can bring back), in one query."""
    if not tag_ids:
        return set()
    return set(tags_in_time_machine(now=now, repository=repository).filter(pk__in=tag_ids).values_list("pk", flat=True))


def alive_tag_manifest_ids(
    *, repository: Repository, tag_names: list[str], now: datetime | None = None
) -> dict[str, int]:
    """The manifest each of these tag names points at now (names without an alive row are left out)."""
    if not tag_names:
        return {}
    now = now or timezone.now()
    rows = Tag.objects.filter(_alive_q(now), repository=repository, hidden=False, name__in=set(tag_names))
    return dict(rows.values_list("name", "manifest_id"))
