"""Fetch Tag's "Squashed Docker Image": the credentials to choose from (no robot on public
repositories, the namespace's robots that may read, with their tokens, for those who may see robot
tokens, and the viewer's own account), the full ``curl ... | docker load`` command of each, the
configured scheme and host, and the choice made without JavaScript."""

from __future__ import annotations

import re
from html import unescape

from accounts import services as account_services
from registry.models import Role
from squash.models import SquashSettings
from tests.registry.conftest import grant, make_image, store_image, user_principal
from tests.ui.conftest import make_repository

FETCH = "/repository/alice/{name}?tab=tags&tag=v1&action=fetch&format=squash"


def options(response) -> list[tuple[str, str, str]]:
    """(value, command, label) of each credential option."""
    html = response.content.decode()
    select = re.search(r'<select id="fetch-squash-option".*?</select>', html, re.S).group(0)
    return [
        (unescape(value), unescape(command), unescape(label))
        for value, command, label in re.findall(
            r'<option value="([^"]+)" data-command="([^"]+)"(?: selected)?>([^<]+)</option>', select
        )
    ]


def shown_command(response) -> str:
    match = re.search(r'<textarea id="fetch-command"[^>]*>([^<]*)</textarea>', response.content.decode())
    return unescape(match.group(1))


def test_owners_choose_among_the_robots_that_may_read(as_alice, alice):
    repository = make_repository(alice.namespace, "private", alice)
    store_image(repository, "v1", make_image("p"), user_principal(alice))
    reader, token = account_services.robot_create(namespace=alice.namespace, short_name="deploy")
    account_services.robot_create(namespace=alice.namespace, short_name="idle")  # no permission: not offered
    grant(repository, reader, Role.READ)
    response = as_alice.get(FETCH.format(name="private"))
    assert response.status_code == 200
    url = "testserver/c1/squash/alice/private/v1"
    assert options(response) == [
        ("robot:alice+deploy", f"curl -L -f http://alice+deploy:{token}@{url} | docker load", "alice+deploy"),
        ("account", f"curl -L -f -u alice http://{url} | docker load", "alice (curl asks for your password)"),
    ]
    # The first credential's command is shown; the options only show with this format (script).
    assert shown_command(response) == f"curl -L -f http://alice+deploy:{token}@{url} | docker load"
    assert 'data-show-when="fetch-format" data-show-values="squash"' in response.content.decode()


def test_the_choice_is_shown_without_javascript(as_alice, alice):
    repository = make_repository(alice.namespace, "private", alice)
    store_image(repository, "v1", make_image("p"), user_principal(alice))
    grant(repository, account_services.robot_create(namespace=alice.namespace, short_name="deploy")[0], Role.READ)
    response = as_alice.get(FETCH.format(name="private") + "&option=account")
    assert shown_command(response) == "curl -L -f -u alice http://testserver/c1/squash/alice/private/v1 | docker load"
    assert re.search(r'<option value="account"[^>]* selected>', response.content.decode())


def test_readers_who_cannot_see_robot_tokens_use_their_account(as_bob, alice, bob):
    repository = make_repository(alice.namespace, "private", alice)
    store_image(repository, "v1", make_image("p"), user_principal(alice))
    grant(repository, account_services.robot_create(namespace=alice.namespace, short_name="deploy")[0], Role.READ)
    grant(repository, bob, Role.READ)
    response = as_bob.get(FETCH.format(name="private"))
    assert [value for value, _, _ in options(response)] == ["account"]
    assert "deploy" not in response.content.decode()


def test_visitors_of_a_public_repository_need_no_credentials(anonymous, public_repo):
    response = anonymous.get(FETCH.format(name="hello"))
    assert options(response) == [
        (
            "anonymous",
            "curl -L -f http://testserver/c1/squash/alice/hello/v1 | docker load",
            "No robot (public repository)",
        )
    ]


def test_the_command_follows_the_configured_scheme_and_host(as_alice, public_repo, settings):
    settings.SERVER_HOSTNAME = "registry.example.com"
    settings.PREFERRED_URL_SCHEME = "https"
    response = as_alice.get(FETCH.format(name="hello"))
    assert shown_command(response) == "curl -L -f https://registry.example.com/c1/squash/alice/hello/v1 | docker load"


def test_admins_switch_squash_at_push_on_the_settings_tab(as_alice, as_bob, alice, bob):
    repository = make_repository(alice.namespace, "private", alice)
    page = as_alice.get("/repository/alice/private?tab=settings").content.decode()
    assert 'action="/repository/alice/private/-/squash"' in page
    assert '<input type="checkbox" name="squash_at_push">' in page
    response = as_alice.post("/repository/alice/private/-/squash", {"squash_at_push": "on"})
    assert response.status_code == 302 and response["Location"].endswith("?tab=settings")
    assert SquashSettings.objects.get(repository=repository).squash_at_push is True
    page = as_alice.get("/repository/alice/private?tab=settings").content.decode()
    assert '<input type="checkbox" name="squash_at_push" checked>' in page
    as_alice.post("/repository/alice/private/-/squash", {})
    assert SquashSettings.objects.get(repository=repository).squash_at_push is False
    # Writers are not admins; outsiders do not see the repository.
    grant(repository, bob, Role.WRITE)
    assert as_bob.post("/repository/alice/private/-/squash", {"squash_at_push": "on"}).status_code == 403
    assert SquashSettings.objects.get(repository=repository).squash_at_push is False
