"""Properties of manifest parsing (registry.manifests) and of manifest PUT end to end.

``parse_manifest`` raises MANIFEST_INVALID and nothing else on arbitrary bytes and documents; an
accepted manifest has spec-conforming descriptors and the digest of its exact bytes. Through
/v2/, a pushed manifest whose fields are varied by hypothesis is stored or refused with an OCI
error, never a server error (PostgreSQL refuses what SQLite stores: NUL, overlong text, huge
integers).
"""

import hashlib
import json
import re

from hypothesis import example, given, settings
from hypothesis import strategies as st

from registry import errors
from registry.manifests import (
    DOCKER_LIST,
    DOCKER_MANIFEST,
    FOREIGN_LAYER_TYPES,
    MANIFEST_TYPES,
    OCI_INDEX,
    OCI_MANIFEST,
    parse_manifest,
)
from tests.conftest import PASSWORD
from tests.fuzz.conftest import examples
from tests.fuzz.test_v2_endpoints import assert_oci
from tests.registry.conftest import V2, make_image

DIGEST = re.compile(r"sha256:[a-f0-9]{64}|sha512:[a-f0-9]{128}")
content_types = st.one_of(
    st.sampled_from(
        sorted(MANIFEST_TYPES) + ["", "application/json", "application/vnd.docker.distribution.manifest.v1+json"]
    ),
    st.text(max_size=40),
)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4),
    max_leaves=20,
)
hex_digest = st.binary(min_size=1, max_size=8).map(lambda b: "sha256:" + hashlib.sha256(b).hexdigest())
media_types = st.one_of(
    st.sampled_from(
        [
            "application/vnd.oci.image.config.v1+json",
            "application/vnd.oci.image.layer.v1.tar+gzip",
            *sorted(FOREIGN_LAYER_TYPES),
            *sorted(MANIFEST_TYPES),
        ]
    ),
    st.text(max_size=300),
)
sizes = st.one_of(st.integers(0, 10**6), st.integers(min_value=-(2**70), max_value=2**70), st.just(2**63))


def descriptors(digests=hex_digest):
    return st.fixed_dictionaries(
        {"mediaType": media_types, "digest": st.one_of(digests, st.text(max_size=80)), "size": sizes},
        optional={
            "urls": st.lists(st.text(max_size=20), max_size=2),
            "platform": json_values,
            "annotations": json_values,
            "artifactType": st.text(max_size=20),
        },
    )


documents = st.fixed_dictionaries(
    {"schemaVersion": st.one_of(st.just(2), json_values)},
    optional={
        "mediaType": st.one_of(st.sampled_from(sorted(MANIFEST_TYPES)), json_values),
        "config": st.one_of(descriptors(), json_values),
        "layers": st.one_of(st.lists(descriptors(), max_size=3), json_values),
        "manifests": st.one_of(st.lists(descriptors(), max_size=3), json_values),
        "subject": st.one_of(descriptors(), json_values),
        "artifactType": st.one_of(st.text(max_size=300), json_values),
        "annotations": st.one_of(st.dictionaries(st.text(max_size=10), st.text(max_size=10), max_size=3), json_values),
    },
)


def check_accepted(parsed, raw: bytes) -> None:
    assert parsed.digest == "sha256:" + hashlib.sha256(raw).hexdigest()
    assert parsed.media_type in MANIFEST_TYPES
    described = [parsed.config] if parsed.config else []
    described += parsed.layers + parsed.children + ([parsed.subject] if parsed.subject else [])
    for descriptor in described:
        assert DIGEST.fullmatch(descriptor.digest), descriptor.digest
        assert isinstance(descriptor.size, int) and 0 <= descriptor.size < 2**63, descriptor.size
        assert isinstance(descriptor.media_type, str) and descriptor.media_type
    if parsed.is_index:
        assert parsed.config is None and not parsed.layers
    else:
        assert parsed.config is not None and not parsed.children


@given(st.binary(max_size=300), content_types)
@example(b"\xff\xfe", OCI_MANIFEST)
@example(b"[]", "")
def test_arbitrary_bytes_raise_only_manifest_invalid(raw, content_type):
    try:
        parsed = parse_manifest(raw, content_type)
    except errors.ManifestInvalid:
        return
    check_accepted(parsed, raw)


@settings(max_examples=examples(300))
@given(documents, content_types)
def test_manifest_shaped_documents_raise_only_manifest_invalid(doc, content_type):
    raw = json.dumps(doc).encode()
    try:
        parsed = parse_manifest(raw, content_type)
    except errors.ManifestInvalid:
        return
    check_accepted(parsed, raw)


@given(
    config=st.builds(
        lambda d, s: {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": d, "size": s},
        hex_digest,
        st.integers(0, 2**40),
    ),
    layers=st.lists(
        st.builds(
            lambda d, s: {"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": d, "size": s},
            hex_digest,
            st.integers(0, 2**40),
        ),
        min_size=1,
        max_size=5,
    ),
    media_type=st.sampled_from([OCI_MANIFEST, DOCKER_MANIFEST]),
    indent=st.sampled_from([None, 2]),
)
def test_valid_image_manifests_round_trip(config, layers, media_type, indent):
    raw = json.dumps(
        {"schemaVersion": 2, "mediaType": media_type, "config": config, "layers": layers}, indent=indent
    ).encode()
    parsed = parse_manifest(raw, media_type)
    check_accepted(parsed, raw)
    assert (parsed.config.digest, parsed.config.size) == (config["digest"], config["size"])
    assert [(d.digest, d.size, d.media_type) for d in parsed.layers] == [
        (layer["digest"], layer["size"], layer["mediaType"]) for layer in layers
    ]


@given(
    children=st.lists(
        st.builds(
            lambda d, s: {
                "mediaType": OCI_MANIFEST,
                "digest": d,
                "size": s,
                "platform": {"os": "linux", "architecture": "amd64"},
            },
            hex_digest,
            st.integers(0, 2**20),
        ),
        max_size=5,
    ),
    media_type=st.sampled_from([OCI_INDEX, DOCKER_LIST]),
)
def test_valid_indexes_round_trip(children, media_type):
    raw = json.dumps({"schemaVersion": 2, "mediaType": media_type, "manifests": children}).encode()
    parsed = parse_manifest(raw, media_type)
    check_accepted(parsed, raw)
    assert [c.digest for c in parsed.children] == [c["digest"] for c in children]
    assert all(c.platform == {"os": "linux", "architecture": "amd64"} for c in parsed.children)


# -- end to end: PUT /v2/<name>/manifests/<tag> ---------------------------------------------------

text_values = st.one_of(st.text(max_size=40), st.text(min_size=250, max_size=400), st.just("a\x00b"))


@settings(max_examples=examples(60))
@given(
    config_type=st.one_of(st.just(None), text_values),
    artifact_type=st.one_of(st.just(None), text_values),
    annotations=st.one_of(st.just(None), json_values, st.dictionaries(text_values, text_values, max_size=2)),
    foreign_size=st.one_of(st.just(None), sizes),
    subject_size=st.one_of(st.just(None), sizes),
)
@example(config_type="a\x00b", artifact_type=None, annotations=None, foreign_size=None, subject_size=None)
@example(config_type=None, artifact_type="x" * 300, annotations=None, foreign_size=None, subject_size=None)
@example(config_type=None, artifact_type=None, annotations={"k": "\x00"}, foreign_size=None, subject_size=None)
@example(config_type=None, artifact_type=None, annotations=None, foreign_size=2**70, subject_size=None)
def test_manifest_put_never_fails(alice, config_type, artifact_type, annotations, foreign_size, subject_size):
    caller = V2("alice", PASSWORD)
    headers = caller.push("alice/app")
    image = make_image("put")
    for blob in image.blobs:
        assert caller.upload_blob("alice/app", blob, headers).status_code == 201
    doc = image.doc
    if config_type is not None:
        doc["config"]["mediaType"] = config_type
    if artifact_type is not None:
        doc["artifactType"] = artifact_type
    if annotations is not None:
        doc["annotations"] = annotations
    if foreign_size is not None:
        doc["layers"].append(
            {
                "mediaType": "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip",
                "digest": "sha256:" + "b" * 64,
                "size": foreign_size,
                "urls": ["https://example.invalid/layer"],
            }
        )
    if subject_size is not None:
        doc["subject"] = {"mediaType": OCI_MANIFEST, "digest": "sha256:" + "c" * 64, "size": subject_size}
    raw = json.dumps(doc).encode()
    response = caller.put_manifest("alice/app", "v1", raw, OCI_MANIFEST, headers)
    assert_oci(response)
    assert response.status_code in (201, 400), response.content
    if response.status_code == 201:
        fetched = caller.client.get("/v2/alice/app/manifests/v1", **headers)
        assert fetched.status_code == 200 and fetched.content == raw
        listed = caller.client.get(f"/v2/alice/app/referrers/{'sha256:' + 'c' * 64}", **headers)
        assert listed.status_code == 200, listed.content
