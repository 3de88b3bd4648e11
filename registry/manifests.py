"""Parsing and validation of manifest bytes (pure: no database, no storage)."""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field

from registry import errors, names

DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
IMAGE_MANIFEST_TYPES = {DOCKER_MANIFEST, OCI_MANIFEST}
INDEX_TYPES = {DOCKER_LIST, OCI_INDEX}
MANIFEST_TYPES = IMAGE_MANIFEST_TYPES | INDEX_TYPES
DOCKER_SCHEMA1_TYPES = {
    "application/vnd.docker.distribution.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.v1+prettyjws",
}
# Config media types that make a manifest a runnable image (everything else is an artifact).
IMAGE_CONFIG_TYPES = {"application/vnd.docker.container.image.v1+json", "application/vnd.oci.image.config.v1+json"}
# Layers that registries do not have to hold when they carry `urls` (Windows base layers).
FOREIGN_LAYER_TYPES = {
    "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip",
    "application/vnd.oci.image.layer.nondistributable.v1.tar",
    "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip",
    "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd",
}
# RFC 6838 type/subtype, as the image spec requires of mediaType and artifactType: also what
# keeps NUL and overlong text out of the database columns they land in.
MEDIA_TYPE_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,126}/[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,126}")
# Sizes are stored in 64-bit signed columns.
MAX_SIZE = 2**63 - 1


@dataclass(frozen=True)
class Descriptor:
    media_type: str
    digest: str
    size: int
    foreign: bool = False
    platform: dict | None = None


@dataclass
class ParsedManifest:
    raw: bytes
    digest: str
    media_type: str
    config: Descriptor | None = None
    layers: list[Descriptor] = field(default_factory=list)
    children: list[Descriptor] = field(default_factory=list)
    subject: Descriptor | None = None
    # What referrers report: artifactType, else (for image manifests) the config media type.
    artifact_type: str = ""
    declared_artifact_type: str = ""
    annotations: dict = field(default_factory=dict)

    @property
    def is_index(self) -> bool:
        return self.media_type in INDEX_TYPES

    @property
    def is_image(self) -> bool:
        """A runnable image (or an index of them), as opposed to an artifact."""
        if self.declared_artifact_type:
            return False
        return self.is_index or (self.config is not None and self.config.media_type in IMAGE_CONFIG_TYPES)


def digest_of(raw: bytes, algorithm: str = "sha256") -> str:
    return f"{algorithm}:{hashlib.new(algorithm, raw).hexdigest()}"


def _descriptor(value, what: str, *, child: bool = False) -> Descriptor:
    if not isinstance(value, dict):
        raise errors.ManifestInvalid({"reason": f"{what} is not a descriptor"})
    media_type = value.get("mediaType")
    digest = value.get("digest")
    size = value.get("size")
    if not isinstance(media_type, str) or not media_type:
        raise errors.ManifestInvalid({"reason": f"{what} has no mediaType"})
    if not MEDIA_TYPE_RE.fullmatch(media_type):
        raise errors.ManifestInvalid({"reason": f"{what} has an invalid mediaType"})
    if not isinstance(digest, str) or not names.DIGEST_RE.match(digest):
        raise errors.ManifestInvalid({"reason": f"{what} has an invalid digest", "digest": digest})
    if not isinstance(size, int) or isinstance(size, bool) or not 0 <= size <= MAX_SIZE:
        raise errors.ManifestInvalid({"reason": f"{what} has an invalid size"})
    foreign = media_type in FOREIGN_LAYER_TYPES and bool(value.get("urls"))
    platform = value.get("platform") if child and isinstance(value.get("platform"), dict) else None
    return Descriptor(media_type=media_type, digest=digest, size=size, foreign=foreign, platform=platform)


def parse_manifest(raw: bytes, content_type: str) -> ParsedManifest:
    """Validate ``raw`` as a manifest of a supported type, or raise MANIFEST_INVALID."""
    content_type = (content_type or "").split(";", 1)[0].strip()
    try:
        doc = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise errors.ManifestInvalid({"reason": "manifest is not valid JSON"}) from None
    if not isinstance(doc, dict):
        raise errors.ManifestInvalid({"reason": "manifest is not a JSON object"})
    if doc.get("schemaVersion") != 2:
        if content_type in DOCKER_SCHEMA1_TYPES or doc.get("schemaVersion") == 1:
            raise errors.ManifestInvalid({"reason": "Docker schema 1 manifests are not supported"})
        raise errors.ManifestInvalid({"reason": "schemaVersion must be 2"})
    if "layers" in doc and "manifests" in doc:
        raise errors.ManifestInvalid({"reason": "a manifest cannot have both layers and manifests"})

    body_type = doc.get("mediaType")
    if body_type is not None and not isinstance(body_type, str):
        raise errors.ManifestInvalid({"reason": "mediaType must be a string"})
    if body_type and content_type in MANIFEST_TYPES and body_type != content_type:
        raise errors.ManifestInvalid(
            {"reason": "mediaType does not match Content-Type", "mediaType": body_type, "contentType": content_type}
        )
    media_type = body_type or (content_type if content_type in MANIFEST_TYPES else "")
    if not media_type:
        # OCI allows mediaType to be absent: tell the two OCI kinds apart by their fields.
        media_type = OCI_INDEX if "manifests" in doc else OCI_MANIFEST
    if media_type not in MANIFEST_TYPES:
        raise errors.ManifestInvalid({"reason": f"unsupported manifest media type {media_type!r}"})

    artifact_type = doc.get("artifactType") or ""
    if not isinstance(artifact_type, str) or (artifact_type and not MEDIA_TYPE_RE.fullmatch(artifact_type)):
        raise errors.ManifestInvalid({"reason": "artifactType must be a media type"})
    annotations = doc.get("annotations") or {}
    if not isinstance(annotations, dict):
        raise errors.ManifestInvalid({"reason": "annotations must be an object"})
    if not all(isinstance(v, str) and "\x00" not in k + v for k, v in annotations.items()):
        # A map of strings (image spec); NUL is refused because PostgreSQL's jsonb cannot hold it.
        raise errors.ManifestInvalid({"reason": "annotations must map strings to strings"})
    parsed = ParsedManifest(
        raw=raw,
        digest=digest_of(raw),
        media_type=media_type,
        artifact_type=artifact_type,
        declared_artifact_type=artifact_type,
        annotations=annotations,
    )
    if "subject" in doc and doc["subject"] is not None:
        parsed.subject = _descriptor(doc["subject"], "subject")

    if media_type in INDEX_TYPES:
        manifests = doc.get("manifests")
        if not isinstance(manifests, list):
            raise errors.ManifestInvalid({"reason": "an index needs a manifests list"})
        parsed.children = [_descriptor(m, f"manifests[{i}]", child=True) for i, m in enumerate(manifests)]
        return parsed

    if "manifests" in doc:
        raise errors.ManifestInvalid({"reason": "an image manifest cannot have manifests"})
    parsed.config = _descriptor(doc.get("config"), "config")
    layers = doc.get("layers", [])
    if not isinstance(layers, list):
        raise errors.ManifestInvalid({"reason": "layers must be a list"})
    if media_type == DOCKER_MANIFEST and not layers:
        raise errors.ManifestInvalid({"reason": "a Docker image manifest needs at least one layer"})
    parsed.layers = [_descriptor(layer, f"layers[{i}]") for i, layer in enumerate(layers)]
    if sum(layer.size for layer in parsed.layers) > MAX_SIZE:
        # Foreign layers' sizes are not checked against blobs; their total is stored.
        raise errors.ManifestInvalid({"reason": "the layers' sizes add up to more than a size can be"})
    if not parsed.artifact_type:
        parsed.artifact_type = parsed.config.media_type
    return parsed
