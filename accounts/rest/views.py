"""Bootstrap and identity endpoints: CSRF token, sign-in, first-user initialization, current user."""

from django.contrib.auth import login
from django.core.exceptions import ValidationError
from django.db import transaction
from django.middleware.csrf import get_token
from rest_framework.response import Response
from rest_framework.throttling import ScopedRateThrottle

from accounts import scopes, selectors, services
from accounts.models import User
from accounts.rest.serializers import InitializeInput, SigninInput, user_view
from quay_site.rest.auth import CsrfSessionAuthentication
from quay_site.rest.errors import InvalidRequest
from quay_site.rest.views import ApiView


class CsrfTokenView(ApiView):
    """``GET /csrf_token``: the token to send back as ``X-CSRF-Token`` with session writes."""

    required_scopes = {"GET": None}

    def get(self, request):
        return Response({"csrf_token": get_token(request)})


class SigninView(ApiView):
    """``POST /api/v1/signin``: starts a session (CSRF-checked, rate-limited)."""

    required_scopes = {"POST": None}
    throttle_classes = [ScopedRateThrottle]
    throttle_scope = "signin"

    def post(self, request):
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
        return Response({"success": True})


class UserInitializeView(ApiView):
    """``POST /api/v1/user/initialize``: create the first user (a superuser) on an empty install.

    Refused once any user exists, so it cannot be used to take over a running registry.
    """

    required_scopes = {"POST": None}
    authentication_classes: list = []
    throttle_classes = [ScopedRateThrottle]
    throttle_scope = "signin"

    def post(self, request):
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


class UserView(ApiView):
    """``GET /api/v1/user/``: the signed-in user."""

    required_scopes = {"GET": scopes.USER_READ}

    def get(self, request):
        return Response(user_view(request.user))
