"""OAuth applications of an organization, and the implicit grant that issues API tokens.

Tokens come from ``POST /oauth/authorizeapp``, as in Quay: a signed-in session (CSRF token in
the ``X-CSRF-Token`` header or the ``_csrf_token`` form field) posts ``response_type=token``,
``client_id``, ``redirect_uri`` and ``scope`` and gets a 302 whose fragment carries
``access_token``. Quay's Ansible collection (``quay_api_token``) and its web UI work this way.
"""

from urllib.parse import quote, urlsplit

from drf_spectacular.utils import extend_schema
from rest_framework import exceptions, serializers
from rest_framework.response import Response

from accounts import scopes, selectors, services
from accounts.rest import docs
from accounts.rest.access import client_ip, org_access
from accounts.rest.serializers import avatar, org_avatar
from quay_site.rest.auth import CsrfSessionAuthentication
from quay_site.rest.errors import InvalidRequest, NotFound
from quay_site.rest.views import ApiView

LOCAL_OAUTH_PATH = "/oauth/localapp"


def app_view(application) -> dict:
    """Every caller of these endpoints administers the organization, so the secret is included."""
    return {
        "name": application.name,
        "description": application.description,
        "application_uri": application.application_uri,
        "client_id": application.client_id,
        "client_secret": services.oauth_client_secret(application=application),
        "redirect_uri": application.redirect_uri,
        # Quay answers null for an application without one; automation compares against that.
        "avatar_email": application.avatar_email or None,
    }


class NewAppInput(serializers.Serializer):
    name = serializers.CharField(max_length=255)
    redirect_uri = serializers.URLField(required=False, allow_blank=True, default="", max_length=200)
    application_uri = serializers.URLField(required=False, allow_blank=True, default="", max_length=200)
    description = serializers.CharField(required=False, allow_blank=True, default="", max_length=4096)
    avatar_email = serializers.EmailField(required=False, allow_blank=True, allow_null=True, default="")


class UpdateAppInput(NewAppInput):
    # Quay requires all three on update.
    redirect_uri = serializers.URLField(allow_blank=True, max_length=200)
    application_uri = serializers.URLField(allow_blank=True, max_length=200)


def _application_or_404(organization, client_id: str):
    application = selectors.oauth_application(organization=organization, client_id=client_id)
    if application is None:
        raise NotFound()
    return application


class ApplicationListView(ApiView):
    """``GET|POST /api/v1/organization/<org>/applications``."""

    required_scopes = {"*": scopes.ORG_ADMIN}
    nicknames = {"GET": "getOrganizationApplications", "POST": "createOrganizationApplication"}

    @extend_schema(parameters=[docs.ORGNAME], responses={200: docs.ApplicationListDoc})
    def get(self, request, orgname):
        """The organization's OAuth applications."""
        access = org_access(request, orgname, need="admin")
        applications = selectors.oauth_applications(organization=access.organization)
        return Response({"applications": [app_view(application) for application in applications]})

    @extend_schema(parameters=[docs.ORGNAME], request=NewAppInput, responses={200: docs.ApplicationDoc})
    def post(self, request, orgname):
        """Register an OAuth application."""
        access = org_access(request, orgname, need="admin")
        data = NewAppInput(data=request.data)
        data.is_valid(raise_exception=True)
        values = data.validated_data
        application = services.oauth_application_create(
            organization=access.organization,
            name=values["name"],
            application_uri=values["application_uri"],
            redirect_uri=values["redirect_uri"],
            description=values["description"],
            avatar_email=values["avatar_email"] or "",
            actor=request.user,
            ip=client_ip(request),
        )
        return Response(app_view(application))


class ApplicationView(ApiView):
    """``GET|PUT|DELETE /api/v1/organization/<org>/applications/<client_id>``."""

    required_scopes = {"*": scopes.ORG_ADMIN}
    nicknames = {
        "GET": "getOrganizationApplication",
        "PUT": "updateOrganizationApplication",
        "DELETE": "deleteOrganizationApplication",
    }

    @extend_schema(parameters=[docs.ORGNAME, docs.CLIENT_ID], responses={200: docs.ApplicationDoc})
    def get(self, request, orgname, client_id):
        """One OAuth application with its client secret."""
        access = org_access(request, orgname, need="admin")
        return Response(app_view(_application_or_404(access.organization, client_id)))

    @extend_schema(
        parameters=[docs.ORGNAME, docs.CLIENT_ID], request=UpdateAppInput, responses={200: docs.ApplicationDoc}
    )
    def put(self, request, orgname, client_id):
        """Change an OAuth application."""
        access = org_access(request, orgname, need="admin")
        application = _application_or_404(access.organization, client_id)
        data = UpdateAppInput(data=request.data)
        data.is_valid(raise_exception=True)
        values = data.validated_data
        services.oauth_application_update(
            application=application,
            name=values["name"],
            application_uri=values["application_uri"],
            redirect_uri=values["redirect_uri"],
            description=values["description"],
            avatar_email=values["avatar_email"] or "",
            actor=request.user,
            ip=client_ip(request),
        )
        return Response(app_view(application))

    @extend_schema(parameters=[docs.ORGNAME, docs.CLIENT_ID], responses={204: docs.DELETED})
    def delete(self, request, orgname, client_id):
        """Delete an OAuth application and the tokens issued through it."""
        access = org_access(request, orgname, need="admin")
        application = _application_or_404(access.organization, client_id)
        services.oauth_application_delete(application=application, actor=request.user, ip=client_ip(request))
        return Response(status=204)


class ApplicationResetSecretView(ApiView):
    """``POST /api/v1/organization/<org>/applications/<client_id>/resetclientsecret``."""

    required_scopes = {"POST": scopes.ORG_ADMIN}
    nicknames = {"POST": "resetOrganizationApplicationClientSecret"}

    @extend_schema(parameters=[docs.ORGNAME, docs.CLIENT_ID], request=None, responses={200: docs.ApplicationDoc})
    def post(self, request, orgname, client_id):
        """Replace the application's client secret."""
        access = org_access(request, orgname, need="admin")
        application = _application_or_404(access.organization, client_id)
        services.oauth_application_reset_secret(application=application, actor=request.user, ip=client_ip(request))
        return Response(app_view(application))


class ApplicationInformationView(ApiView):
    """``GET /api/v1/app/<client_id>``: what an authorization page shows about an application."""

    required_scopes = {"GET": None}
    nicknames = {"GET": "getApplicationInformation"}

    @extend_schema(parameters=[docs.CLIENT_ID], responses={200: docs.ApplicationInformationDoc})
    def get(self, request, client_id):
        """Public facts about an application, for an authorization page."""
        application = selectors.oauth_application_by_client_id(client_id=client_id)
        if application is None:
            raise NotFound()
        org = application.organization
        access = org_access(request, org.name)
        return Response(
            {
                "name": application.name,
                "description": application.description,
                "uri": application.application_uri,
                "avatar": avatar(application.name, application.avatar_email or org.email, "app"),
                "organization": {
                    "name": org.name,
                    "email": org.email if access.is_admin else "",
                    "avatar": org_avatar(org),
                    "is_admin": access.is_admin,
                    "is_member": access.is_member,
                },
            }
        )


def _redirect_allowed(request, application, redirect_uri: str) -> bool:
    """This server's own token page, or a URL under the application's registered redirect URI
    (same scheme and host, path below it), so tokens never leave for an unregistered host."""
    target = urlsplit(redirect_uri)
    if target.path == LOCAL_OAUTH_PATH and target.netloc == request.get_host():
        return True
    if not application.redirect_uri:
        return False
    registered = urlsplit(application.redirect_uri)
    return (
        (target.scheme, target.netloc) == (registered.scheme, registered.netloc)
        and target.path.startswith(registered.path)
        and not target.fragment
    )


def _with_query(uri: str, **params: str) -> str:
    query = "&".join(f"{key}={quote(value, safe='')}" for key, value in params.items())
    return f"{uri}{'&' if '?' in uri else '?'}{query}"


def _redirect(location: str) -> Response:
    # Not HttpResponseRedirect: registered redirect URIs may use an app's own scheme.
    return Response(status=302, headers={"Location": location})


class AuthorizeApplicationView(ApiView):
    """``POST /oauth/authorizeapp``: issue a token for the signed-in user through an application."""

    authentication_classes = [CsrfSessionAuthentication]
    required_scopes = {"POST": None}
    nicknames = {"POST": "authorizeApplication"}

    def initial(self, request, *args, **kwargs):
        # Quay's form carries the CSRF token as `_csrf_token`; Django's check reads the header.
        form_token = request._request.POST.get("_csrf_token")
        if form_token and "HTTP_X_CSRF_TOKEN" not in request.META:
            request._request.META["HTTP_X_CSRF_TOKEN"] = form_token
        super().initial(request, *args, **kwargs)

    def post(self, request):
        """Issue a token through an application (implicit grant), answered by a redirect."""
        if not request.user.is_authenticated:
            raise exceptions.NotAuthenticated("Requires a signed-in session")
        client_id = request.data.get("client_id", "")
        redirect_uri = request.data.get("redirect_uri", "")
        application = selectors.oauth_application_by_client_id(client_id=client_id) if client_id else None
        if application is None:
            # Quay redirects this error to the unchecked redirect_uri; an error body cannot be misused.
            raise InvalidRequest("Unknown client_id")
        if not redirect_uri or not _redirect_allowed(request, application, redirect_uri):
            raise InvalidRequest("redirect_uri does not match the application")
        if request.data.get("response_type", "") != "token":
            return _redirect(_with_query(redirect_uri, error="unsupported_response_type"))
        try:
            requested = scopes.parse(request.data.get("scope", ""))
        except ValueError:
            requested = frozenset()
        if not requested:
            return _redirect(_with_query(redirect_uri, error="invalid_scope"))
        row, token = services.oauth_token_authorize(application=application, user=request.user, scopes=requested)
        location = _with_query(redirect_uri, scope=row.scopes)
        location += f"#access_token={token}&token_type=Bearer&expires_in={services.OAUTH_IMPLICIT_TOKEN_SECONDS}"
        return _redirect(location)
