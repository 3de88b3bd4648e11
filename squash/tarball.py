"""The `docker load` / `podman load` tarball (docker-archive) around a flattened layer.

Members, in this order (docs/SQUASH.md, "Format"):

1. ``<id>/layer.tar``: its header declares ``plan.layer_bytes`` before anything is flattened;
   the flattened tar follows, then zeros up to the declared size (zeros after a tar's end blocks
   are still a valid tar). The sha256 of those bytes is the layer's diff_id.
2. ``<id>/json`` and ``<id>/VERSION``: legacy v1 metadata for old loaders.
3. ``<config sha256>.json``: the image config for one layer (``rootfs.diff_ids`` and
   ``history`` rewritten, the rest kept).
4. ``manifest.json`` and 5. ``repositories``.

Everything after the layer depends on the diff_id only through fixed-length hex, so every size,
and thus the whole tarball's, is known before the first byte: ``plan_squash`` renders the
metadata with a placeholder digest and counts.
"""

from __future__ import annotations

import hashlib
import json
import tarfile
from collections.abc import Callable
from dataclasses import dataclass

from squash.flatten import BLOCK, CHUNK, END_OF_ARCHIVE, FlattenStats, LayerSource, SquashError, flatten

_ZEROS = b"\0" * CHUNK
_PLACEHOLDER_DIGEST = "sha256:" + "0" * 64
# What the flattened tar may need beyond the layers' own sizes: its end-of-archive blocks when
# every layer is an empty stream (a layer tar already ends with at least these two blocks).
LAYER_SLACK = len(END_OF_ARCHIVE)


class SquashTooLarge(SquashError):
    """The flattened tar outgrew the size declared in the tarball's header.

    Only possible when ``uncompressed_size_of`` under-reported a layer (e.g. a gzip trailer of a
    multi-member blob); the caller should measure the layers and plan again.
    """


@dataclass(frozen=True)
class SquashPlan:
    """Everything fixed before the first byte; ``total_size`` is the Content-Length."""

    layers: list[LayerSource]  # top to bottom
    config: dict  # the image's config JSON (parsed)
    repo_tag: str  # "<registry host>/<ns>/<repo>:<tag>.squash"
    layer_bytes: int  # declared size of the layer tar member (an upper bound of the flattened tar)
    total_size: int  # exact size of the whole tarball


@dataclass(frozen=True)
class SquashResult:
    size: int  # == plan.total_size
    sha256: str  # of the whole tarball, hex
    layer_diff_id: str  # "sha256:..." of the layer tar as written (padding included)
    stats: FlattenStats | None = None


def _padding(size: int) -> int:
    return -size % BLOCK


def _member_header(name: str, size: int) -> bytes:
    """A plain header for one archive member; PAX only for a layer of 8 GiB or more."""
    info = tarfile.TarInfo(name)
    info.size = size
    info.mode = 0o644
    info.mtime = 0  # fixed, so one image gives one tarball byte for byte
    try:
        return info.tobuf(tarfile.USTAR_FORMAT, "utf-8", "strict")
    except ValueError:
        return info.tobuf(tarfile.PAX_FORMAT, "utf-8", "strict")


def _compact(value) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode()


def split_repo_tag(repo_tag: str) -> tuple[str, str]:
    """("<host>/<ns>/<repo>", "<tag>.squash"); a port in the host is not mistaken for the tag."""
    slash = repo_tag.rfind("/")
    colon = repo_tag.rfind(":")
    if colon <= slash:
        return repo_tag, "latest"
    return repo_tag[:colon], repo_tag[colon + 1 :]


def image_id(plan_or_layers, config: dict | None = None) -> str:
    """The legacy v1 id: fixed-length hex derived from the image itself (its config and layer
    digests, which the manifest digest stands for), so it is known before flattening."""
    if isinstance(plan_or_layers, SquashPlan):
        layers, config = plan_or_layers.layers, plan_or_layers.config
    else:
        layers = plan_or_layers
    seed = json.dumps({"config": config, "layers": [layer.digest for layer in layers]}, sort_keys=True)
    return hashlib.sha256(b"squash\n" + seed.encode()).hexdigest()


def squashed_config(config: dict, *, diff_id: str, layer_count: int, repo_tag: str) -> bytes:
    """The image config for the one flattened layer: diff_ids and history rewritten, the rest kept."""
    created = config.get("created") or "1970-01-01T00:00:00Z"
    host = repo_tag.split("/", 1)[0]
    rewritten = dict(config)
    rewritten["rootfs"] = {"type": "layers", "diff_ids": [diff_id]}
    rewritten["history"] = [
        {
            "created": created,
            "created_by": f"squash: {layer_count} layers flattened into one",
            "comment": f"squashed by {host}",
        }
    ]
    return _compact(rewritten)


def _metadata(plan: SquashPlan, layer_id: str, diff_id: str) -> list[tuple[str, bytes]]:
    """The members after the layer, in order."""
    config = plan.config
    config_bytes = squashed_config(config, diff_id=diff_id, layer_count=len(plan.layers), repo_tag=plan.repo_tag)
    config_name = hashlib.sha256(config_bytes).hexdigest() + ".json"
    v1 = {
        "id": layer_id,
        "created": config.get("created") or "1970-01-01T00:00:00Z",
        "os": config.get("os", "linux"),
        "architecture": config.get("architecture", "amd64"),
        "config": config.get("config") or {},
    }
    repository, tag = split_repo_tag(plan.repo_tag)
    manifest = [{"Config": config_name, "RepoTags": [plan.repo_tag], "Layers": [f"{layer_id}/layer.tar"]}]
    return [
        (f"{layer_id}/json", _compact(v1)),
        (f"{layer_id}/VERSION", b"1.0"),
        (config_name, config_bytes),
        ("manifest.json", _compact(manifest)),
        ("repositories", _compact({repository: {tag: layer_id}})),
    ]


def plan_squash(
    *,
    layers: list[LayerSource],
    config: dict,
    repo_tag: str,
    uncompressed_size_of: Callable[[LayerSource], int],
) -> SquashPlan:
    """Fix the tarball's layout and exact size; nothing is decompressed here.

    ``layer_bytes`` is the sum of the layers' uncompressed tar sizes (plus LAYER_SLACK): the
    flattened tar never exceeds it, as every emitted entry is re-encoded no larger than its
    source (the one exception being a sparse file, expanded; see write_squash).
    """
    layer_bytes = sum(uncompressed_size_of(layer) for layer in layers) + LAYER_SLACK
    draft = SquashPlan(layers=list(layers), config=config, repo_tag=repo_tag, layer_bytes=layer_bytes, total_size=0)
    layer_id = image_id(draft)
    total = len(_member_header(f"{layer_id}/layer.tar", layer_bytes)) + layer_bytes + _padding(layer_bytes)
    for name, data in _metadata(draft, layer_id, _PLACEHOLDER_DIGEST):
        total += len(_member_header(name, len(data))) + len(data) + _padding(len(data))
    total += len(END_OF_ARCHIVE)
    return SquashPlan(layers=list(layers), config=config, repo_tag=repo_tag, layer_bytes=layer_bytes, total_size=total)


class _Out:
    """Writes to the caller's ``out`` and hashes the whole tarball as it goes."""

    def __init__(self, out):
        self.out = out
        self.sha256 = hashlib.sha256()
        self.size = 0

    def write(self, data) -> None:
        self.sha256.update(data)
        self.out.write(data)
        self.size += len(data)

    def zeros(self, count: int) -> None:
        while count:
            n = min(count, CHUNK)
            self.write(_ZEROS[:n])
            count -= n


class _LayerOut:
    """The layer member's bytes: hashed for the diff_id, and bounded by the declared size."""

    def __init__(self, out: _Out, limit: int):
        self.out = out
        self.limit = limit
        self.size = 0
        self.sha256 = hashlib.sha256()

    def write(self, data) -> None:
        self.size += len(data)
        if self.size > self.limit:
            raise SquashTooLarge(f"the flattened layer exceeds the {self.limit} bytes declared for it")
        self.sha256.update(data)
        self.out.write(data)


def write_squash(plan: SquashPlan, out) -> SquashResult:
    """Stream the tarball to ``out`` (anything with ``write``), exactly ``plan.total_size`` bytes.

    The layer's header goes out first, then the flattened tar as it is produced. Raises
    SquashTooLarge if the flattened tar outgrows ``plan.layer_bytes`` and LayerError for a layer
    that cannot be read; either way the output is incomplete and must be discarded.
    """
    tarball = _Out(out)
    layer_id = image_id(plan)
    tarball.write(_member_header(f"{layer_id}/layer.tar", plan.layer_bytes))
    layer = _LayerOut(tarball, plan.layer_bytes)
    stats = flatten(plan.layers, layer)
    fill = plan.layer_bytes - layer.size
    while fill:
        n = min(fill, CHUNK)
        layer.write(_ZEROS[:n])
        fill -= n
    tarball.zeros(_padding(plan.layer_bytes))
    diff_id = "sha256:" + layer.sha256.hexdigest()
    for name, data in _metadata(plan, layer_id, diff_id):
        tarball.write(_member_header(name, len(data)))
        tarball.write(data)
        tarball.zeros(_padding(len(data)))
    tarball.write(END_OF_ARCHIVE)
    if tarball.size != plan.total_size:  # a bug, never the input's fault
        raise SquashError(f"wrote {tarball.size} bytes where {plan.total_size} were planned")
    return SquashResult(size=tarball.size, sha256=tarball.sha256.hexdigest(), layer_diff_id=diff_id, stats=stats)
