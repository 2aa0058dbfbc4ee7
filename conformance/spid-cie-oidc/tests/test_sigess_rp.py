"""End-to-end SPID/CIE login against the SIGeSS relying party (`sigess up`), no browser.

The hub runs with its RP enabled on a loopback entity id; it is registered at the local
Trust Anchor with `register_rp.py`, restarted with the issued trust mark, and an operator
is registered for the fake citizen. The test then plays the browser: login page,
authorization (signed request object), the OP's login and consent forms, the callback
(token, ID token, encrypted userinfo), a REST call as the logged-in operator, logout with
token revocation, and where the browser lands (the console for console roles, the page a
login was started for, never a return target off the site). Refusals are checked too: unknown person, wrong/replayed state, tampered
request object, providers without a valid trust chain, CSRF on logout and on writes, and
that no token, code or fiscal number reaches the hub's log.

Token-level refusals the real OP cannot be made to produce (wrong nonce, expired ID token,
alg none/HS256, wrong audience, userinfo JWE for another key) are Rust unit tests in
adapters/spid-cie.
"""
import json
import os
import pathlib
import re
import shutil
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.parse

import pytest
import requests

from sigess_peers import topology
from test_reference_login import (
    TIMEOUT, USER, entity_configuration, form_with, jwt_parts, parse, query, redirect, verify,
)

HARNESS = pathlib.Path(__file__).resolve().parent.parent
REPO = HARNESS.parent.parent
RP_ID = os.environ.get("SIGESS_RP_TEST_URL", "http://127.0.0.1:18080/oidc/rp/")
RP_BASE = RP_ID[: -len("oidc/rp/")]
COOKIE = "sigess_rp_session"
CF = USER["fiscal_number"].removeprefix("TINIT-")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def sigess_binary() -> str:
    if os.environ.get("SIGESS_BIN"):
        return os.environ["SIGESS_BIN"]
    target = pathlib.Path(os.environ.get("CARGO_TARGET_DIR", REPO / "target"))
    subprocess.run(["cargo", "build", "-q", "-p", "gateway", "--bin", "sigess"], cwd=REPO, check=True,
                   env=dict(os.environ, CARGO_TARGET_DIR=str(target)))
    return str(target / "debug" / "sigess")


class Hub:
    """`sigess up` with the RP enabled, in a temporary data folder."""

    def __init__(self, data: pathlib.Path):
        self.data = data
        self.log = data / "sigess.log"
        self.proc = None

    def start(self, trust_marks: pathlib.Path | None = None):
        port = urllib.parse.urlparse(RP_ID).port
        args = [
            sigess_binary(), "up", "--demo", "--demo-size", "2",
            "--database-url", f"sqlite://{self.data / 'sigess.db'}",
            "--edge-database-url", f"sqlite://{self.data / 'edge.db'}",
            "--signing-key", str(self.data / "hub-signing-key.pem"),
            "--grpc-addr", f"127.0.0.1:{free_port()}",
            "--http-addr", f"127.0.0.1:{port}",
            "--spid-entity-id", RP_ID,
            "--spid-trust-anchor", topology.TA_ID,
            "--spid-federation-key", str(self.data / "fed.pem"),
            "--spid-sig-key", str(self.data / "sig.pem"),
            "--spid-enc-key", str(self.data / "enc.pem"),
            "--spid-provider-trust-mark", topology.TM_OP_PUBLIC,
            "--spid-cie-providers", topology.OP_CIE_ID,
            "--session-cookie-secure", "false",
            # The reference peers run on plain http on 127.0.0.1.
            "--spid-allow-http-loopback",
            # Every login of the suite comes from 127.0.0.1, faster than any office would.
            "--login-rate-per-minute", "100000",
            "--spid-policy-uri", "https://www.comune.roma.it/privacy",
            "--spid-logo-uri", "https://www.comune.roma.it/logo.svg",
            "--spid-contact", "protocollo.sociale@pec.comune.roma.it",
        ]
        if trust_marks:
            args += ["--spid-trust-marks", str(trust_marks)]
        env = dict(os.environ, RUST_LOG="info,spid_cie=debug", SIGESS_LOG_FORMAT="text")
        self.proc = subprocess.Popen(args, stdout=open(self.data / "stdout.log", "ab"), stderr=open(self.log, "ab"), env=env)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if requests.get(RP_BASE + "healthz", timeout=1).status_code == 200:
                    return
            except requests.RequestException:
                pass
            if self.proc.poll() is not None:
                break
            time.sleep(0.3)
        raise RuntimeError("sigess did not start:\n" + self.log.read_text()[-3000:])

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        self.proc = None

    def db(self):
        """Core's database (records, audit)."""
        return sqlite3.connect(str(self.data / "sigess.db"), timeout=10)

    def edge_db(self):
        """The gateway's edge database (operators, logins, sessions)."""
        return sqlite3.connect(str(self.data / "edge.db"), timeout=10)


@pytest.fixture(scope="module")
def hub(federation, tmp_path_factory):
    data = tmp_path_factory.mktemp("sigess-rp")
    h = Hub(data)
    h.start()
    try:
        res = subprocess.run([sys.executable, str(HARNESS / "register_rp.py"), "--entity-id", RP_ID, "--name", "SIGeSS"],
                             capture_output=True, text=True)
        assert res.returncode == 0, res.stderr
        assert "warning" not in res.stderr.lower(), res.stderr
        marks = data / "trust-marks.json"
        marks.write_text(res.stdout)
        h.stop()
        h.start(marks)
        yield h
    finally:
        h.stop()


def login(browser: requests.Session, op_id: str, expect_status=303, next_path=None):
    """Runs a login at `op_id` (asked to return to `next_path`) up to our callback's answer."""
    page = browser.get(RP_ID, params={"next": next_path} if next_path else None, timeout=TIMEOUT)
    assert page.status_code == 200
    links = [urllib.parse.urljoin(RP_ID, a) for a in re.findall(r'href="([^"]*authorization\?[^"]*)"', page.text)]
    link = next(l for l in links if query(l.replace("&amp;", "&"))["provider"] == op_id)
    res = browser.get(link.replace("&amp;", "&"), allow_redirects=False, timeout=TIMEOUT)
    authz_url = redirect(res)
    params = query(authz_url)
    _, rp_ec = entity_configuration(RP_ID)
    ro = verify(params["request"], rp_ec["metadata"]["openid_relying_party"]["jwks"]["keys"])
    assert ro["iss"] == RP_ID and op_id in ro["aud"] and len(ro["state"]) >= 32 and len(ro["nonce"]) >= 32

    res = browser.get(authz_url, allow_redirects=False, timeout=TIMEOUT)
    assert res.status_code == 200, f"OP refused our request: {res.status_code} {res.headers.get('Location')}"
    form = form_with(parse(res.text), "username")
    data = dict(form["inputs"], username=USER["username"], password=USER["password"])
    res = browser.post(urllib.parse.urljoin(authz_url, form["action"]), data=data, allow_redirects=False, timeout=TIMEOUT)
    consent_url = redirect(res)
    res = browser.get(consent_url, allow_redirects=False, timeout=TIMEOUT)
    consent = form_with(parse(res.text), "agree")
    res = browser.post(urllib.parse.urljoin(consent_url, consent["action"]), data=consent["inputs"],
                       allow_redirects=False, timeout=TIMEOUT)
    callback = redirect(res)
    assert callback.startswith(RP_ID + "callback?"), callback
    cb = query(callback)
    assert cb["state"] == ro["state"] and cb["iss"] == op_id
    res = browser.get(callback, allow_redirects=False, timeout=TIMEOUT)
    assert res.status_code == expect_status, res.text[:1500]
    return res, callback, cb


def register_operator(h: Hub):
    with h.edge_db() as con:
        con.execute(
            "INSERT OR IGNORE INTO operator (operator_id, codice_fiscale, ente, ufficio, roles, created_at) "
            "VALUES ('op-m01-test', ?, 'H501', 'M01', 'operatore', '2026-11-23T00:00:00Z')", (CF,))


def test_entity_configuration(hub):
    jwt, ec = entity_configuration(RP_ID)
    head, _ = jwt_parts(jwt)
    assert head["typ"] == "entity-statement+jwt" and head.get("kid")
    verify(jwt, ec["jwks"]["keys"])
    assert ec["iss"] == ec["sub"] == RP_ID
    assert ec["authority_hints"] == [topology.TA_ID]
    assert [m["trust_mark_type"] for m in ec["trust_marks"]] == [topology.TM_RP_PUBLIC]
    md = ec["metadata"]["openid_relying_party"]
    assert md["client_id"] == RP_ID and md["redirect_uris"] == [RP_ID + "callback"]
    assert {k["use"] for k in md["jwks"]["keys"]} == {"sig", "enc"}
    # What the SPID/CIE technical rules require of an RP for onboarding.
    assert md["client_registration_types"] == ["automatic"]
    assert md["contacts"] == ["protocollo.sociale@pec.comune.roma.it"]
    fe = ec["metadata"]["federation_entity"]
    for claim in ("organization_name", "homepage_uri", "policy_uri", "logo_uri", "contacts", "federation_resolve_endpoint"):
        assert fe.get(claim), f"federation_entity lacks {claim}"
    assert fe["federation_resolve_endpoint"] == RP_ID + "resolve"


def test_resolve_endpoint_answers_with_the_chain_through_the_anchor(hub):
    r = requests.get(RP_ID + "resolve", params={"sub": RP_ID, "trust_anchor": topology.TA_ID}, timeout=TIMEOUT)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("application/resolve-response+jwt")
    head, claims = jwt_parts(r.text)
    assert head["typ"] == "resolve-response+jwt"
    _, ec = entity_configuration(RP_ID)
    verify(r.text, ec["jwks"]["keys"])
    assert claims["iss"] == claims["sub"] == RP_ID
    assert claims["metadata"]["openid_relying_party"]["client_id"] == RP_ID
    chain = claims["trust_chain"]
    assert len(chain) == 3
    assert jwt_parts(chain[0])[1]["sub"] == RP_ID
    assert jwt_parts(chain[1])[1]["iss"] == topology.TA_ID and jwt_parts(chain[1])[1]["sub"] == RP_ID
    assert jwt_parts(chain[2])[1]["iss"] == jwt_parts(chain[2])[1]["sub"] == topology.TA_ID
    other = requests.get(RP_ID + "resolve", params={"sub": topology.TA_ID, "trust_anchor": topology.TA_ID}, timeout=TIMEOUT)
    assert other.status_code == 404 and other.json()["error"] == "invalid_subject"


def test_login_page_lists_spid_and_cie(hub):
    page = requests.get(RP_ID, timeout=TIMEOUT)
    assert page.status_code == 200 and "Entra con SPID" in page.text and "Entra con CIE" in page.text
    assert "http://" not in re.sub(r'href="[^"]*"', "", page.text).replace("http://www.w3.org", "")
    assert "<script" not in page.text and "<link" not in page.text


def test_unknown_person_is_refused_and_nothing_is_created(hub):
    with hub.edge_db() as con:
        con.execute("DELETE FROM operator WHERE codice_fiscale = ?", (CF,))
    browser = requests.Session()
    res, _, _ = login(browser, topology.OP_SPID_ID, expect_status=403)
    assert "non risulti tra gli operatori" in res.text
    assert COOKIE not in browser.cookies
    with hub.edge_db() as con:
        assert con.execute("SELECT COUNT(*) FROM operator_session").fetchone()[0] == 0


@pytest.mark.parametrize("role", ["op_spid", "op_cie"])
def test_full_login_rest_call_logout(hub, role):
    register_operator(hub)
    op_id = topology.OP_IDS[role]
    browser = requests.Session()
    # A session id planted before login must not become the logged-in session (fixation).
    browser.cookies.set(COOKIE, "planted-by-an-attacker", domain="127.0.0.1", path="/")
    res, callback, cb = login(browser, op_id)
    assert res.headers["Location"] == "/oidc/rp/"
    set_cookie = res.headers.get("Set-Cookie", "")
    assert "HttpOnly" in set_cookie and "SameSite=Lax" in set_cookie
    sid = browser.cookies.get(COOKIE, domain="127.0.0.1", path="/")
    assert sid and sid != "planted-by-an-attacker"

    me = browser.get(RP_ID + "session", timeout=TIMEOUT).json()
    assert (me["operator_id"], me["ente"], me["ufficio"], me["roles"]) == ("op-m01-test", "H501", "M01", ["operatore"])
    csrf = me["csrf_token"]

    # The callback cannot be replayed: its state was used.
    assert requests.get(callback, cookies=browser.cookies, allow_redirects=False, timeout=TIMEOUT).status_code == 400

    # REST as the logged-in operator: core sees the operator's ente/ufficio/roles.
    r = browser.get(RP_BASE + "api/v1/persone/search", params={"cognome": "RO", "page_size": 5}, timeout=TIMEOUT)
    assert r.status_code == 200, r.text[:500]
    with hub.db() as con:
        # Whatever core audited for this call, it was as this operator of Municipio I.
        assert con.execute("SELECT COUNT(*) FROM audit WHERE actor = 'op-m01-test' AND ufficio <> 'M01'").fetchone()[0] == 0
    # A write without the CSRF header is refused before reaching core.
    r = browser.post(RP_BASE + "api/v1/persone", json={}, timeout=TIMEOUT)
    assert r.status_code == 401 and "CSRF" in r.json()["detail"]

    with hub.edge_db() as con:
        access_token = con.execute("SELECT access_token FROM operator_session").fetchone()[0]
    op_md = requests.get(op_id + ".well-known/openid-federation", timeout=TIMEOUT)
    userinfo_ep = jwt_parts(op_md.text)[1]["metadata"]["openid_provider"]["userinfo_endpoint"]
    assert requests.get(userinfo_ep, headers={"Authorization": f"Bearer {access_token}"}, timeout=TIMEOUT).status_code == 200

    # Logout needs the CSRF token of the form.
    r = browser.post(RP_ID + "logout", data={"csrf_token": "wrong"}, allow_redirects=False, timeout=TIMEOUT)
    assert r.status_code == 403
    assert browser.get(RP_ID + "session", timeout=TIMEOUT).status_code == 200
    page = browser.get(RP_ID, timeout=TIMEOUT).text
    assert f'name="csrf_token" value="{csrf}"' in page
    r = browser.post(RP_ID + "logout", data={"csrf_token": csrf}, allow_redirects=False, timeout=TIMEOUT)
    assert r.status_code == 303 and "Max-Age=0" in r.headers.get("Set-Cookie", "")
    # The session is gone server-side, even for a client that kept the cookie.
    assert requests.get(RP_ID + "session", cookies={COOKIE: sid}, timeout=TIMEOUT).status_code == 401
    r = requests.get(RP_BASE + "api/v1/persone/search", cookies={COOKIE: sid}, timeout=TIMEOUT)
    assert r.status_code == 401
    # And the access token was revoked at the OP.
    assert requests.get(userinfo_ep, headers={"Authorization": f"Bearer {access_token}"}, timeout=TIMEOUT).status_code == 403

    log = hub.log.read_text()
    for secret in (CF, USER["fiscal_number"], cb["code"], cb["state"], access_token, sid, csrf):
        assert secret not in log, "a secret or personal datum reached the hub's log"


@pytest.mark.parametrize("next_path,roles,landing", [
    (None, "statistica", "/console/"),
    (None, "operatore dpo", "/console/"),
    ("/console/registro", "dpo", "/console/registro"),
    ("//evil.example/", "amministratore", "/console/"),
    ("https://evil.example/", "operatore", "/oidc/rp/"),
])
def test_login_lands_on_the_console_or_the_page_asked_for(hub, next_path, roles, landing):
    """Holders of a console role land on the console; a login started from a page of this
    site returns there; a return target off this site is ignored (no open redirect)."""
    register_operator(hub)
    with hub.edge_db() as con:
        con.execute("UPDATE operator SET roles = ? WHERE operator_id = 'op-m01-test'", (roles,))
    try:
        browser = requests.Session()
        res, _, _ = login(browser, topology.OP_SPID_ID, next_path=next_path)
        assert res.headers["Location"] == landing
        page = browser.get(RP_BASE + landing.lstrip("/"), allow_redirects=False, timeout=TIMEOUT)
        assert page.status_code == 200, page.text[:500]
        if landing.startswith("/console/"):
            assert "Console SIGeSS" in page.text and "/console/accesso" not in page.headers.get("Location", "")
    finally:
        with hub.edge_db() as con:
            con.execute("UPDATE operator SET roles = 'operatore' WHERE operator_id = 'op-m01-test'")


def test_wrong_state_and_callback_without_login(hub):
    browser = requests.Session()
    r = browser.get(RP_ID + "callback", params={"code": "x", "state": "s" * 43, "iss": topology.OP_SPID_ID},
                    allow_redirects=False, timeout=TIMEOUT)
    assert r.status_code == 400 and "non è stato avviato" in r.text
    # Start a login (sets the pre-login cookie) then come back with another state.
    redirect(browser.get(RP_ID + "authorization", params={"provider": topology.OP_SPID_ID}, allow_redirects=False, timeout=TIMEOUT))
    r = browser.get(RP_ID + "callback", params={"code": "x", "state": "s" * 43, "iss": topology.OP_SPID_ID},
                    allow_redirects=False, timeout=TIMEOUT)
    assert r.status_code == 400 and "sconosciuta o già usata" in r.text


def test_wrong_iss_in_callback(hub):
    browser = requests.Session()
    authz = redirect(browser.get(RP_ID + "authorization", params={"provider": topology.OP_SPID_ID}, allow_redirects=False, timeout=TIMEOUT))
    _, payload = jwt_parts(query(authz)["request"])
    r = browser.get(RP_ID + "callback", params={"code": "x", "state": payload["state"], "iss": topology.OP_CIE_ID},
                    allow_redirects=False, timeout=TIMEOUT)
    assert r.status_code == 400 and "non proviene" in r.text


def test_tampered_request_object_is_refused_by_the_op(hub):
    import base64
    browser = requests.Session()
    authz = redirect(browser.get(RP_ID + "authorization", params={"provider": topology.OP_SPID_ID}, allow_redirects=False, timeout=TIMEOUT))
    params = query(authz)
    h, p, s = params["request"].split(".")
    claims = json.loads(base64.urlsafe_b64decode(p + "=" * (-len(p) % 4)))
    claims["redirect_uri"] = "http://127.0.0.1:18080/evil"
    params["request"] = ".".join([h, base64.urlsafe_b64encode(json.dumps(claims).encode()).decode().rstrip("="), s])
    url = authz.split("?")[0] + "?" + urllib.parse.urlencode(params)
    res = browser.get(url, allow_redirects=False, timeout=TIMEOUT)
    shown_login = res.status_code == 200 and any("username" in f["inputs"] for f in parse(res.text).forms)
    assert not shown_login, "the OP accepted a tampered request object"


@pytest.mark.parametrize("provider", [topology.TA_ID, "http://127.0.0.1:9/oidc/op/", "http://127.0.0.1:18002/not-an-op/"])
def test_provider_without_valid_trust_chain(hub, provider):
    r = requests.get(RP_ID + "authorization", params={"provider": provider}, allow_redirects=False, timeout=TIMEOUT)
    assert r.status_code == 400 and "non è riconosciuto" in r.text


def test_a_provider_the_anchor_does_not_list_is_never_fetched(hub):
    """The login names its provider in the query: one the anchor does not list is refused
    before the hub fetches anything from it (no request reaches that host)."""
    import http.server
    import threading

    seen = []

    class Recorder(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 (http.server's naming)
            seen.append(self.path)
            self.send_response(404)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Recorder)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        rogue = f"http://127.0.0.1:{server.server_address[1]}/oidc/op/"
        r = requests.get(RP_ID + "authorization", params={"provider": rogue}, allow_redirects=False, timeout=TIMEOUT)
        assert r.status_code == 400 and "non è riconosciuto" in r.text
        assert seen == [], f"the hub fetched {seen} from a provider the anchor does not list"
    finally:
        server.shutdown()
