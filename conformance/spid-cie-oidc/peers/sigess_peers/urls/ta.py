from django.urls import include, path

from sigess_peers.views import descendant_trust_marks, health

urlpatterns = [
    path("", include("spid_cie_oidc.entity.urls")),  # .well-known/openid-federation, resolve
    path("", include("spid_cie_oidc.authority.urls")),  # fetch, list, trust_mark_status, ...
    path("sigess/trust_marks", descendant_trust_marks, name="sigess_trust_marks"),
    path("sigess/health", health, name="sigess_health"),
]
