"""Fixtures: the running federation (TA + OPs) and the package's reference RP registered in it."""
import json
import os
import pathlib
import subprocess
import sys
import time
import urllib.request

import pytest

HARNESS = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(HARNESS / "peers"))

from peerctl import manage  # noqa: E402
from sigess_peers import topology  # noqa: E402


def healthy(role: str) -> bool:
    try:
        with urllib.request.urlopen(topology.base_url(role) + "sigess/health", timeout=2) as r:
            return r.status == 200
    except Exception:
        return False


def wait_healthy(role: str, proc=None, timeout: float = 40) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if healthy(role):
            return
        if proc is not None and proc.poll() is not None:
            break
        time.sleep(0.3)
    log = topology.STATE_DIR / "logs" / f"{role}.log"
    tail = log.read_text()[-3000:] if log.exists() else ""
    raise RuntimeError(f"{role} is not healthy\n{tail}")


@pytest.fixture(scope="session")
def federation():
    """TA and both OPs up; started here (and stopped at the end) if they were not running."""
    if not (topology.STATE_DIR / "ta.sqlite3").exists():
        pytest.fail("run ./setup.sh first")
    started = False
    if not all(healthy(r) for r in topology.SERVER_ROLES):
        subprocess.run([str(HARNESS / "run-peers.sh")], check=True, stdout=subprocess.DEVNULL)
        started = True
    yield topology
    if started and os.environ.get("SIGESS_PEERS_KEEP") != "1":
        subprocess.run([str(HARNESS / "stop-peers.sh")], check=False, stdout=subprocess.DEVNULL)


@pytest.fixture(scope="session")
def reference_rp(federation):
    """spid_cie_oidc.relying_party on a fresh database, registered under the TA with its
    trust mark published in its entity configuration. Yields its sqlite path."""
    role = "rp_ref"
    if healthy(role):
        pytest.fail(f"something already listens on {topology.base_url(role)}; stop it first")
    db = topology.STATE_DIR / f"{role}.sqlite3"
    db.unlink(missing_ok=True)
    manage(role, "migrate", "--noinput", "-v", "0")
    manage(role, "peer_init")

    logs = topology.STATE_DIR / "logs"
    pids = topology.STATE_DIR / "pids"
    logs.mkdir(parents=True, exist_ok=True)
    pids.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, PYTHONPATH=str(HARNESS / "peers"))
    with open(logs / f"{role}.log", "ab") as log:
        proc = subprocess.Popen(
            [
                sys.executable,
                str(HARNESS / "peers" / "manage.py"),
                "runserver",
                f"{topology.HOST}:{topology.PORTS[role]}",
                "--noreload",
                f"--settings=sigess_peers.settings.{role}",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
        )
    (pids / f"{role}.pid").write_text(str(proc.pid))
    try:
        wait_healthy(role, proc)
        # Registration reads the RP's keys from its live entity configuration.
        res = subprocess.run(
            [sys.executable, str(HARNESS / "register_rp.py"), "--entity-id", topology.RP_REF_ID,
             "--name", "reference RP"],
            capture_output=True, text=True,
        )
        assert res.returncode == 0, res.stderr
        marks = json.loads(res.stdout)
        assert [m["trust_mark_type"] for m in marks] == [topology.TM_RP_PUBLIC]
        marks_file = topology.STATE_DIR / "trust-marks" / f"{topology.slug(topology.RP_REF_ID)}.json"
        manage(role, "peer_set_trust_marks", "--file", str(marks_file))
        yield db
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
        (pids / f"{role}.pid").unlink(missing_ok=True)
