"""Merge an image's layer tars into one tar, streaming, from the top layer down.

The rules (docs/SQUASH.md, issue #10 item 2): the first occurrence of a path wins; ``.wh.<name>``
hides ``<name>`` and everything under it in the layers below; ``.wh..wh..opq`` hides everything
under its directory in the layers below; hard links whose target is hidden, shadowed or not
emitted become regular files holding the target's content; owners, modes, times, xattrs, device
nodes and fifos are kept; ``./`` prefixes are normalized; names with ``..`` components, absolute
names and whiteouts pointing outside the root are dropped.

Memory: each layer is read once, sequentially, and the entry data is copied through in chunks.
What is kept is per path (the merged path set, and the current layer's names for hard-link
resolution), never per byte. A hard link whose target was read earlier in the same layer but
not emitted (hidden from above) needs that content after it went by: such layers are read a
second time (``LayerSource.open()`` gives a fresh stream) to fetch just those targets.

Within one layer, a repeated path keeps its first entry like everywhere else (a layer tar that
repeats a path is unusual; tar extraction would keep the last one).
"""

from __future__ import annotations

import io
import logging
import tarfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import BinaryIO

import zstandard

try:  # ISA-L's inflate is about twice as fast as zlib's; the standard library is the fallback.
    from isal import igzip as _gzip
except ImportError:  # pragma: no cover - exercised only where isal is not installed
    import gzip as _gzip

log = logging.getLogger(__name__)

CHUNK = 1 << 20
BLOCK = tarfile.BLOCKSIZE
END_OF_ARCHIVE = b"\0" * (2 * BLOCK)
_ZEROS = b"\0" * CHUNK
GZIP_MAGIC = b"\x1f\x8b"
ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
WHITEOUT_PREFIX = ".wh."
OPAQUE_MARKER = ".wh..wh..opq"
GZIP_BACKEND = _gzip.__name__

# Flags of a path in the merged state.
_DIR = 1  # emitted as a directory: lower directories merge into it
_FILE = 2  # emitted (or reserved) as a non-directory: hides itself and everything below
_WHITEOUT = 4  # removed by a whiteout: hides itself and everything below
_OPAQUE = 8  # opaque directory: hides everything below, not itself
_IMPLIED = 16  # parent of an emitted path: a lower non-directory there is replaced
_HIDES_SELF = _DIR | _FILE | _WHITEOUT
_HIDES_BELOW = _FILE | _WHITEOUT | _OPAQUE

# Header fields re-derived from the TarInfo, or noise (atime/ctime), or consumed by the expansion
# of sparse files: never copied from the source's PAX records.
_PAX_DERIVED = {"path", "linkpath", "size", "uid", "gid", "uname", "gname", "mtime", "atime", "ctime", "hdrcharset"}


class SquashError(Exception):
    """The image cannot be flattened (a layer is corrupt, or the output outgrew its bound)."""


class LayerError(SquashError):
    """A layer's stored bytes are not a readable (compressed) tar."""


@dataclass(frozen=True)
class LayerSource:
    """One layer blob as stored; ``open()`` returns a fresh stream of its bytes each call."""

    digest: str
    media_type: str
    size: int
    open: Callable[[], BinaryIO]


@dataclass
class FlattenStats:
    """What one ``flatten`` did; ``bytes`` is the size of the tar written (end blocks included)."""

    layers: int = 0
    entries: int = 0
    bytes: int = 0
    content_bytes: int = 0
    whiteouts: int = 0
    shadowed: int = 0
    dropped: int = 0
    links_materialized: int = 0
    second_reads: int = 0
    gzip_backend: str = field(default=GZIP_BACKEND)


# ---------------------------------------------------------------------------------------------
# Reading layers


class _Prefixed(io.RawIOBase):
    """The stored stream with the magic bytes read for sniffing put back in front."""

    def __init__(self, head: bytes, raw: BinaryIO):
        self._head = head
        self._raw = raw

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        view = memoryview(buffer).cast("B")
        if self._head:
            n = min(len(view), len(self._head))
            view[:n] = self._head[:n]
            self._head = self._head[n:]
            return n
        data = self._raw.read(len(view))
        view[: len(data)] = data
        return len(data)


class _Forward:
    """A forward-only decompressed stream with the ``tell``/``seek`` tarfile uses.

    Reads return exactly the bytes asked for unless the stream ends (zstd's reader may return
    short reads). Seeking backwards is refused: every layer is read strictly sequentially.
    """

    def __init__(self, stream, digest: str):
        self._stream = stream
        self.digest = digest
        self.pos = 0

    def read(self, size: int = -1) -> bytes:
        try:
            if size is None or size < 0:
                data = self._stream.read()
            else:
                data = self._stream.read(size)
                if len(data) < size and data:
                    parts = [data]
                    got = len(data)
                    while got < size:
                        more = self._stream.read(size - got)
                        if not more:
                            break
                        parts.append(more)
                        got += len(more)
                    data = b"".join(parts)
        except Exception as exc:
            # Corrupt compressed data, a truncated blob, or the storage failing mid-read; output
            # errors never come through here.
            raise LayerError(f"layer {self.digest}: cannot read: {exc}") from exc
        self.pos += len(data)
        return data

    def exact(self, size: int) -> bytes:
        data = self.read(size)
        if len(data) != size:
            raise LayerError(f"layer {self.digest}: truncated tar")
        return data

    def tell(self) -> int:
        return self.pos

    def seek(self, pos: int, whence: int = io.SEEK_SET) -> int:
        if whence != io.SEEK_SET or pos < self.pos:
            raise io.UnsupportedOperation("layers are read forward only")
        remaining = pos - self.pos
        while remaining:
            data = self.read(min(remaining, CHUNK))
            if not data:
                raise LayerError(f"layer {self.digest}: truncated tar")
            remaining -= len(data)
        return self.pos

    def drain(self) -> None:
        """Read to the end so the decompressor checks its trailer (gzip CRC and length)."""
        while self.read(CHUNK):
            pass


@contextmanager
def decompressed(layer: LayerSource) -> Iterator[_Forward]:
    """The layer's uncompressed tar bytes; gzip and zstd are recognized by their magic bytes.

    The media type is not trusted for this: the bytes decide, which also covers blobs pushed
    with a media type that does not match their encoding.
    """
    raw = layer.open()
    try:
        head = b""
        while len(head) < 4:
            more = raw.read(4 - len(head))
            if not more:
                break
            head += more
        source = _Prefixed(head, raw)
        if head[:2] == GZIP_MAGIC:
            stream = _gzip.GzipFile(fileobj=source, mode="rb")
        elif head == ZSTD_MAGIC:
            stream = zstandard.ZstdDecompressor().stream_reader(
                source, read_size=CHUNK, read_across_frames=True, closefd=False
            )
        else:
            stream = io.BufferedReader(source, CHUNK)
        yield _Forward(stream, layer.digest)
    finally:
        raw.close()


def uncompressed_size(layer: LayerSource) -> int:
    """The size of the layer's uncompressed tar, by decompressing it once (for zstd, or gzip >= 4 GiB)."""
    with decompressed(layer) as stream:
        stream.drain()
        return stream.pos


@contextmanager
def _tar_members(layer: LayerSource, drain: bool = True):
    """(stream, members): the layer's TarInfo entries, the stream positioned at each one's data.

    tarfile parses the headers (PAX, GNU long names, sparse maps); the data is read straight
    from the decompressor by the caller, and whatever it leaves is skipped before the next header.
    Only reading errors become ``LayerError``: what the caller's output raises passes unchanged.
    """
    with decompressed(layer) as stream:
        try:
            tar = tarfile.TarFile(fileobj=stream, mode="r", encoding="utf-8", errors="surrogateescape")
        except tarfile.ReadError as exc:
            if str(exc) != "empty file":
                raise LayerError(f"layer {layer.digest}: not a tar: {exc}") from exc
            tar = None

        def members() -> Iterator[tarfile.TarInfo]:
            if tar is None:
                return
            while True:
                try:
                    info = tar.next()
                except LayerError:
                    raise
                except Exception as exc:  # tarfile's header errors, and its forward seek
                    raise LayerError(f"layer {layer.digest}: bad tar header: {exc}") from exc
                if info is None:
                    break
                # tarfile keeps every member it read; the flattener needs none of them.
                tar.members.clear()
                if tar.pax_headers:
                    # A global header (git archive's commit comment, say) was said once for the
                    # whole layer: repeating it on every entry would only grow the output.
                    info.pax_headers = {
                        key: value
                        for key, value in info.pax_headers.items()
                        if tar.pax_headers.get(key) != value or "xattr." in key
                    }
                yield info
                stream.seek(tar.offset)
            if drain:
                stream.drain()

        yield stream, members()


# ---------------------------------------------------------------------------------------------
# Names


def normalize(name: str) -> str | None:
    """The entry's path relative to the root ("" for the root itself), or None when unsafe.

    ``./`` and empty components go; absolute names and names with a ``..`` component are unsafe
    (dropping them is the only choice that cannot write outside the root in any extractor).
    """
    if name.startswith("/"):
        return None
    parts = []
    for part in name.split("/"):
        if part in ("", "."):
            continue
        if part == "..":
            return None
        parts.append(part)
    return "/".join(parts)


def _ancestors(path: str) -> Iterator[str]:
    """The proper ancestors of ``path``, root ("") first."""
    yield ""
    index = path.find("/")
    while index != -1:
        yield path[:index]
        index = path.find("/", index + 1)


def _parent_base(path: str) -> tuple[str, str]:
    index = path.rfind("/")
    return (path[:index], path[index + 1 :]) if index != -1 else ("", path)


# ---------------------------------------------------------------------------------------------
# Writing


def _header(src: tarfile.TarInfo, name: str, *, type: bytes, linkname: str = "", size: int = 0) -> bytes:
    """A tar header for ``name`` with ``src``'s metadata: plain ustar when it can say everything.

    ustar is the smallest encoding, so a re-encoded entry is never larger than the layer's own
    (which keeps the flattened tar within the size declared before flattening). PAX is used for
    what ustar cannot hold: long names, large numbers, xattrs and other records (a UTF-8 name
    that fits stays ustar, as GNU tar writes it).
    """
    info = tarfile.TarInfo(name)
    info.type = type
    info.linkname = linkname
    info.size = size
    info.mode = src.mode
    info.uid, info.gid = src.uid, src.gid
    info.uname, info.gname = src.uname, src.gname
    info.devmajor, info.devminor = src.devmajor, src.devminor
    extra = {k: v for k, v in src.pax_headers.items() if k not in _PAX_DERIVED and not k.startswith("GNU.sparse.")}
    mtime = src.mtime
    if isinstance(mtime, float) and mtime.is_integer():
        mtime = int(mtime)
    elif isinstance(mtime, float) and "mtime" in src.pax_headers:
        extra["mtime"] = src.pax_headers["mtime"]  # sub-second precision, as given
    info.mtime = mtime
    info.pax_headers = extra
    if (
        not extra
        and len(src.uname.encode("utf-8", "surrogateescape")) <= 32
        and len(src.gname.encode("utf-8", "surrogateescape")) <= 32
    ):
        try:
            return info.tobuf(tarfile.USTAR_FORMAT, "utf-8", "surrogateescape")
        except ValueError:
            pass  # a long name without a split point, or numbers too large for ustar
    return info.tobuf(tarfile.PAX_FORMAT, "utf-8", "surrogateescape")


class _Group:
    """Names that end up as one inode whose content comes from a hard link's target."""

    __slots__ = ("members", "origin")

    def __init__(self, origin: int):
        self.origin = origin  # index of the layer whose links asked for it
        self.members: list[tuple[str, tarfile.TarInfo]] = []


# Per-layer records of entries, for resolving that layer's hard links.
_EMITTED = "emitted"  # this layer's entry is what the output holds at this path
_HIDDEN_FILE = "hidden-file"  # a regular file of this layer that was not emitted
_DIR_SEEN = "dir"


class _Flattener:
    def __init__(self, out, stats: FlattenStats):
        self.out = out
        self.stats = stats
        self.state: dict[str, int] = {}
        # Hard links whose target lies in a lower layer (tar extraction resolves them against
        # what the layers below left); target path -> group.
        self.pending: dict[str, _Group] = {}

    # -- output

    def write(self, data) -> None:
        self.out.write(data)
        self.stats.bytes += len(data)

    def entry(self, header: bytes) -> None:
        self.write(header)
        self.stats.entries += 1

    def copy(self, stream: _Forward, info: tarfile.TarInfo) -> None:
        """Copy the entry's data (sparse files expanded) and its block padding."""
        written = 0
        regions = info.sparse if info.sparse is not None else [(0, info.size)]
        for offset, length in regions:
            if offset > written:
                self.zeros(offset - written)
                written = offset
            remaining = length
            while remaining:
                chunk = stream.read(min(remaining, CHUNK))
                if not chunk:
                    raise LayerError(f"layer {stream.digest}: {info.name}: truncated data")
                self.write(chunk)
                remaining -= len(chunk)
            written += length
        if info.size > written:
            self.zeros(info.size - written)
        self.stats.content_bytes += info.size
        if info.size % BLOCK:
            self.write(_ZEROS[: BLOCK - info.size % BLOCK])

    def zeros(self, count: int) -> None:
        while count:
            n = min(count, CHUNK)
            self.write(_ZEROS[:n])
            count -= n

    def materialize(self, members: list[tuple[str, tarfile.TarInfo]], src: tarfile.TarInfo, stream: _Forward) -> None:
        """The first member becomes a regular file with ``src``'s data; the others link to it."""
        first = members[0][0]
        self.entry(_header(src, first, type=tarfile.REGTYPE, size=src.size))
        self.copy(stream, src)
        self.stats.links_materialized += 1
        for name, _link in members[1:]:
            self.entry(_header(src, name, type=tarfile.LNKTYPE, linkname=first))

    def link_all(self, members, target: str) -> None:
        for name, link in members:
            self.entry(_header(link, name, type=tarfile.LNKTYPE, linkname=target))

    def copy_special(self, members, src: tarfile.TarInfo) -> None:
        """Hard links to a symlink, device or fifo that is not emitted: copies of that node."""
        for name, _link in members:
            self.entry(_header(src, name, type=src.type, linkname=src.linkname))
            self.stats.links_materialized += 1

    # -- merged state

    def visible(self, path: str, is_dir: bool) -> bool:
        state = self.state
        flags = state.get(path, 0)
        if flags & _HIDES_SELF or (flags & _IMPLIED and not is_dir):
            return False
        if state.get("", 0) & _OPAQUE:
            return False
        index = path.find("/")
        while index != -1:
            if state.get(path[:index], 0) & _HIDES_BELOW:
                return False
            index = path.find("/", index + 1)
        return True

    def mark(self, path: str, flag: int) -> None:
        state = self.state
        state[path] = state.get(path, 0) | flag
        parent = path
        while (index := parent.rfind("/")) != -1:
            parent = parent[:index]
            known = state.get(parent, 0)
            if known & (_DIR | _IMPLIED):
                break  # its own ancestors were marked when it was
            state[parent] = known | _IMPLIED

    # -- layers

    def layer(self, index: int, layer: LayerSource) -> None:
        seen: dict[str, object] = {}
        needs: dict[str, _Group] = {}
        whiteouts: set[str] = set()
        opaques: set[str] = set()
        with _tar_members(layer) as (stream, members):
            for info in members:
                path = normalize(info.name)
                if path is None or (info.islnk() and normalize(info.linkname) in (None, "")):
                    self.stats.dropped += 1
                    log.debug("layer %s: dropped unsafe entry %r", layer.digest, info.name)
                    continue
                if path == "":
                    continue  # the root itself: the extractor's root stays as it is
                parent, base = _parent_base(path)
                if base.startswith(WHITEOUT_PREFIX):
                    self.whiteout(parent, base, whiteouts, opaques)
                    continue
                self.member(index, info, path, stream, seen, needs)
        # Links from upper layers waiting for a target this layer removes now dangle.
        for target, group in list(self.pending.items()):
            if group.origin < index and (
                target in whiteouts or any(a in whiteouts or a in opaques for a in _ancestors(target))
            ):
                del self.pending[target]
                self.stats.dropped += len(group.members)
        for path in whiteouts:
            self.state[path] = self.state.get(path, 0) | _WHITEOUT
        for path in opaques:
            self.state[path] = self.state.get(path, 0) | _OPAQUE
        if needs:
            self.second_read(layer, needs)

    def whiteout(self, parent: str, base: str, whiteouts: set[str], opaques: set[str]) -> None:
        self.stats.whiteouts += 1
        if base == OPAQUE_MARKER:
            opaques.add(parent)
            return
        target = base[len(WHITEOUT_PREFIX) :]
        if target in ("", ".", "..") or target.startswith(WHITEOUT_PREFIX):
            # Pointing outside its directory, or aufs bookkeeping (.wh..wh.plnk and such).
            self.stats.dropped += 1
            return
        whiteouts.add(f"{parent}/{target}" if parent else target)

    def member(self, index: int, info: tarfile.TarInfo, path: str, stream, seen: dict, needs: dict) -> None:
        is_dir = info.isdir()
        visible = self.visible(path, is_dir)
        group = self.pending.get(path)
        if group is not None and group.origin < index:
            del self.pending[path]
        else:
            group = None
        first = path not in seen
        if is_dir:
            if visible:
                self.entry(_header(info, path, type=tarfile.DIRTYPE))
                self.mark(path, _DIR)
            else:
                self.stats.shadowed += 1
            if first:
                seen[path] = _DIR_SEEN
            if group is not None:
                self.stats.dropped += len(group.members)  # a hard link cannot point to a directory
        elif info.isreg():
            if visible:
                self.entry(_header(info, path, type=tarfile.REGTYPE, size=info.size))
                self.copy(stream, info)
                self.mark(path, _FILE)
                seen[path] = _EMITTED
                if group is not None:
                    self.link_all(group.members, path)
            elif group is not None:
                self.materialize(group.members, info, stream)
                if first:
                    seen[path] = ("as", group.members[0][0])
            else:
                self.stats.shadowed += 1
                if first:
                    seen[path] = _HIDDEN_FILE
        elif info.islnk():
            target = normalize(info.linkname)
            members = list(group.members) if group is not None else []
            if visible:
                self.mark(path, _FILE)
                members.insert(0, (path, info))
            elif first:
                self.stats.shadowed += 1
                seen[path] = ("link", target)
            if members:
                self.resolve(index, members, target, seen, needs, record=path if visible else None)
        elif info.issym() or info.ischr() or info.isblk() or info.isfifo():
            if visible:
                self.entry(_header(info, path, type=info.type, linkname=info.linkname))
                self.mark(path, _FILE)
                seen[path] = _EMITTED
                if group is not None:
                    self.link_all(group.members, path)
            else:
                self.stats.shadowed += 1
                if group is not None:
                    self.copy_special(group.members, info)
                if first:
                    seen[path] = ("copy", info)
        else:
            self.stats.dropped += 1  # GNU volume labels, multi-volume continuations and the like
            if group is not None:
                self.stats.dropped += len(group.members)

    def resolve(self, index: int, members: list, target: str, seen: dict, needs: dict, record: str | None) -> None:
        """Give ``members`` (hard links) the inode ``target`` names in this layer's view."""
        record_as: object = _EMITTED
        hops = 0
        rec = seen.get(target)
        while isinstance(rec, tuple) and rec[0] == "link" and hops < 64:
            target = rec[1]
            rec = seen.get(target)
            hops += 1
        if rec == _EMITTED:
            self.link_all(members, target)
        elif isinstance(rec, tuple) and rec[0] == "as":
            self.link_all(members, rec[1])
        elif isinstance(rec, tuple) and rec[0] == "copy":
            self.copy_special(members, rec[1])
        elif rec == _HIDDEN_FILE:
            group = needs.setdefault(target, _Group(index))
            group.members.extend(members)
            record_as = group
        elif isinstance(rec, _Group):
            rec.members.extend(members)
            record_as = rec
        elif rec is None:
            # Not (yet) in this layer: the link means the file the layers below leave there.
            group = self.pending.setdefault(target, _Group(index))
            group.members.extend(members)
            record_as = group
        else:  # a directory, a link loop
            self.stats.dropped += len(members)
            record_as = None
        if record is not None and record not in seen and record_as is not None:
            seen[record] = record_as

    def second_read(self, layer: LayerSource, needs: dict[str, _Group]) -> None:
        """Fetch the content of hidden files that this layer's visible hard links point to."""
        self.stats.second_reads += 1
        with _tar_members(layer, drain=False) as (stream, members):
            for info in members:
                if info.isreg():
                    group = needs.pop(normalize(info.name) or "", None)
                    if group is not None:
                        self.materialize(group.members, info, stream)
                        if not needs:
                            break
        for group in needs.values():
            self.stats.dropped += len(group.members)

    def finish(self) -> None:
        for group in self.pending.values():
            self.stats.dropped += len(group.members)  # targets that no layer below provides
        self.pending.clear()
        self.write(END_OF_ARCHIVE)


def flatten(layers: list[LayerSource], out) -> FlattenStats:
    """Write the merged tar of ``layers`` (top layer first) to ``out`` (anything with ``write``)."""
    stats = FlattenStats(layers=len(layers))
    flattener = _Flattener(out, stats)
    for index, layer in enumerate(layers):
        flattener.layer(index, layer)
    flattener.finish()
    return stats
