"""Endpoint properties of /v2/: arbitrary names, references, digests, Range and Content-Range
headers never produce a server error, and every error is the OCI error body.

One user (alice) with one pushed image; hypothesis varies what the client sends.
"""

from urllib.parse import quote

import pytest
from django.test import RequestFactory
from hypothesis import example, given, settings
from hypothesis import strategies as st

from registry import errors
from registry.api.views import _content_range, _parse_range
from tests.conftest import PASSWORD, basic
from tests.fuzz.conftest import examples
from tests.fuzz.test_names import mutated, valid_digests, valid_names, valid_tags
from tests.registry.conftest import V2, error_codes, make_image, sha256

NAME = "alice/app"
# Every code the registry's errors carry (the OCI distribution-spec codes it uses).
OCI_CODES = {
    value.code
    for value in vars(errors).values()
    if isinstance(value, type) and issubclass(value, errors.RegistryError) and value is not errors.RegistryError
}

# Printable text that survives a URL path (the test client sends it percent-encoded).
url_text = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), min_size=1, max_size=80)
references = st.one_of(valid_tags, valid_digests, mutated(valid_tags), mutated(valid_digests), url_text)
repo_names = st.one_of(st.just(NAME), valid_names, mutated(valid_names), url_text)


def assert_oci(response) -> None:
    assert response.status_code < 500, (response.status_code, response.content[:500])
    if response.status_code >= 400 and response.request["REQUEST_METHOD"] != "HEAD":
        codes = error_codes(response)
        assert codes and set(codes) <= OCI_CODES, codes
    assert response["Docker-Distribution-API-Version"] == "registry/2.0"


@pytest.fixture
def pushed(alice):
    caller = V2("alice", PASSWORD)
    image = caller.push_image(NAME, "latest", make_image("fuzz", layers=1))
    return caller, image


def path(name: str, *rest: str) -> str:
    return "/v2/" + "/".join(quote(part, safe="/") for part in (name, *rest))


@settings(max_examples=examples(60))
@given(name=repo_names, reference=references, method=st.sampled_from(["get", "head", "delete", "put"]))
@example(name=NAME, reference="latest\n", method="put")
@example(name=NAME + "\n", reference="latest", method="get")
def test_manifest_urls_never_fail(pushed, name, reference, method):
    caller, image = pushed
    headers = caller.delete(NAME)
    url = path(name, "manifests", reference)
    if method == "put":
        response = caller.client.put(url, data=image.raw, content_type=image.media_type, **headers)
    else:
        response = getattr(caller.client, method)(url, **headers)
    assert_oci(response)
    if response.status_code == 201:
        # Only a reference of the tag grammar (or the manifest's digest) can become a tag.
        assert (
            reference == image.digest
            or reference in caller.client.get(path(NAME, "tags", "list"), **headers).json()["tags"]
        )


@settings(max_examples=examples(60))
@given(name=repo_names, digest=references, method=st.sampled_from(["get", "head", "delete"]))
@example(name=NAME, digest="sha256:" + "a" * 64 + "\n", method="get")
def test_blob_urls_never_fail(pushed, name, digest, method):
    caller, _ = pushed
    response = getattr(caller.client, method)(path(name, "blobs", digest), **caller.delete(NAME))
    assert_oci(response)


@settings(max_examples=examples(40))
@given(
    name=repo_names,
    query=st.dictionaries(
        st.sampled_from(["n", "last", "digest", "mount", "from", "artifactType"]), url_text, max_size=3
    ),
    kind=st.sampled_from(["tags", "referrers", "upload", "catalog"]),
)
@example(name=NAME, query={"last": "a\x00"}, kind="catalog")
@example(name=NAME, query={"last": "a\x00"}, kind="tags")
@example(name=NAME, query={"artifactType": "a\x00", "last": "\x00"}, kind="referrers")
@example(name=NAME, query={"n": "\x00"}, kind="tags")
def test_listings_and_upload_starts_never_fail(pushed, name, query, kind):
    caller, image = pushed
    headers = caller.push(NAME)
    if kind == "tags":
        response = caller.client.get(path(name, "tags", "list"), query, **headers)
    elif kind == "referrers":
        response = caller.client.get(path(name, "referrers", image.digest), query, **headers)
    elif kind == "catalog":
        response = caller.client.get("/v2/_catalog", query, **headers)
    else:
        url = path(name, "blobs", "uploads/") + "?" + "&".join(f"{k}={quote(v)}" for k, v in query.items())
        response = caller.client.post(url, data=b"abc", content_type="application/octet-stream", **headers)
    assert_oci(response)


# -- Range on blob GET ----------------------------------------------------------------------------

range_headers = st.one_of(
    st.builds(
        lambda a, b: f"bytes={a}-{b}",
        st.one_of(st.just(""), st.integers(0, 10**30).map(str)),
        st.one_of(st.just(""), st.integers(0, 10**30).map(str)),
    ),
    st.text(alphabet="bytes=-0123456789, */", max_size=30),
    st.text(st.characters(codec="latin-1"), max_size=30),
)


@given(header=range_headers, size=st.integers(0, 10**12))
@example(header="bytes=-0", size=10)
@example(header="bytes=0-", size=0)
def test_parse_range(header, size):
    try:
        result = _parse_range(header, size)
    except errors.BlobRangeNotSatisfiable as exc:
        assert exc.status == 416 and exc.headers["Content-Range"] == f"bytes */{size}"
        return
    if result is not None:
        start, end = result
        assert 0 <= start <= end < size


@settings(max_examples=examples(60))
@given(header=range_headers)
@example(header="bytes=0-0")
@example(header="bytes=-1")
def test_blob_range_requests(pushed, header):
    caller, image = pushed
    blob = image.blobs[-1]
    response = caller.client.get(path(NAME, "blobs", sha256(blob)), HTTP_RANGE=header, **caller.pull(NAME))
    assert_oci(response)
    assert response.status_code in (200, 206, 416), response.status_code
    if response.status_code == 200:
        assert b"".join(response.streaming_content) == blob
    elif response.status_code == 206:
        body = b"".join(response.streaming_content)
        unit, _, spec = response["Content-Range"].partition(" ")
        span, _, total = spec.partition("/")
        start, end = map(int, span.split("-"))
        assert unit == "bytes" and int(total) == len(blob)
        assert body == blob[start : end + 1] and int(response["Content-Length"]) == len(body)
    else:
        assert response["Content-Range"] == f"bytes */{len(blob)}"


# -- Content-Range on upload PATCH ----------------------------------------------------------------

content_ranges = st.one_of(
    st.builds(
        lambda a, b, t: f"{a}-{b}{t}",
        st.integers(0, 10**20),
        st.integers(0, 10**20),
        st.sampled_from(["", "/*", "/3", "/99999999999999999999"]),
    ),
    st.builds(lambda a, b: f"bytes {a}-{b}", st.integers(0, 5), st.integers(0, 5)),
    st.text(alphabet="bytes 0123456789-/*", max_size=30),
    st.text(st.characters(codec="latin-1"), max_size=30),
)


@given(header=content_ranges, length=st.one_of(st.none(), st.integers(0, 10**6)))
def test_content_range_parser(header, length):
    request = RequestFactory().patch("/", HTTP_CONTENT_RANGE=header)
    try:
        start = _content_range(request, length)
    except errors.RangeInvalid as exc:
        assert exc.status == 416
        return
    if header:
        assert start is not None and start >= 0


@settings(max_examples=examples(50))
@given(header=content_ranges, body=st.binary(max_size=8))
@example(header="0-2", body=b"abc")
def test_upload_patch_never_fails(pushed, header, body):
    caller, _ = pushed
    headers = caller.push(NAME)
    started = caller.client.post(path(NAME, "blobs", "uploads/"), **headers)
    assert started.status_code == 202
    response = caller.client.patch(
        started["Location"], data=body, content_type="application/octet-stream", HTTP_CONTENT_RANGE=header, **headers
    )
    assert_oci(response)
    assert response.status_code in (202, 400, 416), response.status_code
    if response.status_code == 202:
        assert response["Range"] == f"0-{max(len(body) - 1, 0)}"


@settings(max_examples=examples(40))
@given(
    scopes=st.lists(st.one_of(st.text(max_size=60), valid_names.map(lambda n: f"repository:{n}:pull,push")), max_size=4)
)
def test_token_endpoint_never_fails(alice, scopes):
    caller = V2("alice", PASSWORD)
    credentials = {"HTTP_AUTHORIZATION": basic("alice", PASSWORD)}
    response = caller.client.get("/v2/auth", {"service": "testserver", "scope": scopes}, **credentials)
    assert response.status_code == 200, response.content
    assert response.json()["token"]
