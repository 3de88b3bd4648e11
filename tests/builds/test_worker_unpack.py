"""The build worker's unpacking (builder.unpack): real archives made here, extracted into a job
directory the way a job does it.

Every unsafe archive ends with a clear JobError of kind ``package`` and leaves nothing outside
the job's own directory; good packages of each kind unpack with their subdirectory context.
"""

from __future__ import annotations

import gzip
import io
import os
import stat
import tarfile
import time
import zipfile
from pathlib import Path

import pytest

from builder import unpack
from builder.errors import DOCKERFILE, PACKAGE, JobError
from builder.job import base_images

DOCKERFILE_TEXT = b"FROM scratch\nCOPY hello.txt /hello.txt\n"


# ---------------------------------------------------------------------------------------------
# Helpers: archives built member by member, so that unsafe members can be made on purpose.


def _info(name: str, **fields) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.mtime = 1_700_000_000
    info.mode = fields.pop("mode", 0o644)
    for key, value in fields.items():
        setattr(info, key, value)
    return info


def tar_bytes(members: list, *, compress: bool = False) -> bytes:
    """``members``: (name, bytes) files or TarInfo objects (links, devices, dirs) in order."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.GNU_FORMAT) as tar:
        for member in members:
            if isinstance(member, tarfile.TarInfo):
                tar.addfile(member)
            else:
                name, content = member
                mode = 0o755 if name.endswith(".sh") else 0o644
                tar.addfile(_info(name, size=len(content), mode=mode), io.BytesIO(content))
    data = raw.getvalue()
    return gzip.compress(data) if compress else data


def zip_bytes(members: list[tuple[str, bytes]], *, symlinks: dict[str, str] | None = None) -> bytes:
    raw = io.BytesIO()
    with zipfile.ZipFile(raw, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name, content in members:
            zf.writestr(name, content)
        for name, target in (symlinks or {}).items():
            info = zipfile.ZipInfo(name)
            info.create_system = 3
            info.external_attr = (stat.S_IFLNK | 0o777) << 16
            zf.writestr(info, target)
    return raw.getvalue()


class JobDir:
    """A job directory inside a fenced area: whatever lands outside the job dir is a failure."""

    def __init__(self, tmp_path: Path):
        self.area = tmp_path / "area"
        self.job = self.area / "job"
        self.root = self.job / "src"
        self.root.mkdir(parents=True)
        self.package = self.job / "package"
        (self.area / "sentinel").write_text("untouched")
        self.before = self.snapshot_outside()

    def snapshot_outside(self) -> set[str]:
        found = set()
        for dirpath, dirnames, filenames in os.walk(self.area.parent):
            for name in dirnames + filenames:
                path = Path(dirpath, name)
                if path == self.job or self.job in path.parents:
                    continue
                found.add(str(path))
        return found

    def unpack(self, data: bytes, *, dockerfile_path: str = "Dockerfile", **limits) -> str:
        self.package.write_bytes(data)
        return unpack.unpack_package(
            self.package, self.root, dockerfile_path=dockerfile_path, limits=unpack.Limits(**limits)
        )

    def refuse(self, data: bytes, match: str, **kwargs) -> JobError:
        with pytest.raises(JobError, match=match) as caught:
            self.unpack(data, **kwargs)
        assert caught.value.kind == PACKAGE
        self.assert_nothing_outside()
        return caught.value

    def assert_nothing_outside(self) -> None:
        assert self.snapshot_outside() == self.before
        assert (self.area / "sentinel").read_text() == "untouched"

    def written_bytes(self) -> int:
        total = 0
        for dirpath, _dirs, files in os.walk(self.root):
            for name in files:
                total += os.lstat(Path(dirpath, name)).st_size
        return total


@pytest.fixture
def job(tmp_path) -> JobDir:
    return JobDir(tmp_path)


# ---------------------------------------------------------------------------------------------
# Good packages


CONTEXT_FILES = [
    ("README", b"outside the context\n"),
    ("app/Dockerfile", DOCKERFILE_TEXT),
    ("app/hello.txt", b"hello\n"),
    ("app/bin/run.sh", b"#!/bin/sh\necho run\n"),
]


def _assert_context(job: JobDir) -> None:
    context, dockerfile = unpack.resolve_context(job.root, context="/app", dockerfile_path="/app/Dockerfile")
    assert context == job.root / "app"
    assert dockerfile == job.root / "app" / "Dockerfile"
    assert dockerfile.read_bytes() == DOCKERFILE_TEXT
    assert (context / "hello.txt").read_bytes() == b"hello\n"
    assert os.stat(context / "bin" / "run.sh").st_mode & 0o111  # the execute bit survived
    job.assert_nothing_outside()


@pytest.mark.parametrize("compress", [False, True], ids=["tar", "tar.gz"])
def test_a_tar_unpacks_with_a_subdirectory_context(job, compress):
    members = [*CONTEXT_FILES, _info("app/link", type=tarfile.SYMTYPE, linkname="hello.txt")]
    members.append(_info("app/hard", type=tarfile.LNKTYPE, linkname="app/hello.txt"))
    kind = job.unpack(tar_bytes(members, compress=compress))
    assert kind == ("tar.gz" if compress else "tar")
    assert os.readlink(job.root / "app" / "link") == "hello.txt"
    assert (job.root / "app" / "hard").read_bytes() == b"hello\n"
    _assert_context(job)


def test_a_zip_unpacks_with_a_subdirectory_context(job):
    data = zip_bytes(CONTEXT_FILES, symlinks={"app/link": "hello.txt"})
    # zipfile.writestr gives files mode 0600 without unix attributes; set the script executable.
    raw = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(data)) as src, zipfile.ZipFile(raw, "w") as dst:
        for info in src.infolist():
            if info.filename.endswith(".sh"):
                info.create_system = 3
                info.external_attr = (stat.S_IFREG | 0o755) << 16
            dst.writestr(info, src.read(info))
    assert job.unpack(raw.getvalue()) == "zip"
    assert os.readlink(job.root / "app" / "link") == "hello.txt"
    _assert_context(job)


def test_a_plain_dockerfile_is_written_at_the_dockerfile_path(job):
    assert job.unpack(DOCKERFILE_TEXT, dockerfile_path="/sub/Dockerfile") == "dockerfile"
    context, dockerfile = unpack.resolve_context(job.root, context="sub", dockerfile_path="sub/Dockerfile")
    assert sorted(os.listdir(job.root)) == ["sub"]
    assert dockerfile.read_bytes() == DOCKERFILE_TEXT
    assert context == job.root / "sub"


def test_a_plain_dockerfile_path_may_not_leave_the_package(job):
    job.refuse(DOCKERFILE_TEXT, "leaves the package", dockerfile_path="../Dockerfile")


def test_later_members_replace_earlier_files(job):
    job.unpack(tar_bytes([("Dockerfile", b"old"), ("Dockerfile", b"FROM scratch\n")]))
    assert (job.root / "Dockerfile").read_bytes() == b"FROM scratch\n"


# ---------------------------------------------------------------------------------------------
# Unsafe tar archives


@pytest.mark.parametrize("compress", [False, True], ids=["tar", "tar.gz"])
def test_dot_dot_paths_are_refused(job, compress):
    data = tar_bytes(
        [("Dockerfile", DOCKERFILE_TEXT), ("../escaped", b"x"), ("../../escaped2", b"x")], compress=compress
    )
    job.refuse(data, r"leaves the package with '\.\.': '\.\./escaped'")
    assert not (job.job / "escaped").exists()


def test_dot_dot_in_the_middle_is_refused(job):
    job.refuse(tar_bytes([("a/../../escaped", b"x")]), "leaves the package")
    assert not (job.job / "escaped").exists()


def test_absolute_paths_are_refused(job):
    target = job.area / "absolute-target"
    job.refuse(tar_bytes([(str(target), b"x")]), "absolute path")
    assert not target.exists()


def test_a_symlink_pointing_outside_is_refused(job):
    job.refuse(tar_bytes([_info("out", type=tarfile.SYMTYPE, linkname="../../sentinel")]), "points outside")
    assert not os.path.lexists(job.root / "out")


def test_an_absolute_symlink_is_refused(job):
    job.refuse(tar_bytes([_info("passwd", type=tarfile.SYMTYPE, linkname="/etc/passwd")]), "points outside")


def test_a_chain_of_symlinks_leading_outside_is_refused(job):
    # Each link alone looks inside ("a/../package" is "package" on paper); resolved through
    # a -> ".", b is the job directory's package file, outside the root.
    members = [
        _info("a", type=tarfile.SYMTYPE, linkname="."),
        _info("b", type=tarfile.SYMTYPE, linkname="a/../package"),
    ]
    job.refuse(tar_bytes(members), "The symbolic link 'b' points outside the package")


def test_writing_through_a_symlink_is_refused(job):
    members = [
        _info("dir", type=tarfile.SYMTYPE, linkname="sub"),
        _info("sub", type=tarfile.DIRTYPE, mode=0o755),
        ("dir/file", b"x"),
    ]
    job.refuse(tar_bytes(members), "through a symbolic link")
    assert not (job.root / "sub" / "file").exists()


def test_a_symlink_then_a_file_of_the_same_name_does_not_follow_it(job):
    outside = job.area / "sentinel"
    members = [_info("f", type=tarfile.SYMTYPE, linkname="g"), _info("g", type=tarfile.SYMTYPE, linkname="f")]
    members.append(("f", b"replaced"))
    job.unpack(tar_bytes(members))
    assert (job.root / "f").read_bytes() == b"replaced"
    assert not os.path.islink(job.root / "f")
    assert outside.read_text() == "untouched"


@pytest.mark.parametrize("linkname", ["../../area/sentinel", "/etc/passwd", "missing-file"])
def test_a_hardlink_pointing_outside_or_nowhere_is_refused(job, linkname):
    data = tar_bytes([_info("hard", type=tarfile.LNKTYPE, linkname=linkname)])
    job.refuse(data, "hard link")
    assert not os.path.lexists(job.root / "hard")
    assert os.stat(job.area / "sentinel").st_nlink == 1


@pytest.mark.parametrize(
    ("type_", "what"),
    [(tarfile.CHRTYPE, "character device"), (tarfile.BLKTYPE, "block device"), (tarfile.FIFOTYPE, "FIFO")],
)
def test_device_files_and_fifos_are_refused(job, type_, what):
    data = tar_bytes([("Dockerfile", DOCKERFILE_TEXT), _info("dev", type=type_, devmajor=1, devminor=3)])
    job.refuse(data, what)
    assert not os.path.lexists(job.root / "dev")


def test_too_many_entries_are_refused(job):
    members = [(f"f{i}", b"x") for i in range(11)]
    job.refuse(tar_bytes(members), "more than 10 entries", max_entries=10)
    assert len(os.listdir(job.root)) == 10


def test_too_many_bytes_by_the_members_sizes_are_refused_before_writing(job):
    members = [("small", b"x" * 100), ("big", b"y" * 5000)]
    job.refuse(tar_bytes(members, compress=True), "more than 4096 bytes", max_bytes=4096)
    assert not (job.root / "big").exists()
    assert job.written_bytes() <= 4096


def _zeros(size: int):
    class Zeros(io.RawIOBase):
        def __init__(self):
            self.left = size

        def readable(self):
            return True

        def readinto(self, buffer):
            n = min(len(buffer), self.left)
            buffer[:n] = bytes(n)
            self.left -= n
            return n

    return Zeros()


def test_a_gzip_bomb_stops_early_with_bounded_writes(job):
    # 200 files of 1 MiB of zeros: about 200 MiB unpacked from well under 1 MiB of gzip.
    with gzip.open(job.package, "wb", compresslevel=9) as gz, tarfile.open(fileobj=gz, mode="w") as tar:
        for i in range(200):
            tar.addfile(_info(f"zeros/{i:03}", size=1024 * 1024), _zeros(1024 * 1024))
    assert job.package.stat().st_size < 1024 * 1024
    cap = 8 * 1024 * 1024
    started = time.monotonic()
    with pytest.raises(JobError, match=f"more than {cap} bytes") as caught:
        unpack.unpack_package(job.package, job.root, limits=unpack.Limits(max_bytes=cap))
    assert caught.value.kind == PACKAGE
    assert time.monotonic() - started < 10
    assert job.written_bytes() <= cap
    job.assert_nothing_outside()


def test_one_huge_member_is_refused_from_its_header(job):
    with gzip.open(job.package, "wb", compresslevel=9) as gz, tarfile.open(fileobj=gz, mode="w") as tar:
        tar.addfile(_info("zeros", size=200 * 1024 * 1024), _zeros(200 * 1024 * 1024))
    with pytest.raises(JobError, match="more than 1048576 bytes"):
        unpack.unpack_package(job.package, job.root, limits=unpack.Limits(max_bytes=1024 * 1024))
    assert job.written_bytes() == 0


def test_a_gzip_that_is_not_a_tar_is_refused(job):
    job.refuse(gzip.compress(b"just some text, not a tar archive" * 40), "not a readable tar archive")


def test_a_truncated_tar_gz_is_refused(job):
    data = tar_bytes([("Dockerfile", DOCKERFILE_TEXT), ("big", os.urandom(64 * 1024))], compress=True)
    job.refuse(data[: len(data) // 2], "not a readable tar archive")


# ---------------------------------------------------------------------------------------------
# Unsafe zip archives


def test_a_zip_with_dot_dot_names_is_refused(job):
    job.refuse(zip_bytes([("Dockerfile", DOCKERFILE_TEXT), ("../escaped", b"x")]), "leaves the package")
    assert not (job.job / "escaped").exists()


def test_a_zip_with_absolute_names_is_refused(job):
    target = job.area / "zip-absolute"
    job.refuse(zip_bytes([(str(target), b"x")]), "absolute path")
    assert not target.exists()


def test_a_zip_symlink_pointing_outside_is_refused(job):
    job.refuse(zip_bytes([], symlinks={"link": "../../area/sentinel"}), "points outside")


def test_a_zip_with_too_many_entries_is_refused_before_writing(job):
    job.refuse(zip_bytes([(f"f{i}", b"x") for i in range(6)]), "more than 5 entries", max_entries=5)
    assert os.listdir(job.root) == []


def test_a_zip_bomb_is_refused_before_writing(job):
    raw = io.BytesIO()
    with zipfile.ZipFile(raw, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=9) as zf:
        with zf.open("zeros", "w", force_zip64=True) as member:
            for _ in range(200):
                member.write(bytes(1024 * 1024))
    assert len(raw.getvalue()) < 1024 * 1024
    job.refuse(raw.getvalue(), "more than 1048576 bytes", max_bytes=1024 * 1024)
    assert job.written_bytes() == 0


# ---------------------------------------------------------------------------------------------
# The context, the Dockerfile path and .dockerignore


def _context_tree(job: JobDir, dockerignore: str | None = None) -> None:
    files = [("app/Dockerfile", DOCKERFILE_TEXT), ("app/hello.txt", b"hello\n"), ("other/Dockerfile", DOCKERFILE_TEXT)]
    if dockerignore is not None:
        files.append(("app/.dockerignore", dockerignore.encode()))
    job.unpack(tar_bytes(files))


def test_a_dockerfile_outside_the_context_is_refused(job):
    _context_tree(job)
    with pytest.raises(JobError, match="not inside the build context") as caught:
        unpack.resolve_context(job.root, context="app", dockerfile_path="other/Dockerfile")
    assert caught.value.kind == DOCKERFILE


def test_a_dockerfile_reached_through_a_symlink_out_of_the_context_is_refused(job):
    job.unpack(
        tar_bytes(
            [
                ("other/Dockerfile", DOCKERFILE_TEXT),
                _info("app/Dockerfile", type=tarfile.SYMTYPE, linkname="../other/Dockerfile"),
            ]
        )
    )
    with pytest.raises(JobError, match="not inside the build context"):
        unpack.resolve_context(job.root, context="app", dockerfile_path="app/Dockerfile")


@pytest.mark.parametrize(
    ("context", "dockerfile_path"), [("../", "Dockerfile"), ("app", "../../etc/passwd"), ("/../x", "x/Dockerfile")]
)
def test_paths_leaving_the_package_are_refused(job, context, dockerfile_path):
    _context_tree(job)
    with pytest.raises(JobError, match="leaves the build package") as caught:
        unpack.resolve_context(job.root, context=context, dockerfile_path=dockerfile_path)
    assert caught.value.kind == PACKAGE


def test_a_missing_dockerfile_or_context_is_a_clear_error(job):
    _context_tree(job)
    with pytest.raises(JobError, match="No Dockerfile was found") as caught:
        unpack.resolve_context(job.root, context="app", dockerfile_path="app/Containerfile")
    assert caught.value.kind == DOCKERFILE
    with pytest.raises(JobError, match="is not a directory"):
        unpack.resolve_context(job.root, context="nowhere", dockerfile_path="nowhere/Dockerfile")


@pytest.mark.parametrize("patterns", ["Dockerfile", "*", "# comment\n**/Dockerfile", "Docker?ile", "/Dockerfile\n"])
def test_a_dockerignore_excluding_the_dockerfile_is_refused(job, patterns):
    _context_tree(job, dockerignore=patterns)
    with pytest.raises(JobError, match=r"\.dockerignore excludes the Dockerfile") as caught:
        unpack.resolve_context(job.root, context="app", dockerfile_path="app/Dockerfile")
    assert caught.value.kind == DOCKERFILE


def test_a_dockerignore_excluding_the_dockerfiles_directory_is_refused(job):
    job.unpack(tar_bytes([("ctx/build/Dockerfile", DOCKERFILE_TEXT), ("ctx/.dockerignore", b"build\n")]))
    with pytest.raises(JobError, match="excludes the Dockerfile"):
        unpack.resolve_context(job.root, context="ctx", dockerfile_path="ctx/build/Dockerfile")


@pytest.mark.parametrize("patterns", ["*.txt", "*\n!Dockerfile", "Dockerfile.*", "other/Dockerfile", "**/*.md"])
def test_a_dockerignore_keeping_the_dockerfile_is_fine(job, patterns):
    _context_tree(job, dockerignore=patterns)
    context, dockerfile = unpack.resolve_context(job.root, context="app", dockerfile_path="app/Dockerfile")
    assert dockerfile.read_bytes() == DOCKERFILE_TEXT


def test_base_images_are_read_from_the_from_lines():
    text = (
        "# syntax comment\nARG TAG=1\nFROM --platform=linux/amd64 reg.example:5000/ns/base:1 AS build\n"
        "RUN make\nFROM \\\n  build\nFROM scratch\nFROM busybox:${TAG}\nFROM reg.example:5000/ns/other\n"
        "COPY --from=build /out /out\n"
    )
    assert base_images(text) == ["reg.example:5000/ns/base:1", "reg.example:5000/ns/other"]
    with pytest.raises(JobError, match="no FROM") as caught:
        base_images("RUN echo hi\n")
    assert caught.value.kind == DOCKERFILE
