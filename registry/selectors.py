"""Reads of the registry. Hot paths are one indexed query each."""

from __future__ import annotations

import json

from django.utils import timezone

from registry import names
from registry.models import Blob, Manifest, Repository, Tag
from registry.permissions import Principal, visible_repositories


def repository_by_name(full_name: str) -> Repository | None:
    ns_name, repo_name = names.split_repository_name(full_name)
    return Repository.objects.select_related("namespace").filter(namespace__name=ns_name, name=repo_name).first()


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
