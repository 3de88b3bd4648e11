"""Reads for squashed downloads: which image a tag and platform name, its layers and config, and
the cache rows."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

from django.conf import settings
from django.db.models import Exists, OuterRef, Sum

from registry import errors as registry_errors
from registry.manifests import FOREIGN_LAYER_TYPES, IMAGE_CONFIG_TYPES, IMAGE_MANIFEST_TYPES, INDEX_TYPES
from registry.models import Manifest, Repository, Tag
from registry.storage import get_blob_store
from squash.models import LayerSize, SquashedImage, SquashSettings

PLATFORM_RE = re.compile(r"^[a-z0-9][a-z0-9._-]{0,31}/[a-z0-9][a-z0-9._-]{0,31}(?:/[a-z0-9][a-z0-9._-]{0,31})?\Z")
# An image config is a small JSON document; this bounds what a hostile push can make us parse.
CONFIG_MAX_BYTES = 16 * 1024 * 1024

GZIP_LAYER_TYPES = {
    "application/vnd.oci.image.layer.v1.tar+gzip",
    "application/vnd.docker.image.rootfs.diff.tar.gzip",
    "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip",
}
ZSTD_LAYER_TYPES = {
    "application/vnd.oci.image.layer.v1.tar+zstd",
    "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd",
}
TAR_LAYER_TYPES = {
    "application/vnd.oci.image.layer.v1.tar",
    "application/vnd.docker.image.rootfs.diff.tar",
    "application/vnd.oci.image.layer.nondistributable.v1.tar",
}
LAYER_TYPES = GZIP_LAYER_TYPES | ZSTD_LAYER_TYPES | TAR_LAYER_TYPES


class SquashRefused(Exception):
    """A request that cannot be answered with a tarball; ``status`` and a message for the caller."""

    def __init__(self, message: str, status: int = 400):
        super().__init__(message)
        self.message = message
        self.status = status


@dataclass(frozen=True)
class Platform:
    os: str
    architecture: str
    variant: str = ""

    @classmethod
    def parse(cls, text: str) -> Platform:
        if not PLATFORM_RE.match(text or ""):
            raise SquashRefused(f"Invalid platform {text!r}: expected os/architecture[/variant], e.g. linux/arm64")
        parts = text.split("/")
        return cls(parts[0], parts[1], parts[2] if len(parts) > 2 else "")

    @classmethod
    def of(cls, value) -> Platform | None:
        if not isinstance(value, dict):
            return None
        os_, arch, variant = value.get("os"), value.get("architecture"), value.get("variant") or ""
        if not isinstance(os_, str) or not isinstance(arch, str) or not isinstance(variant, str):
            return None
        return cls(os_, arch, variant)

    def __str__(self) -> str:
        return "/".join(part for part in (self.os, self.architecture, self.variant) if part)

    def matches(self, other: Platform) -> bool:
        """Does ``other`` (an image's platform) satisfy this asked one? No variant asked: any."""
        if (self.os, self.architecture) != (other.os, other.architecture):
            return False
        if not self.variant or self.variant == other.variant:
            return True
        # arm64's one variant is v8, often left out.
        return self.architecture == "arm64" and self.variant == "v8" and not other.variant


@dataclass(frozen=True)
class SquashTarget:
    """The image a squashed download flattens: ``manifest`` is an image manifest (a platform's
    manifest for a multi-architecture tag); ``platform`` is what it runs on, when known."""

    repository: Repository
    tag: str
    manifest: Manifest
    host: str
    platform: str

    @property
    def repo_tag(self) -> str:
        return f"{self.host}/{self.repository.full_name}:{self.tag}.squash"


def default_platform() -> Platform:
    return Platform.parse(settings.SQUASH_DEFAULT_PLATFORM)


def _document(manifest: Manifest) -> dict:
    try:
        doc = json.loads(bytes(manifest.raw))
    except ValueError:
        doc = None
    if not isinstance(doc, dict):
        raise SquashRefused("The tag's manifest cannot be read")
    return doc


def squash_target(
    *, repository: Repository, tag: Tag, host: str, platform: str | None, check_single: bool = True
) -> SquashTarget:
    """The image to flatten for a tag; SquashRefused when there is none for the platform.

    A multi-architecture tag takes the asked platform (default SQUASH_DEFAULT_PLATFORM); a
    single-architecture image is taken whatever its platform, unless one was asked for explicitly
    and the image is another (``check_single``).
    """
    if repository.kind != Repository.Kind.IMAGE:
        raise SquashRefused(f"{repository.full_name} is an application repository: only container images are squashed")
    manifest = tag.manifest
    asked = Platform.parse(platform) if platform else None
    if manifest.media_type in INDEX_TYPES:
        wanted = asked or default_platform()
        doc = _document(manifest)
        entries = [entry for entry in doc.get("manifests") or [] if isinstance(entry, dict)]
        offered = []
        for entry in entries:
            entry_platform = Platform.of(entry.get("platform"))
            if entry_platform is None or entry_platform.os == "unknown":
                continue  # attestations and other non-runnable entries
            offered.append(str(entry_platform))
            if wanted.matches(entry_platform) and entry.get("mediaType") in IMAGE_MANIFEST_TYPES:
                child = Manifest.objects.filter(repository=repository, digest=entry.get("digest")).first()
                if child is not None:
                    return SquashTarget(repository, tag.name, child, host, str(entry_platform))
        raise SquashRefused(
            f"The image of {repository.full_name}:{tag.name} has no {wanted} variant; "
            f"choose one with ?platform=: {', '.join(offered) or 'none is runnable'}"
        )
    if manifest.media_type not in IMAGE_MANIFEST_TYPES or manifest.config_media_type not in IMAGE_CONFIG_TYPES:
        raise SquashRefused(f"{repository.full_name}:{tag.name} is not a container image")
    actual = ""
    if asked is not None and check_single:
        config = image_config(manifest)
        image_platform = Platform.of(config)
        if image_platform is not None:
            actual = str(image_platform)
            if not asked.matches(image_platform):
                raise SquashRefused(
                    f"{repository.full_name}:{tag.name} is a single-architecture image for {image_platform}, "
                    f"not {asked}; leave out ?platform= to download it"
                )
    return SquashTarget(repository, tag.name, manifest, host, actual)


def image_config(manifest: Manifest) -> dict:
    """The image config of an image manifest, parsed."""
    try:
        stream = get_blob_store().open_blob(manifest.config_digest)
    except registry_errors.BlobUnknown:
        raise SquashRefused("The image's config is missing from storage", status=500) from None
    try:
        raw = stream.read(CONFIG_MAX_BYTES + 1)
    finally:
        stream.close()
    if len(raw) > CONFIG_MAX_BYTES:
        raise SquashRefused("The image's config is too large to squash")
    try:
        config = json.loads(raw)
    except ValueError:
        config = None
    if not isinstance(config, dict):
        raise SquashRefused("The image's config is not a JSON object")
    return config


@dataclass(frozen=True)
class LayerDescriptor:
    digest: str
    media_type: str
    size: int


def image_layers(manifest: Manifest) -> list[LayerDescriptor]:
    """The image's layers from the BOTTOM one to the top one, as the manifest lists them."""
    layers = []
    for entry in _document(manifest).get("layers") or []:
        if not isinstance(entry, dict):
            raise SquashRefused("The image's manifest lists a malformed layer")
        media_type = entry.get("mediaType")
        if media_type in FOREIGN_LAYER_TYPES and entry.get("urls"):
            raise SquashRefused("The image has foreign layers that this registry does not store")
        if media_type not in LAYER_TYPES:
            raise SquashRefused(f"The image has a layer of type {media_type!r}, which cannot be flattened")
        layers.append(LayerDescriptor(str(entry.get("digest")), media_type, int(entry.get("size") or 0)))
    return layers


def known_layer_sizes(digests: list[str]) -> dict[str, int]:
    return dict(LayerSize.objects.filter(digest__in=digests).values_list("digest", "uncompressed_size"))


def squash_cached(*, manifest: Manifest, host: str, tag: str) -> SquashedImage | None:
    return SquashedImage.objects.filter(manifest=manifest, host=host, tag=tag).first()


def squash_cache_bytes() -> int:
    return SquashedImage.objects.filter(state=SquashedImage.State.READY).aggregate(total=Sum("size"))["total"] or 0


def squash_rows_for_tag(*, repository: Repository, tag: str) -> list[tuple[str, str]]:
    """(host, platform) of the squashes made for a tag before: what priming makes again."""
    return list(
        SquashedImage.objects.filter(repository=repository, tag=tag)
        .order_by("host", "platform")
        .values_list("host", "platform")
        .distinct()
    )


def squash_at_push(*, repository: Repository) -> bool:
    return SquashSettings.objects.filter(repository=repository, squash_at_push=True).exists()


def robots_reading(*, repository: Repository) -> list:
    """The active robots of the repository's namespace that may read it, in one query: all of
    them on a public repository; otherwise those with a permission of their own or through a
    team, or in an admin team of the organization (registry.permissions.repository_role's rules)."""
    from accounts.models import Robot, Team
    from registry.models import RepositoryPermission

    robots = Robot.objects.filter(namespace=repository.namespace, user__is_active=True)
    if not repository.is_public:
        robots = robots.filter(
            Exists(RepositoryPermission.objects.filter(repository=repository, user=OuterRef("user")))
            | Exists(RepositoryPermission.objects.filter(repository=repository, team__members=OuterRef("user")))
            | Exists(
                Team.objects.filter(organization=repository.namespace, role=Team.Role.ADMIN, members=OuterRef("user"))
            )
        )
    return list(robots.select_related("user").order_by("short_name"))
