"""Layer tars and images written entry by entry, for the flattening tests.

``Layer`` lists tar entries exactly as a test wants them (names are written as given, so ``./``
prefixes, ``..`` and absolute names reach the flattener); ``Image`` holds layers bottom first
(as manifests list them) and gives them to the code top first, compressed as asked. ``tree``
describes an unpacked root file by file, the form in which two trees are compared.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import stat
import subprocess
import tarfile
from dataclasses import dataclass, field
from pathlib import Path

import zstandard

from squash.flatten import LayerSource

MTIME = 1_700_000_000
MEDIA_TYPES = {
    "gzip": "application/vnd.oci.image.layer.v1.tar+gzip",
    "zstd": "application/vnd.oci.image.layer.v1.tar+zstd",
    "plain": "application/vnd.oci.image.layer.v1.tar",
}
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


@dataclass
class Layer:
    """A layer tar built entry by entry (PAX format, so xattrs and long names fit)."""

    entries: list[tarfile.TarInfo] = field(default_factory=list)
    contents: dict[int, bytes] = field(default_factory=dict)

    def _add(self, info: tarfile.TarInfo, *, mode: int, uid: int, gid: int, mtime: int, xattrs=None) -> Layer:
        info.mode = mode
        info.uid, info.gid = uid, gid
        info.uname, info.gname = "", ""
        info.mtime = mtime
        if xattrs:
            info.pax_headers = {f"SCHILY.xattr.{key}": value for key, value in xattrs.items()}
        self.entries.append(info)
        return self

    def file(self, name, data: bytes, *, mode=0o644, uid=0, gid=0, mtime=MTIME, xattrs=None) -> Layer:
        info = tarfile.TarInfo(name)
        info.size = len(data)
        self.contents[len(self.entries)] = data
        return self._add(info, mode=mode, uid=uid, gid=gid, mtime=mtime, xattrs=xattrs)

    def dir(self, name, *, mode=0o755, uid=0, gid=0, mtime=MTIME) -> Layer:
        info = tarfile.TarInfo(name)
        info.type = tarfile.DIRTYPE
        return self._add(info, mode=mode, uid=uid, gid=gid, mtime=mtime)

    def symlink(self, name, target, *, uid=0, gid=0, mtime=MTIME) -> Layer:
        info = tarfile.TarInfo(name)
        info.type = tarfile.SYMTYPE
        info.linkname = target
        return self._add(info, mode=0o777, uid=uid, gid=gid, mtime=mtime)

    def hardlink(self, name, target, *, mode=0o644, uid=0, gid=0, mtime=MTIME) -> Layer:
        info = tarfile.TarInfo(name)
        info.type = tarfile.LNKTYPE
        info.linkname = target
        return self._add(info, mode=mode, uid=uid, gid=gid, mtime=mtime)

    def device(self, name, kind: bytes, major: int, minor: int, *, mode=0o666) -> Layer:
        info = tarfile.TarInfo(name)
        info.type = kind
        info.devmajor, info.devminor = major, minor
        return self._add(info, mode=mode, uid=0, gid=0, mtime=MTIME)

    def fifo(self, name, *, mode=0o600, uid=0, gid=0) -> Layer:
        info = tarfile.TarInfo(name)
        info.type = tarfile.FIFOTYPE
        return self._add(info, mode=mode, uid=uid, gid=gid, mtime=MTIME)

    def whiteout(self, name) -> Layer:
        """``name`` is the whiteout file's own name, e.g. ``etc/.wh.motd`` or ``d/.wh..wh..opq``."""
        return self.file(name, b"", mode=0o600)

    def tar(self) -> bytes:
        raw = io.BytesIO()
        with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as archive:
            for index, info in enumerate(self.entries):
                data = self.contents.get(index)
                archive.addfile(info, io.BytesIO(data) if data is not None else None)
        return raw.getvalue()


def compress(data: bytes, how: str) -> bytes:
    if how == "gzip":
        return gzip.compress(data, compresslevel=1, mtime=0)
    if how == "zstd":
        return zstandard.ZstdCompressor(level=1).compress(data)
    if how == "plain":
        return data
    raise ValueError(how)


@dataclass
class Blob:
    data: bytes
    media_type: str

    @property
    def digest(self) -> str:
        return sha256(self.data)


@dataclass
class Image:
    """Layers bottom first, each compressed its own way; a config that lists their diff_ids."""

    layers: list[tuple[Layer, str]]
    env: tuple[str, ...] = ("PATH=/bin",)
    cmd: tuple[str, ...] = ("/bin/sh",)
    blobs: list[Blob] = field(init=False)
    tars: list[bytes] = field(init=False)

    def __post_init__(self):
        self.tars = [layer.tar() for layer, _how in self.layers]
        self.blobs = [
            Blob(compress(tar, how), MEDIA_TYPES[how])
            for tar, (_layer, how) in zip(self.tars, self.layers, strict=True)
        ]

    @property
    def config(self) -> dict:
        return {
            "created": "2024-05-06T07:08:09Z",
            "architecture": "amd64",
            "os": "linux",
            "config": {"Env": list(self.env), "Cmd": list(self.cmd), "WorkingDir": "/", "Labels": {"a": "b"}},
            "rootfs": {"type": "layers", "diff_ids": [sha256(tar) for tar in self.tars]},
            "history": [{"created": "2024-05-06T07:08:09Z", "created_by": f"layer {i}"} for i in range(len(self.tars))],
        }

    def sources(self) -> list[LayerSource]:
        """The layers as the flattener takes them: TOP first."""
        return [
            LayerSource(blob.digest, blob.media_type, len(blob.data), lambda data=blob.data: io.BytesIO(data))
            for blob in reversed(self.blobs)
        ]

    def uncompressed_size_of(self, source: LayerSource) -> int:
        by_digest = {blob.digest: len(tar) for blob, tar in zip(self.blobs, self.tars, strict=True)}
        return by_digest[source.digest]


def write_oci_layout(path: Path, blobs: list[Blob], config: dict, tag: str = "latest") -> Path:
    """An OCI image layout with one image of ``blobs`` (bottom layer first) under ``tag``."""
    blobs_dir = path / "blobs" / "sha256"
    blobs_dir.mkdir(parents=True, exist_ok=True)
    (path / "oci-layout").write_text('{"imageLayoutVersion":"1.0.0"}')

    def put(data: bytes) -> str:
        digest = sha256(data)
        (blobs_dir / digest.split(":", 1)[1]).write_bytes(data)
        return digest

    config_bytes = json.dumps(config).encode()
    for blob in blobs:
        put(blob.data)
    manifest = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": OCI_CONFIG, "digest": put(config_bytes), "size": len(config_bytes)},
        "layers": [{"mediaType": b.media_type, "digest": b.digest, "size": len(b.data)} for b in blobs],
    }
    manifest_bytes = json.dumps(manifest).encode()
    descriptor = {
        "mediaType": OCI_MANIFEST,
        "digest": put(manifest_bytes),
        "size": len(manifest_bytes),
        "annotations": {"org.opencontainers.image.ref.name": tag},
    }
    (path / "index.json").write_text(json.dumps({"schemaVersion": 2, "manifests": [descriptor]}))
    return path


def umoci_unpack(layout: Path, bundle: Path, tag: str = "latest") -> Path:
    """The root file system umoci unpacks from the layout (raises with umoci's output on failure)."""
    result = subprocess.run(
        ["umoci", "unpack", "--image", f"{layout}:{tag}", str(bundle)], capture_output=True, text=True, timeout=300
    )
    if result.returncode != 0:
        raise AssertionError(f"umoci unpack failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")
    return bundle / "rootfs"


def tree(root: Path) -> dict[str, dict]:
    """Every path under ``root`` with what a comparison should see.

    Type, permission bits, owner, content hash, symlink target, device numbers, user xattrs, and
    the hard-link group (the sorted names sharing the inode). Modification times are compared for
    files, symlinks and nodes; a directory's mtime changes whenever an extractor adds to it.
    """
    entries: dict[str, dict] = {}
    inodes: dict[int, list[str]] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in [*dirnames, *filenames]:
            path = Path(dirpath) / name
            rel = str(path.relative_to(root))
            st = os.lstat(path)
            record = {
                "type": stat.S_IFMT(st.st_mode),
                "mode": stat.S_IMODE(st.st_mode),
                "owner": (st.st_uid, st.st_gid),
            }
            if stat.S_ISREG(st.st_mode):
                record["sha256"] = hashlib.sha256(path.read_bytes()).hexdigest()
                record["mtime"] = int(st.st_mtime)
                inodes.setdefault(st.st_ino, []).append(rel)
            elif stat.S_ISLNK(st.st_mode):
                record["target"] = os.readlink(path)
                record.pop("mode")  # always 0777 on Linux
            elif stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode):
                record["rdev"] = (os.major(st.st_rdev), os.minor(st.st_rdev))
                record["mtime"] = int(st.st_mtime)
            elif stat.S_ISFIFO(st.st_mode):
                record["mtime"] = int(st.st_mtime)
            if not stat.S_ISLNK(st.st_mode):
                record["xattrs"] = {
                    key: os.getxattr(path, key, follow_symlinks=False)
                    for key in sorted(os.listxattr(path, follow_symlinks=False))
                    if key.startswith("user.")
                }
            entries[rel] = record
    for names in inodes.values():
        for name in names:
            entries[name]["links"] = sorted(names)
    return entries


def read_tar(data: bytes) -> list[tarfile.TarInfo]:
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:") as archive:
        return archive.getmembers()


def tar_contents(data: bytes) -> dict[str, bytes]:
    """Regular files' contents by name, hard links resolved to their target's content."""
    out = {}
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:") as archive:
        for member in archive.getmembers():
            if member.isreg() or member.islnk():
                out[member.name] = archive.extractfile(member).read()
    return out


# Names umoci unpacks by clamping them into the root (its secure join), which the flattener drops
# instead: the comparison leaves them out of umoci's tree and checks they are absent from ours.
UNSAFE_NAMES = {"/abs-file": "abs-file", "../escape": "escape", "etc/../../escape2": "escape2"}


def busybox() -> bytes:
    path = Path("/bin/busybox")
    if not path.is_file():
        raise RuntimeError("busybox-static (/bin/busybox) is required to build the test image")
    return path.read_bytes()


def rules_layers() -> list[Layer]:
    """Three layers (bottom first) exercising every flattening rule, with a runnable busybox.

    Expected results, top layer's view: gone-dir/ and gone-file removed; opq/ holds only new;
    f2d is a directory and d2f a file; shadow is the middle layer's; hl-shadowed keeps the bottom
    shadow, hl-hidden1/2 the removed hidden/t (one inode); l1-cross the bottom base/t2 while
    base/t2 is the top one's; cross-link shares base/target's inode; dev nodes, fifo and xattrs kept.
    """
    bottom = (
        Layer()
        .dir("bin")
        .file("bin/busybox", busybox(), mode=0o755)
        .symlink("bin/sh", "busybox")
        .symlink("bin/cat", "busybox")
        .symlink("bin/ls", "busybox")
        .dir("etc")
        .file("etc/passwd", b"root:x:0:0:root:/root:/bin/sh\n")
        .dir("keep", mode=0o750, uid=1000, gid=1001)
        .file("keep/a", b"kept content\n", mode=0o640, uid=1000, gid=1001, mtime=1_600_000_000)
        .hardlink("keep/a-link", "keep/a", mode=0o640, uid=1000, gid=1001, mtime=1_600_000_000)
        .dir("gone-dir")
        .file("gone-dir/x", b"x")
        .dir("gone-dir/sub")
        .file("gone-dir/sub/y", b"y")
        .file("gone-file", b"gone")
        .dir("opq")
        .file("opq/old1", b"old1")
        .dir("opq/sub")
        .file("opq/sub/old2", b"old2")
        .file("f2d", b"a file that becomes a directory")
        .dir("d2f")
        .file("d2f/child", b"child of a directory that becomes a file")
        .file("shadow", b"bottom shadow\n")
        .hardlink("hl-shadowed", "shadow")
        .dir("hidden")
        .file("hidden/t", b"hidden target content\n" * 100, mode=0o600, uid=7, gid=8)
        .hardlink("hl-hidden1", "hidden/t", mode=0o600, uid=7, gid=8)
        .hardlink("hl-hidden2", "hidden/t", mode=0o600, uid=7, gid=8)
        .dir("dev")
        .device("dev/null", tarfile.CHRTYPE, 1, 3)
        .device("dev/loop0", tarfile.BLKTYPE, 7, 0, mode=0o660)
        .fifo("dev/pipe", uid=33, gid=33)
        .file("xa", b"with xattrs", xattrs={"user.k": "v", "user.other": "w"})
        .dir("base")
        .file("base/target", b"base target\n")
        .file("base/t2", b"bottom t2\n")
        .file("perm", b"perm", mode=0o644)
        .symlink("abs-link", "/etc/passwd")
        .symlink("rel-link", "etc/passwd")
        .symlink("sym-to-file", "etc/passwd")
        .dir("long")
        .file("long/" + "d" * 90 + "/" + "f" * 90, b"long name, ustar prefix")
        .file("long/" + "n" * 160, b"long name, PAX path")
        .file("long/ünïcødé.txt", b"non-ASCII name")
        .file("frac-mtime", b"sub-second mtime", mtime=1_700_000_000.5)
    )
    for name, _clamped in UNSAFE_NAMES.items():
        bottom.file(name, b"must not be written: " + name.encode())
    middle = (
        Layer()
        .dir("./", mode=0o755)
        .whiteout("./.wh.gone-dir")
        .whiteout("./.wh.gone-file")
        .dir("./opq", mode=0o700)
        .whiteout("./opq/.wh..wh..opq")
        .file("./opq/new", b"new in opaque dir")
        .dir("./f2d")
        .file("./f2d/inside", b"inside the new directory")
        .file("./shadow", b"middle shadow\n", mode=0o600)
        .whiteout("./.wh.hidden")
        .file("./perm", b"perm changed", mode=0o600, uid=5, gid=6)
        .hardlink("./l1-cross", "base/t2")
        .dir("./l1")
        .file("./l1/a", b"l1 a")
        .hardlink("./l1/b", "l1/a")
        .dir("./dev", mode=0o711)
    )
    top = (
        Layer()
        .file("d2f", b"a directory became this file")
        .file("base/t2", b"top t2\n")
        .hardlink("cross-link", "base/target")
        .file("keep/new.txt", b"new")
        .dir("etc", mode=0o750)
        .whiteout(".wh.nothing-here")
        .file("sym-to-file", b"a symlink became this file")
    )
    return [bottom, middle, top]
