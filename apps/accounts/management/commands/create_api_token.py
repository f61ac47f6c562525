from django.core.management.base import BaseCommand, CommandError

from apps.accounts.models import User
from apps.accounts.services import create_api_token


class Command(BaseCommand):
    help = "Create an API token for USER and print its secret once (it is stored hashed)."

    def add_arguments(self, parser) -> None:
        parser.add_argument("username")
        parser.add_argument("--name", default="")

    def handle(self, *args, username: str, name: str, **options) -> None:
        user = User.objects.filter(username=username).first()
        if user is None:
            raise CommandError(f"No user named {username!r}.")
        _token, secret = create_api_token(actor=None, user=user, name=name)
        self.stdout.write(secret)
