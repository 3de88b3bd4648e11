"""App-specific tokens of the signed-in user (Quay's /user/apptoken paths).

The token is a password replacement for CLIs (``$app`` or the username at /v2/auth). It is
shown once, in the creation response: it is stored hashed, so unlike Quay a later GET cannot
show it again.
"""

from datetime import timedelta

from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.response import Response

from accounts import scopes, selectors, services
from accounts.rest import docs
from accounts.rest.access import client_ip
from accounts.rest.robots import query_flag
from accounts.rest.serializers import format_date
from quay_site.rest.errors import NotFound
from quay_site.rest.views import ApiView

# Quay's "expiring soon": the last tenth of its default four-week token lifetime.
EXPIRING_WINDOW = timedelta(weeks=4) / 10


def token_view(row, *, token_code: str | None = None) -> dict:
    view = {
        "uuid": str(row.uuid),
        "title": row.title,
        "last_accessed": format_date(row.last_accessed),
        "created": format_date(row.created),
        "expiration": format_date(row.expiration),
    }
    if token_code is not None:
        view["token_code"] = token_code
    return view


class NewTokenInput(serializers.Serializer):
    title = serializers.CharField(max_length=255)


class AppTokenListView(ApiView):
    """``GET|POST /api/v1/user/apptoken``."""

    required_scopes = {"*": scopes.USER_ADMIN}
    nicknames = {"GET": "listAppTokens", "POST": "createAppToken"}

    @extend_schema(
        parameters=[docs.flag_param("expiring", "Only the tokens that expire soon")],
        responses={200: docs.AppTokenListDoc},
    )
    def get(self, request):
        """The caller's app-specific tokens (without their secrets)."""
        expiring = query_flag(request, "expiring", False) if "expiring" in request.query_params else None
        rows = selectors.app_tokens(user=request.user, expiring_within=EXPIRING_WINDOW if expiring else None)
        return Response({"tokens": [token_view(row) for row in rows], "only_expiring": expiring})

    @extend_schema(request=NewTokenInput, responses={200: docs.AppTokenEnvelopeDoc})
    def post(self, request):
        """Create an app-specific token; token_code is shown only in this answer."""
        data = NewTokenInput(data=request.data)
        data.is_valid(raise_exception=True)
        row, token = services.app_token_register(
            user=request.user, title=data.validated_data["title"], ip=client_ip(request)
        )
        return Response({"token": token_view(row, token_code=token)})


class AppTokenView(ApiView):
    """``GET|DELETE /api/v1/user/apptoken/<uuid>``: another user's token is a 404."""

    required_scopes = {"*": scopes.USER_ADMIN}
    nicknames = {"GET": "getAppToken", "DELETE": "revokeAppToken"}

    def _row(self, request, token_uuid):
        row = selectors.app_token_by_uuid(user=request.user, token_uuid=token_uuid)
        if row is None:
            raise NotFound()
        return row

    @extend_schema(parameters=[docs.TOKEN_UUID], responses={200: docs.AppTokenEnvelopeDoc})
    def get(self, request, token_uuid):
        """One of the caller's app-specific tokens."""
        return Response({"token": token_view(self._row(request, token_uuid))})

    @extend_schema(parameters=[docs.TOKEN_UUID], responses={204: docs.DELETED})
    def delete(self, request, token_uuid):
        """Revoke one of the caller's app-specific tokens."""
        services.app_token_revoke(app_token=self._row(request, token_uuid), actor=request.user, ip=client_ip(request))
        return Response(status=204)
