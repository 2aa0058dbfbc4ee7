"""Starts a real `sigess up` on free loopback ports with a fresh SQLite file, generates the
cartella.v1 stubs, and hands tests a channel plus caller tokens minted by `sigess token`."""
import os
import pathlib
import socket
import subprocess
import sys
import time

import grpc
import pytest

HERE = pathlib.Path(__file__).resolve().parent
ROOT = HERE.parents[1]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def stubs(tmp_path_factory):
    out = tmp_path_factory.mktemp("gen")
    sys.path.insert(0, str(HERE))
    from generate import generate

    generate(out)
    sys.path.insert(0, str(out))
    from cartella.v1 import cartella_service_pb2 as svc, cartella_service_pb2_grpc as svc_grpc, types_pb2 as types

    return svc, svc_grpc, types


@pytest.fixture(scope="session")
def sigess_bin():
    path = pathlib.Path(os.environ.get("SIGESS_BIN", ROOT / "target" / "debug" / "sigess"))
    if not path.exists():
        pytest.fail(f"{path} not found: build it with `cargo build -p gateway` or set SIGESS_BIN")
    return path


@pytest.fixture(scope="session")
def hub(sigess_bin, tmp_path_factory):
    work = tmp_path_factory.mktemp("hub")
    grpc_port, http_port = _free_port(), _free_port()
    key = work / "hub-signing-key.pem"
    env = dict(os.environ, RUST_LOG="warn")
    proc = subprocess.Popen(
        [str(sigess_bin), "up", "--database-url", f"sqlite://{work}/sigess.db",
         "--grpc-addr", f"127.0.0.1:{grpc_port}", "--http-addr", f"127.0.0.1:{http_port}",
         "--signing-key", str(key)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env,
    )
    target = f"127.0.0.1:{grpc_port}"
    deadline = time.time() + 30
    while True:
        try:
            with socket.create_connection(("127.0.0.1", grpc_port), timeout=0.5):
                break
        except OSError:
            if proc.poll() is not None or time.time() > deadline:
                out = proc.stdout.read().decode(errors="replace") if proc.stdout else ""
                proc.kill()
                pytest.fail(f"sigess up did not start:\n{out}")
            time.sleep(0.2)

    def token(ufficio="M01", roles="operatore"):
        args = [str(sigess_bin), "token", "--signing-key", str(key), "--roles", roles, "--subject", "python-client"]
        if ufficio:
            args += ["--ufficio", ufficio]
        return subprocess.run(args, check=True, capture_output=True, text=True).stdout.strip()

    yield {"target": target, "token": token, "http": f"http://127.0.0.1:{http_port}"}
    proc.terminate()
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()
        raise
    assert proc.returncode == 0, "sigess up must exit cleanly on SIGTERM"


@pytest.fixture
def channel(hub):
    with grpc.insecure_channel(hub["target"]) as ch:
        grpc.channel_ready_future(ch).result(timeout=10)
        yield ch
