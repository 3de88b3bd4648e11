"""skopeo against the live registry: push, pull, inspect, list-tags, delete, blob mounts, and
the kinds of credentials (user, robot, app token, none)."""

import json
import re
import time

import pytest

from tests.e2e import images
from tests.e2e.conftest import PASSWORD, ClientError

pytestmark = pytest.mark.e2e

ALICE = f"alice:{PASSWORD}"
BOB = f"bob:{PASSWORD}"


def push(clients, source: str, ref: str, creds: str = ALICE, *flags: str) -> str:
    """``skopeo copy`` ``source`` to ``docker://ref``; returns the digest skopeo reports."""
    digest_file = clients.root / "tmp" / "digest"
    clients.skopeo(
        "copy",
        "--dest-tls-verify=false",
        "--dest-creds",
        creds,
        "--digestfile",
        str(digest_file),
        *flags,
        source,
        f"docker://{ref}",
    )
    return digest_file.read_text().strip()


def inspect(clients, ref: str, *auth: str, raw: bool = False, arch: str | None = None):
    flags = ["--tls-verify=false", *(auth or ("--creds", ALICE))]
    if arch:
        flags = ["--override-arch", arch, *flags]
    result = clients.skopeo("inspect", *flags, *(["--raw"] if raw else []), f"docker://{ref}")
    return result.stdout if raw else json.loads(result.stdout)


def list_tags(clients, repo: str, creds: str = ALICE) -> list[str]:
    result = clients.skopeo("list-tags", "--tls-verify=false", "--creds", creds, f"docker://{repo}")
    return json.loads(result.stdout)["Tags"]


def pull_dir(clients, ref: str, dest, *auth: str) -> tuple[bytes, dict[str, bytes]]:
    clients.skopeo(
        "copy", "--src-tls-verify=false", *(auth or ("--src-creds", ALICE)), f"docker://{ref}", f"dir:{dest}"
    )
    return images.read_dir_layout(dest)


def test_it_pushes_and_pulls_a_docker_schema2_image_byte_exact(registry, clients, tmp_path):
    image = images.hand_image(docker=True)
    source = images.write_dir_layout(tmp_path / "src", image)
    ref = f"{registry.host}/alice/schema2:v1"

    digest = push(clients, f"dir:{source}", ref, ALICE, "--format", "v2s2")

    assert digest == image.digest
    response = registry.request(
        "GET",
        "/v2/alice/schema2/manifests/v1",
        "repository:alice/schema2:pull",
        username="alice",
        password=PASSWORD,
        headers={"Accept": images.DOCKER_MANIFEST},
    )
    assert response.status_code == 200
    assert response.headers["Content-Type"] == images.DOCKER_MANIFEST
    assert response.headers["Docker-Content-Digest"] == image.digest
    assert response.content == image.manifest
    manifest, blobs = pull_dir(clients, ref, tmp_path / "pulled")
    assert manifest == image.manifest
    assert blobs == {blob.digest: blob.data for blob in image.blobs}
    info = inspect(clients, ref)
    assert info["Digest"] == image.digest
    assert info["Layers"] == [layer.digest for layer in image.layers]
    assert info["Architecture"] == "amd64"


def test_it_pushes_and_pulls_an_oci_image_byte_exact(registry, clients, tmp_path):
    image = images.hand_image()
    source = images.write_oci_layout(tmp_path / "src", image)
    ref = f"{registry.host}/alice/oci-image:v1"

    digest = push(clients, f"oci:{source}:latest", ref)

    assert digest == image.digest
    assert inspect(clients, ref, raw=True).encode() == image.manifest
    dest = tmp_path / "pulled"
    clients.skopeo("copy", "--src-tls-verify=false", "--src-creds", ALICE, f"docker://{ref}", f"oci:{dest}:v1")
    index, blobs = images.read_oci_layout(dest)
    assert [m["digest"] for m in index["manifests"]] == [image.digest]
    assert blobs[image.digest] == image.manifest
    for blob in image.blobs:
        assert blobs[blob.digest] == blob.data


def test_it_pushes_and_pulls_a_multi_architecture_index_with_all(registry, clients, tmp_path):
    index = images.multiarch_index(("amd64", "arm64"))
    source = images.write_oci_layout(tmp_path / "src", index)
    ref = f"{registry.host}/alice/multiarch:v1"

    digest = push(clients, f"oci:{source}:latest", ref, ALICE, "--all")

    assert digest == index.digest
    assert inspect(clients, ref, raw=True).encode() == index.manifest
    for arch, child in index.children.items():
        info = inspect(clients, ref, arch=arch)
        assert info["Architecture"] == arch
        assert info["Layers"] == [layer.digest for layer in child.layers]
        assert inspect(clients, f"{registry.host}/alice/multiarch@{child.digest}", raw=True).encode() == child.manifest
    dest = tmp_path / "pulled"
    clients.skopeo("copy", "--all", "--src-tls-verify=false", "--src-creds", ALICE, f"docker://{ref}", f"oci:{dest}:v1")
    pulled_index, blobs = images.read_oci_layout(dest)
    assert [m["digest"] for m in pulled_index["manifests"]] == [index.digest]
    assert blobs[index.digest] == index.manifest
    for child in index.children.values():
        assert blobs[child.digest] == child.manifest
        for blob in child.blobs:
            assert blobs[blob.digest] == blob.data


def test_it_lists_tags_sorted(registry, clients, tmp_path):
    source = images.write_oci_layout(tmp_path / "src", images.hand_image(layer_count=1))
    for tag in ("v2", "latest", "v10", "v1"):
        push(clients, f"oci:{source}:latest", f"{registry.host}/alice/tagged:{tag}")

    assert list_tags(clients, f"{registry.host}/alice/tagged") == ["latest", "v1", "v10", "v2"]


def test_it_deletes_by_digest_and_by_tag(registry, clients, tmp_path):
    repo = f"{registry.host}/alice/deletions"
    first = images.hand_image(layer_count=1)
    second = images.hand_image(layer_count=1)
    first_src = images.write_oci_layout(tmp_path / "first", first)
    second_src = images.write_oci_layout(tmp_path / "second", second)
    push(clients, f"oci:{first_src}:latest", f"{repo}:one")
    push(clients, f"oci:{first_src}:latest", f"{repo}:also-one")
    push(clients, f"oci:{second_src}:latest", f"{repo}:two")

    clients.skopeo("delete", "--tls-verify=false", "--creds", ALICE, f"docker://{repo}@{first.digest}")

    # Deleting a manifest ends every tag on it, and only those.
    assert list_tags(clients, repo) == ["two"]
    gone = registry.request(
        "GET",
        f"/v2/alice/deletions/manifests/{first.digest}",
        "repository:alice/deletions:pull",
        username="alice",
        password=PASSWORD,
    )
    assert gone.status_code == 404
    assert gone.json()["errors"][0]["code"] == "MANIFEST_UNKNOWN"
    assert inspect(clients, f"{repo}:two")["Digest"] == second.digest

    clients.skopeo("delete", "--tls-verify=false", "--creds", ALICE, f"docker://{repo}:two")

    assert list_tags(clients, repo) == []
    failed = clients.skopeo("inspect", "--tls-verify=false", "--creds", ALICE, f"docker://{repo}:two", check=False)
    assert failed.returncode != 0
    assert "manifest unknown" in failed.stderr.lower()


def _mounted_every_layer(registry, target: str, image) -> bool:
    """The server's access log shows each layer mounted (201 to POST ?mount=&from=) and none
    uploaded again."""
    lines = [line for line in registry.log().splitlines() if f"/v2/{target}/blobs/uploads/" in line]
    for layer in image.layers:
        quoted = layer.digest.replace(":", "%3A")
        mounted = any(
            # From the source or an earlier copy: skopeo mounts from wherever its cache last saw it.
            '"POST ' in line and f"mount={quoted}" in line and "from=alice%2Fmount-" in line and '" 201 ' in line
            for line in lines
        )
        uploaded = any('"PUT ' in line and f"digest={quoted}" in line for line in lines)
        if not mounted or uploaded:
            return False
    return True


def test_it_mounts_blobs_across_repositories_of_the_registry(registry, clients, tmp_path):
    image = images.hand_image(layer_count=2)
    source = images.write_oci_layout(tmp_path / "src", image)
    push(clients, f"oci:{source}:latest", f"{registry.host}/alice/mount-source:v1")

    # skopeo mounts only blobs its blob-info cache (one BoltDB file per machine) says the
    # registry has; when another skopeo holds that file's lock, it skips the cache and uploads.
    # So a copy is tried up to ten times, a moment apart (builds running beside this test hold
    # the same file while buildah pulls and pushes), into a fresh repository each time, and one
    # of them must have mounted every layer and uploaded none.
    for attempt in range(10):
        if attempt:
            time.sleep(1)
        target = f"alice/mount-target-{attempt}"
        clients.skopeo(
            "copy",
            "--src-tls-verify=false",
            "--src-creds",
            ALICE,
            "--dest-tls-verify=false",
            "--dest-creds",
            ALICE,
            f"docker://{registry.host}/alice/mount-source:v1",
            f"docker://{registry.host}/{target}:v1",
        )
        if _mounted_every_layer(registry, target, image):
            break
    else:
        raise AssertionError("no copy mounted its layers:\n" + registry.log())
    manifest, blobs = pull_dir(clients, f"{registry.host}/{target}:v1", tmp_path / "pulled")
    assert manifest == image.manifest
    assert blobs == {blob.digest: blob.data for blob in image.blobs}


def test_it_accepts_a_robot_token_as_password(registry, clients, tmp_path):
    robot = f"{registry.seed['robot']}:{registry.seed['robot_token']}"
    image = images.hand_image(layer_count=1)
    source = images.write_oci_layout(tmp_path / "src", image)
    ref = f"{registry.host}/acme/robot-pushed:v1"

    # The robot's team may create repositories in acme: the push creates this one.
    assert push(clients, f"oci:{source}:latest", ref, robot) == image.digest

    assert inspect(clients, ref, "--creds", robot)["Digest"] == image.digest
    manifest, _ = pull_dir(clients, ref, tmp_path / "pulled", "--src-creds", robot)
    assert manifest == image.manifest


def test_it_refuses_a_wrong_robot_token(registry, clients, tmp_path):
    source = images.write_oci_layout(tmp_path / "src", images.hand_image(layer_count=1))
    wrong = f"{registry.seed['robot']}:{'x' * 64}"

    with pytest.raises(ClientError, match=r"(?i)unauthorized|authentication required|invalid username"):
        push(clients, f"oci:{source}:latest", f"{registry.host}/acme/robot-refused:v1", wrong)

    # Asking for push too: a pull-only token names nothing for a missing repository (401).
    missing = registry.request(
        "GET",
        "/v2/acme/robot-refused/tags/list",
        "repository:acme/robot-refused:pull,push",
        username="alice",
        password=PASSWORD,
    )
    assert missing.status_code == 404
    assert missing.json()["errors"][0]["code"] == "NAME_UNKNOWN"


def test_it_accepts_an_app_token_as_password(registry, clients, tmp_path):
    app_token = registry.seed["app_token"]
    image = images.hand_image(layer_count=1)
    source = images.write_oci_layout(tmp_path / "src", image)
    ref = f"{registry.host}/alice/app-token:v1"

    assert push(clients, f"oci:{source}:latest", ref, f"$app:{app_token}") == image.digest

    # The user's own name works with an app token as well.
    assert inspect(clients, ref, "--creds", f"alice:{app_token}")["Digest"] == image.digest
    assert inspect(clients, ref, "--creds", f"$app:{app_token}")["Digest"] == image.digest


def test_it_pulls_a_public_repository_anonymously(registry, clients, tmp_path):
    image = images.hand_image(layer_count=1)
    source = images.write_oci_layout(tmp_path / "src", image)
    ref = f"{registry.host}/alice/public-images:v1"
    push(clients, f"oci:{source}:latest", ref)

    assert inspect(clients, ref, "--no-creds")["Digest"] == image.digest
    manifest, blobs = pull_dir(clients, ref, tmp_path / "pulled", "--src-no-creds")
    assert manifest == image.manifest
    assert blobs == {blob.digest: blob.data for blob in image.blobs}
    # Without any token at all, too.
    plain = registry.request("GET", "/v2/alice/public-images/manifests/v1", headers={"Accept": images.OCI_MANIFEST})
    assert plain.status_code == 200
    assert plain.content == image.manifest


@pytest.mark.parametrize(
    "tag, inspect_auth, copy_auth",
    [("anonymous", ("--no-creds",), ("--src-no-creds",)), ("bob", ("--creds", BOB), ("--src-creds", BOB))],
)
def test_it_refuses_pulls_of_a_private_repository(registry, clients, tmp_path, tag, inspect_auth, copy_auth):
    image = images.hand_image(layer_count=1)
    source = images.write_oci_layout(tmp_path / "src", image)
    ref = f"{registry.host}/alice/private-images:{tag}"
    push(clients, f"oci:{source}:latest", ref)
    assert inspect(clients, ref)["Digest"] == image.digest

    failed = clients.skopeo("inspect", "--tls-verify=false", *inspect_auth, f"docker://{ref}", check=False)
    copy = clients.skopeo(
        "copy", "--src-tls-verify=false", *copy_auth, f"docker://{ref}", f"dir:{tmp_path / 'pulled'}", check=False
    )

    assert failed.returncode != 0
    assert re.search(r"(?i)unauthorized|authentication required", failed.stderr), failed.stderr
    assert copy.returncode != 0
    assert not (tmp_path / "pulled" / "manifest.json").exists()
    plain = registry.request("GET", f"/v2/alice/private-images/manifests/{tag}")
    assert plain.status_code == 401
    assert plain.headers["WWW-Authenticate"].startswith(f'Bearer realm="{registry.url}/v2/auth"')
