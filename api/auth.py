from dataclasses import dataclass

from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import authentication, exceptions, permissions

from accounts.models import Team

from .models import ApiKey
from .services import api_key_authenticate


@dataclass(frozen=True)
class ApiClient:
    """Who calls the API: a team, through one of its keys. Stands in for `request.user`."""

    team: Team
    api_key: ApiKey
    is_authenticated: bool = True
    is_anonymous: bool = False


class BearerKeyAuthentication(authentication.BaseAuthentication):
    """`Authorization: Bearer <key>`. A missing header is left to the permission (401); a wrong key is 401."""

    def authenticate(self, request):
        header = request.headers.get("Authorization", "")
        if not header:
            return None
        scheme, _, key = header.partition(" ")
        if scheme.lower() != "bearer" or not key.strip():
            raise exceptions.AuthenticationFailed()
        api_key = api_key_authenticate(key.strip())
        if api_key is None:
            raise exceptions.AuthenticationFailed()
        return ApiClient(team=api_key.team, api_key=api_key), api_key

    def authenticate_header(self, request):
        return 'Bearer realm="api"'  # makes DRF answer 401, not 403


class HasApiKey(permissions.BasePermission):
    def has_permission(self, request, view):
        return isinstance(request.auth, ApiKey)


class BearerKeyScheme(OpenApiAuthenticationExtension):
    """How the OpenAPI schema describes the key: `Authorization: Bearer <key>`."""

    target_class = "api.auth.BearerKeyAuthentication"
    name = "bearerAuth"

    def get_security_definition(self, auto_schema):
        return {"type": "http", "scheme": "bearer", "description": "An API key from Settings → API."}
