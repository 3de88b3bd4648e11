"""Properties of every reader of tar entries: the build package unpacker (builder.unpack), the
security scanner's layer reader (scanning.layers), the squashed-image flattener (squash.flatten),
and the build package sniffer (builds.packages).

Arbitrary archives (``..``, absolute names, escaping symbolic links, hard links, devices, huge
declared sizes, truncation, compression, garbage) never write outside the root and fail only with
each module's documented error.
"""

from __future__ import annotations

import hashlib
import io
import os
import signal
import tarfile
import tempfile
from pathlib import Path

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from builder.errors import JobError
from builder.unpack import Limits, dockerignore_excludes, parse_dockerignore, resolve_context, unpack_package
from builds.errors import PackageError
from builds.packages import ARCHIVE_TYPES, MIME_DOCKERFILE, detect_mime_type
from scanning.layers import LayerContents, read_layer
from scanning.layers import LayerError as ScanLayerError
from squash.flatten import LayerSource, SquashError, flatten, normalize
from tests.fuzz.conftest import examples
from tests.fuzz.tars import Entry, archives, entries, tar_bytes

SMALL = Limits(max_entries=20, max_bytes=4096)


def snapshot(top: Path) -> dict[str, tuple]:
    """Every path under ``top`` (links not followed) with its type and size."""
    found = {}
    for dirpath, dirnames, filenames in os.walk(top):
        for name in dirnames + filenames:
            path = os.path.join(dirpath, name)
            st_ = os.lstat(path)
            found[os.path.relpath(path, top)] = (st_.st_mode >> 12, st_.st_size)
    return found


def unpack_into_sandbox(data: bytes, limits: Limits, dockerfile_path: str = "Dockerfile"):
    """Unpack ``data`` into ``sandbox/root`` next to a decoy ``sandbox/outside``; return the
    outcome and what changed outside the root."""
    with tempfile.TemporaryDirectory(prefix="fuzz-unpack-") as sandbox:
        sandbox = Path(sandbox)
        root, outside = sandbox / "root", sandbox / "outside"
        root.mkdir()
        outside.mkdir()
        (outside / "keep").write_bytes(b"keep")
        package = sandbox / "package"
        package.write_bytes(data)
        before = {k: v for k, v in snapshot(sandbox).items() if not k.startswith("root")}
        try:
            outcome = unpack_package(package, root, dockerfile_path=dockerfile_path, limits=limits)
        except JobError as exc:
            outcome = exc
        after = {k: v for k, v in snapshot(sandbox).items() if not k.startswith("root")}
        assert after == before, "something was written outside the root"
        assert (outside / "keep").read_bytes() == b"keep"
        real_root = os.path.realpath(root)
        for path in root.rglob("*"):
            if not isinstance(outcome, JobError) and path.is_symlink():
                resolved = os.path.realpath(path)
                assert resolved == real_root or resolved.startswith(real_root + os.sep), path
            if not path.is_symlink():
                mode = os.lstat(path).st_mode
                assert not (mode & 0o6000), f"setuid/setgid kept on {path}"
                assert stat_kind(mode) in ("file", "dir"), path
        if not isinstance(outcome, JobError):
            try:
                resolve_context(root, context="", dockerfile_path="Dockerfile")
            except JobError:
                pass
        return outcome


def stat_kind(mode: int) -> str:
    import stat

    if stat.S_ISREG(mode):
        return "file"
    if stat.S_ISDIR(mode):
        return "dir"
    return "other"


# -- builder.unpack -------------------------------------------------------------------------------


@settings(max_examples=examples(250))
@given(archives())
@example(tar_bytes([Entry("a", "file", data=b"x"), Entry("a", "hardlink", linkname="a")]))
@example(tar_bytes([Entry("x" * 300, "file", data=b"x")], fmt=tarfile.GNU_FORMAT))
@example(
    tar_bytes([Entry("l", "symlink", linkname="."), Entry("m", "symlink", linkname="l/../.."), Entry("m/x", "file")])
)
@example(tar_bytes([Entry("../escape", "file", data=b"x")]))
@example(tar_bytes([Entry("d", "symlink", linkname="/tmp"), Entry("d/x", "file", data=b"x")]))
@example(tar_bytes([Entry("dev", "chr")]))
@example(tar_bytes([Entry("big", "file", data=b"x", declared=10**12)]))
def test_unpack_never_escapes_and_fails_only_with_job_error(data):
    outcome = unpack_into_sandbox(data, SMALL)
    if isinstance(outcome, JobError):
        assert outcome.kind == "package" and outcome.message
    else:
        assert outcome in ("tar", "tar.gz", "zip", "dockerfile")


@pytest.mark.filterwarnings("ignore:Duplicate name:UserWarning")
@settings(max_examples=examples(60))
@example(items=[Entry("", "file", data=b"x")], dockerfile_path="Dockerfile")  # ZipInfo.is_dir() on ""
@given(
    items=st.lists(entries, max_size=6),
    dockerfile_path=st.one_of(st.just("Dockerfile"), st.text(max_size=30)),
)
def test_unpack_zip_and_plain_dockerfiles(items, dockerfile_path):
    import zipfile

    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        for item in items:
            info = zipfile.ZipInfo(item.name)
            kind_bits = {"dir": 0o040000, "symlink": 0o120000, "chr": 0o020000, "fifo": 0o010000}.get(
                item.kind, 0o100000
            )
            info.external_attr = (kind_bits | item.mode & 0o7777) << 16
            info.create_system = 3
            payload = item.linkname.encode("utf-8", "surrogateescape") if item.kind == "symlink" else item.data
            zf.writestr(info, payload)
    for data in (buffer.getvalue(), b"FROM scratch\n"):
        outcome = unpack_into_sandbox(data, SMALL, dockerfile_path=dockerfile_path)
        if isinstance(outcome, JobError):
            assert outcome.kind == "package"


@given(st.text(max_size=200), st.text(max_size=40))
@example("[]", "a")
@example("[z-a]", "a")
@example("\\", "a")
def test_dockerignore_patterns(text, path):
    try:
        patterns = parse_dockerignore(text)
    except JobError as exc:
        assert exc.message
        return
    assert isinstance(dockerignore_excludes(patterns, path), bool)


# -- scanning.layers ------------------------------------------------------------------------------

package_files = st.builds(
    Entry,
    name=st.sampled_from(
        [
            "etc/os-release",
            "/usr/lib/os-release",
            "var/lib/dpkg/status",
            "var/lib/dpkg/status.d/x",
            "lib/apk/db/installed",
            "var/lib/rpm/rpmdb.sqlite",
            "usr/lib/python3/site-packages/x-1.dist-info/METADATA",
            "node_modules/left-pad/package.json",
        ]
    ),
    kind=st.sampled_from(["file", "file", "symlink", "hardlink"]),
    linkname=st.sampled_from(["../usr/lib/os-release", "etc/os-release"]),
    data=st.one_of(
        st.binary(max_size=200),
        st.text(max_size=200).map(str.encode),
        st.sampled_from(
            [
                b"Package: a\nVersion: 1\nStatus: install ok installed\n\nPackage: b\n",
                b"P:musl\nV:1.2\n\nP:x\n",
                b'ID=debian\nVERSION_ID="12"\n',
                b'{"name": "left-pad", "version": 1}',
                b"Name: x\nVersion: 1\n",
                b"SQLite format 3\x00" + b"\x00" * 84,
            ]
        ),
    ),
    declared=st.one_of(st.none(), st.none(), st.just(2**40)),
)


@settings(max_examples=examples(250))
@given(archives(extra_entries=package_files))
@example(tar_bytes([Entry("usr/share/doc/big", "file", data=b"x", declared=2**40), Entry("etc/os-release", "file")]))
def test_scanner_reads_any_layer_or_raises_layer_error(data):
    try:
        contents = read_layer(io.BytesIO(data))
    except ScanLayerError as exc:
        assert str(exc)
        return
    assert isinstance(contents, LayerContents)
    for path, records in contents.package_files.items():
        assert not path.startswith("/")
        assert all(isinstance(r.name, str) and isinstance(r.version, str) for r in records)


def test_a_member_declaring_more_than_the_layer_holds_ends_the_scan():
    """tarfile's stream mode skips an unwanted member by reading its declared size; with 2**40
    declared in a small layer it read nothing for hours (found by the fuzz test above)."""
    data = tar_bytes([Entry("usr/share/doc/big", "file", data=b"x", declared=2**40)])

    def hung(signum, frame):
        raise AssertionError("read_layer was still skipping the declared 2**40 bytes after 30 s")

    previous = signal.signal(signal.SIGALRM, hung)  # a hang fails the test instead of the run
    signal.alarm(30)
    try:
        with pytest.raises(ScanLayerError, match="declares more data than the layer holds"):
            read_layer(io.BytesIO(data))
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def rpmdb(rows: list[tuple]) -> bytes:
    import sqlite3

    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "rpmdb.sqlite")
        connection = sqlite3.connect(path)
        connection.execute("CREATE TABLE Packages (hnum INTEGER, blob)")
        connection.executemany("INSERT INTO Packages VALUES (?, ?)", rows)
        connection.commit()
        connection.close()
        return Path(path).read_bytes()


@settings(max_examples=examples(60))
@given(
    st.lists(
        st.tuples(
            st.integers(0, 10),
            st.one_of(st.none(), st.integers(-(2**63), 2**63 - 1), st.text(max_size=10), st.binary(max_size=40)),
        ),
        max_size=3,
    )
)
@example([(1, None)])
@example([(1, "text")])
def test_scanner_rpm_database_rows(rows):
    layer = tar_bytes([Entry("var/lib/rpm/rpmdb.sqlite", "file", data=rpmdb(rows))])
    try:
        contents = read_layer(io.BytesIO(layer))
    except ScanLayerError as exc:
        assert str(exc)  # a refusal says why
        return
    # Whatever the rows held, what comes out is well-formed package records (or none).
    for records in contents.package_files.values():
        assert all(isinstance(r.name, str) and r.name and isinstance(r.version, str) for r in records)


# -- squash.flatten -------------------------------------------------------------------------------


def source(data: bytes, index: int) -> LayerSource:
    return LayerSource(
        digest="sha256:" + hashlib.sha256(data).hexdigest(),
        media_type="application/vnd.oci.image.layer.v1.tar+gzip",
        size=len(data),
        open=lambda: io.BytesIO(data),
    )


@settings(max_examples=examples(200))
@given(st.lists(archives(), min_size=1, max_size=3))
@example([tar_bytes([Entry("../../etc/passwd", "file", data=b"x"), Entry("/abs", "file", data=b"y")])])
@example([tar_bytes([Entry("a", "hardlink", linkname="../b")]), tar_bytes([Entry("b", "file", data=b"z")])])
def test_flatten_output_stays_inside_and_fails_only_with_squash_error(layers):
    out = io.BytesIO()
    try:
        stats = flatten([source(data, i) for i, data in enumerate(layers)], out)
    except SquashError as exc:
        assert str(exc)
        return
    assert stats.bytes == len(out.getvalue())
    seen = set()
    with tarfile.open(fileobj=io.BytesIO(out.getvalue()), mode="r:", encoding="utf-8", errors="surrogateescape") as tar:
        for member in tar:
            name = member.name
            assert normalize(name) is not None and not name.startswith("/"), name
            assert ".." not in name.split("/"), name
            if member.islnk():
                assert member.linkname in seen, (name, member.linkname)
            seen.add(name.rstrip("/"))


# -- builds.packages ------------------------------------------------------------------------------


@given(st.one_of(st.binary(max_size=600), st.text(max_size=300).map(str.encode), archives().map(lambda b: b[:512])))
def test_build_package_sniffing(head):
    try:
        kind = detect_mime_type(head[:512])
    except PackageError as exc:
        assert str(exc)
        return
    assert kind in ARCHIVE_TYPES | {MIME_DOCKERFILE}


@pytest.mark.parametrize(
    "items",
    [
        [Entry("a", "file", data=b"x"), Entry("a", "hardlink", linkname="a")],
        [Entry("x" * 300, "file", data=b"x")],
        [Entry("/".join(["d" * 200] * 25), "file", data=b"x")],
    ],
    ids=["hardlink-to-itself", "overlong-component", "overlong-path"],
)
def test_regression_unpack_odd_but_harmless_archives_fail_cleanly(items):
    outcome = unpack_into_sandbox(tar_bytes(items, fmt=tarfile.GNU_FORMAT), SMALL)
    assert isinstance(outcome, (JobError, str))
