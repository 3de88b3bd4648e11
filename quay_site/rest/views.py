"""The base of every /api/v1 view: auth classes, scopes and Quay's error format."""

from rest_framework.views import APIView

from quay_site.rest.auth import CsrfSessionAuthentication, OAuthTokenAuthentication, ScopePermission
from quay_site.rest.errors import exception_handler


class ApiView(APIView):
    authentication_classes = [OAuthTokenAuthentication, CsrfSessionAuthentication]
    permission_classes = [ScopePermission]
    # Method -> scope ("*" for any method); None: no authentication needed.
    required_scopes: dict[str, str | None] = {}

    def get_exception_handler(self):
        return exception_handler
