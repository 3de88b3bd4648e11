"""The permission matrix: for every endpoint and method, the outcome each kind of caller gets.

The rules are stated here, independently of the views: a profile (``repo``, ``org``, ...) turns
the caller's standing (tests/security/matrix_world.py: role on acme/app, team role in acme, API
token scope, superuser) into an outcome, and an entry names the profile each endpoint follows,
with per-caller exceptions where an endpoint differs (each with a comment saying why).

Outcomes: ``ok`` (got past authorization), ``login`` (sent to a sign-in page), ``401``, ``403``,
``404`` (DESIGN section 12: what the caller may not see is a 404, another organization's objects
included), ``405``.

How callers present themselves, by family (see ``World.client``):
- ``/v2/``: a bearer token from ``/v2/auth`` got with their credentials (password, robot token,
  ``$oauthtoken`` + API token); anonymous callers send none.
- ``/c1/squash/``: HTTP Basic with the same credentials.
- ``/api/v1/`` and the web pages: people a session; API tokens a bearer header; the robot its
  credentials as Basic, which neither takes (robots cannot use the API or the UI): a robot is
  anonymous there.
"""

from __future__ import annotations

from collections.abc import Callable

from accounts import scopes
from accounts.models import Team
from registry.models import ROLE_RANK, Role
from tests.security.matrix_routes import ADMIN_PREFIX, Route
from tests.security.matrix_world import BY_NAME, CALLER_NAMES, Caller

READ, WRITE, ADMIN = Role.READ, Role.WRITE, Role.ADMIN
R_READ, R_WRITE, R_ADMIN, R_CREATE = scopes.REPO_READ, scopes.REPO_WRITE, scopes.REPO_ADMIN, scopes.REPO_CREATE
U_READ, U_ADMIN, O_ADMIN, SUPER = scopes.USER_READ, scopes.USER_ADMIN, scopes.ORG_ADMIN, scopes.SUPERUSER


class Rule:
    """A profile plus per-caller exceptions."""

    def __init__(self, profile: Callable[[Caller], str], **exceptions: str):
        exceptions = {name.replace(":", "_"): outcome for name, outcome in exceptions.items()}
        unknown = set(exceptions) - {name.replace(":", "_") for name in CALLER_NAMES}
        assert not unknown, unknown
        self.profile = profile
        self.exceptions = exceptions

    def __call__(self, caller: Caller, public: bool = False) -> str:
        exception = self.exceptions.get(caller.name.replace(":", "_"))
        if exception:
            return exception
        return self.profile(caller, public=True) if public else self.profile(caller)

    @property
    def knows_public(self) -> bool:
        """Whether the profile also states the rule for a public repository."""
        return getattr(self.profile, "knows_public", False)

    def but(self, **exceptions: str) -> Rule:
        return Rule(self.profile, **{**self.exceptions, **exceptions})


def public_aware(profile):
    profile.knows_public = True
    return profile


def _role(c: Caller, public: bool) -> str | None:
    """The caller's role on the repository: a public one gives everyone read."""
    if public and _rank(c.repo_role) < _rank(READ):
        return READ
    return c.repo_role


def _has(caller: Caller, scope: str) -> bool:
    return scope in scopes.expand({caller.scope})


def _rank(role: str | None) -> int:
    return ROLE_RANK[role] if role else -1


# ---------------------------------------------------------------------------------------------
# /api/v1 profiles. A token is checked for its scope first (403 without it); its owner alice
# administers acme and acme/app, so a token with the scope is allowed. A robot's Basic
# credentials and no credentials are the same: anonymous.


def repo(need: str, scope: str, anonymous_read: bool = True) -> Rule:
    """A repository's endpoint needing role ``need``: hidden (404) from who cannot read it,
    403 for readers below ``need``; superusers act as admins. A public repository is read by
    anyone, signed in or not (``anonymous_read``: where reading needs no account)."""

    @public_aware
    def profile(c: Caller, public: bool = False) -> str:
        if c.scope:
            return "ok" if _has(c, scope) else "403"
        if not c.session:
            return "ok" if public and anonymous_read and need == READ else "401"
        if c.superuser:
            return "ok"
        role = _role(c, public)
        if role is None:
            return "404"
        return "ok" if _rank(role) >= _rank(need) else "403"

    return Rule(profile)


def org(need: str | None, scope: str | None) -> Rule:
    """An organization's endpoint: ``need`` None is public; "member" hides it (404) from
    outsiders; "admin" also refuses members (403)."""

    def profile(c: Caller) -> str:
        if c.scope:
            return "ok" if scope is None or _has(c, scope) else "403"
        if need is None and scope is None:
            return "ok"
        if not c.session:
            return "401"
        if c.superuser or need is None:
            return "ok"
        if c.org_role is None:
            return "404"
        if need == "admin" and c.org_role != Team.Role.ADMIN:
            return "403"
        return "ok"

    return Rule(profile)


def me(scope: str | None) -> Rule:
    """The caller's own account (their user, robots, tokens, notifications)."""

    def profile(c: Caller) -> str:
        if c.scope:
            return "ok" if scope is None or _has(c, scope) else "403"
        return "ok" if c.session else "401"

    return Rule(profile)


def alices(scope: str) -> Rule:
    """One of alice's own objects (an app token, a notice): other people get 404."""

    def profile(c: Caller) -> str:
        if c.scope:
            return "ok" if _has(c, scope) else "403"
        if not c.session:
            return "401"
        return "ok" if c.user == "alice" else "404"

    return Rule(profile)


def superuser_only() -> Rule:
    """Superuser endpoints: a session of a superuser, or a superuser's token with super:user
    (alice's token with it is refused: she is not one)."""

    def profile(c: Caller) -> str:
        if c.scope or c.session:
            return "ok" if c.superuser else "403"
        return "401"

    return Rule(profile)


def everyone(outcome: str = "ok") -> Rule:
    return Rule(lambda c: outcome)


# ---------------------------------------------------------------------------------------------
# /v2/ and squash profiles: a caller without the right gets 401 (the registry cannot tell a
# missing repository from a forbidden one to an unauthorized caller).

V2_NEED = {"pull": READ, "push": WRITE, "delete": WRITE}
SCOPE_ACTIONS = {R_READ: {"pull"}, R_WRITE: {"pull", "push", "delete"}, R_ADMIN: {"pull", "push", "delete"}}


def v2(action: str) -> Rule:
    @public_aware
    def profile(c: Caller, public: bool = False) -> str:
        if public and action == "pull":
            return "ok"  # with or without a token, whatever it grants
        if c.scope:
            return "ok" if action in SCOPE_ACTIONS.get(c.scope, set()) else "401"
        if c.name == "anonymous":
            return "401"
        return "ok" if _rank(c.repo_role) >= _rank(V2_NEED[action]) else "401"

    return Rule(profile)


def v2_any_token() -> Rule:
    """``/v2/`` and the catalog: any token (even one granting nothing) is enough."""
    return Rule(lambda c: "401" if c.name == "anonymous" else "ok")


def squash() -> Rule:
    @public_aware
    def profile(c: Caller, public: bool = False) -> str:
        if c.scope:
            return "ok" if _has(c, R_READ) else "404"
        if c.name == "anonymous" and not public:
            return "401"
        return "ok" if _role(c, public) else "404"

    return Rule(profile)


# ---------------------------------------------------------------------------------------------
# Web UI profiles: a page needing a session sends everyone without one (API tokens and robots
# too: the UI takes neither) to sign in.


def page(need: str | None = None, open_when_public: bool = True) -> Rule:
    """A repository page needing ``need`` (None: any signed-in user). A public repository's
    read pages are open to visitors without a session; every change asks them to sign in."""

    @public_aware
    def profile(c: Caller, public: bool = False) -> str:
        if not c.session:
            return "ok" if public and open_when_public and need == READ else "login"
        if need is None or c.superuser:
            return "ok"
        role = _role(c, public)
        if role is None:
            return "404"
        return "ok" if _rank(role) >= _rank(need) else "403"

    return Rule(profile)


def org_page(need: str | None) -> Rule:
    def profile(c: Caller) -> str:
        if need is None:
            return "ok"
        if not c.session:
            return "login"
        if c.superuser:
            return "ok"
        if c.org_role is None:
            return "404"
        if need == "admin" and c.org_role != Team.Role.ADMIN:
            return "403"
        return "ok"

    return Rule(profile)


def signed_in() -> Rule:
    return Rule(lambda c: "ok" if c.session else "login")


def alices_page() -> Rule:
    return Rule(lambda c: ("ok" if c.user == "alice" else "404") if c.session else "login")


def admin_site() -> Rule:
    """Django's admin: staff only (superusers are staff); everyone else is sent to its login."""
    return Rule(lambda c: "ok" if c.session and c.superuser else "login")


# ---------------------------------------------------------------------------------------------
# The entries. Keys: (pattern, method).

REPO_ = "api/v1/repository/<apirepopath:repository>"
NOTIF = f"{REPO_}/notification/<str:uuid>"
TRIG = f"{REPO_}/trigger/<str:trigger_uuid>"
BUILD = f"{REPO_}/build/<str:build_uuid>"
ORG_ = "api/v1/organization/<str:orgname>"
TEAM = f"{ORG_}/team/<str:teamname>"
UIREPO = "repository/<uirepo:repository>"
UITRIG = f"{UIREPO}/-/triggers/<uuid:trigger_uuid>"
UINOTIF = f"{UIREPO}/-/notifications/<uuid:notification_uuid>"
UIORG = "organization/<str:org>"

def _create_in_acme(c: Caller) -> str:
    """Creating a repository in acme. A superuser is not given this one (registry.permissions.
    can_create_in: admins and creator teams only), unlike the other organization rights."""
    if c.scope:
        return "ok" if _has(c, R_CREATE) else "403"
    if not c.session:
        return "401"
    return "ok" if c.org_role in (Team.Role.ADMIN, Team.Role.CREATOR) else "403"


CREATE_IN_ACME = Rule(_create_in_acme)

# An upload session belongs to whoever started it (alice): other writers are authorized for the
# repository but do not find her session (404 BLOB_UPLOAD_UNKNOWN).
UPLOAD = v2("push").but(writer="404", repo_admin="404", robot="404")

ENTRIES: dict[tuple[str, str], Rule] = {
    # --- /v2/ -----------------------------------------------------------------------------
    ("v2/^$", "GET"): v2_any_token(),
    # The token endpoint answers everyone: what a token grants is decided per scope.
    ("v2/^auth$", "GET"): everyone(),
    ("v2/^_catalog$", "GET"): v2_any_token(),
    ("v2/^(?P<name>.+?)/tags/list$", "GET"): v2("pull"),
    ("v2/^(?P<name>.+?)/manifests/(?P<reference>[^/]+)$", "GET"): v2("pull"),
    ("v2/^(?P<name>.+?)/manifests/(?P<reference>[^/]+)$", "HEAD"): v2("pull"),
    ("v2/^(?P<name>.+?)/manifests/(?P<reference>[^/]+)$", "PUT"): v2("push"),
    ("v2/^(?P<name>.+?)/manifests/(?P<reference>[^/]+)$", "DELETE"): v2("delete"),
    ("v2/^(?P<name>.+?)/blobs/uploads/?$", "POST"): v2("push"),
    ("v2/^(?P<name>.+?)/blobs/uploads/(?P<upload_id>[^/]+)$", "GET"): UPLOAD,
    ("v2/^(?P<name>.+?)/blobs/uploads/(?P<upload_id>[^/]+)$", "PATCH"): UPLOAD,
    ("v2/^(?P<name>.+?)/blobs/uploads/(?P<upload_id>[^/]+)$", "PUT"): UPLOAD,
    ("v2/^(?P<name>.+?)/blobs/uploads/(?P<upload_id>[^/]+)$", "DELETE"): UPLOAD,
    ("v2/^(?P<name>.+?)/blobs/(?P<digest>[^/]+)$", "GET"): v2("pull"),
    ("v2/^(?P<name>.+?)/blobs/(?P<digest>[^/]+)$", "HEAD"): v2("pull"),
    ("v2/^(?P<name>.+?)/blobs/(?P<digest>[^/]+)$", "DELETE"): v2("delete"),
    ("v2/^(?P<name>.+?)/referrers/(?P<digest>[^/]+)$", "GET"): v2("pull"),
    # --- /c1/squash/ ----------------------------------------------------------------------
    ("^c1/squash/(?P<name>[^?#]+)/(?P<tag>[^/?#]+)$", "GET"): squash(),
    # --- /api/v1: public and account ------------------------------------------------------
    ("api/v1/openapi.json", "GET"): everyone(),
    ("api/v1/docs/", "GET"): everyone(),
    ("api/v1/discovery", "GET"): everyone(),
    ("api/v1/signin", "POST"): everyone(),
    ("api/v1/signout", "POST"): everyone(),
    # Only before the first user exists (there are users: refused to all alike).
    ("api/v1/user/initialize", "POST"): everyone("ok"),
    ("api/v1/user/", "GET"): me(U_READ),
    ("api/v1/user/", "PUT"): me(U_ADMIN),
    # Public, as in Quay (user names are not secret); a namespace's robots and teams are added
    # to the results for its members only.
    ("api/v1/entities/<str:prefix>", "GET"): everyone(),
    ("api/v1/organization/", "POST"): me(U_ADMIN),
    ("api/v1/user/robots", "GET"): me(U_ADMIN),
    ("api/v1/user/robots/<str:robot_shortname>", "GET"): me(U_ADMIN),
    ("api/v1/user/robots/<str:robot_shortname>", "PUT"): me(U_ADMIN),
    ("api/v1/user/robots/<str:robot_shortname>", "DELETE"): me(U_ADMIN),
    ("api/v1/user/robots/<str:robot_shortname>/regenerate", "POST"): me(U_ADMIN),
    ("api/v1/user/robots/<str:robot_shortname>/permissions", "GET"): me(U_ADMIN),
    ("api/v1/user/apptoken", "GET"): me(U_ADMIN),
    ("api/v1/user/apptoken", "POST"): me(U_ADMIN),
    ("api/v1/user/apptoken/<str:token_uuid>", "GET"): alices(U_ADMIN),
    ("api/v1/user/apptoken/<str:token_uuid>", "DELETE"): alices(U_ADMIN),
    ("api/v1/user/notifications", "GET"): me(U_ADMIN),
    ("api/v1/user/notifications/<str:uuid>", "GET"): alices(U_ADMIN),
    ("api/v1/user/notifications/<str:uuid>", "PUT"): alices(U_ADMIN),
    ("api/v1/user/starred", "GET"): me(U_ADMIN),
    # Starring needs to see the repository.
    ("api/v1/user/starred", "POST"): repo(READ, R_READ, anonymous_read=False),
    # Unstarring a repository the caller cannot see: it is hidden (404) like everywhere.
    ("api/v1/user/starred/<apirepopath:repository>", "DELETE"): repo(READ, U_ADMIN, anonymous_read=False),
    ("api/v1/user/logs", "GET"): me(U_ADMIN),
    ("api/v1/user/aggregatelogs", "GET"): me(U_ADMIN),
    # A build package belongs to its uploader; reserving one needs repo:write on a token.
    ("api/v1/filedrop/", "POST"): me(R_WRITE),
    # --- /api/v1: organizations -----------------------------------------------------------
    (ORG_, "GET"): org(None, None),
    # The organization itself is public (GET answers anyone), so changing it as an outsider is
    # a 403, not a 404: there is nothing to hide.
    (ORG_, "PUT"): org("admin", O_ADMIN).but(user="403", other_org="403"),
    (ORG_, "DELETE"): org("admin", O_ADMIN).but(user="403", other_org="403"),
    (f"{ORG_}/members", "GET"): org("admin", O_ADMIN),
    (f"{ORG_}/members/<str:membername>", "GET"): org("admin", O_ADMIN),
    (f"{ORG_}/members/<str:membername>", "DELETE"): org("admin", O_ADMIN),
    (TEAM, "PUT"): org("admin", O_ADMIN),
    (TEAM, "DELETE"): org("admin", O_ADMIN),
    # A team's members are shown to the team's own members and the organization's admins (as
    # Quay's ViewTeamPermission); other members of the organization get 403. The team: readers.
    (f"{TEAM}/members", "GET"): org("member", O_ADMIN).but(
        writer="403", repo_admin="403", org_member="403", team_creator="403"
    ),
    (f"{TEAM}/members/<str:membername>", "PUT"): org("admin", O_ADMIN),
    (f"{TEAM}/members/<str:membername>", "DELETE"): org("admin", O_ADMIN),
    (f"{TEAM}/permissions", "GET"): org("admin", O_ADMIN),
    # Members list the organization's robots (Quay's getOrgRobots); only admins get the tokens
    # (test_members_listing_robots_get_no_tokens).
    (f"{ORG_}/robots", "GET"): org("member", O_ADMIN),
    (f"{ORG_}/robots/<str:robot_shortname>", "GET"): org("admin", O_ADMIN),
    (f"{ORG_}/robots/<str:robot_shortname>", "PUT"): org("admin", O_ADMIN),
    (f"{ORG_}/robots/<str:robot_shortname>", "DELETE"): org("admin", O_ADMIN),
    (f"{ORG_}/robots/<str:robot_shortname>/regenerate", "POST"): org("admin", O_ADMIN),
    (f"{ORG_}/robots/<str:robot_shortname>/permissions", "GET"): org("admin", O_ADMIN),
    (f"{ORG_}/applications", "GET"): org("admin", O_ADMIN),
    (f"{ORG_}/applications", "POST"): org("admin", O_ADMIN),
    (f"{ORG_}/applications/<str:client_id>", "GET"): org("admin", O_ADMIN),
    (f"{ORG_}/applications/<str:client_id>", "PUT"): org("admin", O_ADMIN),
    (f"{ORG_}/applications/<str:client_id>", "DELETE"): org("admin", O_ADMIN),
    (f"{ORG_}/applications/<str:client_id>/resetclientsecret", "POST"): org("admin", O_ADMIN),
    (f"{ORG_}/logs", "GET"): org("admin", O_ADMIN),
    (f"{ORG_}/aggregatelogs", "GET"): org("admin", O_ADMIN),
    # An application's public face (name, avatar) for the authorization page: public.
    ("api/v1/app/<str:client_id>", "GET"): everyone(),
    # --- /api/v1: superuser ---------------------------------------------------------------
    ("api/v1/superuser/users/", "GET"): superuser_only(),
    ("api/v1/superuser/users/", "POST"): superuser_only(),
    ("api/v1/superuser/users/<str:username>", "GET"): superuser_only(),
    ("api/v1/superuser/users/<str:username>", "PUT"): superuser_only(),
    ("api/v1/superuser/users/<str:username>", "DELETE"): superuser_only(),
    ("api/v1/superuser/organizations/", "GET"): superuser_only(),
    ("api/v1/superuser/organizations/<str:name>", "PUT"): superuser_only(),
    ("api/v1/superuser/organizations/<str:name>", "DELETE"): superuser_only(),
    # --- /api/v1: repositories ------------------------------------------------------------
    # Listing shows what the caller may see; anyone may ask (public repositories).
    ("api/v1/repository", "GET"): Rule(lambda c: ("ok" if _has(c, R_READ) else "403") if c.scope else "ok"),
    # Creating in acme (the body names it): its admins and creator teams.
    ("api/v1/repository", "POST"): CREATE_IN_ACME,
    (REPO_, "GET"): repo(READ, R_READ),
    (REPO_, "PUT"): repo(WRITE, R_WRITE),
    (REPO_, "DELETE"): repo(ADMIN, R_ADMIN),
    (f"{REPO_}/changevisibility", "POST"): repo(ADMIN, R_ADMIN),
    (f"{REPO_}/permissions/user/", "GET"): repo(ADMIN, R_ADMIN),
    (f"{REPO_}/permissions/user/<str:username>/transitive", "GET"): repo(ADMIN, R_ADMIN),
    (f"{REPO_}/permissions/user/<str:username>", "GET"): repo(ADMIN, R_ADMIN),
    (f"{REPO_}/permissions/user/<str:username>", "PUT"): repo(ADMIN, R_ADMIN),
    (f"{REPO_}/permissions/user/<str:username>", "DELETE"): repo(ADMIN, R_ADMIN),
    (f"{REPO_}/permissions/team/", "GET"): repo(ADMIN, R_ADMIN),
    (f"{REPO_}/permissions/team/<str:teamname>", "GET"): repo(ADMIN, R_ADMIN),
    (f"{REPO_}/permissions/team/<str:teamname>", "PUT"): repo(ADMIN, R_ADMIN),
    (f"{REPO_}/permissions/team/<str:teamname>", "DELETE"): repo(ADMIN, R_ADMIN),
    (f"{REPO_}/logs", "GET"): repo(ADMIN, R_ADMIN),
    (f"{REPO_}/aggregatelogs", "GET"): repo(ADMIN, R_ADMIN),
    (f"{REPO_}/tag/", "GET"): repo(READ, R_READ),
    (f"{REPO_}/tag/<str:tag>", "PUT"): repo(WRITE, R_WRITE),
    (f"{REPO_}/tag/<str:tag>", "DELETE"): repo(WRITE, R_WRITE),
    (f"{REPO_}/tag/<str:tag>/restore", "POST"): repo(WRITE, R_WRITE),
    (f"{REPO_}/tag/<str:tag>/expire", "POST"): repo(ADMIN, R_ADMIN),
    (f"{REPO_}/manifest/<str:manifestref>", "GET"): repo(READ, R_READ),
    (f"{REPO_}/manifest/<str:manifestref>/labels", "GET"): repo(READ, R_READ),
    (f"{REPO_}/manifest/<str:manifestref>/security", "GET"): repo(READ, R_READ),
    # Notifications, authorized e-mails and triggers: repository admins.
    (f"{REPO_}/notification/", "GET"): repo(ADMIN, R_ADMIN),
    (f"{REPO_}/notification/", "POST"): repo(ADMIN, R_ADMIN),
    (NOTIF, "GET"): repo(ADMIN, R_ADMIN),
    (NOTIF, "POST"): repo(ADMIN, R_ADMIN),
    (NOTIF, "DELETE"): repo(ADMIN, R_ADMIN),
    (f"{NOTIF}/test", "POST"): repo(ADMIN, R_ADMIN),
    (f"{NOTIF}/deliveries", "GET"): repo(ADMIN, R_ADMIN),
    (f"{NOTIF}/deliveries/<str:delivery_uuid>", "GET"): repo(ADMIN, R_ADMIN),
    (f"{NOTIF}/deliveries/<str:delivery_uuid>/redeliver", "POST"): repo(ADMIN, R_ADMIN),
    (f"{REPO_}/authorizedemail/<str:email>", "GET"): repo(ADMIN, R_ADMIN),
    (f"{REPO_}/authorizedemail/<str:email>", "POST"): repo(ADMIN, R_ADMIN),
    (f"{REPO_}/trigger/", "GET"): repo(ADMIN, R_ADMIN),
    (f"{REPO_}/trigger/", "POST"): repo(ADMIN, R_ADMIN),
    (TRIG, "GET"): repo(ADMIN, R_ADMIN),
    (TRIG, "PUT"): repo(ADMIN, R_ADMIN),
    (TRIG, "DELETE"): repo(ADMIN, R_ADMIN),
    (f"{TRIG}/activate", "POST"): repo(ADMIN, R_ADMIN),
    (f"{TRIG}/start", "POST"): repo(ADMIN, R_ADMIN),
    (f"{TRIG}/analyze", "POST"): repo(ADMIN, R_ADMIN),
    (f"{TRIG}/subdir", "GET"): repo(ADMIN, R_ADMIN),
    (f"{TRIG}/subdir", "POST"): repo(ADMIN, R_ADMIN),
    (f"{TRIG}/builds", "GET"): repo(ADMIN, R_ADMIN),
    (f"{TRIG}/connect", "POST"): repo(ADMIN, R_ADMIN),
    (f"{TRIG}/namespaces", "GET"): repo(ADMIN, R_ADMIN),
    (f"{TRIG}/sources", "POST"): repo(ADMIN, R_ADMIN),
    (f"{TRIG}/fields/<str:field_name>", "GET"): repo(ADMIN, R_ADMIN),
    (f"{TRIG}/fields/<str:field_name>", "POST"): repo(ADMIN, R_ADMIN),
    # Builds: readers watch them, writers start and cancel them.
    (f"{REPO_}/build/", "GET"): repo(READ, R_READ),
    (f"{REPO_}/build/", "POST"): repo(WRITE, R_WRITE),
    (BUILD, "GET"): repo(READ, R_READ),
    (BUILD, "DELETE"): repo(WRITE, R_WRITE),
    (f"{BUILD}/status", "GET"): repo(READ, R_READ),
    (f"{BUILD}/logs", "GET"): repo(READ, R_READ),
    # --- other HTTP endpoints -------------------------------------------------------------
    ("csrf_token", "GET"): everyone(),
    # OAuth's authorization page: a signed-in person approves an application.
    ("oauth/authorizeapp", "POST"): Rule(lambda c: "ok" if c.session else "401"),
    # Webhook receivers authenticate the sender by the trigger's secret (custom git) or the
    # provider's signature (GitHub), not by who calls: no caller here holds either.
    ("webhooks/push/trigger/<str:trigger_uuid>", "POST"): everyone("403"),
    ("webhooks/<gitprovider:service>/trigger/<str:trigger_uuid>", "POST"): everyone("403"),
    # The OAuth state in the query is the credential (none here: refused with 400 to all).
    ("oauth2/<gitprovider:service>/callback", "GET"): everyone(),
    ("^static/(?P<path>.*)$", "GET"): everyone("404"),
    # Health checks answer anyone (load balancers); metrics by client address, not by caller.
    ("health/instance", "GET"): everyone(),
    ("health/endtoend", "GET"): everyone(),
    ("metrics", "GET"): everyone(),
    # The e-mail confirmation link: the code in the link is the credential (none here: 404).
    ("authrepoemail", "GET"): everyone("404"),
    ("authrepoemail", "POST"): everyone("404"),
    # A build package's upload (its reserving user) and a worker's download (the job token).
    ("filedrop/<str:file_id>", "PUT"): alices(R_WRITE),
    # Only a build's job token opens it: an API token is a bearer but not that one (403).
    ("buildpack/<str:build_uuid>", "GET"): Rule(lambda c: "403" if c.scope else "401"),
    # --- web UI ---------------------------------------------------------------------------
    ("", "GET"): everyone(),
    ("signin", "GET"): everyone(),
    ("signin", "POST"): everyone(),
    ("signout", "POST"): everyone(),
    ("signup", "GET"): everyone(),
    ("signup", "POST"): everyone(),
    ("new/repository", "GET"): signed_in(),
    # The form answers a namespace the caller may not create in with a form error (200).
    ("new/repository", "POST"): CREATE_IN_ACME.but(**{caller: "login" for caller in ("anonymous", "robot")}).but(
        **{f"token:{scope}": "login" for scope in scopes.ALL}
    ),
    ("new/organization", "GET"): signed_in(),
    ("new/organization", "POST"): signed_in(),
    (UIREPO, "GET"): page(READ),
    (f"{UIREPO}/build/<uuid:build_uuid>", "GET"): page(READ),
    (f"{UIREPO}/manifest/<str:digest>", "GET"): page(READ),
    (f"{UIREPO}/-/builds/new", "GET"): page(WRITE),
    (f"{UIREPO}/-/builds/new", "POST"): page(WRITE),
    (f"{UIREPO}/-/builds/<uuid:build_uuid>/cancel", "POST"): page(WRITE),
    (f"{UIREPO}/-/triggers/new/custom-git", "GET"): page(ADMIN),
    (f"{UIREPO}/-/triggers/new/custom-git", "POST"): page(ADMIN),
    (f"{UIREPO}/-/triggers/new/<str:service>", "GET"): page(ADMIN),
    (f"{UIREPO}/-/triggers/new/<str:service>", "POST"): page(ADMIN),
    (f"{UITRIG}/setup", "GET"): page(ADMIN),
    (f"{UITRIG}/connect", "POST"): page(ADMIN),
    (f"{UITRIG}/activate", "POST"): page(ADMIN),
    (f"{UITRIG}/credentials", "GET"): page(ADMIN),
    (f"{UITRIG}/run", "GET"): page(ADMIN),
    (f"{UITRIG}/run", "POST"): page(ADMIN),
    (f"{UITRIG}/enabled", "POST"): page(ADMIN),
    (f"{UITRIG}/delete", "POST"): page(ADMIN),
    (f"{UIREPO}/-/star", "POST"): page(READ, open_when_public=False),
    (f"{UIREPO}/-/description", "POST"): page(WRITE),
    (f"{UIREPO}/-/visibility", "POST"): page(ADMIN),
    (f"{UIREPO}/-/permissions", "POST"): page(ADMIN),
    (f"{UIREPO}/-/permissions/delete", "POST"): page(ADMIN),
    (f"{UIREPO}/-/delete", "POST"): page(ADMIN),
    ("^repository/(?P<repository>[^?#]+)/-/squash$", "POST"): page(ADMIN),
    (f"{UIREPO}/-/tags/add", "POST"): page(WRITE),
    (f"{UIREPO}/-/tags/move", "POST"): page(WRITE),
    (f"{UIREPO}/-/tags/expiration", "POST"): page(WRITE),
    (f"{UIREPO}/-/tags/delete", "POST"): page(WRITE),
    (f"{UIREPO}/-/tags/restore", "POST"): page(WRITE),
    (f"{UIREPO}/-/tags/purge", "POST"): page(ADMIN),
    (f"{UIREPO}/-/notifications/new", "GET"): page(ADMIN),
    (f"{UIREPO}/-/notifications/new", "POST"): page(ADMIN),
    (f"{UIREPO}/-/notifications/email-state", "GET"): page(ADMIN),
    (UINOTIF, "GET"): page(ADMIN),
    (f"{UINOTIF}/delete", "POST"): page(ADMIN),
    (f"{UINOTIF}/reset", "POST"): page(ADMIN),
    (f"{UINOTIF}/test", "POST"): page(ADMIN),
    (f"{UINOTIF}/deliveries/<uuid:delivery_uuid>/redeliver", "POST"): page(ADMIN),
    ("user/settings", "GET"): signed_in(),
    ("user/settings/password", "POST"): signed_in(),
    ("user/settings/time-machine", "POST"): signed_in(),
    ("user/tokens", "POST"): signed_in(),
    ("user/tokens/<uuid:token_uuid>/revoke", "POST"): alices_page(),
    ("user/robots", "GET"): signed_in(),
    ("user/robots", "POST"): signed_in(),
    ("user/robots/<str:short_name>", "GET"): signed_in(),
    ("user/robots/<str:short_name>/token", "GET"): signed_in(),
    ("user/robots/<str:short_name>/regenerate", "POST"): signed_in(),
    ("user/robots/<str:short_name>/delete", "POST"): signed_in(),
    ("user/notifications", "GET"): signed_in(),
    # Polled by every page: without a session it answers htmx's 286 "stop polling", empty.
    ("user/notifications/bell", "GET"): everyone(),
    ("user/notifications/<uuid:notice_uuid>/dismiss", "POST"): alices_page(),
    ("organizations", "GET"): signed_in(),
    (UIORG, "GET"): org_page(None),
    (f"{UIORG}/members", "GET"): org_page("admin"),
    (f"{UIORG}/members/<str:username>/remove", "POST"): org_page("admin"),
    (f"{UIORG}/settings", "GET"): org_page("admin"),
    (f"{UIORG}/settings", "POST"): org_page("admin"),
    (f"{UIORG}/teams", "POST"): org_page("admin"),
    (f"{UIORG}/teams/<str:team>", "GET"): org_page("member"),
    (f"{UIORG}/teams/<str:team>/update", "POST"): org_page("admin"),
    (f"{UIORG}/teams/<str:team>/delete", "POST"): org_page("admin"),
    (f"{UIORG}/teams/<str:team>/members", "POST"): org_page("admin"),
    (f"{UIORG}/teams/<str:team>/members/<str:username>/remove", "POST"): org_page("admin"),
    (f"{UIORG}/robots", "GET"): org_page("admin"),
    (f"{UIORG}/robots", "POST"): org_page("admin"),
    (f"{UIORG}/robots/<str:short_name>", "GET"): org_page("admin"),
    (f"{UIORG}/robots/<str:short_name>/token", "GET"): org_page("admin"),
    (f"{UIORG}/robots/<str:short_name>/regenerate", "POST"): org_page("admin"),
    (f"{UIORG}/robots/<str:short_name>/delete", "POST"): org_page("admin"),
}

# Admin pages that differ from the staff-only rule (Django's own design or our admin classes').
_STAFF = admin_site()
ADMIN_EXCEPTIONS = {
    "admin/login/": everyone(),
    # Logging out: a visitor without a staff session is redirected; staff must POST (405).
    "admin/logout/": everyone().but(superuser="405"),
    # "View on site" for content type 1, object 1, which has no page: staff get 404.
    "admin/r/<path:content_type_id>/<path:object_id>/": _STAFF.but(superuser="404"),
    # Autocomplete without its parameters is refused even to staff.
    "admin/autocomplete/": _STAFF.but(superuser="403"),
    # Unknown admin URLs: staff get a 404, others the login page.
    "admin/(?P<url>.*)$": _STAFF.but(superuser="404"),
    # A POST-only action.
    "admin/registry/garbagecollectionrun/run/": _STAFF.but(superuser="405"),
}
# Records made by the system only (builds, workers, triggers, scans...): the admin offers no
# "add" (and for some no "delete"); staff get 403 there.
ADMIN_READ_ONLY = (
    "admin/builds/build/add/",
    "admin/builds/build/<path:object_id>/delete/",
    "admin/builds/buildsettings/add/",
    "admin/builds/buildsettings/<path:object_id>/delete/",
    "admin/builds/buildworker/add/",
    "admin/builds/buildworker/<path:object_id>/delete/",
    "admin/registry/garbagecollectionrun/add/",
    "admin/scanning/advisory/add/",
    "admin/scanning/advisoryimport/add/",
    "admin/squash/squashedimage/add/",
    "admin/triggers/buildtrigger/add/",
    "admin/ui/siteconfiguration/<path:object_id>/delete/",
)
ADMIN_EXCEPTIONS.update({pattern: _STAFF.but(superuser="403") for pattern in ADMIN_READ_ONLY})

# Path parameter values that differ from World.values for one pattern.
PARAMS: dict[str, dict[str, str]] = {
    "v2/^(?P<name>.+?)/blobs/(?P<digest>[^/]+)$": {"digest": "@layer_digest"},
    "api/v1/superuser/organizations/<str:name>": {"name": "acme"},
    # The robot has a direct permission (mona has none to look at).
    f"{REPO_}/permissions/user/<str:username>": {"username": "acme+bot"},
    f"{REPO_}/permissions/user/<str:username>/transitive": {"username": "rita"},
    # Everyone's own robot.
    "api/v1/user/robots/<str:robot_shortname>": {"robot_shortname": "mine"},
    # Here ``uuid`` is a user notice (elsewhere a repository notification).
    "api/v1/user/notifications/<str:uuid>": {"uuid": "@notice_uuid"},
    # Team members: rita is in readers (mona is not).
    f"{TEAM}/members/<str:membername>": {"membername": "rita"},
    f"{UIORG}/teams/<str:team>/members/<str:username>/remove": {"username": "rita"},
    # The provider pages and receiver: a GitHub trigger (custom git has no OAuth or signature).
    "webhooks/<gitprovider:service>/trigger/<str:trigger_uuid>": {"trigger_uuid": "@github_trigger_uuid"},
    f"{UITRIG}/setup": {"trigger_uuid": "@github_trigger_uuid"},
    f"{UITRIG}/connect": {"trigger_uuid": "@github_trigger_uuid"},
    f"{UITRIG}/activate": {"trigger_uuid": "@github_trigger_uuid"},
    "api/v1/user/robots/<str:robot_shortname>/regenerate": {"robot_shortname": "mine"},
    "api/v1/user/robots/<str:robot_shortname>/permissions": {"robot_shortname": "mine"},
    "user/robots/<str:short_name>": {"short_name": "mine"},
    "user/robots/<str:short_name>/token": {"short_name": "mine"},
    "user/robots/<str:short_name>/regenerate": {"short_name": "mine"},
    "user/robots/<str:short_name>/delete": {"short_name": "mine"},
}

# Query strings, per (pattern, method).
QUERY: dict[tuple[str, str], str] = {}

# Request bodies where the empty one would be refused before authorization can be judged.
BODIES: dict[tuple[str, str], str] = {
    # Starring names the repository in the body.
    ("api/v1/user/starred", "POST"): '{"namespace": "acme", "repository": "app"}',
    ("api/v1/repository", "POST"): '{"namespace": "acme", "repository": "made", "visibility": "private", '
    '"description": ""}',
    ("new/repository", "POST"): "namespace=acme&name=made&visibility=private&kind=image",
}
# Where a refusal is the form shown again with the error (200 or 400), and success a redirect.
FORM_REFUSALS = {("new/repository", "POST")}


def callers_for(route: Route) -> list[str]:
    if route.family == "admin":
        # The admin site has one rule; these callers cover its branches (no session, a
        # non-staff session, a staff session). Tokens and robots are sessionless like anonymous.
        return ["anonymous", "org_admin", "superuser"]
    return CALLER_NAMES


def has_entry(route: Route, method: str) -> bool:
    return route.family == "admin" or (route.pattern, method) in ENTRIES


def expected(route: Route, method: str, caller_name: str, public: bool = False) -> str:
    caller = BY_NAME[caller_name]
    if route.family == "admin":
        return ADMIN_EXCEPTIONS.get(route.pattern, _STAFF)(caller)
    return ENTRIES[(route.pattern, method)](caller, public=public)


# The public repository acme/pub (same permissions as acme/app, the same image as ``latest``)
# is requested on the repository endpoints whose other parameters exist there too.
PUBLIC_VALUES = {"repository": "acme/pub", "name": "acme/pub"}
NOT_ON_PUBLIC = {"build_uuid", "trigger_uuid", "uuid", "delivery_uuid", "notification_uuid", "email", "upload_id"}


def on_public(route: Route, method: str) -> bool:
    kwargs = set(route.kwargs)
    rule = ENTRIES.get((route.pattern, method))
    return (
        bool(kwargs & {"repository", "name"})
        and not kwargs & NOT_ON_PUBLIC
        and rule is not None
        and rule.knows_public
    )


def registry_scope(route: Route, values: dict) -> str:
    if route.pattern == "v2/^_catalog$":
        return "registry:catalog:*"
    return f"repository:{values.get('name', 'acme/app')}:pull,push,delete"


JSON = "application/json"
FORM = "application/x-www-form-urlencoded"


def body_for(route: Route, method: str) -> tuple[str | bytes, str]:
    if route.family == "v2":
        return b"", "application/octet-stream"
    if (route.pattern, method) in BODIES:
        return BODIES[(route.pattern, method)], JSON if route.family == "api" else FORM
    if route.family in ("api",) or route.pattern.startswith(("webhooks/", "oauth")):
        return "{}", JSON
    return "", FORM


assert ADMIN_PREFIX == "admin/"
