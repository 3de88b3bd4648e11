"""Turning a build package into a build context on disk, without trusting the package.

A package is a plain Dockerfile, a tar, a gzip tar or a zip (told apart by their first bytes, not
by what the uploader claimed). Archives are extracted member by member by this module rather than
by ``extractall``, so every rule is checked before a byte is written:

- names must be relative and free of ``..``; no member may be written through a symbolic link;
- symbolic links must point inside the root, hard links to a file extracted before;
- device files, FIFOs and sockets are refused;
- the number of members and the sum of their sizes are capped, and so are the bytes actually
  written and the bytes decompressed, so a gzip bomb stops after the cap, not after the disk fills.

Afterwards ``resolve_context`` checks the context and the Dockerfile path chosen for the build and
the context's ``.dockerignore``.
"""

from __future__ import annotations

import gzip
import os
import posixpath
import re
import shutil
import stat
import tarfile
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path

from builder.errors import DOCKERFILE, PACKAGE, JobError

CHUNK = 1024 * 1024
# A tar member costs at least its 512-byte header plus up to 511 bytes of padding; the archive ends
# with two zero blocks and may be padded to a 10 KiB record.
TAR_OVERHEAD_PER_ENTRY = 1024
TAR_OVERHEAD_FIXED = 64 * 1024
MAX_SYMLINK_TARGET = 4096
# What the file system takes: longer names would fail with ENAMETOOLONG half-way through.
MAX_NAME_COMPONENT_BYTES = 255
MAX_NAME_BYTES = 3072


@dataclass(frozen=True)
class Limits:
    """How much one package may unpack to."""

    max_entries: int = 100_000
    max_bytes: int = 4 * 1024 * 1024 * 1024


def detect_kind(path: Path) -> str:
    """``tar.gz``, ``zip``, ``tar`` or ``dockerfile``, from the file's first bytes."""
    with open(path, "rb") as f:
        head = f.read(512)
    if head[:2] == b"\x1f\x8b":
        return "tar.gz"
    if head[:4] in (b"PK\x03\x04", b"PK\x05\x06"):
        return "zip"
    if len(head) >= 262 and head[257:262] == b"ustar":
        return "tar"
    return "dockerfile"


def unpack_package(package: Path, root: Path, *, dockerfile_path: str = "Dockerfile", limits: Limits = Limits()) -> str:
    """Unpack ``package`` into the existing, empty directory ``root``; return the detected kind.

    A plain Dockerfile is written at ``dockerfile_path`` (relative to ``root``). Raises JobError
    (kind ``package``) for anything unsafe or over the limits; what was written stays inside
    ``root`` (the caller removes the job directory either way).
    """
    kind = detect_kind(package)
    writer = _Writer(root, limits)
    if kind == "dockerfile":
        name = _safe_name(_strip_leading_slashes(dockerfile_path) or "Dockerfile", what="Dockerfile path")
        with open(package, "rb") as src:
            writer.add_file(name, src, declared_size=os.fstat(src.fileno()).st_size, mode=0o644)
    elif kind == "zip":
        _unpack_zip(package, writer)
    else:
        _unpack_tar(package, writer, compressed=kind == "tar.gz")
    writer.check_links()
    return kind


# ---------------------------------------------------------------------------------------------
# Names and the writer


def _strip_leading_slashes(path: str) -> str:
    # Quay's API writes paths in a package as "/subdir/Dockerfile": leading slashes mean the root.
    return path.lstrip("/")


def _safe_name(raw: str, *, what: str = "entry") -> str:
    """A member name as a clean relative POSIX path ("" for the root itself), or JobError."""
    if "\x00" in raw:
        raise JobError(PACKAGE, f"The build package has an {what} with a NUL byte in its name.")
    if raw.startswith("/") or re.match(r"^[A-Za-z]:[\\/]", raw):
        raise JobError(PACKAGE, f"The build package has an {what} with an absolute path: {raw!r}.")
    parts = [p for p in raw.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise JobError(PACKAGE, f"The build package has an {what} that leaves the package with '..': {raw!r}.")
    name = "/".join(parts)
    if len(os.fsencode(name)) > MAX_NAME_BYTES or any(len(os.fsencode(p)) > MAX_NAME_COMPONENT_BYTES for p in parts):
        raise JobError(PACKAGE, f"The build package has an {what} with an overlong name: {raw[:100]!r}...")
    return name


def _within(path: str, root: str) -> bool:
    return path == root or path.startswith(root + os.sep)


class _Writer:
    """Creates files, directories and links under ``root``, enforcing every rule and cap."""

    def __init__(self, root: Path, limits: Limits):
        self.root = Path(root)
        self.real_root = os.path.realpath(root)
        self.limits = limits
        self.entries = 0
        self.declared = 0
        self.written = 0
        self.symlinks: list[Path] = []

    def count_entry(self, name: str) -> None:
        self.entries += 1
        if self.entries > self.limits.max_entries:
            raise JobError(
                PACKAGE, f"The build package has more than {self.limits.max_entries} entries (stopped at {name!r})."
            )

    def declare(self, name: str, size: int) -> None:
        self.declared += max(size, 0)
        if self.declared > self.limits.max_bytes:
            raise JobError(
                PACKAGE,
                f"The build package unpacks to more than {self.limits.max_bytes} bytes (stopped at {name!r}).",
            )

    def _parent(self, name: str) -> Path:
        """The directory ``name`` goes in, created as real directories: never through a link."""
        current = self.root
        for part in name.split("/")[:-1]:
            current = current / part
            try:
                st = os.lstat(current)
            except FileNotFoundError:
                os.mkdir(current, 0o755)
                continue
            if stat.S_ISLNK(st.st_mode):
                raise JobError(PACKAGE, f"The build package writes {name!r} through a symbolic link.")
            if not stat.S_ISDIR(st.st_mode):
                raise JobError(PACKAGE, f"The build package uses the file {part!r} as a directory in {name!r}.")
        return current

    def _free(self, target: Path, name: str) -> None:
        """Make room for a new file or link at ``target`` (a later member replaces an earlier one)."""
        try:
            st = os.lstat(target)
        except FileNotFoundError:
            return
        if stat.S_ISDIR(st.st_mode):
            raise JobError(PACKAGE, f"The build package replaces the directory {name!r} with a file.")
        os.unlink(target)  # a file or a link itself, never what a link points to

    def add_dir(self, name: str, mode: int = 0o755) -> None:
        if not name:
            return
        target = self._parent(name) / name.rsplit("/", 1)[-1]
        try:
            st = os.lstat(target)
        except FileNotFoundError:
            os.mkdir(target, 0o755)
        else:
            if not stat.S_ISDIR(st.st_mode):
                raise JobError(PACKAGE, f"The build package replaces {name!r} with a directory.")
        # Directories stay traversable and writable by us, whatever the archive said.
        os.chmod(target, (mode & 0o755) | 0o700)

    def add_file(self, name: str, src, *, declared_size: int, mode: int) -> None:
        if not name:
            raise JobError(PACKAGE, "The build package has a file entry without a name.")
        self.declare(name, declared_size)
        target = self._parent(name) / name.rsplit("/", 1)[-1]
        self._free(target, name)
        # Keep the execute bits; drop setuid/setgid/sticky and make the file ours to read and remove.
        fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, (mode & 0o755) | 0o600)
        with os.fdopen(fd, "wb") as out:
            while True:
                chunk = src.read(CHUNK)
                if not chunk:
                    break
                self.written += len(chunk)
                if self.written > self.limits.max_bytes:
                    raise JobError(
                        PACKAGE,
                        f"The build package unpacks to more than {self.limits.max_bytes} bytes (stopped at {name!r}).",
                    )
                out.write(chunk)

    def add_symlink(self, name: str, link_target: str) -> None:
        if not name:
            raise JobError(PACKAGE, "The build package has a symbolic link without a name.")
        if not link_target or link_target.startswith("/") or "\x00" in link_target:
            raise JobError(PACKAGE, f"The symbolic link {name!r} points outside the package: {link_target!r}.")
        lexical = posixpath.normpath(posixpath.join(posixpath.dirname(name), link_target))
        if lexical == ".." or lexical.startswith("../"):
            raise JobError(PACKAGE, f"The symbolic link {name!r} points outside the package: {link_target!r}.")
        target = self._parent(name) / name.rsplit("/", 1)[-1]
        self._free(target, name)
        os.symlink(link_target, target)
        self.symlinks.append(target)

    def add_hardlink(self, name: str, link_target: str) -> None:
        if not name:
            raise JobError(PACKAGE, "The build package has a hard link without a name.")
        try:
            source_name = _safe_name(link_target, what="hard link target")
        except JobError:
            raise JobError(PACKAGE, f"The hard link {name!r} points outside the package: {link_target!r}.") from None
        source = self.root / source_name
        try:
            st = os.lstat(source)
        except FileNotFoundError:
            st = None
        if st is None or not stat.S_ISREG(st.st_mode) or not _within(os.path.realpath(source), self.real_root):
            raise JobError(
                PACKAGE, f"The hard link {name!r} must point to a file earlier in the package: {link_target!r}."
            )
        if source_name == name:
            return  # a link to itself: the file is already there
        target = self._parent(name) / name.rsplit("/", 1)[-1]
        self._free(target, name)
        os.link(source, target, follow_symlinks=False)

    def check_links(self) -> None:
        """Every symbolic link, resolved through the others, must stay inside the root.

        The lexical check at creation cannot see a chain such as ``a -> .`` plus ``b -> a/../x``;
        resolving the finished tree can.
        """
        for link in self.symlinks:
            if os.path.islink(link) and not _within(os.path.realpath(link), self.real_root):
                name = os.path.relpath(link, self.root)
                raise JobError(PACKAGE, f"The symbolic link {name!r} points outside the package.")


# ---------------------------------------------------------------------------------------------
# tar and tar.gz


class _CappedReader:
    """A file-like reader that fails once more than ``cap`` bytes came through (decompressed)."""

    def __init__(self, raw, cap: int):
        self.raw = raw
        self.cap = cap
        self.total = 0

    def read(self, size: int = -1) -> bytes:
        data = self.raw.read(size if size is not None and size >= 0 else CHUNK)
        self.total += len(data)
        if self.total > self.cap:
            raise JobError(PACKAGE, f"The build package decompresses to more than {self.cap} bytes.")
        return data


def _unpack_tar(package: Path, writer: _Writer, *, compressed: bool) -> None:
    limits = writer.limits
    cap = limits.max_bytes + limits.max_entries * TAR_OVERHEAD_PER_ENTRY + TAR_OVERHEAD_FIXED
    with open(package, "rb") as raw:
        stream = gzip.GzipFile(fileobj=raw, mode="rb") if compressed else raw
        try:
            # "r|": strictly sequential, so each member is checked before the next is decompressed.
            with tarfile.open(fileobj=_CappedReader(stream, cap), mode="r|") as tar:
                for member in tar:
                    _tar_member(tar, member, writer)
        except (tarfile.TarError, EOFError, gzip.BadGzipFile, zlib.error) as exc:
            raise JobError(PACKAGE, f"The build package is not a readable tar archive: {exc}") from None


def _tar_member(tar: tarfile.TarFile, member: tarfile.TarInfo, writer: _Writer) -> None:
    writer.count_entry(member.name)
    name = _safe_name(member.name)
    if member.isdir():
        writer.add_dir(name, member.mode)
    elif member.isreg():
        src = tar.extractfile(member)
        writer.add_file(name, src, declared_size=member.size, mode=member.mode)
    elif member.issym():
        writer.add_symlink(name, member.linkname)
    elif member.islnk():
        writer.add_hardlink(name, member.linkname)
    else:
        kinds = {tarfile.CHRTYPE: "character device", tarfile.BLKTYPE: "block device", tarfile.FIFOTYPE: "FIFO"}
        what = kinds.get(member.type, f"entry of type {member.type!r}")
        raise JobError(PACKAGE, f"The build package has a {what}, which a build context may not hold: {name!r}.")


# ---------------------------------------------------------------------------------------------
# zip


def _unpack_zip(package: Path, writer: _Writer) -> None:
    limits = writer.limits
    try:
        with zipfile.ZipFile(package) as zf:
            infos = zf.infolist()
            # The central directory comes first here: refuse over the caps before writing anything.
            if len(infos) > limits.max_entries:
                raise JobError(PACKAGE, f"The build package has more than {limits.max_entries} entries.")
            if sum(info.file_size for info in infos) > limits.max_bytes:
                raise JobError(PACKAGE, f"The build package unpacks to more than {limits.max_bytes} bytes.")
            for info in infos:
                _zip_member(zf, info, writer)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, NotImplementedError, EOFError, zlib.error) as exc:
        raise JobError(PACKAGE, f"The build package is not a readable zip archive: {exc}") from None


def _zip_member(zf: zipfile.ZipFile, info: zipfile.ZipInfo, writer: _Writer) -> None:
    writer.count_entry(info.filename)
    name = _safe_name(info.filename)
    unix_mode = info.external_attr >> 16 if info.create_system == 3 else 0
    file_type = stat.S_IFMT(unix_mode)
    # Not ZipInfo.is_dir(): it raises IndexError on an entry with an empty name.
    if info.filename.endswith("/") or file_type == stat.S_IFDIR:
        writer.add_dir(name, unix_mode & 0o777 or 0o755)
    elif file_type == stat.S_IFLNK:
        if info.file_size > MAX_SYMLINK_TARGET:
            raise JobError(PACKAGE, f"The symbolic link {name!r} has an overlong target.")
        with zf.open(info) as src:
            target = src.read(MAX_SYMLINK_TARGET + 1).decode("utf-8", "replace")
        writer.add_symlink(name, target)
    elif file_type in (0, stat.S_IFREG):
        with zf.open(info) as src:
            writer.add_file(name, src, declared_size=info.file_size, mode=unix_mode & 0o777 or 0o644)
    else:
        raise JobError(PACKAGE, f"The build package has a special file, which a build context may not hold: {name!r}.")


# ---------------------------------------------------------------------------------------------
# The context, the Dockerfile and .dockerignore


def _relative_in_root(path: str, *, what: str) -> str:
    cleaned = posixpath.normpath(_strip_leading_slashes(path) or ".")
    if cleaned == ".." or cleaned.startswith("../") or "\x00" in cleaned:
        raise JobError(PACKAGE, f"The {what} {path!r} leaves the build package.")
    return "" if cleaned == "." else cleaned


def resolve_context(root: Path, *, context: str, dockerfile_path: str) -> tuple[Path, Path]:
    """The context directory and the Dockerfile for a build, both checked; paths are relative to
    ``root`` (a leading ``/`` means the root, as in Quay's API)."""
    real_root = os.path.realpath(root)
    context_rel = _relative_in_root(context or "", what="build context")
    dockerfile_rel = _relative_in_root(dockerfile_path or "Dockerfile", what="Dockerfile path")
    if not dockerfile_rel:
        raise JobError(DOCKERFILE, "The Dockerfile path names a directory, not a file.")
    context_dir = Path(root, context_rel) if context_rel else Path(root)
    real_context = os.path.realpath(context_dir)
    if not _within(real_context, real_root):
        raise JobError(PACKAGE, f"The build context {context!r} leaves the build package.")
    if not os.path.isdir(real_context):
        raise JobError(PACKAGE, f"The build context {context or '/'!r} is not a directory in the build package.")
    dockerfile = Path(root, dockerfile_rel)
    real_dockerfile = os.path.realpath(dockerfile)
    if not _within(real_dockerfile, real_root):
        raise JobError(PACKAGE, f"The Dockerfile path {dockerfile_path!r} leaves the build package.")
    if not _within(real_dockerfile, real_context) or real_dockerfile == real_context:
        raise JobError(
            DOCKERFILE,
            f"The Dockerfile {dockerfile_path!r} is not inside the build context {context or '/'!r}: "
            "only the context is sent to the build.",
        )
    if not os.path.isfile(real_dockerfile):
        raise JobError(DOCKERFILE, f"No Dockerfile was found at {dockerfile_path!r} in the build package.")
    ignore_file = Path(real_context, ".dockerignore")
    if ignore_file.is_file() and _within(os.path.realpath(ignore_file), real_context):
        relative = os.path.relpath(real_dockerfile, real_context).replace(os.sep, "/")
        with open(ignore_file, encoding="utf-8", errors="replace") as f:
            patterns = parse_dockerignore(f.read(1024 * 1024))
        if dockerignore_excludes(patterns, relative):
            raise JobError(
                DOCKERFILE, f"The context's .dockerignore excludes the Dockerfile {relative!r}; the build needs it."
            )
    return context_dir, dockerfile


def parse_dockerignore(text: str) -> list[tuple[bool, re.Pattern]]:
    """``(negated, regex)`` per pattern line of a ``.dockerignore``, in order."""
    patterns = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        negated = line.startswith("!")
        if negated:
            line = line[1:].strip()
        cleaned = posixpath.normpath(line).lstrip("/")
        if cleaned in ("", "."):
            continue
        try:
            patterns.append((negated, _pattern_regex(cleaned)))
        except re.error as exc:
            raise JobError(PACKAGE, f"The context's .dockerignore has an invalid pattern {line!r}: {exc}.") from None
    return patterns


def dockerignore_excludes(patterns: list[tuple[bool, re.Pattern]], path: str) -> bool:
    """Whether ``path`` (relative to the context) is excluded: the last matching pattern decides,
    and a pattern matching a parent directory matches everything under it."""
    parts = path.split("/")
    candidates = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    excluded = False
    for negated, regex in patterns:
        if any(regex.match(candidate) for candidate in candidates):
            excluded = not negated
    return excluded


def _pattern_regex(pattern: str) -> re.Pattern:
    """A Go ``filepath.Match`` pattern with Docker's ``**`` extension, as an anchored regex."""
    out = []
    i = 0
    while i < len(pattern):
        c = pattern[i]
        if pattern.startswith("**", i):
            i += 2
            if pattern.startswith("/", i):
                i += 1
                out.append("(?:.*/)?")
            else:
                out.append(".*")
            continue
        if c == "*":
            out.append("[^/]*")
        elif c == "?":
            out.append("[^/]")
        elif c == "\\" and i + 1 < len(pattern):
            out.append(re.escape(pattern[i + 1]))
            i += 2
            continue
        elif c == "[" and "]" in pattern[i + 1 :]:
            end = pattern.index("]", i + 1)
            body = pattern[i + 1 : end]
            if body.startswith(("!", "^")):
                body = "^" + body[1:]
            out.append("[" + body.replace("\\", "\\\\") + "]")
            i = end + 1
            continue
        else:
            out.append(re.escape(c))
        i += 1
    return re.compile("^" + "".join(out) + "$")


def remove_tree(path: Path) -> None:
    """Remove a job directory even where an archive or a build left it read-only."""

    def make_writable(func, target, _exc):
        try:
            os.chmod(os.path.dirname(target), 0o700)
            os.chmod(target, 0o700)
        except OSError:
            pass
        try:
            func(target)
        except OSError:
            pass

    if os.path.lexists(path):
        shutil.rmtree(path, onerror=make_writable)
