"""Publish the given trust marks in this peer's own entity configuration."""
import json

from django.conf import settings
from django.core.management.base import BaseCommand

from spid_cie_oidc.entity.models import FederationEntityConfiguration


class Command(BaseCommand):
    help = "Set trust_marks of this peer's entity configuration from a JSON file ([] to clear)"

    def add_arguments(self, parser):
        parser.add_argument("--file", required=True)

    def handle(self, *args, **options):
        with open(options["file"]) as f:
            marks = json.load(f)
        conf = FederationEntityConfiguration.objects.get(sub=settings.ENTITY_ID, is_active=True)
        conf.trust_marks = marks
        conf.save()
        self.stdout.write(f"{settings.ROLE}: {len(marks)} trust mark(s) published")
