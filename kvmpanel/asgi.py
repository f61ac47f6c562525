"""HTTP and WebSocket entry point (daphne)."""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "kvmpanel.settings")
django_asgi_app = get_asgi_application()

from channels.auth import AuthMiddlewareStack  # noqa: E402 - needs Django set up first
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from channels.security.websocket import AllowedHostsOriginValidator  # noqa: E402

from apps.accounts.otp.middleware import TwoFactorWebsocketMiddleware  # noqa: E402
from kvmpanel.routing import websocket_urlpatterns  # noqa: E402

application = ProtocolTypeRouter(
    {
        "http": django_asgi_app,
        # A session that still owes its second factor is anonymous to every consumer (2FA middleware).
        "websocket": AllowedHostsOriginValidator(
            AuthMiddlewareStack(TwoFactorWebsocketMiddleware(URLRouter(websocket_urlpatterns)))
        ),
    }
)
