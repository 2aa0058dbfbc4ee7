"""Create or refresh this peer's own federation entity configuration.

Keys are generated the first time and then kept (they live in the peer's sqlite file
under state/). Metadata, entity id and authority hints are rewritten on every run so
that port changes are picked up.
"""
from django.conf import settings
from django.core.management.base import BaseCommand

from spid_cie_oidc.entity.models import FederationEntityConfiguration
from sigess_peers import entities, topology

ENTITY_TYPES = {
    "ta": "federation_entity",
    "op_spid": "openid_provider",
    "op_cie": "openid_provider",
    "rp_ref": "openid_relying_party",
}


class Command(BaseCommand):
    help = "Create or refresh the entity configuration (and keys) of the peer selected by --settings"

    def handle(self, *args, **options):
        role = settings.ROLE
        etype = ENTITY_TYPES[role]
        conf = FederationEntityConfiguration.objects.filter(entity_type=etype).first()
        if conf is None:
            if role == "ta":
                core = [entities.new_private_jwk("sig")]
            else:
                # one signing key (request objects / id tokens) and one encryption key
                # (userinfo JWE for an RP; unused but published for an OP)
                core = [entities.new_private_jwk("sig"), entities.new_private_jwk("enc")]
            conf = FederationEntityConfiguration(
                entity_type=etype,
                jwks_fed=[entities.new_private_jwk("sig")],
                jwks_core=core,
            )
            created = True
        else:
            created = False

        conf.sub = settings.ENTITY_ID
        conf.default_signature_alg = "RS256"
        conf.default_exp = settings.FEDERATION_DEFAULT_EXP
        conf.is_active = True
        if role == "ta":
            conf.metadata = entities.ta_metadata()
            conf.authority_hints = []
            conf.constraints = {"max_path_length": 1}
            conf.trust_mark_issuers = {
                topology.TM_RP_PUBLIC: [topology.TA_ID],
                topology.TM_OP_PUBLIC: [topology.TA_ID],
            }
        elif role.startswith("op_"):
            conf.metadata = entities.op_metadata(conf.sub, settings.OIDCFED_PROVIDER_PROFILE, conf.jwks_core)
            conf.authority_hints = [topology.TA_ID]
        else:
            conf.metadata = entities.rp_metadata(conf.sub, conf.jwks_core)
            conf.authority_hints = [topology.TA_ID]
        conf.full_clean()
        conf.save()
        FederationEntityConfiguration.objects.exclude(pk=conf.pk).update(is_active=False)

        if role == "ta":
            self._profiles(conf)
        self.stdout.write(f"{role}: {'created' if created else 'updated'} {conf.sub}")

    def _profiles(self, conf):
        from spid_cie_oidc.authority.models import FederationEntityProfile

        for profile_id, category, name in (
            (topology.TM_RP_PUBLIC, "openid_relying_party", "RP public"),
            (topology.TM_OP_PUBLIC, "openid_provider", "OP public"),
        ):
            FederationEntityProfile.objects.update_or_create(
                profile_id=profile_id,
                defaults=dict(
                    name=name,
                    profile_category=category,
                    trust_mark_template={
                        "organization_type": "public",
                        "id_code": {"ipa_code": "sigess"},
                        "email": "conformance@sigess.invalid",
                    },
                ),
            )
