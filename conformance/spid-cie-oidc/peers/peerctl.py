"""Helpers to drive the peers' Django management commands from plain Python."""
import os
import subprocess
import sys

from sigess_peers import topology

MANAGE = str(topology.PEERS_DIR / "manage.py")


def manage(role: str, *args: str, input: str = None, check: bool = True) -> str:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(topology.PEERS_DIR) + os.pathsep + env.get("PYTHONPATH", "")
    cmd = [sys.executable, MANAGE, *args, f"--settings=sigess_peers.settings.{role}"]
    res = subprocess.run(cmd, env=env, input=input, capture_output=True, text=True)
    if check and res.returncode != 0:
        raise SystemExit(
            f"manage.py {' '.join(args)} ({role}) failed with {res.returncode}\n{res.stdout}\n{res.stderr}"
        )
    return res.stdout


def prepare_role(role: str) -> None:
    manage(role, "migrate", "--noinput", "-v", "0")
    print(manage(role, "peer_init").strip())


def register(sub: str, etype: str, jwks_json: str, name: str = "") -> str:
    """Register sub at the TA; returns the trust marks JSON and stores it under state/."""
    out_dir = topology.STATE_DIR / "trust-marks"
    out_dir.mkdir(parents=True, exist_ok=True)
    out = out_dir / f"{topology.slug(sub)}.json"
    args = ["peer_register", "--sub", sub, "--type", etype, "--jwks-file", "-", "--out", str(out)]
    if name:
        args += ["--name", name]
    manage("ta", *args, input=jwks_json)
    return str(out)
