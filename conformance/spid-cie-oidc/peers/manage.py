#!/usr/bin/env python
"""Django entry point for the SPID/CIE OIDC federation peers (TA, OPs, reference RP).

Pick the peer with --settings, e.g. sigess_peers.settings.ta
"""
import os
import sys

if __name__ == "__main__":
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "sigess_peers.settings.ta")
    from django.core.management import execute_from_command_line

    execute_from_command_line(sys.argv)
