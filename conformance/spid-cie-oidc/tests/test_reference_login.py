"""End-to-end SPID/CIE OIDC Federation login, no browser: the package's reference RP logs
the fake citizen in at each local OP, then logs out.

The test plays the user agent with `requests`, fills the OP's login and consent forms,
and checks the values that travel: request object, authorization response, ID token
(signature through the federation, nonce, aud, acr), encrypted userinfo (fiscal number),
and token revocation at logout.
"""
import base64
import json
import sqlite3
import subprocess
import sys
import time
import urllib.parse
from html.parser import HTMLParser

import pytest
import requests
from cryptojwt.jwe.jwe import factory as jwe_factory
from cryptojwt.jwk.jwk import key_from_jwk_dict
from cryptojwt.jws.jws import JWS
from cryptojwt.jws.utils import left_hash

from peerctl import manage
from sigess_peers import topology

L2 = "https://www.spid.gov.it/SpidL2"
TIMEOUT = 20
USER = topology.TEST_USER


# --------------------------------------------------------------------------- helpers

def b64json(part: str) -> dict:
    return json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))


def jwt_parts(jwt: str):
    head, payload = jwt.split(".")[:2]
    return b64json(head), b64json(payload)


def verify(jwt: str, keys: list) -> dict:
    head, _ = jwt_parts(jwt)
    key = next((k for k in keys if k.get("kid") == head["kid"]), None)
    assert key is not None, f"kid {head['kid']} not in {[k.get('kid') for k in keys]}"
    msg = JWS(alg=head["alg"]).verify_compact(jwt, [key_from_jwk_dict(key)])
    return msg if isinstance(msg, dict) else json.loads(msg)


class PageParser(HTMLParser):
    """Collects the forms (action, inputs) and <dt>/<dd> pairs of a page."""

    def __init__(self):
        super().__init__()
        self.forms, self.pairs = [], {}
        self._dt = None
        self._capture = None
        self._text = ""

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "form":
            self.forms.append({"action": a.get("action", ""), "method": a.get("method", "get"), "inputs": {}})
        elif tag in ("input", "textarea") and self.forms and a.get("name"):
            self.forms[-1]["inputs"][a["name"]] = a.get("value", "")
        elif tag in ("dt", "dd"):
            self._capture, self._text = tag, ""

    def handle_data(self, data):
        if self._capture:
            self._text += data

    def handle_endtag(self, tag):
        if tag == self._capture:
            text = self._text.strip()
            if tag == "dt":
                self._dt = text.rstrip(":")
            elif self._dt is not None:
                self.pairs[self._dt] = text
            self._capture = None


def parse(html: str) -> PageParser:
    p = PageParser()
    p.feed(html)
    return p


def form_with(page: PageParser, field: str) -> dict:
    for f in page.forms:
        if field in f["inputs"]:
            return f
    raise AssertionError(f"no form with field {field!r}: {page.forms}")


def redirect(res: requests.Response) -> str:
    assert res.status_code in (301, 302, 303), f"expected a redirect, got {res.status_code}: {res.text[:800]}"
    return urllib.parse.urljoin(res.url, res.headers["Location"])


def query(url: str) -> dict:
    return dict(urllib.parse.parse_qsl(urllib.parse.urlparse(url).query))


def entity_configuration(entity_id: str) -> tuple:
    res = requests.get(entity_id + ".well-known/openid-federation", timeout=TIMEOUT)
    assert res.status_code == 200, res.text[:300]
    assert res.headers["Content-Type"].startswith("application/entity-statement+jwt")
    return res.text, jwt_parts(res.text)[1]


def op_metadata_through_federation(op_id: str) -> dict:
    """OP metadata as an RP must trust it: TA EC -> TA statement about the OP -> OP EC."""
    ta_jwt, ta = entity_configuration(topology.TA_ID)
    verify(ta_jwt, ta["jwks"]["keys"])
    fetch = ta["metadata"]["federation_entity"]["federation_fetch_endpoint"]
    res = requests.get(fetch, params={"sub": op_id}, timeout=TIMEOUT)
    assert res.status_code == 200, res.text[:300]
    statement = verify(res.text, ta["jwks"]["keys"])
    assert statement["iss"] == topology.TA_ID and statement["sub"] == op_id
    op_jwt, op = entity_configuration(op_id)
    verify(op_jwt, statement["jwks"]["keys"])
    assert topology.TA_ID in op["authority_hints"]
    assert [m["trust_mark_type"] for m in op.get("trust_marks", [])] == [topology.TM_OP_PUBLIC]
    return op["metadata"]["openid_provider"]


def rp_db_rows(db, state: str) -> dict:
    con = sqlite3.connect(str(db))
    try:
        row = con.execute(
            "SELECT t.id_token, t.access_token, t.revoked, a.data "
            "FROM spid_cie_oidc_relying_party_oidcauthenticationtoken t "
            "JOIN spid_cie_oidc_relying_party_oidcauthentication a ON t.authz_request_id = a.id "
            "WHERE a.state = ? ORDER BY t.id DESC",
            (state,),
        ).fetchone()
        assert row, f"no token stored by the RP for state {state}"
        core = con.execute(
            "SELECT jwks_core FROM spid_cie_oidc_entity_federationentityconfiguration WHERE is_active = 1"
        ).fetchone()[0]
    finally:
        con.close()
    return {
        "id_token": row[0],
        "access_token": row[1],
        "revoked": row[2],
        "authz": json.loads(row[3]),
        "rp_private_core_keys": json.loads(core),
    }


def begin(browser: requests.Session, op_id: str, profile: str) -> requests.Response:
    return browser.get(
        topology.RP_REF_ID + "authorization",
        params={"provider": op_id, "profile": profile},
        allow_redirects=False,
        timeout=TIMEOUT,
    )


# --------------------------------------------------------------------------- the login

@pytest.mark.parametrize("role,profile", [("op_spid", "spid"), ("op_cie", "cie")])
def test_reference_rp_login_userinfo_logout(reference_rp, role, profile):
    op_id = topology.OP_IDS[role]
    rp_id = topology.RP_REF_ID
    op_md = op_metadata_through_federation(op_id)
    assert op_md["issuer"] == op_id
    op_keys = op_md["jwks"]["keys"]

    browser = requests.Session()

    # 1. RP builds the trust chain to the OP and redirects to its authorization endpoint.
    res = begin(browser, op_id, profile)
    authz_url = redirect(res)
    assert authz_url.startswith(op_md["authorization_endpoint"] + "?"), authz_url
    params = query(authz_url)
    assert params["client_id"] == rp_id
    assert params["response_type"] == "code"
    assert params["code_challenge_method"] == "S256"
    _, rp_ec = entity_configuration(rp_id)
    request_object = verify(params["request"], rp_ec["metadata"]["openid_relying_party"]["jwks"]["keys"])
    assert request_object["iss"] == rp_id and request_object["client_id"] == rp_id
    assert request_object["redirect_uri"] in rp_ec["metadata"]["openid_relying_party"]["redirect_uris"]
    assert op_id in request_object["aud"]
    assert request_object["code_challenge"] == params["code_challenge"]
    nonce, state = request_object["nonce"], request_object["state"]
    assert len(nonce) >= 32 and len(state) >= 32

    # 2. OP validates the request (building the RP's trust chain, checking its trust mark)
    #    and shows the login form.
    res = browser.get(authz_url, allow_redirects=False, timeout=TIMEOUT)
    assert res.status_code == 200, f"OP refused the authorization request: {res.status_code} {res.headers.get('Location')}"
    login_form = form_with(parse(res.text), "username")
    assert login_form["inputs"].get("authz_request_object") == params["request"]

    # 3. Wrong password is refused (the form comes back, no redirect).
    data = dict(login_form["inputs"], username=USER["username"], password="wrong-" + USER["password"])
    res = browser.post(urllib.parse.urljoin(res.url, login_form["action"]), data=data, allow_redirects=False, timeout=TIMEOUT)
    assert res.status_code == 200 and "username" in form_with(parse(res.text), "username")["inputs"]

    # 4. Right credentials -> consent page.
    data = dict(login_form["inputs"], username=USER["username"], password=USER["password"])
    res = browser.post(urllib.parse.urljoin(authz_url, login_form["action"]), data=data, allow_redirects=False, timeout=TIMEOUT)
    consent_url = redirect(res)
    res = browser.get(consent_url, allow_redirects=False, timeout=TIMEOUT)
    assert res.status_code == 200, res.text[:500]
    consent_form = form_with(parse(res.text), "agree")

    # 5. Consent -> authorization response at the RP's redirect_uri.
    res = browser.post(urllib.parse.urljoin(consent_url, consent_form["action"]), data=consent_form["inputs"],
                       allow_redirects=False, timeout=TIMEOUT)
    callback = redirect(res)
    assert callback.startswith(request_object["redirect_uri"]), callback
    cb = query(callback)
    assert cb["state"] == state
    assert cb["iss"] == op_id
    assert cb.get("code")

    # 6. RP callback: token request (private_key_jwt + PKCE), ID token checks, userinfo.
    res = browser.get(callback, allow_redirects=False, timeout=TIMEOUT)
    landing = redirect(res)
    assert landing.endswith("/oidc/rp/echo_attributes"), f"RP callback failed: {res.text[:800]}"
    attrs = parse(browser.get(landing, timeout=TIMEOUT).text).pairs
    assert attrs.get("fiscal_number") == USER["fiscal_number"], attrs
    assert attrs.get("first_name") == USER["given_name"], attrs
    assert attrs.get("email") == USER["email"], attrs

    # 7. The tokens the RP received.
    rows = rp_db_rows(reference_rp, state)
    assert rows["authz"]["nonce"] == nonce
    id_token = verify(rows["id_token"], op_keys)
    access_token = verify(rows["access_token"], op_keys)
    now = int(time.time())
    assert id_token["nonce"] == nonce
    assert id_token["iss"] == op_id
    assert id_token["aud"] == [rp_id]
    assert id_token["acr"] == L2
    assert id_token["iat"] <= now + 5 < id_token["exp"]
    assert len(id_token["sub"]) == 64  # pairwise, sha256 hex
    assert id_token["at_hash"] == left_hash(rows["access_token"], "HS256")
    assert jwt_parts(rows["id_token"])[0]["alg"] == "RS256"
    assert access_token["client_id"] == rp_id and access_token["sub"] == id_token["sub"]
    if profile == "cie":
        # the CIE profile copies requested id_token claims into the ID token
        assert id_token.get("given_name") == USER["given_name"]
        assert id_token.get("family_name") == USER["family_name"]

    # 8. Userinfo as the RP sees it: JWE (RSA-OAEP / A256CBC-HS512) to the RP's enc key,
    #    wrapping a JWS signed by the OP.
    res = requests.get(op_md["userinfo_endpoint"], headers={"Authorization": f"Bearer {rows['access_token']}"},
                       timeout=TIMEOUT)
    assert res.status_code == 200
    assert res.headers["Content-Type"].startswith("application/jwt")
    jwe = res.text
    assert jwe.count(".") == 4
    jwe_head = b64json(jwe.split(".")[0])
    assert (jwe_head["alg"], jwe_head["enc"], jwe_head.get("cty")) == ("RSA-OAEP", "A256CBC-HS512", "JWT")
    enc_key = next(k for k in rows["rp_private_core_keys"] if k["kid"] == jwe_head["kid"])
    assert enc_key.get("use") == "enc"
    inner = jwe_factory(jwe, alg=jwe_head["alg"], enc=jwe_head["enc"]).decrypt(jwe, [key_from_jwk_dict(enc_key)])
    userinfo = verify(inner.decode() if isinstance(inner, bytes) else inner, op_keys)
    assert userinfo["sub"] == id_token["sub"]
    assert userinfo["https://attributes.eid.gov.it/fiscal_number"] == USER["fiscal_number"]
    assert userinfo["given_name"] == USER["given_name"]
    assert userinfo["family_name"] == USER["family_name"]

    # 9. RP-initiated logout revokes the access token at the OP.
    res = browser.get(rp_id + "logout", allow_redirects=False, timeout=TIMEOUT)
    assert redirect(res).endswith("/oidc/rp/landing")
    assert rp_db_rows(reference_rp, state)["revoked"] is not None
    res = requests.get(op_md["userinfo_endpoint"], headers={"Authorization": f"Bearer {rows['access_token']}"},
                       timeout=TIMEOUT)
    assert res.status_code == 403
    after = parse(browser.get(topology.RP_REF_ID + "echo_attributes", timeout=TIMEOUT).text).pairs
    assert "fiscal_number" not in after


# --------------------------------------------------------------------------- trust marks matter

def test_op_refuses_rp_without_trust_mark(reference_rp, tmp_path):
    """With the trust mark removed from the RP's entity configuration the OP must not show
    its login form but send the user back with an error."""
    op_id = topology.OP_SPID_ID
    empty = tmp_path / "none.json"
    empty.write_text("[]")
    marks_file = topology.STATE_DIR / "trust-marks" / f"{topology.slug(topology.RP_REF_ID)}.json"
    manage("rp_ref", "peer_set_trust_marks", "--file", str(empty))
    manage("op_spid", "peer_forget", "--sub", topology.RP_REF_ID)
    try:
        browser = requests.Session()
        authz_url = redirect(begin(browser, op_id, "spid"))
        res = browser.get(authz_url, allow_redirects=False, timeout=TIMEOUT)
        back = redirect(res)
        assert back.startswith(topology.RP_REF_ID + "callback"), back
        assert query(back).get("error") == "invalid_request"
    finally:
        manage("rp_ref", "peer_set_trust_marks", "--file", str(marks_file))
        manage("op_spid", "peer_forget", "--sub", topology.RP_REF_ID)
