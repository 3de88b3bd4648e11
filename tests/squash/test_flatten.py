"""squash.flatten: the merged tar of an image's layers, checked against umoci and rule by rule.

The umoci tests unpack the original image with umoci (the reference for layer semantics) and
the flattened tar as a one-layer image with umoci too, and compare the two trees file by file:
types, modes, owners, times, content hashes, link targets, device numbers, xattrs and hard-link
groups. umoci 0.4 reads no zstd layers, so its reference image carries the same tars gzipped.
"""

from __future__ import annotations

import gzip
import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
import textwrap
from pathlib import Path

import pytest
import zstandard

from squash.flatten import LayerError, LayerSource, flatten, normalize, uncompressed_size
from tests.squash.images_support import (
    MEDIA_TYPES,
    UNSAFE_NAMES,
    Blob,
    Image,
    Layer,
    compress,
    read_tar,
    rules_layers,
    tar_contents,
    tree,
    umoci_unpack,
    write_oci_layout,
)

BASE_DIR = Path(__file__).resolve().parents[2]


def flat(image: Image) -> tuple[bytes, object]:
    out = io.BytesIO()
    stats = flatten(image.sources(), out)
    return out.getvalue(), stats


def source(data: bytes, how: str = "plain", digest: str = "sha256:" + "ab" * 32) -> LayerSource:
    return LayerSource(digest, MEDIA_TYPES[how], len(data), lambda: io.BytesIO(data))


def by_name(data: bytes) -> dict[str, tarfile.TarInfo]:
    return {member.name: member for member in read_tar(data)}


# ---------------------------------------------------------------------------------------------
# Against umoci


@pytest.mark.e2e
@pytest.mark.parametrize(
    "compressions",
    [("gzip",) * 3, ("zstd",) * 3, ("plain",) * 3, ("zstd", "plain", "gzip")],
    ids=["gzip", "zstd", "plain", "mixed"],
)
def test_flattened_tree_matches_umoci_unpack(tmp_path, compressions):
    if shutil.which("umoci") is None:
        pytest.fail("umoci is required (apt-get install umoci)")
    layers = rules_layers()
    image = Image(list(zip(layers, compressions, strict=True)))
    # umoci's own unpack of the layered image: the same tars, gzip where the original is zstd.
    reference = Image(
        [(layer, "plain" if how == "plain" else "gzip") for layer, how in zip(layers, compressions, strict=True)]
    )
    expected = tree(
        umoci_unpack(write_oci_layout(tmp_path / "layered", reference.blobs, reference.config), tmp_path / "a")
    )

    flattened, stats = flat(image)
    blob = Blob(flattened, MEDIA_TYPES["plain"])
    config = {**image.config, "rootfs": {"type": "layers", "diff_ids": [blob.digest]}}
    actual = tree(umoci_unpack(write_oci_layout(tmp_path / "flat", [blob], config), tmp_path / "b"))

    # umoci writes unsafe names clamped into the root; the flattener drops them.
    for clamped in UNSAFE_NAMES.values():
        assert clamped in expected
        assert clamped not in actual
        del expected[clamped]
    assert actual == expected
    # The rules were exercised, not bypassed: spot checks of the merged tree.
    assert "gone-dir" not in actual and "gone-file" not in actual and "hidden" not in actual
    assert sorted(p for p in actual if p.startswith("opq/")) == ["opq/new"]
    assert actual["hl-hidden1"]["links"] == ["hl-hidden1", "hl-hidden2"]
    assert actual["cross-link"]["links"] == ["base/target", "cross-link"]
    assert actual["dev/loop0"]["rdev"] == (7, 0)
    assert actual["xa"]["xattrs"] == {"user.k": b"v", "user.other": b"w"}
    assert stats.dropped == len(UNSAFE_NAMES)
    assert stats.second_reads == 1  # the bottom layer, for hl-shadowed and hl-hidden1/2


# ---------------------------------------------------------------------------------------------
# Rule by rule, on the tar itself


def test_first_occurrence_wins_and_whiteouts_are_not_emitted():
    bottom = Layer().dir("d").file("d/a", b"old a").file("d/b", b"b").file("f", b"old f")
    top = Layer().file("d/a", b"new a").whiteout("d/.wh.b").file("f", b"new f", mode=0o600)
    data, stats = flat(Image([(bottom, "gzip"), (top, "gzip")]))
    contents = tar_contents(data)
    assert contents == {"d/a": b"new a", "f": b"new f"}
    assert by_name(data)["f"].mode == 0o600
    assert not any(".wh." in name for name in by_name(data))
    assert stats.whiteouts == 1 and stats.shadowed == 3  # d/a and f shadowed, d/b hidden


def test_whiteout_hides_only_lower_layers_and_opaque_keeps_its_own_layer():
    bottom = Layer().dir("d").file("d/old", b"o").dir("x").file("x/old", b"o")
    # Same layer: the whiteout of x and a new x/, the opaque marker and new files beside it.
    top = Layer().whiteout(".wh.x").dir("x").file("x/new", b"n").dir("d").whiteout("d/.wh..wh..opq").file("d/new", b"n")
    data, _ = flat(Image([(bottom, "plain"), (top, "plain")]))
    assert sorted(by_name(data)) == ["d", "d/new", "x", "x/new"]


def test_root_opaque_hides_every_lower_layer():
    bottom = Layer().file("a", b"a").dir("b").file("b/c", b"c")
    top = Layer().whiteout(".wh..wh..opq").file("z", b"z")
    data, _ = flat(Image([(bottom, "plain"), (top, "plain")]))
    assert sorted(by_name(data)) == ["z"]


def test_file_and_directory_replacing_each_other():
    bottom = Layer().file("f2d", b"file").dir("d2f").file("d2f/child", b"c").file("implied", b"file")
    top = Layer().dir("f2d").file("f2d/in", b"i").file("d2f", b"now a file").file("implied/deep/x", b"x")
    members = by_name(flat(Image([(bottom, "zstd"), (top, "zstd")]))[0])
    assert members["f2d"].isdir() and members["d2f"].isreg()
    assert "d2f/child" not in members
    # A lower file where an upper layer put a directory (implied by a path under it) is gone.
    assert "implied" not in members and members["implied/deep/x"].isreg()


def test_unsafe_names_and_whiteouts_pointing_outside_are_dropped():
    bottom = Layer().dir("etc").file("etc/passwd", b"p").file("keep", b"k")
    top = (
        Layer()
        .file("/abs", b"a")
        .file("../up", b"u")
        .file("a/../../up", b"u")
        .whiteout("../.wh.etc")
        .whiteout("x/../../.wh.keep")
        .whiteout(".wh..")
        .whiteout(".wh..wh.plnk")  # aufs bookkeeping
        .hardlink("escaping-link", "../etc/passwd")
        .file("./././ok", b"ok")
    )
    data, stats = flat(Image([(bottom, "gzip"), (top, "gzip")]))
    assert sorted(by_name(data)) == ["etc", "etc/passwd", "keep", "ok"]
    assert stats.dropped == 8


def test_normalize():
    assert normalize("./a//b/./c/") == "a/b/c"
    assert normalize("./") == ""
    assert normalize("/etc/passwd") is None
    assert normalize("a/../b") is None


def test_hard_link_to_target_hidden_in_its_own_layer_reads_the_layer_again():
    bottom = (
        Layer()
        .dir("h")
        .file("h/big", b"B" * 300_000, mode=0o600, uid=3, gid=4)
        .hardlink("l1", "h/big")
        .hardlink("l2", "h/big")
    )
    top = Layer().whiteout(".wh.h")
    opened = []
    image = Image([(bottom, "gzip"), (top, "gzip")])
    sources = image.sources()
    counted = [
        LayerSource(s.digest, s.media_type, s.size, lambda s=s: (opened.append(s.digest), s.open())[1]) for s in sources
    ]
    out = io.BytesIO()
    stats = flatten(counted, out)
    members = by_name(out.getvalue())
    assert members["l1"].isreg() and members["l1"].size == 300_000
    assert (members["l1"].mode, members["l1"].uid, members["l1"].gid) == (0o600, 3, 4)
    assert members["l2"].islnk() and members["l2"].linkname == "l1"
    assert tar_contents(out.getvalue())["l2"] == b"B" * 300_000
    assert stats.second_reads == 1 and stats.links_materialized == 1
    assert opened == [sources[0].digest, sources[1].digest, sources[1].digest]


def test_hard_link_to_kept_target_stays_a_link():
    layer = Layer().file("t", b"t").hardlink("l", "t")
    members = by_name(flat(Image([(layer, "plain")]))[0])
    assert members["l"].islnk() and members["l"].linkname == "t"


def test_cross_layer_links():
    bottom = Layer().file("untouched", b"u").file("replaced", b"bottom").file("removed", b"r")
    middle = (
        Layer()
        .hardlink("to-untouched", "untouched")
        .hardlink("to-replaced", "replaced")
        .hardlink("to-removed", "removed")
    )
    top = Layer().file("replaced", b"top").whiteout(".wh.removed")
    data, stats = flat(Image([(bottom, "gzip"), (middle, "zstd"), (top, "plain")]))
    names = [m.name for m in read_tar(data)]
    members = by_name(data)
    # The untouched target is emitted from the bottom layer; the link follows it there.
    assert members["to-untouched"].islnk() and names.index("to-untouched") > names.index("untouched")
    # The middle layer's link meant the bottom file, which the output no longer holds there.
    assert tar_contents(data)["to-replaced"] == b"bottom" and members["to-replaced"].isreg()
    assert tar_contents(data)["replaced"] == b"top"
    # The top layer removed the target from view, not from the middle layer's: still materialized.
    assert tar_contents(data)["to-removed"] == b"r"
    assert stats.second_reads == 0


def test_link_whose_target_a_lower_layer_removes_is_dropped():
    bottom = Layer().file("t", b"t")
    middle = Layer().whiteout(".wh.t")
    top = Layer().hardlink("l", "t")
    data, stats = flat(Image([(bottom, "plain"), (middle, "plain"), (top, "plain")]))
    assert by_name(data) == {}
    assert stats.dropped == 1


def test_link_to_hidden_symlink_or_node_becomes_a_copy():
    bottom = Layer().symlink("s", "target").fifo("p").hardlink("ls", "s").hardlink("lp", "p")
    top = Layer().whiteout(".wh.s").whiteout(".wh.p")
    members = by_name(flat(Image([(bottom, "plain"), (top, "plain")]))[0])
    assert members["ls"].issym() and members["ls"].linkname == "target"
    assert members["lp"].isfifo()


def test_metadata_is_kept():
    layer = (
        Layer()
        .file(
            "x",
            b"x",
            mode=0o4755,
            uid=70000,
            gid=2_100_000,
            mtime=1_234_567_890,
            xattrs={"user.a": "1", "security.capability": "\x01"},
        )
        .device("c", tarfile.CHRTYPE, 4, 64)
        .device("b", tarfile.BLKTYPE, 8, 1)
        .fifo("p", mode=0o640, uid=9, gid=10)
        .symlink("s", "../../elsewhere")
        .file("frac", b"f", mtime=1_700_000_000.25)
        .file("ü" * 80, b"long non-ASCII")
    )
    layer.entries[0].uname, layer.entries[0].gname = "a-user-name-longer-than-thirty-two-chars", "grp"
    members = by_name(flat(Image([(layer, "zstd")]))[0])
    x = members["x"]
    assert (x.mode, x.uid, x.gid, x.mtime) == (0o4755, 70000, 2_100_000, 1_234_567_890)
    assert (x.uname, x.gname) == ("a-user-name-longer-than-thirty-two-chars", "grp")
    assert x.pax_headers["SCHILY.xattr.user.a"] == "1" and x.pax_headers["SCHILY.xattr.security.capability"] == "\x01"
    assert (members["c"].ischr(), members["c"].devmajor, members["c"].devminor) == (True, 4, 64)
    assert (members["b"].isblk(), members["b"].devmajor, members["b"].devminor) == (True, 8, 1)
    assert (members["p"].isfifo(), members["p"].mode, members["p"].uid) == (True, 0o640, 9)
    assert members["s"].linkname == "../../elsewhere"  # symlink targets resolve at run time, kept as they are
    assert members["frac"].mtime == 1_700_000_000.25
    assert "ü" * 80 in members


def test_reencoded_entries_are_never_larger_than_the_source():
    # A ustar tar with prefix-split long names (as Go writes them), and a PAX one with atime/ctime:
    # the flattened tar of one layer must not outgrow the layer (the declared size depends on it).
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.USTAR_FORMAT) as archive:
        for i in range(200):
            info = tarfile.TarInfo(f"{'p' * 90}/{i:03d}{'n' * 80}")
            archive.addfile(info, io.BytesIO(b""))
    ustar = raw.getvalue()
    pax = io.BytesIO()
    with tarfile.open(fileobj=pax, mode="w", format=tarfile.PAX_FORMAT) as archive:
        for i in range(200):
            info = tarfile.TarInfo(f"f{i}")
            info.pax_headers = {"atime": "1700000000.1", "ctime": "1700000000.2"}
            archive.addfile(info, io.BytesIO(b""))
    # A global PAX header (git archive writes one with the commit) is not repeated per entry.
    global_pax = io.BytesIO()
    with tarfile.open(
        fileobj=global_pax, mode="w", format=tarfile.PAX_FORMAT, pax_headers={"comment": "c0ffee" * 10}
    ) as archive:
        for i in range(200):
            archive.addfile(tarfile.TarInfo(f"ünï-{i}"), io.BytesIO(b""))
    for data in (ustar, pax.getvalue(), global_pax.getvalue()):
        out = io.BytesIO()
        stats = flatten([source(data)], out)
        assert stats.entries == 200
        assert len(out.getvalue()) <= len(data)


def test_sparse_file_is_expanded(tmp_path):
    root = tmp_path / "root"
    root.mkdir()
    with open(root / "sparse", "wb") as f:
        f.seek(5_000_000)
        f.write(b"end")
    archive = tmp_path / "layer.tar"
    subprocess.run(["tar", "--sparse", "--format=gnu", "-C", str(root), "-cf", str(archive), "sparse"], check=True)
    data = archive.read_bytes()
    assert len(data) < 100_000  # stored sparse
    out = io.BytesIO()
    flatten([source(data)], out)
    contents = tar_contents(out.getvalue())
    assert contents["sparse"] == b"\0" * 5_000_000 + b"end"


def test_multi_member_gzip_and_multi_frame_zstd():
    first = Layer().file("a", b"a" * 1000).tar()[: 512 + 1024]  # header and data, no end blocks: the tar goes on
    second = Layer().file("b", b"b" * 1000).tar()
    gz = gzip.compress(first) + gzip.compress(second)
    zst = zstandard.ZstdCompressor().compress(first) + zstandard.ZstdCompressor().compress(second)
    for data, how in ((gz, "gzip"), (zst, "zstd")):
        out = io.BytesIO()
        flatten([source(data, how)], out)
        assert tar_contents(out.getvalue()) == {"a": b"a" * 1000, "b": b"b" * 1000}
        assert uncompressed_size(source(data, how)) == len(first) + len(second)


def test_compression_is_recognized_by_content_not_media_type():
    tar = Layer().file("f", b"f").tar()
    mislabeled = LayerSource("sha256:" + "cd" * 32, MEDIA_TYPES["plain"], 0, lambda: io.BytesIO(compress(tar, "gzip")))
    out = io.BytesIO()
    flatten([mislabeled], out)
    assert tar_contents(out.getvalue()) == {"f": b"f"}


def test_empty_layers():
    out = io.BytesIO()
    stats = flatten([source(b""), source(gzip.compress(b""), "gzip"), source(Layer().tar())], out)
    assert out.getvalue() == b"\0" * 1024
    assert stats.entries == 0


def test_corrupt_layers_raise_layer_error():
    good = compress(Layer().file("f", os.urandom(200_000)).tar(), "gzip")
    cases = {
        "truncated gzip": source(good[: len(good) // 2], "gzip"),
        "bad crc": source(good[:-8] + b"\0\0\0\0" + good[-4:], "gzip"),
        "garbage zstd": source(b"\x28\xb5\x2f\xfd" + os.urandom(100), "zstd"),
        "not a tar": source(b"x" * 2048),
        "truncated tar data": source(Layer().file("f", b"z" * 10_000).tar()[:2048]),
    }
    for name, layer in cases.items():
        with pytest.raises(LayerError, match=layer.digest):
            flatten([layer], io.BytesIO())
        assert name


def test_output_errors_pass_through_unchanged():
    class Gone:
        def write(self, data):
            raise BrokenPipeError("client went away")

    with pytest.raises(BrokenPipeError):
        flatten([source(Layer().file("f", b"f").tar())], Gone())


# ---------------------------------------------------------------------------------------------
# Memory


MEMORY_PROBE = textwrap.dedent(
    """
    import json, resource, sys
    from pathlib import Path
    from squash.flatten import LayerSource, flatten

    class Null:
        def write(self, data):
            pass

    paths = [Path(p) for p in sys.argv[1:]]
    layers = [
        LayerSource(f"sha256:{i:064x}", "gzip", p.stat().st_size, lambda p=p: open(p, "rb"))
        for i, p in enumerate(paths)
    ]
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    stats = flatten(layers, Null())
    after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({
        "before_kib": before, "after_kib": after, "bytes": stats.bytes,
        "second_reads": stats.second_reads, "materialized": stats.links_materialized,
    }))
    """
)


class _Repeat:
    """``size`` bytes of ``block`` repeated, read in chunks (never all in memory)."""

    def __init__(self, block: bytes, size: int):
        self.block = block
        self.left = size

    def read(self, size: int = -1) -> bytes:
        n = min(self.left, len(self.block), size if size >= 0 else len(self.block))
        self.left -= n
        return self.block[:n]


def _big_layer(path: Path, files: dict[str, int], extra: Layer | None = None) -> Path:
    """A gzip layer of files of ``size`` pseudo-random bytes each, written in chunks."""
    from isal import igzip

    block = os.urandom(1 << 20)
    with (
        igzip.open(path, "wb", compresslevel=0) as gz,
        tarfile.open(fileobj=gz, mode="w|", format=tarfile.PAX_FORMAT) as tar,
    ):
        for name, size in files.items():
            info = tarfile.TarInfo(name)
            info.size = size

            tar.addfile(info, _Repeat(block, size))
        for index, info in enumerate((extra or Layer()).entries):
            data = extra.contents.get(index) if extra else None
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    return path


def test_memory_does_not_grow_with_image_size(tmp_path):
    mib = 1 << 20
    # Bottom: a hidden big file with a hard link to it (read twice), a shadowed one, kept ones.
    bottom = _big_layer(
        tmp_path / "bottom.tar.gz",
        {"hidden/big": 96 * mib, "shadowed": 64 * mib, "kept-1": 64 * mib},
        Layer().hardlink("link-to-hidden", "hidden/big"),
    )
    middle = _big_layer(tmp_path / "middle.tar.gz", {"kept-2": 64 * mib, "shadowed": 16 * mib})
    top = _big_layer(tmp_path / "top.tar.gz", {"kept-3": 32 * mib}, Layer().whiteout(".wh.hidden"))
    result = subprocess.run(
        [sys.executable, "-c", MEMORY_PROBE, str(top), str(middle), str(bottom)],
        capture_output=True,
        text=True,
        cwd=BASE_DIR,
        timeout=600,
        check=True,
    )
    report = json.loads(result.stdout)
    assert report["bytes"] > 270 * mib  # what went through: a few hundred MB
    assert report["second_reads"] == 1 and report["materialized"] == 1
    growth_mib = (report["after_kib"] - report["before_kib"]) / 1024
    assert growth_mib < 32, report
