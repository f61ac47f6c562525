from django.utils import translation
from django.utils.translation import gettext_lazy as _
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import authentication, exceptions

from apps.accounts.services import authenticate_api_token


class ApiTokenAuthentication(authentication.BaseAuthentication):
    """`Authorization: Token kvp_...`; the token is looked up by its SHA-256 digest."""

    keyword = "Token"

    def authenticate(self, request):
        header = authentication.get_authorization_header(request).split()
        if not header or header[0].lower() != self.keyword.lower().encode():
            return None
        if len(header) != 2:
            raise exceptions.AuthenticationFailed(_("Invalid token header."))
        token = authenticate_api_token(header[1].decode(errors="replace"))
        if token is None:
            raise exceptions.AuthenticationFailed(_("Invalid, expired or revoked token."))
        if token.user.language:
            # Session users get this from UserLanguageMiddleware; token users are only known here.
            translation.activate(token.user.language)
        # The gate intersects with this on every check of this request (permissions.token_privileges);
        # token.user is loaded for this request only, so nothing carries over to the next one.
        token.user.token_privileges = token.privilege_limit
        return token.user, token

    def authenticate_header(self, request) -> str:
        return self.keyword


class ApiTokenScheme(OpenApiAuthenticationExtension):
    target_class = ApiTokenAuthentication
    name = "ApiToken"

    def get_security_definition(self, auto_schema):
        return {
            "type": "apiKey",
            "in": "header",
            "name": "Authorization",
            "description": "`Token kvp_...` (create one with `manage.py create_api_token USER`)",
        }
