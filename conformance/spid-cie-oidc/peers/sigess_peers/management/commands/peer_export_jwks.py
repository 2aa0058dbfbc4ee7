"""Write this peer's public federation JWKS ({"keys": [...]}) to a file."""
import json

from django.conf import settings
from django.core.management.base import BaseCommand

from spid_cie_oidc.entity.models import FederationEntityConfiguration


class Command(BaseCommand):
    help = "Export the public federation JWKS of this peer"

    def add_arguments(self, parser):
        parser.add_argument("--out", required=True)

    def handle(self, *args, **options):
        conf = FederationEntityConfiguration.objects.get(sub=settings.ENTITY_ID, is_active=True)
        with open(options["out"], "w") as f:
            json.dump({"keys": conf.public_jwks}, f, indent=2)
