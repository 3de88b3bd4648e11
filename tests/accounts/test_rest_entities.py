"""Entity search: ``GET /api/v1/entities/<prefix>``."""

from accounts import services as account_services


def names(response) -> list[tuple[str, str]]:
    assert response.status_code == 200, response.content
    return [(entry["kind"], entry["name"]) for entry in response.json()["results"]]


def test_it_finds_users_by_prefix_without_robots_or_organizations(world, api):
    assert names(api().get("/api/v1/entities/a")) == [("user", "alice")]
    assert names(api(world.bob).get("/api/v1/entities/a?includeOrgs=true")) == [("user", "alice")]
    entry = api().get("/api/v1/entities/alice").json()["results"][0]
    assert entry == {"name": "alice", "kind": "user", "is_robot": False, "avatar": entry["avatar"]}


def test_it_skips_disabled_users(world, api):
    world.erin.is_active = False
    world.erin.save()
    assert names(api(world.alice).get("/api/v1/entities/e")) == []


def test_it_adds_robots_teams_and_the_org_for_members(world, api):
    account_services.team_create(organization=world.acme, name="bots-team")
    result = api(world.bob).get("/api/v1/entities/b?namespace=acme&includeTeams=true&includeOrgs=true")
    assert names(result) == [("team", "bots-team"), ("team", "builders"), ("user", "acme+bot"), ("user", "bob")]
    entries = {entry["name"]: entry for entry in result.json()["results"]}
    assert entries["acme+bot"]["is_robot"] is True and entries["acme+bot"]["is_org_member"] is True
    assert entries["bob"]["is_org_member"] is True
    assert entries["builders"]["avatar"]["kind"] == "team"
    org = names(api(world.bob).get("/api/v1/entities/ac?namespace=acme&includeOrgs=true"))
    # Robots match on their short name, so "ac" finds the organization and not acme+bot.
    assert org == [("org", "acme")]


def test_it_marks_users_outside_the_organization(world, api):
    result = api(world.alice).get("/api/v1/entities/e?namespace=acme").json()["results"]
    assert result[0]["name"] == "erin" and result[0]["is_org_member"] is False


def test_it_hides_robots_and_teams_from_outsiders(world, api):
    query = "/api/v1/entities/b?namespace=acme&includeTeams=true&includeOrgs=true"
    assert names(api(world.charlie).get(query)) == [("user", "bob")]
    assert names(api().get(query)) == [("user", "bob")]


def test_it_finds_the_callers_own_robots(world, api):
    assert names(api(world.alice).get("/api/v1/entities/d?namespace=alice")) == [
        ("user", "alice+deploy"),
        ("user", "dave"),
    ]
    assert names(api(world.bob).get("/api/v1/entities/d?namespace=alice")) == [("user", "dave")]


def test_it_normalizes_the_prefix(world, api):
    assert names(api().get("/api/v1/entities/AL%20I")) == [("user", "alice")]
