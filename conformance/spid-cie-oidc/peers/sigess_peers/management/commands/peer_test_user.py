"""OP only: create or refresh the fake test user that logs in at the OP."""
from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from sigess_peers import topology


class Command(BaseCommand):
    help = "Create/refresh the fake citizen used by the conformance tests"

    def handle(self, *args, **options):
        if not settings.ROLE.startswith("op_"):
            raise CommandError("run with an OP settings module")
        u = topology.TEST_USER
        user, created = get_user_model().objects.get_or_create(username=u["username"])
        user.set_password(u["password"])
        user.first_name = u["given_name"]
        user.last_name = u["family_name"]
        user.email = u["email"]
        user.is_staff = False
        user.is_superuser = False
        user.is_active = True
        # Claim names exactly as requested by RPs: userinfo releases attributes[claim].
        user.attributes = {
            "given_name": u["given_name"],
            "family_name": u["family_name"],
            "email": u["email"],
            "email_verified": True,
            "birthdate": "1980-01-01",
            "place_of_birth": {"locality": "H501", "region": "RM"},
            "gender": "M",
            "phone_number": "+393330000000",
            "fiscal_number": u["fiscal_number"],
            "https://attributes.eid.gov.it/fiscal_number": u["fiscal_number"],
        }
        user.save()
        self.stdout.write(f"{settings.ROLE}: test user {user.username} {'created' if created else 'refreshed'}")
