"""Fetch Tag: the Image format choices with full command lines (docker pull by tag and by digest,
podman pull, rkt fetch; oras and helm for application repositories), the registry host they
name, the Copy Command button, and who may open it."""

from __future__ import annotations

import re
from html import unescape

import pytest

from registry import selectors as registry_selectors
from registry.models import Repository, Role
from tests.registry.conftest import grant, make_image, store_image, user_principal
from tests.ui.conftest import make_repository, text
from ui.views import tags as tag_views

FETCH = "/repository/alice/hello?tab=tags&tag=v1&action=fetch"


def digest_of(repository, name: str) -> str:
    return registry_selectors.tag_alive(repository=repository, name=name).manifest.digest


def choices(response) -> list[tuple[str, str, str]]:
    """(value, command, label) of each Image format option."""
    html = response.content.decode()
    select = re.search(r'<select id="fetch-format".*?</select>', html, re.S).group(0)
    return [
        (value, unescape(command), label)
        for value, command, label in re.findall(
            r'<option value="([^"]+)" data-command="([^"]+)"(?: selected)?>([^<]+)</option>', select
        )
    ]


def shown_command(response) -> str:
    match = re.search(r'<textarea id="fetch-command"[^>]*>([^<]*)</textarea>', response.content.decode())
    return unescape(match.group(1))


def test_every_image_format_has_its_full_command(as_alice, public_repo):
    digest = digest_of(public_repo, "v1")
    response = as_alice.get(FETCH)
    assert response.status_code == 200
    ref = "testserver/alice/hello"
    assert choices(response) == [
        ("docker-tag", f"docker pull {ref}:v1", "Docker Pull (by tag)"),
        ("docker-digest", f"docker pull {ref}@{digest}", "Docker Pull (by digest)"),
        ("podman-tag", f"podman pull {ref}:v1", "Podman Pull (by tag)"),
        ("podman-digest", f"podman pull {ref}@{digest}", "Podman Pull (by digest)"),
        ("squash", "curl -L -f http://testserver/c1/squash/alice/hello/v1 | docker load", "Squashed Docker Image"),
        ("rkt", f"rkt fetch {ref}:v1", "rkt Fetch"),
    ]
    # The first choice is shown until another is picked.
    assert shown_command(response) == f"docker pull {ref}:v1"
    html = response.content.decode()
    assert '<label for="fetch-format">Image format</label>' in html
    assert '<button type="button" data-copy-target="fetch-command">Copy Command</button>' in html
    assert f"Digest of v1: {digest}" in text(response)


def test_the_chosen_format_is_shown_without_javascript(as_alice, public_repo):
    digest = digest_of(public_repo, "v1")
    response = as_alice.get(f"{FETCH}&format=docker-digest")
    assert shown_command(response) == f"docker pull testserver/alice/hello@{digest}"
    assert '<option value="docker-digest" data-command="docker pull testserver/alice/hello@' in (
        response.content.decode()
    )
    assert re.search(r'<option value="docker-digest"[^>]* selected>', response.content.decode())
    # The form that picks it keeps the tab, the tag and the place in the listing.
    page = as_alice.get("/repository/alice/hello?tab=tags&filter=v&page=1&tag=v1&action=fetch").content.decode()
    form = re.search(r'<form method="get"[^>]*class="stacked fetch-form">.*?</form>', page, re.S).group(0)
    for hidden in ('name="tab" value="tags"', 'name="filter" value="v"', 'name="tag" value="v1"', 'value="fetch"'):
        assert hidden in form
    # An unknown choice falls back to the first.
    assert shown_command(as_alice.get(f"{FETCH}&format=nope")).startswith("docker pull testserver/alice/hello:v1")


def test_commands_name_the_configured_registry_host(as_alice, public_repo, settings):
    settings.SERVER_HOSTNAME = "registry.example.com:8443"
    response = as_alice.get(f"{FETCH}&format=rkt")
    assert shown_command(response) == "rkt fetch registry.example.com:8443/alice/hello:v1"


def test_a_nested_repository_name_is_kept_whole(as_alice, alice):
    repository = make_repository(alice.namespace, "team/app", alice)
    store_image(repository, "1.0", make_image("nested"), user_principal(alice))
    response = as_alice.get("/repository/alice/team/app?tab=tags&tag=1.0&action=fetch&format=podman-tag")
    assert shown_command(response) == "podman pull testserver/alice/team/app:1.0"


def test_application_repositories_offer_oras_and_helm(as_alice, alice):
    repository = make_repository(alice.namespace, "charts", alice, kind=Repository.Kind.APPLICATION)
    helm = "application/vnd.cncf.helm.config.v1+json"
    artifact = make_image("chart", artifact_type=helm, config_type=helm)
    store_image(repository, "0.1.0", artifact, user_principal(alice))
    digest = digest_of(repository, "0.1.0")
    response = as_alice.get("/repository/alice/charts?tab=tags&tag=0.1.0&action=fetch")
    ref = "testserver/alice/charts"
    assert [(value, command) for value, command, _ in choices(response)] == [
        ("oras-tag", f"oras pull {ref}:0.1.0"),
        ("oras-digest", f"oras pull {ref}@{digest}"),
        ("helm", f"helm pull oci://{ref} --version 0.1.0"),
    ]


@pytest.mark.parametrize("who", ["reader", "anonymous"])
def test_readers_and_visitors_fetch_public_tags(who, bob, as_bob, anonymous, public_repo):
    if who == "reader":
        grant(public_repo, bob, Role.READ)
    response = (as_bob if who == "reader" else anonymous).get(FETCH)
    assert response.status_code == 200 and shown_command(response) == "docker pull testserver/alice/hello:v1"


def test_private_tags_cannot_be_fetched_by_outsiders(as_bob, alice, private_repo):
    store_image(private_repo, "v1", make_image("p"), user_principal(alice))
    assert as_bob.get("/repository/alice/secret?tab=tags&tag=v1&action=fetch").status_code == 404


def test_a_tag_that_is_gone_has_nothing_to_fetch(as_alice, public_repo):
    response = as_alice.get("/repository/alice/hello?tab=tags&tag=gone&action=fetch")
    assert response.status_code == 200
    assert "There is no tag gone in alice/hello" in text(response)
    assert 'id="fetch-command"' not in response.content.decode()


def test_a_later_feature_adds_its_own_format(as_alice, public_repo, monkeypatch):
    """The squash issue will add Squashed Docker Image this way."""
    monkeypatch.setattr(tag_views, "FETCH_FORMATS", list(tag_views.FETCH_FORMATS))
    tag_views.register_fetch_format(
        tag_views.FetchFormat("squashed", "Squashed Docker Image", lambda ref, tag, digest: f"curl -f {ref}/{tag}"),
        after="docker-digest",
    )
    values = [value for value, _, _ in choices(as_alice.get(FETCH))]
    assert values == ["docker-tag", "docker-digest", "squashed", "podman-tag", "podman-digest", "squash", "rkt"]
