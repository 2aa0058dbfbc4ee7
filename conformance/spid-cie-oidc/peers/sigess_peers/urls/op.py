from django.urls import include, path

from sigess_peers.views import health

urlpatterns = [
    path("", include("spid_cie_oidc.provider.urls")),  # oidc/op/authorization, token, ...
    path("oidc/op/", include("spid_cie_oidc.entity.urls")),  # oidc/op/.well-known/openid-federation
    path("sigess/health", health, name="sigess_health"),
]
