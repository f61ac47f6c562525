"""The session's user, loaded with its 2FA state in the same query.

TwoFactorMiddleware must know on every request whether the user owes a second factor; asking would
cost a query on every page and API call (the list pages have query budgets). This backend's `get_user`,
which AuthenticationMiddleware and channels call once per request or socket, adds that state to the
one query that loads the user (two EXISTS subqueries). Authentication itself is ModelBackend's.
"""

from django.contrib.auth import get_user_model
from django.contrib.auth.backends import ModelBackend

from apps.accounts.otp.services import annotate_two_factor_state


class TwoFactorStateBackend(ModelBackend):
    def get_user(self, user_id):
        user = annotate_two_factor_state(get_user_model()._default_manager.filter(pk=user_id)).first()
        return user if user is not None and self.user_can_authenticate(user) else None
