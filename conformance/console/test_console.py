"""The web console in a real browser (headless Chromium driven by Selenium) against a real
`sigess up --demo`.

The hub delivers its changes to a small webhook receiver started here, which first refuses
them (422: dead letters) and later accepts them, so a dead letter can be retried from the
console and seen delivered. The demo also imports fake office exports (made here by
conformance/linkage/gen_offices.py), so the review queue holds pairs to decide. INPS's refusal of one flow is posted through the WaaS API as
INPS would. Every page is opened and checked with axe-core (injected from the local npm
package): no serious or critical violation. Logins, retries, searches and forms are driven
with the keyboard.

Environment: SIGESS_BIN (the binary), CHROMIUM (default /usr/bin/chromium), CHROMEDRIVER
(default /usr/bin/chromedriver), AXE_JS (axe.min.js), SCREENSHOTS (a folder: pages are
saved there as PNG for the README).
"""

import csv
import http.server
import io
import json
import os
import pathlib
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request

import pytest
from selenium import webdriver
from selenium.common.exceptions import StaleElementReferenceException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support import expected_conditions as EC
from selenium.webdriver.support.ui import Select, WebDriverWait

ROOT = pathlib.Path(__file__).resolve().parents[2]
SIGESS = os.environ.get("SIGESS_BIN", str(ROOT / "target" / "debug" / "sigess"))
AXE_JS = pathlib.Path(os.environ.get("AXE_JS", ROOT / "gateway" / "console" / "node_modules" / "axe-core" / "axe.min.js"))
SHOTS = os.environ.get("SCREENSHOTS")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Receiver(http.server.BaseHTTPRequestHandler):
    """Webhook peer: answers `status` to every delivery."""

    status = 422

    def do_POST(self):  # noqa: N802 (http.server's naming)
        self.rfile.read(int(self.headers.get("content-length", "0")))
        self.send_response(Receiver.status)
        self.send_header("content-length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass


class Hub:
    def __init__(self):
        self.tmp = tempfile.TemporaryDirectory()
        self.http = free_port()
        self.base = f"http://127.0.0.1:{self.http}"
        self.hook = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
        threading.Thread(target=self.hook.serve_forever, daemon=True).start()
        data = pathlib.Path(self.tmp.name) / "data"
        self.key = data / "hub-signing-key.pem"
        uffici = pathlib.Path(self.tmp.name) / "uffici"
        subprocess.run([sys.executable, str(ROOT / "conformance" / "linkage" / "gen_offices.py"), "--persons", "120", "--seed", "11",
                        "--out", str(uffici)], check=True, stdout=subprocess.DEVNULL)
        self.proc = subprocess.Popen(
            [SIGESS, "up", "--demo", "--demo-size", "4", "--demo-import", str(uffici),
             "--database-url", f"sqlite://{data}/sigess.db", "--signing-key", str(self.key),
             "--grpc-addr", f"127.0.0.1:{free_port()}", "--http-addr", f"127.0.0.1:{self.http}",
             "--webhook-url", f"http://127.0.0.1:{self.hook.server_address[1]}/hook", "--webhook-kinds", "persona",
             "--delivery-max-attempts", "1", "--delivery-backoff", "1"],
            cwd=self.tmp.name, stdout=subprocess.DEVNULL, stderr=open(pathlib.Path(self.tmp.name) / "up.err", "w"))
        for _ in range(120):
            try:
                urllib.request.urlopen(f"{self.base}/healthz", timeout=1)
                break
            except OSError:
                if self.proc.poll() is not None:
                    raise RuntimeError((pathlib.Path(self.tmp.name) / "up.err").read_text())
                time.sleep(0.5)

    def token(self, *args):
        return subprocess.check_output([SIGESS, "token", "--signing-key", str(self.key), "--ttl", "600", *args], text=True).strip()

    def call(self, token, path, method="GET", body=None):
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(f"{self.base}{path}", data=data, method=method, headers={"authorization": f"Bearer {token}"})
        if data is not None:
            req.add_header("content-type", "application/json")
        try:
            with urllib.request.urlopen(req, timeout=10) as r:
                raw = r.read()
                return r.status, json.loads(raw) if raw else None
        except urllib.error.HTTPError as e:
            return e.code, json.loads(e.read() or b"{}")

    def stop(self):
        self.proc.terminate()
        self.proc.wait(timeout=30)
        self.hook.shutdown()
        self.tmp.cleanup()


@pytest.fixture(scope="module")
def hub():
    h = Hub()
    yield h
    h.stop()


@pytest.fixture(scope="module")
def browser():
    opts = webdriver.ChromeOptions()
    opts.binary_location = os.environ.get("CHROMIUM", "/usr/bin/chromium")
    for a in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1280,1000", "--lang=it-IT"):
        opts.add_argument(a)
    downloads = tempfile.mkdtemp()
    opts.add_experimental_option("prefs", {"download.default_directory": downloads, "download.prompt_for_download": False})
    d = webdriver.Chrome(service=Service(os.environ.get("CHROMEDRIVER", "/usr/bin/chromedriver")), options=opts)
    d.downloads = downloads
    yield d
    d.quit()


def wait(d, cond, secs=20):
    return WebDriverWait(d, secs).until(cond)


def ready(d):
    wait(d, lambda d: d.find_element(By.TAG_NAME, "body").get_attribute("data-pronta") == "si")


def axe(d, page):
    """axe-core on the page as it is now: no serious or critical violation (WCAG 2.1 AA rules)."""
    d.execute_script(AXE_JS.read_text())
    res = d.execute_async_script(
        "const done = arguments[arguments.length - 1];"
        "axe.run(document, {runOnly: {type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa', 'best-practice']}})"
        ".then(r => done(r.violations.map(v => ({id: v.id, impact: v.impact, nodes: v.nodes.map(n => n.target.join(' ')).slice(0, 3)}))))"
        ".catch(e => done([{id: 'axe-error', impact: 'critical', nodes: [String(e)]}]));")
    bad = [v for v in res if v["impact"] in ("serious", "critical")]
    assert not bad, f"{page}: {bad}"


def shot(d, name):
    if SHOTS:
        pathlib.Path(SHOTS).mkdir(parents=True, exist_ok=True)
        d.save_screenshot(str(pathlib.Path(SHOTS) / f"{name}.png"))


def login(d, hub, operatore):
    """The demo login, with the keyboard: the operator's radio, then Enter on the button."""
    d.get(f"{hub.base}/console/")
    wait(d, EC.url_contains("/console/accesso"))
    radio = d.find_element(By.ID, f"op-{operatore}")
    radio.send_keys(Keys.SPACE)
    assert radio.is_selected()
    d.find_element(By.ID, "entra-demo").send_keys(Keys.ENTER)
    wait(d, lambda d: d.current_url.rstrip("/").endswith("/console") or "/console/" in d.current_url and "accesso" not in d.current_url)
    wait(d, EC.text_to_be_present_in_element((By.ID, "chi"), operatore))


def logout(d):
    d.find_element(By.CSS_SELECTOR, "#esci button").send_keys(Keys.ENTER)
    wait(d, EC.url_contains("/console/accesso"))


def test_01_login_page_is_accessible_and_pages_need_a_session(hub, browser):
    browser.get(f"{hub.base}/console/inps")
    wait(browser, EC.url_contains("/console/accesso"))
    axe(browser, "accesso")
    shot(browser, "accesso")
    # The skip link is the first stop of the keyboard.
    browser.find_element(By.TAG_NAME, "body").send_keys(Keys.TAB)
    assert browser.switch_to.active_element.get_attribute("href").endswith("#contenuto")
    # CSP: only this origin, no inline script.
    with urllib.request.urlopen(f"{hub.base}/console/accesso") as r:
        csp = r.headers["content-security-policy"]
    assert "default-src 'self'" in csp and "unsafe-inline" not in csp


def test_02_overview_shows_every_adapter(hub, browser):
    admin = hub.token("--roles", "amministratore")
    # Wait until the webhook's refusals are dead letters.
    for _ in range(60):
        _, r = hub.call(admin, "/api/v1/adapters")
        hook = next((a for a in r["adapters"] if a["id"] == "webhook"), None)
        if hook and hook["dead"] >= 2 and hook["pending"] == 0 and hook["inflight"] == 0:
            break
        time.sleep(0.5)
    assert hook and hook["dead"] >= 2, r
    login(browser, hub, "demo-amministratore")
    ready(browser)
    rows = browser.find_elements(By.CSS_SELECTOR, "#adapters tbody tr")
    ids = [r.find_element(By.TAG_NAME, "th").text for r in rows]
    assert {"siuss", "webhook"} <= set(ids), ids
    webhook_row = rows[ids.index("webhook")].text
    assert str(hook["dead"]) in webhook_row
    assert browser.find_element(By.ID, "tot-morte").text == str(sum(a["dead"] for a in r["adapters"]))
    axe(browser, "panoramica")
    shot(browser, "panoramica")


def test_03_dead_letter_retried_and_discarded(hub, browser):
    admin = hub.token("--roles", "amministratore")
    Receiver.status = 200  # the cause is fixed: the peer accepts now
    browser.get(f"{hub.base}/console/consegne")
    ready(browser)
    wait(browser, lambda d: d.find_elements(By.CSS_SELECTOR, "button[data-riprova]"))
    axe(browser, "consegne")
    shot(browser, "consegne")
    first = browser.find_element(By.CSS_SELECTOR, "button[data-riprova]")
    job = first.get_attribute("data-riprova")
    first.send_keys(Keys.ENTER)
    wait(browser, EC.text_to_be_present_in_element((By.ID, "esito"), f"Consegna {job} rimessa in coda"))
    for _ in range(40):
        _, d = hub.call(admin, f"/api/v1/deliveries/{job}")
        if d["state"] == "DELIVERY_STATE_DELIVERED":
            break
        time.sleep(0.5)
    assert d["state"] == "DELIVERY_STATE_DELIVERED", d
    # Another one is given up, with a reason typed in the form the button opens.
    wait(browser, lambda d: d.find_elements(By.CSS_SELECTOR, "button[data-riprova]"))
    other = browser.find_element(By.CSS_SELECTOR, "button[data-riprova]").get_attribute("data-riprova")
    browser.find_element(By.CSS_SELECTOR, f"button[aria-label='Scarta la consegna {other}']").send_keys(Keys.ENTER)
    reason = browser.switch_to.active_element
    assert reason.get_attribute("id") == "motivo-scarto"
    reason.send_keys("evento di prova, non più necessario", Keys.ENTER)
    wait(browser, EC.text_to_be_present_in_element((By.ID, "esito"), f"Consegna {other} scartata"))
    _, d = hub.call(admin, f"/api/v1/deliveries/{other}")
    assert d["state"] == "DELIVERY_STATE_DISCARDED" and d["discard_reason"] == "evento di prova, non più necessario", d


def test_04_inps_rejection_with_its_meaning(hub, browser):
    inps = hub.token("--kind", "sistema", "--roles", "siuss", "--subject", "inps")
    _, r = hub.call(inps, "/waas/v1/flussi?since=0&limit=2")
    flussi = r["elenco_flussi"] if "elenco_flussi" in r else r.get("flussi", [])
    assert flussi, r
    f = flussi[0]
    now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    esito = {"id_flusso": f["id_flusso"], "tipo": f.get("tipo", "PS"), "ts_flusso": f.get("ts_flusso", now), "ts_acquisizione": now,
             "codice_esito": "RICHIESTA_INVALIDA", "descrizione_esito": "Campo importo non valido"}
    code, body = hub.call(inps, "/waas/v1/esiti", "POST", {"elenco_esiti": [esito]})
    assert code == 204, body
    browser.get(f"{hub.base}/console/inps")
    ready(browser)
    Select(browser.find_element(By.ID, "stato-flussi")).select_by_value("rejected")
    browser.find_element(By.ID, "stato-flussi").submit()
    wait(browser, EC.text_to_be_present_in_element((By.CSS_SELECTOR, "#flussi tbody"), f["id_flusso"]))
    row = browser.find_element(By.CSS_SELECTOR, "#flussi tbody tr").text
    assert "RICHIESTA_INVALIDA" in row and "Campo importo non valido" in row and "non rispetta la specifica" in row, row
    assert browser.find_element(By.ID, "flussi-rejected").text == "1"
    axe(browser, "inps")
    shot(browser, "inps")


def test_05_clients_and_operators(hub, browser):
    browser.get(f"{hub.base}/console/utenze")
    ready(browser)
    axe(browser, "utenze")
    form = browser.find_element(By.ID, "nuovo-operatore")
    form.find_element(By.ID, "op-id").send_keys("op-m03-001")
    form.find_element(By.ID, "op-cf").send_keys("RSSMRA80A01H501U")
    form.find_element(By.ID, "op-ufficio").send_keys("M03")
    form.find_element(By.ID, "op-ruoli-operatore").send_keys(Keys.SPACE)
    form.find_element(By.ID, "op-ufficio").send_keys(Keys.ENTER)
    wait(browser, EC.text_to_be_present_in_element((By.CSS_SELECTOR, "#operatori tbody"), "op-m03-001"))
    browser.find_element(By.CSS_SELECTOR, "button[aria-label='Disattiva op-m03-001']").send_keys(Keys.ENTER)
    wait(browser, lambda d: d.find_elements(By.CSS_SELECTOR, "button[aria-label='Riattiva op-m03-001']"))
    page = browser.page_source
    assert "RSSMRA80A01H501U" not in page, "no codice fiscale shown back"
    c = browser.find_element(By.ID, "nuovo-client")
    c.find_element(By.ID, "cl-nome").send_keys("App Municipio III")
    c.find_element(By.ID, "cl-finalita").send_keys("gestione della cartella")
    c.find_element(By.ID, "cl-ufficio").send_keys("M03")
    c.find_element(By.ID, "cl-ruoli-operatore").send_keys(Keys.SPACE)
    c.find_element(By.ID, "cl-nome").send_keys(Keys.ENTER)
    wait(browser, EC.visibility_of_element_located((By.ID, "segreto")))
    client_id, secret = (e.text for e in browser.find_elements(By.CSS_SELECTOR, "#segreto code"))
    # The secret works at the token endpoint.
    form_body = urllib.parse.urlencode({"grant_type": "client_credentials", "client_id": client_id, "client_secret": secret}).encode()
    with urllib.request.urlopen(urllib.request.Request(f"{hub.base}/oauth/token", data=form_body), timeout=10) as r:
        assert json.loads(r.read())["access_token"]
    shot(browser, "utenze")


def test_06_statistics_filter_chart_and_csv(hub, browser):
    admin = hub.token("--roles", "amministratore")
    code, _ = hub.call(admin, "/api/v1/statistiche/catalogo")
    if code == 404:
        pytest.skip("this build has no /api/v1/statistiche/catalogo")
    browser.get(f"{hub.base}/console/statistiche")
    ready(browser)
    Select(browser.find_element(By.ID, "misura")).select_by_value("prestazioni")
    Select(browser.find_element(By.ID, "righe")).select_by_value("municipio")
    Select(browser.find_element(By.ID, "periodo")).select_by_value("anno")
    browser.find_element(By.ID, "anno-da").clear()
    browser.find_element(By.ID, "anno-da").send_keys("2024")
    browser.find_element(By.ID, "anno-da").send_keys(Keys.ENTER)
    wait(browser, EC.text_to_be_present_in_element((By.ID, "esito"), "Tabella aggiornata"))

    # Each changed filter asks for the table again, and a later answer redraws the chart:
    # the chart is read whole in one go, again if it was replaced while being read.
    def chart_drawn(d):
        chart = d.find_element(By.CSS_SELECTOR, "#grafico-andamento svg")
        return chart.get_attribute("role") == "img" and bool(chart.find_elements(By.CSS_SELECTOR, "circle, polyline, text.soppressa"))

    WebDriverWait(browser, 20, ignored_exceptions=(StaleElementReferenceException,)).until(
        chart_drawn, "the trend chart is not an img with points, lines or suppressed marks"
    )
    wait(browser, lambda d: d.find_elements(By.CSS_SELECTOR, "#grafico-municipi svg"))
    cells = browser.find_elements(By.CSS_SELECTOR, "#tabella-statistiche tbody td")
    assert cells
    axe(browser, "statistiche")
    shot(browser, "statistiche")
    # The CSV the button downloads has the table's rows, suppressed cells marked.
    href = browser.find_element(By.ID, "scarica-csv").get_attribute("href")
    assert "format=csv" in href
    browser.find_element(By.ID, "scarica-csv").send_keys(Keys.ENTER)
    path = None
    for _ in range(40):
        done = [p for p in pathlib.Path(browser.downloads).iterdir() if not p.name.endswith(".crdownload")]
        if done:
            path = done[0]
            break
        time.sleep(0.25)
    assert path, "no CSV downloaded"
    rows = list(csv.DictReader(io.StringIO(path.read_text(encoding="utf-8-sig"))))
    assert rows, "empty CSV"
    q = [(k, v) for k, v in urllib.parse.parse_qsl(urllib.parse.urlparse(href).query) if k != "format"]
    _, table = hub.call(admin, "/api/v1/statistiche/tabella?" + urllib.parse.urlencode(q))
    suppressed = sum(1 for c in table["celle"] if c["soppressa"])
    marked = sum(1 for r in rows if any(v == "X" for v in r.values()))
    assert marked == suppressed, (marked, suppressed)


def test_07_access_register_by_person(hub, browser):
    op = hub.token("--ufficio", "M01", "--roles", "operatore", "--subject", "op-m01-verifica")
    _, page = hub.call(op, "/api/v1/persone?page_size=5")
    persona = next(p for p in page["persone"] if p.get("codice_fiscale"))
    code, _ = hub.call(op, f"/api/v1/persone/{persona['meta']['id']}?purpose=" + urllib.parse.quote("verifica della presa in carico"))
    assert code == 200
    logout(browser)
    login(browser, hub, "demo-dpo")
    browser.get(f"{hub.base}/console/registro")
    ready(browser)
    axe(browser, "registro")
    browser.find_element(By.ID, "cf-registro").send_keys(persona["codice_fiscale"])
    browser.find_element(By.ID, "motivo-registro").send_keys("richiesta di accesso art. 15", Keys.ENTER)
    wait(browser, EC.text_to_be_present_in_element((By.CSS_SELECTOR, "#registro tbody"), "op-m01-verifica"))
    body = browser.find_element(By.CSS_SELECTOR, "#registro tbody").text
    assert "verifica della presa in carico" in body
    # The consultation itself is in the register.
    browser.find_element(By.ID, "motivo-registro").send_keys(Keys.ENTER)
    wait(browser, EC.text_to_be_present_in_element((By.CSS_SELECTOR, "#registro tbody"), "demo-dpo"))
    assert "richiesta di accesso art. 15" in browser.find_element(By.CSS_SELECTOR, "#registro tbody").text
    shot(browser, "registro")
    # A dpo has no delivery pages, and the API refuses them.
    assert not browser.find_elements(By.CSS_SELECTOR, "nav a[href='/console/consegne']")


def test_08_review_queue_merge_different_and_undo(hub, browser):
    anagrafe = hub.token("--roles", "anagrafe", "--subject", "op-anagrafe-verifica")
    _, r = hub.call(anagrafe, "/api/v1/revisioni?page_size=500")
    pairs = {p["id"]: p for p in r["revisioni"]}
    assert len(pairs) >= 2, f"the demo import queued pairs to decide: {r}"
    logout(browser)
    login(browser, hub, "demo-anagrafe")
    browser.get(f"{hub.base}/console/revisioni")
    ready(browser)
    wait(browser, lambda d: d.find_elements(By.CSS_SELECTOR, "button[data-revisione]"))
    axe(browser, "revisioni")
    # A pair opened with the keyboard: the comparison takes the focus.
    first = browser.find_element(By.CSS_SELECTOR, "button[data-revisione]")
    pair = first.get_attribute("data-revisione")
    first.send_keys(Keys.ENTER)
    wait(browser, EC.visibility_of_element_located((By.ID, "confronto")))
    assert browser.switch_to.active_element.get_attribute("id") == "titolo-confronto"
    rows = browser.find_elements(By.CSS_SELECTOR, "#tabella-confronto tbody tr")
    assert len(rows) >= 10 and rows[0].text.startswith("Cognome"), [r.text for r in rows]
    assert "Probabilità" in browser.find_element(By.ID, "sintesi-confronto").text
    axe(browser, "revisioni-confronto")
    shot(browser, "revisioni")
    # The same person, the second record staying.
    browser.find_element(By.ID, "superstite-b").send_keys(Keys.SPACE)
    browser.find_element(By.ID, "stessa-persona").send_keys(Keys.ENTER)
    wait(browser, EC.text_to_be_present_in_element((By.ID, "esito"), "Stessa persona"))
    survivor = pairs[pair]["persona_b_id"]
    _, got = hub.call(anagrafe, f"/api/v1/revisioni/{pair}?purpose=verifica")
    assert got["revisione"]["stato"] == "STATO_REVISIONE_STESSA_PERSONA", got
    fusione = got["revisione"]["fusione_id"]
    _, f = hub.call(anagrafe, f"/api/v1/fusioni?persona_id={survivor}")
    assert f["fusioni"][0]["id"] == fusione and f["fusioni"][0]["superstite_id"] == survivor, f
    # Another pair: two different people.
    wait(browser, lambda d: d.find_elements(By.CSS_SELECTOR, "button[data-revisione]"))
    second = browser.find_element(By.CSS_SELECTOR, "button[data-revisione]")
    other = second.get_attribute("data-revisione")
    assert other != pair
    second.send_keys(Keys.ENTER)
    wait(browser, EC.visibility_of_element_located((By.ID, "confronto")))
    browser.find_element(By.ID, "persone-diverse").send_keys(Keys.ENTER)
    wait(browser, EC.text_to_be_present_in_element((By.ID, "esito"), "persone diverse"))
    _, got = hub.call(anagrafe, f"/api/v1/revisioni/{other}?purpose=verifica")
    assert got["revisione"]["stato"] == "STATO_REVISIONE_PERSONE_DIVERSE", got
    # The merge undone from its row in the list of merges: the pair is open again.
    undo = wait(browser, lambda d: d.find_element(By.CSS_SELECTOR, f"button[data-fusione='{fusione}']"))
    undo.send_keys(Keys.ENTER)
    wait(browser, EC.text_to_be_present_in_element((By.ID, "esito"), "annullata"))
    _, got = hub.call(anagrafe, f"/api/v1/revisioni/{pair}?purpose=verifica")
    assert got["revisione"]["stato"] == "STATO_REVISIONE_APERTA", got
    axe(browser, "revisioni-dopo")
    # Others have no such page, and the API refuses them.
    admin = hub.token("--roles", "amministratore")
    code, _ = hub.call(admin, "/api/v1/revisioni")
    assert code == 403
