"""Trust Anchor: register (or refresh) a federation descendant and issue its trust mark."""
import json
import sys

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from spid_cie_oidc.authority.models import (
    FederationDescendant,
    FederationEntityAssignedProfile,
    FederationEntityProfile,
)
from spid_cie_oidc.entity.models import get_first_self_trust_anchor
from spid_cie_oidc.entity.validators import validate_public_jwks
from sigess_peers import topology

PROFILE_BY_TYPE = {
    "openid_relying_party": topology.TM_RP_PUBLIC,
    "openid_provider": topology.TM_OP_PUBLIC,
}


class Command(BaseCommand):
    help = "Register an entity as a descendant of the Trust Anchor and print its trust marks (JSON)"

    def add_arguments(self, parser):
        parser.add_argument("--sub", required=True, help="entity id of the descendant")
        parser.add_argument("--type", default="openid_relying_party", choices=sorted(PROFILE_BY_TYPE))
        parser.add_argument("--jwks-file", required=True, help='public federation JWKS, {"keys": [...]}; - for stdin')
        parser.add_argument("--name", default="")
        parser.add_argument("--out", default="", help="also write the trust marks JSON here")

    def handle(self, *args, **o):
        if settings.ROLE != "ta":
            raise CommandError("run with --settings=sigess_peers.settings.ta")
        sub = topology.require_loopback(o["sub"])
        raw = sys.stdin.read() if o["jwks_file"] == "-" else open(o["jwks_file"]).read()
        jwks = json.loads(raw)
        keys = jwks.get("keys", jwks) if isinstance(jwks, dict) else jwks
        if not keys:
            raise CommandError("empty JWKS")
        validate_public_jwks(keys)

        ta = get_first_self_trust_anchor()
        if not ta:
            raise CommandError("the Trust Anchor is not initialised: run peer_init first")
        profile = FederationEntityProfile.objects.get(profile_id=PROFILE_BY_TYPE[o["type"]])
        name = (o["name"] or sub)[:33]
        with transaction.atomic():
            desc, _ = FederationDescendant.objects.update_or_create(
                sub=sub,
                defaults=dict(name=name, type=o["type"], jwks=keys, is_active=True, status="valid"),
            )
            FederationEntityAssignedProfile.objects.get_or_create(descendant=desc, profile=profile, issuer=ta)
        marks = desc.trust_marks
        out = json.dumps(marks, indent=2)
        if o["out"]:
            with open(o["out"], "w") as f:
                f.write(out)
        self.stdout.write(out)
