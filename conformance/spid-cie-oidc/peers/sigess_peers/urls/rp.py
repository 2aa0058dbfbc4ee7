from django.urls import include, path

from sigess_peers.views import health

urlpatterns = [
    path("", include("spid_cie_oidc.relying_party.urls")),  # oidc/rp/authorization, callback, ...
    path("oidc/rp/", include("spid_cie_oidc.entity.urls")),  # oidc/rp/.well-known/openid-federation
    path("sigess/health", health, name="sigess_health"),
]
