"""Small helper endpoints of the harness (not part of any specification)."""
from django.conf import settings
from django.http import JsonResponse

from spid_cie_oidc.entity.models import FederationEntityConfiguration


def health(request):
    conf = FederationEntityConfiguration.objects.filter(sub=settings.ENTITY_ID, is_active=True).first()
    body = {"role": settings.ROLE, "entity_id": settings.ENTITY_ID, "configured": bool(conf)}
    return JsonResponse(body, status=200 if conf else 503)


def descendant_trust_marks(request):
    """Trust Anchor only: the trust marks currently issued to a registered descendant.

    GET /sigess/trust_marks?sub=<entity id>  ->  [{"trust_mark_type", "trust_mark", ...}]
    An RP publishes this list as "trust_marks" in its own entity configuration.
    """
    from spid_cie_oidc.authority.models import FederationDescendant

    sub = request.GET.get("sub", "")
    desc = FederationDescendant.objects.filter(sub=sub, is_active=True).first()
    if not desc:
        return JsonResponse({"error": "not_found", "error_description": f"{sub} is not registered"}, status=404)
    return JsonResponse(desc.trust_marks, safe=False)
