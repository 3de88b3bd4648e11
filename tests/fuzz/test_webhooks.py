"""Properties of build trigger webhook payloads: the custom git payload (guide 3.2.2) and the
push deliveries of GitHub, GitLab and Bitbucket.

Whatever JSON arrives, the parsers answer with metadata or PayloadError, nothing else; metadata
they accept satisfies the documented format; and the custom git webhook answers 200/400, never a
server error (PostgreSQL's jsonb refuses a NUL character that SQLite stores).
"""

import json

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from tests.fuzz.conftest import examples
from tests.registry_rest.conftest import world  # noqa: F401  (fixture)
from tests.triggers.conftest import SHA, custom_git, hook, push_payload  # noqa: F401  (fixtures)
from triggers import metadata as md
from triggers.metadata import PayloadError
from triggers.models import ProviderApp
from triggers.providers import PROVIDERS

scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=12)
json_values = st.recursive(
    scalars,
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=25,
)
strings = st.one_of(st.text(max_size=20), st.sampled_from(["", "\x00", "main", "refs/heads/main", SHA, "a\nb"]))
values = st.one_of(strings, json_values)


def keyed(keys: list[str], inner=values):
    """Objects with some of the keys a parser looks for, holding anything."""
    return st.dictionaries(st.sampled_from(keys), inner, max_size=len(keys))


def assert_metadata(metadata: dict) -> None:
    """The documented build metadata: strings where strings belong, a SHA, a ref."""
    assert md.COMMIT_RE.fullmatch(metadata["commit"])
    assert md.REF_RE.fullmatch(metadata["ref"])
    assert isinstance(metadata["default_branch"], str)
    for field in ("url", "message", "date"):
        if "commit_info" in metadata:
            assert isinstance(metadata["commit_info"][field], str)
    for role in ("author", "committer"):
        person = metadata.get("commit_info", {}).get(role)
        if person is not None:
            assert all(isinstance(person[k], str) for k in ("username", "url", "avatar_url"))
    json.dumps(metadata)  # storable


people = keyed(["username", "url", "avatar_url", "name", "login", "email"])
custom_payloads = st.one_of(
    json_values,
    st.fixed_dictionaries(
        {},
        optional={
            "commit": st.one_of(st.just(SHA), strings, values),
            "ref": st.one_of(st.sampled_from(["refs/heads/main", "refs/tags/v1", "refs/heads/a\x00b"]), values),
            "default_branch": st.one_of(st.just("main"), values),
            "commit_info": st.one_of(
                values,
                st.fixed_dictionaries(
                    {"url": strings, "message": strings, "date": strings},
                    optional={"author": st.one_of(people, values), "committer": st.one_of(people, values)},
                ),
            ),
        },
    ),
)


@settings(max_examples=examples(300))
@given(custom_payloads)
def test_custom_git_payload_validation(payload):
    try:
        metadata = md.payload_validate(payload)
    except PayloadError:
        return
    assert_metadata(metadata)


def provider(service: str):
    app = ProviderApp(service=service, client_id="id", web_url="https://git.example.com")
    return PROVIDERS[service](app, "secret")


commit_like = st.fixed_dictionaries(
    {},
    optional={
        "id": st.one_of(st.just(SHA), values),
        "hash": st.one_of(st.just(SHA), values),
        "message": values,
        "timestamp": values,
        "date": values,
        "url": values,
        "author": st.one_of(people, keyed(["raw", "user", "name", "email"]), values),
        "committer": st.one_of(people, values),
        "links": values,
    },
)
github_payloads = st.fixed_dictionaries(
    {},
    optional={
        "ref": st.one_of(st.just("refs/heads/main"), values),
        "after": values,
        "deleted": values,
        "head_commit": st.one_of(commit_like, values),
        "repository": st.one_of(keyed(["default_branch", "master_branch", "ssh_url"]), values),
        "sender": st.one_of(people, values),
    },
)
gitlab_payloads = st.fixed_dictionaries(
    {},
    optional={
        "object_kind": st.one_of(st.sampled_from(["push", "tag_push"]), values),
        "ref": st.one_of(st.just("refs/tags/v1"), values),
        "checkout_sha": st.one_of(st.just(SHA), values),
        "after": values,
        "commits": st.one_of(st.lists(commit_like, max_size=2), values),
        "project": st.one_of(keyed(["default_branch", "git_ssh_url"]), values),
        "repository": st.one_of(keyed(["git_ssh_url"]), values),
        "user_email": values,
        "user_username": values,
        "user_avatar": values,
    },
)
bitbucket_changes = st.fixed_dictionaries(
    {},
    optional={
        "new": st.one_of(
            st.fixed_dictionaries(
                {"type": st.sampled_from(["branch", "tag", "x"])},
                optional={"name": st.one_of(st.just("main"), values), "target": st.one_of(commit_like, values)},
            ),
            values,
        ),
        "old": values,
    },
)
bitbucket_payloads = st.fixed_dictionaries(
    {},
    optional={
        "push": st.one_of(
            st.fixed_dictionaries({"changes": st.one_of(st.lists(bitbucket_changes, max_size=3), values)}), values
        ),
        "repository": st.one_of(keyed(["full_name"]), values),
    },
)
remotes = st.one_of(st.just({}), st.just({"default_branch": "main", "git_url": "git@git.example.com:a/b.git"}))


def check_provider(service: str, payload, remote) -> None:
    try:
        mapped = provider(service).push_metadata(payload, remote=remote, lookup_commit=lambda sha: None)
    except PayloadError:
        return
    if mapped is None:
        return  # a deleted ref: nothing to build
    try:
        metadata = md.payload_validate(mapped)
    except PayloadError:
        return
    assert_metadata(metadata)


@settings(max_examples=examples(200))
@given(st.one_of(github_payloads, json_values), remotes)
def test_github_push_payloads(payload, remote):
    check_provider("github", payload, remote)


@settings(max_examples=examples(200))
@given(st.one_of(gitlab_payloads, json_values), remotes)
@example({"object_kind": "push", "ref": "refs/heads/main", "checkout_sha": SHA, "commits": 1}, {})
def test_gitlab_push_payloads(payload, remote):
    check_provider("gitlab", payload, remote)


@settings(max_examples=examples(200))
@given(st.one_of(bitbucket_payloads, json_values), remotes)
@example(
    {"push": {"changes": [{"new": {"type": "branch", "name": "main", "target": {"hash": SHA, "author": {"raw": 1}}}}]}},
    {},
)
@example({"push": {"changes": [{"new": {"type": "tag", "name": "v1", "target": {"hash": SHA, "links": [1]}}}]}}, {})
def test_bitbucket_push_payloads(payload, remote):
    check_provider("bitbucket", payload, remote)


meta_values = st.text(st.characters(codec="latin-1"), max_size=80)


@given(
    service=st.sampled_from(sorted(PROVIDERS)),
    meta=st.dictionaries(
        st.sampled_from(
            [
                "HTTP_X_HUB_SIGNATURE_256",
                "HTTP_X_HUB_SIGNATURE",
                "HTTP_X_GITLAB_TOKEN",
                "HTTP_X_GITHUB_EVENT",
                "HTTP_X_GITLAB_EVENT",
                "HTTP_X_EVENT_KEY",
                "HTTP_X_GITHUB_DELIVERY",
                "HTTP_X_REQUEST_UUID",
                "HTTP_X_GITLAB_EVENT_UUID",
                "HTTP_X_HOOK_UUID",
            ]
        ),
        meta_values,
    ),
    body=st.binary(max_size=64),
)
def test_delivery_headers_never_raise(service, meta, body):
    p = provider(service)
    assert isinstance(p.signature_valid(meta=meta, body=body, secret="s3cret"), bool)
    assert p.event_kind(meta) in ("push", "ping", "other")
    delivery = p.delivery_id(meta)
    assert delivery is None or 0 < len(delivery) <= 128


@given(regex=st.one_of(st.none(), st.text(max_size=20)), ref=st.one_of(st.none(), st.text(max_size=30)))
def test_branch_filter_on_cleaned_configs(regex, ref):
    """A filter that config_clean accepted never raises on any ref."""
    try:
        config = md.config_clean({"build_source": "git@git.example.com:a/b.git", "branchtag_regex": regex})
    except md.ConfigError:
        return
    assert isinstance(md.ref_matches(config.get("branchtag_regex"), ref), bool)


@given(
    templates=st.lists(st.text(max_size=30), max_size=3),
    payload=st.fixed_dictionaries(
        {
            "commit": st.just(SHA),
            "ref": st.one_of(
                st.sampled_from(["refs/heads/main", "refs/tags/v1.0", "refs/remotes/origin/x"]),
                st.text(max_size=30).map(lambda t: "refs/heads/" + t),
            ),
            "default_branch": strings,
        },
        optional={"commit_info": st.fixed_dictionaries({"url": strings, "message": strings, "date": strings})},
    ),
)
def test_tags_for_builds_are_docker_tags(templates, payload):
    """Tags computed from a cleaned config and a validated payload are always Docker tags."""
    try:
        config = md.config_clean({"build_source": "git@git.example.com:a/b.git", "tag_templates": templates})
        metadata = md.payload_validate(payload)
    except (md.ConfigError, PayloadError):
        return
    tags = md.tags_for(config, metadata)
    assert tags and all(md.TAG_RE.fullmatch(tag) for tag in tags), tags


# -- the custom git webhook end to end -------------------------------------------------------------


@settings(max_examples=examples(40))
@given(payload=custom_payloads)
@example(payload=push_payload(ref="refs/heads/a\x00b"))
@example(payload=push_payload(commit_info={"url": "", "message": "\x00", "date": ""}))
@example(payload=push_payload(default_branch="\x00"))
def test_custom_git_webhook_never_fails(hook, payload):  # noqa: F811
    response = hook.post(payload)
    assert response.status_code in (200, 400), (response.status_code, response.content[:300])
    body = response.json()
    assert body["status"] == response.status_code
    if response.status_code == 400:
        assert body["error_message"]


@pytest.mark.parametrize("raw", [b"\xff", b"{", b"[]", b"null", b'"x"', b"1e999999"])
def test_custom_git_webhook_odd_bodies(hook, raw):  # noqa: F811
    response = hook.post(raw=raw)
    assert response.status_code == 400, response.content
