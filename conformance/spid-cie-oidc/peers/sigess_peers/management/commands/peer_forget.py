"""Drop every cached trust chain / fetched statement about an entity, so that the next
request rebuilds it (needed after a registered RP rotates its keys)."""
from django.core.management.base import BaseCommand

from spid_cie_oidc.entity.models import FetchedEntityStatement, TrustChain


class Command(BaseCommand):
    help = "Forget cached trust chains for --sub"

    def add_arguments(self, parser):
        parser.add_argument("--sub", required=True)

    def handle(self, *args, **options):
        sub = options["sub"]
        variants = {sub, sub.rstrip("/"), sub.rstrip("/") + "/"}
        n_tc, _ = TrustChain.objects.filter(sub__in=variants).delete()
        n_es, _ = FetchedEntityStatement.objects.filter(sub__in=variants).exclude(iss__in=variants).delete()
        n_ec, _ = FetchedEntityStatement.objects.filter(sub__in=variants, iss__in=variants).delete()
        self.stdout.write(f"forgot {sub}: {n_tc} trust chain rows, {n_es + n_ec} statement rows")
