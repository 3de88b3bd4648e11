"""Hypothesis strategies for hostile tar archives: ``..`` and absolute names, links that escape,
hard links to anything, device files, FIFOs, huge declared sizes, truncation, and compression."""

from __future__ import annotations

import gzip
import io
import tarfile
from dataclasses import dataclass

import zstandard
from hypothesis import strategies as st

KINDS = {
    "file": tarfile.REGTYPE,
    "dir": tarfile.DIRTYPE,
    "symlink": tarfile.SYMTYPE,
    "hardlink": tarfile.LNKTYPE,
    "chr": tarfile.CHRTYPE,
    "blk": tarfile.BLKTYPE,
    "fifo": tarfile.FIFOTYPE,
    "contiguous": tarfile.CONTTYPE,
}

parts = st.one_of(
    st.sampled_from(["a", "b", "c", "..", ".", "", "etc", "os-release", ".wh.a", ".wh..wh..opq", "x" * 300]),
    st.text(
        st.characters(codec="utf-8", exclude_characters="/\x00", exclude_categories=("Cs",)), min_size=1, max_size=8
    ),
)
names = st.one_of(
    st.lists(parts, min_size=1, max_size=4).map("/".join),
    st.lists(parts, min_size=1, max_size=3).map(lambda p: "/" + "/".join(p)),
    st.sampled_from(["/etc/passwd", "../escape", "a/../../escape", "./a", "a/", "C:\\x", "a" * 120 + "/" + "b" * 120]),
)
link_targets = st.one_of(
    names,
    st.sampled_from(["/", "/tmp", "..", "../..", "a/../..", ".", "a", "a/b", "/etc/passwd", "x/../../../y"]),
)


@dataclass(frozen=True)
class Entry:
    name: str
    kind: str
    linkname: str = ""
    data: bytes = b""
    declared: int | None = None  # a size in the header other than len(data) (truncates the archive)
    mode: int = 0o644


entries = st.builds(
    Entry,
    name=names,
    kind=st.sampled_from(sorted(KINDS)),
    linkname=link_targets,
    data=st.binary(max_size=64),
    declared=st.one_of(st.none(), st.none(), st.sampled_from([0, 1, 10**12, 8**11 - 1, 2**40])),
    mode=st.sampled_from([0o644, 0o755, 0o4755, 0o000, 0o7777]),
)


def tar_bytes(items: list[Entry], *, fmt: int = tarfile.PAX_FORMAT, end: bool = True) -> bytes:
    out = io.BytesIO()
    for item in items:
        info = tarfile.TarInfo(item.name)
        info.type = KINDS[item.kind]
        info.mode = item.mode
        info.mtime = 0
        if item.kind in ("symlink", "hardlink"):
            info.linkname = item.linkname
        has_data = item.kind in ("file", "contiguous")
        info.size = len(item.data) if has_data else 0
        if item.declared is not None and has_data:
            info.size = item.declared
        try:
            out.write(info.tobuf(fmt, "utf-8", "surrogateescape"))
        except ValueError:
            continue  # a header this format cannot express
        if has_data:
            out.write(item.data[: info.size])
            if info.size != len(item.data):
                return out.getvalue()  # the rest of the archive is "missing": truncated
            out.write(b"\0" * (-len(item.data) % tarfile.BLOCKSIZE))
    if end:
        out.write(b"\0" * (2 * tarfile.BLOCKSIZE))
    return out.getvalue()


@st.composite
def archives(draw, extra_entries=None):
    pool = st.one_of(entries, extra_entries) if extra_entries is not None else entries
    items = draw(st.lists(pool, max_size=8))
    fmt = draw(st.sampled_from([tarfile.PAX_FORMAT, tarfile.GNU_FORMAT, tarfile.USTAR_FORMAT]))
    raw = tar_bytes(items, fmt=fmt, end=draw(st.booleans()))
    how = draw(st.sampled_from(["plain", "plain", "gzip", "zstd", "cut", "garbage"]))
    if how == "gzip":
        return gzip.compress(raw, mtime=0)
    if how == "zstd":
        return zstandard.ZstdCompressor().compress(raw)
    if how == "cut":
        return raw[: draw(st.integers(0, len(raw)))]
    if how == "garbage":
        return draw(st.one_of(st.binary(max_size=600), st.just(b"\x1f\x8b" + raw), st.just(b"\x28\xb5\x2f\xfd" + raw)))
    return raw
