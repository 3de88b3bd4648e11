"""What the OpenAPI schema says about the account endpoints: path parameters and Quay's
response shapes.

The views build their answers as plain dicts; the serializers here are documentation only
(nothing validates or renders through them), so they must follow the dict builders beside
each view: ``user_view``, ``org_view``, ``team_view``, ``robot_view``, ``token_view``,
``app_view`` and the superuser ``user_view``. Avatars, ``{"success": ...}`` bodies and the
204 answers share the registry's documentation so the schema has one component for each.
"""

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema_field
from rest_framework import serializers

from accounts.models import Team
from registry.rest.serializers import ROLES, AvatarDoc
from registry.rest.serializers import SuccessDoc as SuccessDoc

TEAM_ROLES = [role.value for role in Team.Role]

DELETED = OpenApiResponse(description="Deleted")


# Without a name of its own this enum would collide with the repository roles' "RoleEnum".
@extend_schema_field(
    {"type": "string", "enum": TEAM_ROLES, "description": "admin, creator (may create repositories) or member"},
    component_name="TeamRoleEnum",
)
class TeamRoleField(serializers.ChoiceField):
    """A team role; validates like any ChoiceField."""


def _path(name: str, description: str) -> OpenApiParameter:
    return OpenApiParameter(name, OpenApiTypes.STR, OpenApiParameter.PATH, description=description)


def flag_param(name: str, description: str) -> OpenApiParameter:
    return OpenApiParameter(name, OpenApiTypes.BOOL, OpenApiParameter.QUERY, description=description)


ORGNAME = _path("orgname", "The organization")
TEAMNAME = _path("teamname", "A team of the organization")
MEMBERNAME = _path("membername", "A user, or a robot as namespace+name")
ROBOT_SHORTNAME = _path("robot_shortname", "The robot's name without its namespace+ prefix")
TOKEN_UUID = _path("token_uuid", "The token's uuid")
CLIENT_ID = _path("client_id", "The application's client id")
USERNAME = _path("username", "A user (not a robot)")
SUPERUSER_ORGNAME = _path("name", "The organization")
PREFIX = _path("prefix", "The start of the names to find")


# ---------------------------------------------------------------------------------------------
# Identity


class CsrfTokenDoc(serializers.Serializer):
    csrf_token = serializers.CharField(help_text="Send it back in the X-CSRF-Token header with session writes")


class SigninFailureDoc(serializers.Serializer):
    success = serializers.BooleanField()
    # Quay's spelling.
    invalidCredentials = serializers.BooleanField()
    message = serializers.CharField()


class InitializedUserDoc(serializers.Serializer):
    username = serializers.CharField()
    email = serializers.CharField()
    encrypted_password = serializers.CharField(help_text="Always empty")
    access_token = serializers.CharField(required=False, help_text="An API token with every scope, when asked for")


class OrganizationSummaryDoc(serializers.Serializer):
    name = serializers.CharField()
    avatar = AvatarDoc()
    can_create_repo = serializers.BooleanField()
    public = serializers.BooleanField()
    is_org_admin = serializers.BooleanField()
    preferred_namespace = serializers.BooleanField()


class LoggedInUserDoc(serializers.Serializer):
    anonymous = serializers.BooleanField()
    username = serializers.CharField()
    avatar = AvatarDoc()
    can_create_repo = serializers.BooleanField()
    is_me = serializers.BooleanField()
    verified = serializers.BooleanField()
    email = serializers.CharField()
    logins = serializers.ListField(child=serializers.DictField(), help_text="External logins (none here)")
    invoice_email = serializers.BooleanField()
    invoice_email_address = serializers.CharField(allow_null=True)
    preferred_namespace = serializers.BooleanField()
    tag_expiration_s = serializers.IntegerField()
    prompts = serializers.ListField(child=serializers.CharField())
    company = serializers.CharField(allow_null=True)
    family_name = serializers.CharField(allow_null=True)
    given_name = serializers.CharField(allow_null=True)
    location = serializers.CharField(allow_null=True)
    super_user = serializers.BooleanField()
    organizations = OrganizationSummaryDoc(many=True)


class EntityDoc(serializers.Serializer):
    name = serializers.CharField()
    kind = serializers.ChoiceField(choices=["user", "team", "org"])
    is_robot = serializers.BooleanField(required=False, help_text="Users and robots only")
    is_org_member = serializers.BooleanField(required=False, help_text="When namespace names an organization")
    avatar = AvatarDoc()


class EntityListDoc(serializers.Serializer):
    results = EntityDoc(many=True)


# ---------------------------------------------------------------------------------------------
# Organizations, members and teams


class TeamSummaryDoc(serializers.Serializer):
    name = serializers.CharField()
    description = serializers.CharField()
    role = TeamRoleField(choices=TEAM_ROLES)
    avatar = AvatarDoc()
    can_view = serializers.BooleanField(help_text="Whether the caller may list its members")
    repo_count = serializers.IntegerField()
    member_count = serializers.IntegerField()
    is_synced = serializers.BooleanField()


class OrganizationDoc(serializers.Serializer):
    name = serializers.CharField()
    email = serializers.CharField(help_text="Empty unless the caller is an admin")
    avatar = AvatarDoc()
    is_admin = serializers.BooleanField()
    is_member = serializers.BooleanField()
    teams = serializers.DictField(child=TeamSummaryDoc(), required=False, help_text="Members only, by team name")
    ordered_teams = serializers.ListField(child=serializers.CharField(), required=False, help_text="Members only")
    invoice_email = serializers.BooleanField(required=False, help_text="Admins only")
    invoice_email_address = serializers.CharField(required=False, allow_null=True, help_text="Admins only")
    tag_expiration_s = serializers.IntegerField(required=False, help_text="Admins only")
    is_free_account = serializers.BooleanField(required=False, help_text="Admins only")


class TeamRefDoc(serializers.Serializer):
    name = serializers.CharField()
    avatar = AvatarDoc()


class OrganizationMemberDoc(serializers.Serializer):
    name = serializers.CharField()
    kind = serializers.ChoiceField(choices=["user", "robot"])
    avatar = AvatarDoc()
    teams = TeamRefDoc(many=True)
    repositories = serializers.ListField(
        child=serializers.CharField(), help_text="Repositories of the organization with a direct permission"
    )


class OrganizationMemberListDoc(serializers.Serializer):
    members = OrganizationMemberDoc(many=True)


class TeamDoc(serializers.Serializer):
    name = serializers.CharField()
    description = serializers.CharField()
    can_view = serializers.BooleanField()
    role = TeamRoleField(choices=TEAM_ROLES)
    avatar = AvatarDoc()
    new_team = serializers.BooleanField(help_text="Whether this call created the team")


class TeamMemberDoc(serializers.Serializer):
    name = serializers.CharField()
    kind = serializers.CharField()
    is_robot = serializers.BooleanField()
    avatar = AvatarDoc()
    invited = serializers.BooleanField()


class TeamMemberListDoc(serializers.Serializer):
    name = serializers.CharField()
    members = TeamMemberDoc(many=True)
    can_edit = serializers.BooleanField()


class PermissionRepositoryDoc(serializers.Serializer):
    name = serializers.CharField()
    is_public = serializers.BooleanField()


class RepositoryRoleDoc(serializers.Serializer):
    repository = PermissionRepositoryDoc()
    role = serializers.ChoiceField(choices=ROLES)


class RepositoryRoleListDoc(serializers.Serializer):
    permissions = RepositoryRoleDoc(many=True)


# ---------------------------------------------------------------------------------------------
# Robots, app tokens, applications


class RobotDoc(serializers.Serializer):
    name = serializers.CharField(help_text="namespace+name")
    created = serializers.CharField()
    last_accessed = serializers.CharField(allow_null=True)
    description = serializers.CharField()
    token = serializers.CharField(required=False, help_text="Admins only")
    unstructured_metadata = serializers.DictField(required=False)
    teams = TeamRefDoc(many=True, required=False, help_text="With permissions=true")
    repositories = serializers.ListField(
        child=serializers.CharField(), required=False, help_text="With permissions=true"
    )


class RobotListDoc(serializers.Serializer):
    robots = RobotDoc(many=True)


class AppTokenDoc(serializers.Serializer):
    uuid = serializers.CharField()
    title = serializers.CharField()
    last_accessed = serializers.CharField(allow_null=True)
    created = serializers.CharField()
    expiration = serializers.CharField(allow_null=True)
    token_code = serializers.CharField(required=False, help_text="Only in the answer that creates the token")


class AppTokenListDoc(serializers.Serializer):
    tokens = AppTokenDoc(many=True)
    only_expiring = serializers.BooleanField(allow_null=True)


class AppTokenEnvelopeDoc(serializers.Serializer):
    token = AppTokenDoc()


class ApplicationDoc(serializers.Serializer):
    name = serializers.CharField()
    description = serializers.CharField()
    application_uri = serializers.CharField()
    client_id = serializers.CharField()
    client_secret = serializers.CharField()
    redirect_uri = serializers.CharField()
    avatar_email = serializers.CharField(allow_null=True)


class ApplicationListDoc(serializers.Serializer):
    applications = ApplicationDoc(many=True)


class ApplicationOrganizationDoc(serializers.Serializer):
    name = serializers.CharField()
    email = serializers.CharField(help_text="Empty unless the caller is an admin")
    avatar = AvatarDoc()
    is_admin = serializers.BooleanField()
    is_member = serializers.BooleanField()


class ApplicationInformationDoc(serializers.Serializer):
    name = serializers.CharField()
    description = serializers.CharField()
    uri = serializers.CharField()
    avatar = AvatarDoc()
    organization = ApplicationOrganizationDoc()


# ---------------------------------------------------------------------------------------------
# Superuser


class InstallUserDoc(serializers.Serializer):
    kind = serializers.CharField()
    name = serializers.CharField()
    username = serializers.CharField()
    email = serializers.CharField()
    verified = serializers.BooleanField()
    avatar = AvatarDoc()
    super_user = serializers.BooleanField()
    enabled = serializers.BooleanField()
    encrypted_password = serializers.CharField(required=False, help_text="Empty; present when the password changed")


class InstallUserListDoc(serializers.Serializer):
    users = InstallUserDoc(many=True)


class CreatedInstallUserDoc(serializers.Serializer):
    username = serializers.CharField()
    email = serializers.CharField()
    password = serializers.CharField(help_text="The generated password, shown once")
    encrypted_password = serializers.CharField()


class InstallOrganizationDoc(serializers.Serializer):
    name = serializers.CharField()
    email = serializers.CharField()
    avatar = AvatarDoc()


class InstallOrganizationListDoc(serializers.Serializer):
    organizations = InstallOrganizationDoc(many=True)
