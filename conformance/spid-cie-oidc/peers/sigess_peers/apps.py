from django.apps import AppConfig


class SigessPeersConfig(AppConfig):
    name = "sigess_peers"
    label = "sigess_peers"
    verbose_name = "SIGeSS conformance peers"
