"""Bootstrap and identity endpoints: CSRF token, sign-in, first-user initialization, current user."""

from django.contrib.auth import login, logout
from django.core.exceptions import ValidationError
from django.db import transaction
from django.middleware.csrf import get_token
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import serializers
from rest_framework.response import Response
from rest_framework.throttling import ScopedRateThrottle

from accounts import scopes, selectors, services
from accounts.models import User
from accounts.rest import docs
from accounts.rest.access import client_ip
from accounts.rest.robots import query_flag
from accounts.rest.serializers import InitializeInput, SigninInput, org_avatar, team_avatar, user_avatar, user_view
from quay_site.rest.auth import CsrfSessionAuthentication
from quay_site.rest.errors import InvalidRequest
from quay_site.rest.views import ApiView


class CsrfTokenView(ApiView):
    """``GET /csrf_token``: the token to send back as ``X-CSRF-Token`` with session writes."""

    required_scopes = {"GET": None}

    @extend_schema(operation_id="getCsrfToken", responses={200: docs.CsrfTokenDoc})
    def get(self, request):
        return Response({"csrf_token": get_token(request)})


class SigninView(ApiView):
    """``POST /api/v1/signin``: starts a session (CSRF-checked, rate-limited)."""

    required_scopes = {"POST": None}
    throttle_classes = [ScopedRateThrottle]
    throttle_scope = "signin"
    nicknames = {"POST": "signinUser"}

    @extend_schema(
        request=SigninInput,
        parameters=[
            OpenApiParameter(
                "X-Next-CSRF-Token",
                OpenApiTypes.STR,
                OpenApiParameter.HEADER,
                response=[200],
                description="The session's new CSRF token, to send as X-CSRF-Token from now on",
            )
        ],
        responses={
            200: docs.SuccessDoc,
            403: OpenApiResponse(docs.SigninFailureDoc, description="Wrong username or password"),
        },
    )
    def post(self, request):
        """Sign in with a username and password; the new CSRF token comes back in X-Next-CSRF-Token."""
        # Sign-in starts a session, so it is CSRF-checked like the writes of a session.
        CsrfSessionAuthentication().enforce_csrf(request)
        data = SigninInput(data=request.data)
        data.is_valid(raise_exception=True)
        user = selectors.user_by_password(
            username=data.validated_data["username"], password=data.validated_data["password"]
        )
        if user is None:
            return Response(
                {"success": False, "invalidCredentials": True, "message": "Invalid username or password"}, status=403
            )
        login(request._request, user, backend="django.contrib.auth.backends.ModelBackend")
        response = Response({"success": True})
        # Signing in rotates the CSRF token; Quay's clients (the Ansible collection) read the new
        # one from this header and send it as X-CSRF-Token from then on.
        response["X-Next-CSRF-Token"] = get_token(request._request)
        return response


class SignoutView(ApiView):
    """``POST /api/v1/signout``: ends the session (CSRF-checked when there is one)."""

    required_scopes = {"POST": None}
    nicknames = {"POST": "logout"}

    @extend_schema(request=None, responses={200: docs.SuccessDoc})
    def post(self, request):
        """End the current session."""
        logout(request._request)
        return Response({"success": True})


class UserInitializeView(ApiView):
    """``POST /api/v1/user/initialize``: create the first user (a superuser) on an empty install.

    Refused once any user exists, so it cannot be used to take over a running registry.
    """

    required_scopes = {"POST": None}
    nicknames = {"POST": "initializeUser"}
    authentication_classes: list = []
    throttle_classes = [ScopedRateThrottle]
    throttle_scope = "signin"

    @extend_schema(request=InitializeInput, responses={200: docs.InitializedUserDoc})
    def post(self, request):
        """Create the first user of an empty install, optionally with an API token."""
        data = InitializeInput(data=request.data)
        data.is_valid(raise_exception=True)
        values = data.validated_data
        with transaction.atomic():
            if User.objects.exists():
                raise InvalidRequest("Cannot initialize user in a non-empty database")
            try:
                user = services.user_create(
                    username=values["username"],
                    password=values["password"],
                    email=values["email"],
                    is_superuser=True,
                )
            except ValidationError as exc:
                raise InvalidRequest(" ".join(exc.messages)) from None
            result = {"username": user.username, "email": user.email, "encrypted_password": ""}
            if values["access_token"]:
                _, token = services.oauth_token_create(user=user, scopes=scopes.ALL)
                result["access_token"] = token
        return Response(result)


class UserDetailsInput(serializers.Serializer):
    tag_expiration_s = serializers.IntegerField(
        required=False, help_text="Time machine window of the user's namespace, one of TAG_EXPIRATION_OPTIONS"
    )


class UserView(ApiView):
    """``GET|PUT /api/v1/user/``: the signed-in user."""

    required_scopes = {"GET": scopes.USER_READ, "PUT": scopes.USER_ADMIN}
    nicknames = {"GET": "getLoggedInUser", "PUT": "changeUserDetails"}

    @extend_schema(responses={200: docs.LoggedInUserDoc})
    def get(self, request):
        """The signed-in user."""
        return Response(user_view(request.user))

    @extend_schema(request=UserDetailsInput, responses={200: docs.LoggedInUserDoc})
    def put(self, request):
        """Change the time machine window of the caller's namespace (tag_expiration_s)."""
        # Quay's other user fields (password, e-mail, ...) are not changed through this API here:
        # refusing them beats answering 200 for a change that was not made.
        given = set(request.data) if isinstance(request.data, dict) else set()
        unsupported = sorted(given - set(UserDetailsInput().fields))
        if unsupported:
            raise InvalidRequest(f"Unsupported fields: {', '.join(unsupported)}")
        data = UserDetailsInput(data=request.data)
        data.is_valid(raise_exception=True)
        if request.user.is_robot:
            raise InvalidRequest("Robot accounts have no namespace of their own")
        seconds = data.validated_data.get("tag_expiration_s")
        if seconds is not None:
            try:
                services.user_tag_expiration_set(user=request.user, seconds=seconds, ip=client_ip(request))
            except ValidationError as exc:
                raise InvalidRequest(" ".join(exc.messages)) from None
        request.user.refresh_from_db()
        return Response(user_view(request.user))


class EntitySearchView(ApiView):
    """``GET /api/v1/entities/<prefix>?namespace=&includeTeams=&includeOrgs=``: users, and with a
    namespace the caller belongs to, its robots, teams and the organization itself. Public, as
    in Quay: user names are not secret; robots and teams are shown to members only."""

    required_scopes = {"GET": None}
    nicknames = {"GET": "getMatchingEntities"}

    @extend_schema(
        parameters=[
            docs.PREFIX,
            OpenApiParameter(
                "namespace",
                OpenApiTypes.STR,
                description="Also find the robots of this namespace: the caller's own, or an organization "
                "the caller belongs to",
            ),
            docs.flag_param("includeTeams", "Also find the teams of the organization named by namespace"),
            docs.flag_param("includeOrgs", "Also find the organization named by namespace"),
        ],
        responses={200: docs.EntityListDoc},
    )
    def get(self, request, prefix):
        """Users, robots, teams and organizations whose names start with the prefix."""
        prefix = "".join(prefix.split()).lower()
        matches = selectors.entity_search(
            prefix=prefix,
            viewer=request.user,
            namespace_name=request.query_params.get("namespace", ""),
            include_teams=query_flag(request, "includeTeams", False),
            include_orgs=query_flag(request, "includeOrgs", False),
        )
        results = [
            {"name": team.name, "kind": "team", "is_org_member": True, "avatar": team_avatar(team)}
            for team in matches.teams
        ]
        for user, is_org_member in matches.users:
            entry = {"name": user.username, "kind": "user", "is_robot": user.is_robot, "avatar": user_avatar(user)}
            if is_org_member is not None:
                entry["is_org_member"] = is_org_member
            results.append(entry)
        if matches.organization is not None:
            org = matches.organization
            results.append({"name": org.name, "kind": "org", "is_org_member": True, "avatar": org_avatar(org)})
        return Response({"results": results})
