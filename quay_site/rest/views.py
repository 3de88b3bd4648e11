"""The base of every /api/v1 view: auth classes, scopes and Quay's error format."""

from rest_framework.views import APIView

from quay_site.rest.auth import CsrfSessionAuthentication, OAuthTokenAuthentication, ScopePermission
from quay_site.rest.errors import InvalidRequest, exception_handler


class ApiView(APIView):
    authentication_classes = [OAuthTokenAuthentication, CsrfSessionAuthentication]
    permission_classes = [ScopePermission]
    # Method -> scope ("*" for any method); None: no authentication needed.
    required_scopes: dict[str, str | None] = {}

    def get_exception_handler(self):
        return exception_handler

    def initial(self, request, *args, **kwargs):
        # Path and query values reach database lookups; PostgreSQL refuses text with NUL in it,
        # which would be a 500. No name, id or filter of this API can hold one.
        values = [*kwargs.values(), *(k + v for k, vs in request.query_params.lists() for v in vs)]
        if any(isinstance(value, str) and "\x00" in value for value in values):
            raise InvalidRequest("Path and query parameters must not contain NUL characters")
        super().initial(request, *args, **kwargs)
