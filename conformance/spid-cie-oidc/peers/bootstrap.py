"""Initialise the local federation: databases, keys, TA profiles, the two OPs registered
under the TA with their trust marks, and the fake test user. Safe to run again."""
import pathlib
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))

from peerctl import manage, prepare_role, register  # noqa: E402
from sigess_peers import topology  # noqa: E402


def main() -> None:
    (topology.STATE_DIR / "logs").mkdir(parents=True, exist_ok=True)
    for role in topology.SERVER_ROLES:
        prepare_role(role)
    for role, op_id in topology.OP_IDS.items():
        jwks_file = topology.STATE_DIR / f"{role}.federation-jwks.json"
        manage(role, "peer_export_jwks", "--out", str(jwks_file))
        marks = register(op_id, "openid_provider", jwks_file.read_text(), name=f"SIGeSS {role}")
        print(manage(role, "peer_set_trust_marks", "--file", marks).strip())
        print(manage(role, "peer_test_user").strip())
    print(f"federation ready: TA {topology.TA_ID}, OPs {', '.join(topology.OP_IDS.values())}")


if __name__ == "__main__":
    main()
