"""The repository page: who may open it, the Information tab (Markdown rendered safely, pull
commands, recent tags, summary), Usage Logs, tab switching with and without htmx."""

import pytest

from registry.models import Role
from tests.registry.conftest import grant, make_image, store_image, user_principal
from tests.ui.conftest import make_repository, text
from ui.views import repository as repository_views


def test_anonymous_visitors_read_public_repositories(anonymous, public_repo):
    response = anonymous.get("/repository/alice/hello")
    assert response.status_code == 200
    body = text(response)
    assert "alice / hello" in body and "Public" in body
    # Tabs for writers and admins are not offered.
    assert "Settings" not in body and "Usage Logs" not in body


def test_a_hidden_repository_is_not_found_and_anonymous_visitors_sign_in_first(anonymous, as_bob, private_repo):
    assert as_bob.get("/repository/alice/secret").status_code == 404
    # The same answer for a repository that does not exist: nothing can be probed.
    assert as_bob.get("/repository/alice/nothing-here").status_code == 404
    for url in ("/repository/alice/secret", "/repository/alice/nothing-here"):
        response = anonymous.get(url)
        assert response.status_code == 302 and response["Location"].startswith("/signin?next=")


def test_malformed_names_are_not_found(as_alice):
    assert as_alice.get("/repository/alice").status_code == 404
    assert as_alice.get("/repository/Alice/Hello").status_code == 404


def test_the_information_tab_renders_the_description_as_safe_markdown(as_alice, alice):
    description = (
        "# Title\n\nSome **bold** text and [a link](https://example.com).\n\n"
        "<script>alert('x')</script>\n\n[bad](javascript:alert(1))\n\n<img src=x onerror=alert(1)>"
    )
    make_repository(alice.namespace, "docs", alice, description=description)
    body = as_alice.get("/repository/alice/docs").content.decode()
    assert "<h1>Title</h1>" in body
    assert "<strong>bold</strong>" in body
    assert '<a href="https://example.com" rel="nofollow noopener noreferrer">a link</a>' in body
    assert "<script>alert" not in body and "alert('x')" not in body
    assert "javascript:" not in body
    assert "onerror" not in body


def test_it_shows_pull_commands_recent_tags_and_summary(as_alice, alice, public_repo):
    store_image(public_repo, "v2", make_image("second"), user_principal(alice))
    response = as_alice.get("/repository/alice/hello")
    body = text(response)
    html = response.content.decode()
    assert 'value="podman pull testserver/alice/hello:v2"' in html
    assert 'value="docker pull testserver/alice/hello:v2"' in html
    assert "Recent tags" in body and "v2" in body and "v1" in body
    assert "Tags 2" in body
    assert "Your role admin" in body
    assert "This repository is empty" not in body


def test_application_repositories_show_oras_and_helm_commands(as_alice, alice):
    make_repository(alice.namespace, "charts", alice, kind="application")
    html = as_alice.get("/repository/alice/charts").content.decode()
    assert 'value="oras pull testserver/alice/charts:latest"' in html
    assert 'value="helm pull oci://testserver/alice/charts --version latest"' in html
    assert "This repository is empty" in text(as_alice.get("/repository/alice/charts"))


def test_the_pull_command_uses_server_hostname(as_alice, public_repo, settings):
    settings.SERVER_HOSTNAME = "registry.example.com"
    assert "podman pull registry.example.com/alice/hello:v1" in as_alice.get("/repository/alice/hello").content.decode()


def test_readers_see_no_settings_and_get_403_asking_for_them(as_bob, bob, private_repo):
    grant(private_repo, bob, Role.READ)
    page = as_bob.get("/repository/alice/secret")
    assert page.status_code == 200 and "Settings" not in text(page)
    response = as_bob.get("/repository/alice/secret?tab=settings")
    assert response.status_code == 403
    assert "The Settings tab of alice/secret needs the write role." in text(response)
    assert as_bob.get("/repository/alice/secret?tab=logs").status_code == 403


def test_unknown_tabs_fall_back_to_information(as_alice, public_repo):
    response = as_alice.get("/repository/alice/hello?tab=builds")
    assert response.status_code == 200 and "Recent tags" in text(response)


def test_tab_switching_with_htmx_answers_the_body_fragment(as_alice, public_repo):
    response = as_alice.get(
        "/repository/alice/hello?tab=settings", HTTP_HX_REQUEST="true", HTTP_HX_TARGET="repository-body"
    )
    body = response.content.decode()
    assert body.lstrip().startswith('<div id="repository-body">') and "<html" not in body
    assert 'aria-current="page"' in body and "Save description" in body
    # A boosted request or a history restore needs the whole page.
    full = as_alice.get(
        "/repository/alice/hello?tab=settings",
        HTTP_HX_REQUEST="true",
        HTTP_HX_TARGET="repository-body",
        HTTP_HX_HISTORY_RESTORE_REQUEST="true",
    )
    assert "<html" in full.content.decode()


def test_the_usage_logs_tab_lists_actions_newest_first_and_pages(as_alice, alice, public_repo, monkeypatch):
    from registry import services

    for n in range(3):
        services.repository_set_description(
            repository=public_repo, description=f"d{n}", principal=user_principal(alice), ip="10.1.2.3"
        )
    monkeypatch.setattr(repository_views, "LOGS_PER_PAGE", 2)
    first = as_alice.get("/repository/alice/hello?tab=logs")
    body = text(first)
    assert first.status_code == 200
    assert body.count("Set repo description") == 2 and "description=d2" in body and "10.1.2.3" in body
    links = [part for part in first.content.decode().split('"') if "logs_after=" in part]
    assert len(links) == 1, "the page links to older entries"
    second = text(as_alice.get(links[0].replace("&amp;", "&")))
    assert "description=d0" in second and "description=d2" not in second


def test_a_feature_registers_its_own_tab(as_alice, public_repo, monkeypatch):
    monkeypatch.setattr(repository_views, "TABS", list(repository_views.TABS))
    tab = repository_views.RepositoryTab(
        "extra", "Extra", "ui/repository/tab_info.html", repository_views.information_context, need=Role.ADMIN
    )
    repository_views.register_tab(tab, after="info")
    assert [t.slug for t in repository_views.TABS][:2] == ["info", "extra"]
    body = as_alice.get("/repository/alice/hello?tab=extra").content.decode()
    assert 'href="/repository/alice/hello?tab=extra" aria-current="page"' in body


@pytest.mark.parametrize("name", ["b/c", "team.x/app-1/sub_dir"])
def test_nested_names_reach_their_page(as_alice, alice, name):
    make_repository(alice.namespace, name, alice)
    response = as_alice.get(f"/repository/alice/{name}?tab=settings")
    assert response.status_code == 200
    assert f'action="/repository/alice/{name}/-/description"' in response.content.decode()
