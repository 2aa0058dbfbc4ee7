"""SPID-like OpenID Provider."""
from .common import *  # noqa: F401,F403
from ._op import op_settings

globals().update(op_settings("op_spid", "spid"))
