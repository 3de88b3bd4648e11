"""Reads of the registry. Hot paths are one indexed query each."""

from __future__ import annotations

import json
from dataclasses import dataclass

from django.db import connection
from django.utils import timezone

from registry import names
from registry.models import Blob, Manifest, Repository, Tag
from registry.permissions import Principal, visible_repositories


def repository_by_name(full_name: str) -> Repository | None:
    ns_name, repo_name = names.split_repository_name(full_name)
    return Repository.objects.select_related("namespace").filter(namespace__name=ns_name, name=repo_name).first()


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
    columns="""(SELECT b.size FROM registry_blob b JOIN registry_repositoryblob rb ON rb.blob_id = b.id
        WHERE rb.repository_id = r.id AND b.digest = %s)""",
    joins="",
)


def _fetch_target(sql: str, params: list, digest_default: str | None = None) -> PullTarget | None:
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        row = cursor.fetchone()
    if row is None:
        return None
    repository_id, namespace_id, visibility = row[0], row[1], row[2]
    public = visibility == Repository.Visibility.PUBLIC
    if len(row) == 4:  # blob size
        if row[3] is None:
            return PullTarget(repository_id, namespace_id, public)
        return PullTarget(repository_id, namespace_id, public, digest=digest_default, size=row[3])
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
    """The repository (None if missing) and the size of a blob it links, in one query."""
    ns_name, repo_name = names.split_repository_name(full_name)
    return _fetch_target(_BLOB_SQL, [digest, ns_name, repo_name], digest_default=digest)


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
