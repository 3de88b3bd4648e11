"""Properties of the name grammars: repository names, tags, digests, namespace and robot names,
token scopes and Quay's OAuth scope lists.

Each parser either accepts (and then the value fully matches the OCI distribution-spec grammar)
or raises its documented error; valid values round-trip.
"""

import re

import pytest
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from hypothesis import example, given
from hypothesis import strategies as st

from accounts import scopes as quay_scopes
from accounts import services as account_services
from registry import errors, names
from registry.tokens import Scope, parse_scope

# The grammars as the OCI distribution spec writes them, matched in full (no "$" before a newline).
SPEC_COMPONENT = r"[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*"
SPEC_NAME = re.compile(rf"{SPEC_COMPONENT}(/{SPEC_COMPONENT})*")
SPEC_TAG = re.compile(r"[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}")
SPEC_DIGEST = re.compile(r"[a-z0-9]+([+._-][a-z0-9]+)*:[a-zA-Z0-9=_-]+")

components = st.from_regex(re.compile(r"[a-z0-9]{1,6}((\.|_|__|-{1,3})[a-z0-9]{1,6}){0,2}"), fullmatch=True)
valid_names = st.lists(components, min_size=2, max_size=4).map("/".join).filter(lambda s: len(s) <= 255)
valid_tags = st.from_regex(SPEC_TAG, fullmatch=True)
hex64 = st.text("0123456789abcdef", min_size=64, max_size=64)
valid_digests = st.one_of(
    hex64.map(lambda h: f"sha256:{h}"),
    st.text("0123456789abcdef", min_size=128, max_size=128).map(lambda h: f"sha512:{h}"),
)
# Near misses: valid values with a character added, removed or replaced, trailing newlines and
# whitespace, upper case, unicode look-alikes, NUL.
edits = st.sampled_from(["\n", "\r\n", " ", "\x00", "/", ":", "A", "-", ".", "_", "\u0131", "\uff41", "..", "//"])


def mutated(strategy):
    @st.composite
    def build(draw):
        value = draw(strategy)
        where = draw(st.integers(0, len(value)))
        how = draw(st.sampled_from(["insert", "replace", "delete", "append"]))
        piece = draw(edits)
        if how == "insert":
            return value[:where] + piece + value[where:]
        if how == "replace":
            return value[:where] + piece + value[where + 1 :]
        if how == "delete":
            return value[:where] + value[where + 1 :]
        return value + piece

    return build()


any_text = st.one_of(st.text(max_size=300), st.text(alphabet="abc019._-/:\n", max_size=40))


# -- repository names ---------------------------------------------------------------------------


@given(valid_names)
def test_valid_repository_names_round_trip(name):
    namespace, rest = names.split_repository_name(name)
    assert f"{namespace}/{rest}" == name
    assert "/" not in namespace


@given(st.one_of(any_text, mutated(valid_names)))
@example("acme/app\n")
@example("acme/app\x00")
def test_repository_names_accepted_only_when_they_match_the_spec(name):
    try:
        namespace, rest = names.split_repository_name(name)
    except errors.NameInvalid as exc:
        assert exc.status == 400 and exc.code == "NAME_INVALID"
        return
    assert SPEC_NAME.fullmatch(name), name
    assert "/" in name and len(name) <= 255
    assert f"{namespace}/{rest}" == name


# -- tags -----------------------------------------------------------------------------------------


@given(valid_tags)
def test_valid_tags_round_trip(tag):
    assert names.validate_tag(tag) == tag


@given(st.one_of(any_text, mutated(valid_tags)))
@example("latest\n")
@example("a" * 129)
def test_tags_accepted_only_when_they_match_the_spec(tag):
    try:
        result = names.validate_tag(tag)
    except errors.ManifestInvalid as exc:
        assert exc.status == 400
        return
    assert result == tag
    assert SPEC_TAG.fullmatch(tag), tag


# -- digests --------------------------------------------------------------------------------------


@given(valid_digests)
def test_valid_digests_round_trip(digest):
    assert names.validate_digest(digest) == digest
    assert names.is_digest(digest)
    assert names.ANY_DIGEST_RE.match(digest)


@given(st.one_of(any_text, mutated(valid_digests), st.none()))
@example("sha256:" + "a" * 64 + "\n")
@example("sha256:" + "A" * 64)
def test_digests_accepted_only_when_they_match_the_spec(digest):
    try:
        result = names.validate_digest(digest)
    except errors.DigestInvalid as exc:
        assert exc.status == 400 and exc.code == "DIGEST_INVALID"
        return
    assert result == digest
    assert SPEC_DIGEST.fullmatch(digest), digest
    algorithm, _, encoded = digest.partition(":")
    assert {"sha256": 64, "sha512": 128}[algorithm] == len(encoded)
    assert re.fullmatch(r"[a-f0-9]+", encoded)


@given(st.one_of(any_text, mutated(valid_digests)))
def test_general_digest_grammar_is_the_spec_grammar(text):
    """The grammar that tells "malformed" from "unsupported algorithm" accepts exactly the spec's."""
    assert bool(names.ANY_DIGEST_RE.match(text)) == bool(SPEC_DIGEST.fullmatch(text)), text


# -- namespace, robot and team names --------------------------------------------------------------


@given(st.one_of(any_text, mutated(components), components))
@example("alice\n")
def test_namespace_names_accepted_only_when_they_are_path_components(name):
    try:
        account_services.validate_namespace_name(name)
    except ValidationError:
        return
    assert re.fullmatch(SPEC_COMPONENT, name), name
    assert 2 <= len(name) <= 255


@given(st.one_of(any_text, mutated(components), components))
@example("deploy\n")
@example("de\x00ploy")
@example("t" * 300)
def test_robot_and_team_names_are_plain(org, name):
    try:
        robot, _ = account_services.robot_create(namespace=org, short_name=name)
    except ValidationError:
        pass
    else:
        assert re.fullmatch(r"[a-z0-9]+([._-][a-z0-9]+)*", name) and 2 <= len(name) <= 255, name
        assert robot.username == f"acme+{name}"
        robot.delete()
    try:
        with transaction.atomic():
            team = account_services.team_create(organization=org, name=name)
    except ValidationError:
        return
    except IntegrityError:
        assert name == "owners"  # the one team acme has
        return
    assert re.fullmatch(r"[a-z0-9]+([._-][a-z0-9]+)*", name) and len(name) <= 255, name
    team.delete()


# -- registry token scopes ------------------------------------------------------------------------

actions = st.lists(st.sampled_from(["pull", "push", "delete", "*", "x"]), max_size=4)


@given(st.sampled_from(["repository", "registry", "repository(plugin)"]), valid_names, actions)
def test_scopes_round_trip(type_, name, wanted):
    text = f"{type_}:{name}:{','.join(wanted)}"
    scope = parse_scope(text)
    assert scope == Scope(type=type_.split("(")[0], name=name, actions=tuple(wanted))


@given(st.text(max_size=200))
@example("repository:localhost:5000/acme/app:pull")
@example(":::")
def test_scope_parser_never_raises(text):
    scope = parse_scope(text)
    if scope is None:
        return
    assert scope.name and ":" not in scope.type
    assert all(action and "," not in action for action in scope.actions)
    assert text.startswith(text.partition(":")[0]) and text.endswith(",".join(scope.actions) if scope.actions else "")


@given(st.lists(st.sampled_from(sorted(quay_scopes.ALL)), max_size=8), st.sampled_from([" ", ",", ", ", "  "]))
def test_quay_scope_lists_round_trip(chosen, separator):
    assert quay_scopes.parse(separator.join(chosen)) == frozenset(chosen)
    expanded = quay_scopes.expand(chosen)
    assert set(chosen) <= expanded <= quay_scopes.ALL


@given(st.text(max_size=100))
def test_quay_scope_lists_raise_only_value_error(text):
    try:
        parsed = quay_scopes.parse(text)
    except ValueError as exc:
        assert "Unknown scopes" in str(exc)
        return
    assert parsed <= quay_scopes.ALL


def test_regression_trailing_newline_is_refused_everywhere():
    # "$" in a Python regex also matches before a final newline: the grammars must match in full.
    with pytest.raises(errors.ManifestInvalid):
        names.validate_tag("latest\n")
    with pytest.raises(errors.DigestInvalid):
        names.validate_digest("sha256:" + "a" * 64 + "\n")
    with pytest.raises(errors.NameInvalid):
        names.split_repository_name("acme/app\n")
    with pytest.raises(ValidationError):
        account_services.validate_namespace_name("alice\n")
    assert not account_services.ROBOT_SHORT_RE.fullmatch("deploy\n")
