"""The repository list (``/``): who sees what, the columns, filters, search, stars, paging."""

import re

from registry.models import Star
from tests.registry.conftest import make_image, store_image, user_principal
from tests.ui.conftest import make_repository, text
from ui.selectors import REPOSITORIES_PER_PAGE


def names_listed(response) -> list[str]:
    return re.findall(r'<a href="/repository/([^"]+)">', response.content.decode())


def test_anonymous_visitors_see_public_repositories_only(anonymous, public_repo, private_repo):
    response = anonymous.get("/")
    assert response.status_code == 200
    assert names_listed(response) == ["alice/hello"]
    assert "Sign in" in text(response)


def test_users_see_their_repositories_and_public_ones(as_bob, bob, public_repo, private_repo):
    own = make_repository(bob.namespace, "mine", bob)
    assert names_listed(as_bob.get("/")) == ["alice/hello", own.full_name]


def test_it_shows_visibility_size_and_last_modified(as_alice, public_repo, private_repo):
    body = text(as_alice.get("/"))
    assert re.search(r"alice/hello Public [\d.]+\s+bytes", body), body
    assert "alice/secret Private 0 bytes" in body
    assert "ago" in body


def test_it_filters_by_namespace_and_searches(as_alice, alice, org, public_repo, org_repo):
    assert names_listed(as_alice.get("/?namespace=acme")) == ["acme/tools"]
    assert names_listed(as_alice.get("/?q=hel")) == ["alice/hello"]
    assert names_listed(as_alice.get("/?q=acme/to")) == ["acme/tools"]
    page = as_alice.get("/")
    assert '<option value="acme"' in page.content.decode()


def test_searching_with_htmx_answers_the_results_fragment(as_alice, public_repo):
    response = as_alice.get("/?q=hello", HTTP_HX_REQUEST="true", HTTP_HX_TARGET="repository-results")
    body = response.content.decode()
    assert body.lstrip().startswith('<div id="repository-results">')
    assert "<html" not in body
    assert "HX-Request" in response["Vary"]


def test_it_stars_and_lists_starred_repositories(as_bob, bob, public_repo, alice):
    other = make_repository(alice.namespace, "other", alice, visibility="public")
    response = as_bob.post(f"/repository/{public_repo.full_name}/-/star", {"action": "star", "next": "/"})
    assert response.status_code == 302 and response["Location"] == "/"
    assert Star.objects.filter(user=bob, repository=public_repo).exists()
    assert names_listed(as_bob.get("/?starred=1")) == ["alice/hello"]
    # htmx swaps the form itself (no target id): the answer is the new button, pointing back to the page.
    fragment = as_bob.post(
        f"/repository/{other.full_name}/-/star",
        {"action": "star"},
        HTTP_HX_REQUEST="true",
        HTTP_HX_CURRENT_URL="http://testserver/?q=o",
    )
    body = fragment.content.decode()
    assert 'aria-pressed="true"' in body and "<html" not in body
    assert 'name="next" value="/?q=o"' in body
    as_bob.post(f"/repository/{public_repo.full_name}/-/star", {"action": "unstar"})
    assert not Star.objects.filter(user=bob, repository=public_repo).exists()


def test_nobody_stars_a_repository_they_cannot_see(as_bob, private_repo):
    assert as_bob.post(f"/repository/{private_repo.full_name}/-/star", {"action": "star"}).status_code == 404


def test_it_pages_the_list(as_alice, alice):
    for n in range(REPOSITORIES_PER_PAGE + 3):
        make_repository(alice.namespace, f"repo{n:03d}", alice)
    first = as_alice.get("/")
    assert len(names_listed(first)) == REPOSITORIES_PER_PAGE
    assert "Page 1 of 2" in text(first)
    second = as_alice.get("/?page=2")
    assert names_listed(second) == [
        f"alice/repo{n:03d}" for n in range(REPOSITORIES_PER_PAGE, REPOSITORIES_PER_PAGE + 3)
    ]


def test_the_list_costs_the_same_queries_for_more_repositories(as_alice, alice, django_assert_max_num_queries):
    for n in range(REPOSITORIES_PER_PAGE):
        repository = make_repository(alice.namespace, f"many{n}", alice)
        if n % 5 == 0:
            store_image(repository, "latest", make_image(f"s{n}"), user_principal(alice))
    with django_assert_max_num_queries(9):
        assert as_alice.get("/").status_code == 200


def test_descriptions_show_as_safe_plain_text_in_the_list(as_alice, alice):
    make_repository(
        alice.namespace, "xss", alice, description="# Tools & <b>more</b>\n\n<script>alert(1)</script> a < b"
    )
    body = as_alice.get("/").content.decode()
    assert "<script>" not in body and "alert(1)" not in body and "<b>more" not in body
    assert "Tools &amp; more a &lt; b" in body
