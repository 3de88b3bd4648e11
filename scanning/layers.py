"""Reading one layer: stream the tar (plain, gzip or zstd), keep the few files that say what is
installed, and parse them. Pure: bytes in, records out (no database).

Only package databases and OS release files are read into memory, each up to a limit; every
other member is skipped by the tar reader without being buffered.
"""

from __future__ import annotations

import email.parser
import io
import json
import os
import re
import sqlite3
import struct
import tarfile
import tempfile
import zlib
from dataclasses import dataclass, field
from typing import BinaryIO

import zstandard

try:  # a faster inflater when present (stdlib gzip is the fallback)
    from isal import igzip as _gzip
    from isal.isal_zlib import error as _isal_error

    _INFLATE_ERRORS: tuple = (zlib.error, _isal_error)
except ImportError:  # pragma: no cover - isal is in requirements.txt
    import gzip as _gzip

    _INFLATE_ERRORS = (zlib.error,)

# Layer media types the indexer can read (plain, gzip and zstd tars; Docker's and OCI's names).
TAR_TYPES = {
    "application/vnd.oci.image.layer.v1.tar",
    "application/vnd.oci.image.layer.v1.tar+gzip",
    "application/vnd.oci.image.layer.v1.tar+zstd",
    "application/vnd.docker.image.rootfs.diff.tar.gzip",
    "application/vnd.docker.image.rootfs.diff.tar",
    "application/vnd.docker.image.rootfs.diff.tar.zstd",
}
FILE_LIMIT = 64 * 1024 * 1024  # a package database bigger than this is not a real one

OS_RELEASE_PATHS = ("etc/os-release", "usr/lib/os-release")
DPKG_STATUS = "var/lib/dpkg/status"
DPKG_STATUS_D = "var/lib/dpkg/status.d/"
APK_INSTALLED = "lib/apk/db/installed"
RPM_SQLITE = ("var/lib/rpm/rpmdb.sqlite", "usr/lib/sysimage/rpm/rpmdb.sqlite")
PYTHON_RE = re.compile(r"\.dist-info/METADATA$|\.egg-info/PKG-INFO$")
# The package.json at the root of a package directly under node_modules (scoped or not); not
# the many package.json files inside a package (tests, fixtures, sub-directories).
NPM_RE = re.compile(r"(?:^|/)node_modules/(?:@[^/]+/)?[^/@.][^/]*/package\.json$")


class LayerError(Exception):
    """A layer or one of its package databases that cannot be read; the message says which."""


@dataclass
class Record:
    kind: str
    name: str
    version: str
    source_name: str = ""
    source_version: str = ""
    arch: str = ""


@dataclass
class LayerContents:
    os_release: dict[str, dict] = field(default_factory=dict)
    # path -> the packages its copy of the database lists
    package_files: dict[str, list[Record]] = field(default_factory=dict)
    whiteouts: list[str] = field(default_factory=list)
    opaque_dirs: list[str] = field(default_factory=list)


def normalize(name: str) -> str:
    name = name.lstrip("/")
    while name.startswith("./"):
        name = name[2:]
    return name.rstrip("/")


def wanted(path: str) -> str | None:
    """The kind of file ``path`` is for the indexer, or None to skip it."""
    if path in OS_RELEASE_PATHS:
        return "os"
    if path == DPKG_STATUS:
        return "dpkg"
    if path.startswith(DPKG_STATUS_D) and "/" not in path[len(DPKG_STATUS_D) :] and not path.endswith(".md5sums"):
        return "dpkg"
    if path == APK_INSTALLED:
        return "apk"
    if path in RPM_SQLITE:
        return "rpm"
    if PYTHON_RE.search(path):
        return "python"
    if NPM_RE.search(path):
        return "npm"
    return None


class _Prefixed(io.RawIOBase):
    """A stream with its first bytes (read to sniff the format) put back in front."""

    def __init__(self, head: bytes, stream: BinaryIO):
        self.head, self.stream = head, stream

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        if self.head:
            n = min(len(buffer), len(self.head))
            buffer[:n], self.head = self.head[:n], self.head[n:]
            return n
        chunk = self.stream.read(len(buffer))
        buffer[: len(chunk)] = chunk
        return len(chunk)


def decompressed(stream: BinaryIO) -> BinaryIO:
    """The tar stream inside a layer blob, by magic number: gzip, zstd or plain."""
    head = stream.read(4)
    buffered = io.BufferedReader(_Prefixed(head, stream), buffer_size=1024 * 1024)
    if head[:2] == b"\x1f\x8b":
        return _gzip.GzipFile(fileobj=buffered, mode="rb")
    if head == b"\x28\xb5\x2f\xfd":
        return zstandard.ZstdDecompressor().stream_reader(buffered, read_across_frames=True)
    return buffered


class _EndGuard:
    """Fails a read loop that goes on past the end of the layer.

    To skip a member, tarfile's stream mode reads its declared size block by block and does not
    stop when the data runs out: a header declaring 2**40 bytes in a small layer had the scanner
    spin for hours on empty reads. A tar reader meets the end once or twice (the end-of-archive
    blocks); many empty reads in a row can only be such a skip, and end the scan with an error.
    """

    EMPTY_READS_ALLOWED = 8

    def __init__(self, stream: BinaryIO):
        self.stream, self.empty_reads = stream, 0

    def read(self, size: int = -1) -> bytes:
        data = self.stream.read(size)
        if data:
            self.empty_reads = 0
            return data
        self.empty_reads += 1
        if self.empty_reads > self.EMPTY_READS_ALLOWED:
            raise EOFError("a tar header declares more data than the layer holds")
        return data


def read_layer(stream: BinaryIO) -> LayerContents:
    contents = LayerContents()
    try:
        with tarfile.open(fileobj=_EndGuard(decompressed(stream)), mode="r|") as tar:
            for member in tar:
                _member(tar, member, contents)
    except LayerError:
        raise
    except (tarfile.TarError, OSError, EOFError, zstandard.ZstdError, *_INFLATE_ERRORS) as exc:
        raise LayerError(f"the layer is not a readable tar archive: {exc}") from None
    return contents


def _member(tar: tarfile.TarFile, member: tarfile.TarInfo, contents: LayerContents) -> None:
    path = normalize(member.name)
    directory, _, base = path.rpartition("/")
    if base.startswith(".wh."):
        if base == ".wh..wh..opq":
            contents.opaque_dirs.append(directory)
        else:
            contents.whiteouts.append(f"{directory}/{base[4:]}" if directory else base[4:])
        return
    kind = wanted(path)
    if kind is None:
        return
    if kind == "os" and member.issym():
        # /etc/os-release is usually a link to ../usr/lib/os-release: the target is read there.
        return
    if not member.isfile():
        return
    if member.size > FILE_LIMIT:
        raise LayerError(f"/{path} is {member.size} bytes, over the {FILE_LIMIT}-byte limit")
    data = tar.extractfile(member).read()
    if kind == "os":
        contents.os_release[path] = parse_os_release(data)
    elif kind == "dpkg":
        contents.package_files[path] = parse_dpkg_status(data, path)
    elif kind == "apk":
        contents.package_files[path] = parse_apk_installed(data, path)
    elif kind == "rpm":
        contents.package_files[path] = parse_rpmdb_sqlite(data, path)
    elif kind == "python":
        record = parse_python_metadata(data)
        if record is not None:
            contents.package_files[path] = [record]
    elif kind == "npm":
        record = parse_npm_package(data)
        if record is not None:
            contents.package_files[path] = [record]


# -- OS release ------------------------------------------------------------------------------


def parse_os_release(data: bytes) -> dict:
    fields = {}
    for line in data.decode("utf-8", "replace").splitlines():
        line = line.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, _, value = line.partition("=")
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
            value = value[1:-1]
        if key in ("ID", "VERSION_ID", "PRETTY_NAME", "NAME", "VERSION_CODENAME", "ID_LIKE"):
            fields[key] = value
    return fields


# -- dpkg ------------------------------------------------------------------------------------


def _stanzas(text: str, path: str, what: str):
    """Deb822-style paragraphs: ``Key: value`` lines, continuation lines starting with a space."""
    stanza: dict[str, str] = {}
    last = None
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            if stanza:
                yield number, stanza
            stanza, last = {}, None
            continue
        if line[0] in " \t":
            if last is None:
                raise LayerError(f"/{path}: line {number}: a continuation line outside a field ({what})")
            continue
        key, sep, value = line.partition(":")
        if not sep or not key or " " in key:
            raise LayerError(f"/{path}: line {number}: not a 'Field: value' line ({what}): {line[:80]!r}")
        stanza[key] = value.strip()
        last = key
    if stanza:
        yield len(text.splitlines()), stanza


def parse_dpkg_status(data: bytes, path: str) -> list[Record]:
    records = []
    for number, stanza in _stanzas(data.decode("utf-8", "replace"), path, "dpkg status"):
        name, version = stanza.get("Package"), stanza.get("Version")
        if not name or not version:
            raise LayerError(f"/{path}: the entry ending at line {number} has no Package or Version field")
        status = stanza.get("Status")
        # Removed packages stay listed with their config files ("deinstall ok config-files").
        if status is not None and status.split()[-1:] != ["installed"]:
            continue
        source_name, source_version = name, version
        if stanza.get("Source"):
            source = stanza["Source"]
            source_name, _, rest = source.partition(" ")
            if rest.strip().startswith("(") and rest.strip().endswith(")"):
                source_version = rest.strip()[1:-1].strip()
        records.append(Record("dpkg", name, version, source_name, source_version, stanza.get("Architecture", "")))
    return records


# -- apk -------------------------------------------------------------------------------------


def parse_apk_installed(data: bytes, path: str) -> list[Record]:
    records = []
    current: dict[str, str] = {}
    lines = data.decode("utf-8", "replace").splitlines()
    for number, line in enumerate([*lines, ""], 1):
        if not line.strip():
            if current:
                if not current.get("P") or not current.get("V"):
                    raise LayerError(f"/{path}: the entry ending at line {number} has no P: or V: line")
                records.append(
                    Record(
                        "apk",
                        current["P"],
                        current["V"],
                        current.get("o", current["P"]),
                        current["V"],
                        current.get("A", ""),
                    )
                )
            current = {}
            continue
        if len(line) < 2 or line[1] != ":":
            raise LayerError(f"/{path}: line {number}: not an 'X:value' line: {line[:80]!r}")
        current.setdefault(line[0], line[2:])
    return records


# -- RPM -------------------------------------------------------------------------------------
# rpm's sqlite database keeps each package as a header blob. The ``rpm`` Python bindings are
# not on PyPI (they come with the distribution's rpm package), and five tags is all we need,
# so the header is read here. Layout (rpm's lib/header.c, "header blob" without the lead and
# magic): int32 index count, int32 data size (big-endian), then 16-byte index entries
# (tag, type, offset into the data, count), then the data area.

RPMTAG_NAME, RPMTAG_VERSION, RPMTAG_RELEASE, RPMTAG_EPOCH, RPMTAG_ARCH, RPMTAG_SOURCERPM = (
    1000,
    1001,
    1002,
    1003,
    1022,
    1044,
)
RPM_INT32, RPM_STRING, RPM_STRING_ARRAY, RPM_I18NSTRING = 4, 6, 8, 9


def parse_rpm_header(blob: bytes) -> dict[int, object]:
    if len(blob) < 8:
        raise ValueError("header blob shorter than its preamble")
    count, size = struct.unpack(">II", blob[:8])
    start = 8 + 16 * count
    if count > 100000 or start + size > len(blob):
        raise ValueError("header sizes do not fit the blob")
    data = blob[start : start + size]
    tags: dict[int, object] = {}
    for i in range(count):
        tag, kind, offset, n = struct.unpack(">iiii", blob[8 + 16 * i : 24 + 16 * i])
        if tag not in (RPMTAG_NAME, RPMTAG_VERSION, RPMTAG_RELEASE, RPMTAG_EPOCH, RPMTAG_ARCH, RPMTAG_SOURCERPM):
            continue
        if offset < 0 or offset >= len(data):
            raise ValueError(f"tag {tag} points outside the data area")
        if kind == RPM_INT32:
            tags[tag] = struct.unpack(">i", data[offset : offset + 4])[0]
        elif kind in (RPM_STRING, RPM_STRING_ARRAY, RPM_I18NSTRING):
            end = data.find(b"\x00", offset)
            if end < 0:
                raise ValueError(f"tag {tag}: unterminated string")
            tags[tag] = data[offset:end].decode("utf-8", "replace")
    return tags


def parse_rpmdb_sqlite(data: bytes, path: str) -> list[Record]:
    # sqlite3 reads files, not bytes: a private temporary copy, opened read-only.
    with tempfile.TemporaryDirectory(prefix="rpmdb-") as tmp:
        copy = os.path.join(tmp, "rpmdb.sqlite")
        with open(copy, "wb") as f:
            f.write(data)
        try:
            connection = sqlite3.connect(f"file:{copy}?mode=ro", uri=True)
            try:
                rows = connection.execute("SELECT hnum, blob FROM Packages").fetchall()
            finally:
                connection.close()
        except sqlite3.DatabaseError as exc:
            raise LayerError(f"/{path}: not an rpm sqlite database ({exc})") from None
    records = []
    for hnum, blob in rows:
        if not isinstance(blob, bytes):
            # NULL, text or a number (bytes(n) would allocate n bytes) is no header blob.
            raise LayerError(f"/{path}: package header {hnum} is not a blob")
        try:
            tags = parse_rpm_header(blob)
        except (ValueError, struct.error) as exc:
            raise LayerError(f"/{path}: package header {hnum}: {exc}") from None
        name, version, release = tags.get(RPMTAG_NAME), tags.get(RPMTAG_VERSION), tags.get(RPMTAG_RELEASE)
        if not name or not version:
            raise LayerError(f"/{path}: package header {hnum} has no name or version")
        if name == "gpg-pubkey":  # imported signing keys are stored as pseudo-packages
            continue
        full = f"{version}-{release}" if release else str(version)
        if tags.get(RPMTAG_EPOCH):
            full = f"{tags[RPMTAG_EPOCH]}:{full}"
        source = str(tags.get(RPMTAG_SOURCERPM) or "")
        source_name = re.sub(r"-[^-]+-[^-]+\.src\.rpm$", "", source) if source else name
        records.append(Record("rpm", str(name), full, source_name or str(name), full, str(tags.get(RPMTAG_ARCH) or "")))
    return records


# -- Python and npm --------------------------------------------------------------------------
# One package per file: a file that is not what it should be is skipped, not a failed scan
# (site-packages and node_modules hold vendored copies and test fixtures of every shape).


def parse_python_metadata(data: bytes) -> Record | None:
    headers = email.parser.BytesHeaderParser().parsebytes(data[: 256 * 1024])
    name, version = headers.get("Name"), headers.get("Version")
    if not name or not version:
        return None
    return Record("python", str(name).strip(), str(version).strip())


def parse_npm_package(data: bytes) -> Record | None:
    try:
        doc = json.loads(data)
    except (ValueError, UnicodeDecodeError):
        return None
    if not isinstance(doc, dict):
        return None
    name, version = doc.get("name"), doc.get("version")
    if not isinstance(name, str) or not isinstance(version, str) or not name or not version:
        return None
    return Record("npm", name, version)
