// SIGeSS hub console: fills each page from the REST API with the operator's session.
//
// Every call goes to this origin with the session cookie; calls that change something also
// send the session's CSRF token (read from /oidc/rp/session) in X-CSRF-Token, the same rule
// as for every SPID/CIE session. Data is put in the page as text (never as HTML), and the
// charts are SVG drawn here, each with a title and a description, next to the table that
// holds the same numbers.

const numero = new Intl.NumberFormat('it-IT');
const euro = new Intl.NumberFormat('it-IT', { style: 'currency', currency: 'EUR' });
let csrf = '';

/** An element with attributes and children (strings become text nodes). */
function el(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === false || v === null || v === undefined) continue;
    if (k === 'text') e.textContent = v;
    else if (k.startsWith('on')) e.addEventListener(k.slice(2), v);
    else e.setAttribute(k, v === true ? '' : String(v));
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined || c === false) continue;
    e.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return e;
}

const SVG = 'http://www.w3.org/2000/svg';
function svg(tag, attrs = {}, ...children) {
  const e = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, String(v));
  for (const c of children.flat()) if (c !== null && c !== undefined) e.append(c instanceof Node ? c : document.createTextNode(String(c)));
  return e;
}

/** Says something in the page's live region. */
function annuncia(testo, tipo = 'info') {
  const box = document.getElementById('esito');
  if (!box) return;
  box.replaceChildren(el('div', { class: `alert alert-${tipo}`, text: testo }));
}

class ErroreApi extends Error {
  constructor(status, problem) {
    const campi = (problem.invalid_params || []).map((p) => `${p.name}: ${p.reason}`).join('; ');
    super(campi ? `${problem.detail || problem.title} (${campi})` : problem.detail || problem.title || `errore ${status}`);
    this.status = status;
  }
}

/** Calls this hub's API; answers JSON, throws ErroreApi with the problem's detail. */
async function api(path, { method = 'GET', body, query } = {}) {
  const url = new URL(path, location.origin);
  for (const [k, v] of Object.entries(query || {})) if (v !== '' && v !== undefined && v !== null) url.searchParams.set(k, v);
  const headers = { accept: 'application/json' };
  if (method !== 'GET') headers['x-csrf-token'] = csrf;
  if (body !== undefined) headers['content-type'] = 'application/json';
  const r = await fetch(url, { method, headers, credentials: 'same-origin', body: body === undefined ? undefined : JSON.stringify(body) });
  const text = await r.text();
  let data = {};
  try {
    data = text ? JSON.parse(text) : {};
  } catch {
    data = { detail: text };
  }
  if (!r.ok) throw new ErroreApi(r.status, data);
  return data;
}

async function sessione() {
  try {
    const s = await api('/oidc/rp/session');
    csrf = s.csrf_token || '';
    const f = document.querySelector('#esci input[name=csrf_token]');
    if (f) f.value = csrf;
  } catch {
    // No session: the page itself will redirect to the login.
  }
}

function durata(ms) {
  if (!ms) return '—';
  const s = Math.round(ms / 1000);
  if (s < 60) return `${s} s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m} min ${s % 60} s`;
  const h = Math.floor(m / 60);
  if (h < 48) return `${h} h ${m % 60} min`;
  return `${Math.floor(h / 24)} giorni`;
}

function quando(rfc3339) {
  if (!rfc3339) return '—';
  const d = new Date(rfc3339);
  return Number.isNaN(d.getTime()) ? rfc3339 : d.toLocaleString('it-IT');
}

function badge(testo, tipo) {
  return el('span', { class: `badge bg-${tipo}`, text: testo });
}

function card(titolo, valore, id) {
  return el('div', { class: 'col-6 col-md-3' },
    el('div', { class: 'card card-bg riquadro' }, el('div', { class: 'card-body' },
      el('p', { class: 'riquadro-titolo mb-1', text: titolo }),
      el('p', { class: 'riquadro-valore mb-0', id, text: valore }))));
}

function righe(tbody, rows, vuoto, colonne) {
  if (!rows.length) {
    tbody.replaceChildren(el('tr', {}, el('td', { colspan: colonne, text: vuoto })));
    return;
  }
  tbody.replaceChildren(...rows);
}

// ---------------------------------------------------------------- Panoramica

async function panoramica() {
  const tbody = document.querySelector('#adapters tbody');
  try {
    const { adapters = [] } = await api('/api/v1/adapters');
    const t = { pending: 0, inflight: 0, dead: 0, delivered: 0, oldest: 0 };
    const rows = adapters.map((a) => {
      for (const k of ['pending', 'inflight', 'dead', 'delivered']) t[k] += Number(a[k] || 0);
      t.oldest = Math.max(t.oldest, Number(a.oldest_pending_ms || 0));
      const salute = !a.checked_at ? badge('non ancora controllato', 'secondary')
        : a.healthy ? badge('in funzione', 'success') : badge(`non raggiungibile: ${a.health_detail || 'motivo non indicato'}`, 'danger');
      return el('tr', {},
        el('th', { scope: 'row', text: a.id }), el('td', {}, salute),
        el('td', { class: 'text-end', text: numero.format(Number(a.pending || 0)) }),
        el('td', { class: 'text-end', text: numero.format(Number(a.inflight || 0)) }),
        el('td', { class: 'text-end', text: numero.format(Number(a.dead || 0)) }),
        el('td', { class: 'text-end', text: numero.format(Number(a.delivered || 0)) }),
        el('td', { text: durata(Number(a.oldest_pending_ms || 0)) }),
        el('td', { text: quando(a.checked_at) }));
    });
    righe(tbody, rows, 'Nessun adapter registrato.', 8);
    document.getElementById('totali').replaceChildren(
      card('In attesa', numero.format(t.pending), 'tot-attesa'),
      card('Non riuscite', numero.format(t.dead), 'tot-morte'),
      card('Consegnate', numero.format(t.delivered), 'tot-consegnate'),
      card('Attesa più lunga', durata(t.oldest), 'tot-attesa-max'));
  } catch (e) {
    annuncia(`Impossibile leggere lo stato degli adapter: ${e.message}`, 'danger');
  }
}

// ---------------------------------------------------------------- Consegne

let daScartare = null;

async function consegne() {
  const form = document.getElementById('filtro-consegne');
  const scarta = document.getElementById('scarta');
  const carica = async () => {
    const state = document.getElementById('stato-consegne').value;
    const tbody = document.querySelector('#consegne tbody');
    try {
      const { deliveries = [] } = await api('/api/v1/deliveries', { query: { state, page_size: 100 } });
      righe(tbody, deliveries.map((d) => {
        const azioni = el('td', { class: 'azioni' });
        if (d.state === 'DELIVERY_STATE_DEAD' || d.state === 'DELIVERY_STATE_PENDING') {
          azioni.append(
            el('button', { type: 'button', class: 'btn btn-primary btn-xs me-2', 'data-riprova': d.id, 'aria-label': `Riprova la consegna ${d.id}`, text: 'Riprova',
              onclick: async () => {
                try {
                  await api(`/api/v1/deliveries/${encodeURIComponent(d.id)}/retry`, { method: 'POST' });
                  annuncia(`Consegna ${d.id} rimessa in coda.`, 'success');
                  await carica();
                } catch (e) {
                  annuncia(`Consegna ${d.id} non rimessa in coda: ${e.message}`, 'danger');
                }
              } }),
            el('button', { type: 'button', class: 'btn btn-outline-danger btn-xs', 'aria-label': `Scarta la consegna ${d.id}`, text: 'Scarta…',
              onclick: () => {
                daScartare = d.id;
                document.getElementById('scarta-titolo').textContent = `Scarta la consegna ${d.id}`;
                scarta.hidden = false;
                document.getElementById('motivo-scarto').focus();
              } }));
        }
        return el('tr', {},
          el('th', { scope: 'row', text: d.id }), el('td', { text: d.adapter }),
          el('td', { text: `${d.kind} ${d.record_id} (versione ${d.version})` }),
          el('td', { class: 'text-end', text: d.attempts }),
          el('td', {}, d.last_error_code ? el('strong', { text: d.last_error_code }) : '', d.last_error ? ` ${d.last_error}` : '',
            d.discard_reason ? ` — scartata: ${d.discard_reason}` : ''),
          azioni);
      }), 'Nessuna consegna in questo stato.', 6);
    } catch (e) {
      annuncia(`Impossibile leggere le consegne: ${e.message}`, 'danger');
    }
  };
  form.addEventListener('submit', (ev) => { ev.preventDefault(); carica(); });
  document.getElementById('annulla-scarto').addEventListener('click', () => { scarta.hidden = true; daScartare = null; });
  scarta.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const reason = document.getElementById('motivo-scarto').value.trim();
    try {
      await api(`/api/v1/deliveries/${encodeURIComponent(daScartare)}/discard`, { method: 'POST', query: { reason } });
      annuncia(`Consegna ${daScartare} scartata.`, 'success');
      scarta.hidden = true;
      document.getElementById('motivo-scarto').value = '';
      await carica();
    } catch (e) {
      annuncia(`Consegna non scartata: ${e.message}`, 'danger');
    }
  });
  await carica();
}

// ---------------------------------------------------------------- INPS

const STATI_FLUSSO = { ready: 'Pronti', served: 'Prelevati da INPS', acknowledged: 'Acquisiti', rejected: 'Rifiutati' };

async function inps() {
  const carica = async () => {
    const stato = document.getElementById('stato-flussi').value;
    try {
      const r = await api('/api/v1/siuss/flussi', { query: { stato, page_size: 100 } });
      document.getElementById('per-stato').replaceChildren(...(r.per_stato || []).map((c) =>
        card(STATI_FLUSSO[c.stato] || c.stato, numero.format(Number(c.flussi || 0)), `flussi-${c.stato}`)));
      righe(document.querySelector('#flussi tbody'), (r.flussi || []).map((f) => {
        const x = f.flusso || {};
        const stato = x.stato === 'rejected' ? badge('rifiutato', 'danger') : x.stato === 'acknowledged' ? badge('acquisito', 'success')
          : badge(STATI_FLUSSO[x.stato] || x.stato, 'secondary');
        return el('tr', {},
          el('th', { scope: 'row', text: x.id_flusso }), el('td', { text: x.tipo }),
          el('td', { text: x.operazione === 'C' ? 'cancellazione' : 'inserimento' }), el('td', { text: f.ufficio }),
          el('td', {}, stato),
          el('td', {}, x.codice_esito ? el('strong', { text: x.codice_esito }) : '—', x.descrizione_esito ? ` ${x.descrizione_esito}` : ''),
          el('td', { text: f.significato_esito || '—' }));
      }), 'Nessun flusso in questo stato.', 7);
    } catch (e) {
      annuncia(`Impossibile leggere i flussi: ${e.message}`, 'danger');
    }
  };
  document.getElementById('filtro-flussi').addEventListener('submit', (ev) => { ev.preventDefault(); carica(); });
  await carica();
}

// ---------------------------------------------------------------- Grafici

const COLORI = ['#0066cc', '#b71918', '#00703c', '#7a4a00', '#5c2d91', '#00617a', '#a61e4d', '#3d4a57'];

/** A line chart: one line per series, gaps where a value is suppressed (null). */
export function graficoLinee(box, { titolo, descrizione, etichette, serie }) {
  const W = 720, H = 300, L = 64, R = 16, T = 16, B = 48;
  const max = Math.max(1, ...serie.flatMap((s) => s.valori.filter((v) => v !== null)));
  const x = (i) => L + (etichette.length <= 1 ? (W - L - R) / 2 : (i * (W - L - R)) / (etichette.length - 1));
  const y = (v) => T + (H - T - B) * (1 - v / max);
  const id = `g${Math.random().toString(36).slice(2)}`;
  const g = svg('svg', { viewBox: `0 0 ${W} ${H}`, role: 'img', 'aria-labelledby': `${id}t ${id}d`, class: 'grafico-svg' },
    svg('title', { id: `${id}t` }, titolo), svg('desc', { id: `${id}d` }, descrizione));
  for (let k = 0; k <= 4; k++) {
    const v = (max * k) / 4;
    g.append(svg('line', { x1: L, x2: W - R, y1: y(v), y2: y(v), class: 'griglia' }),
      svg('text', { x: L - 8, y: y(v) + 4, 'text-anchor': 'end', class: 'asse' }, numero.format(Math.round(v))));
  }
  const passo = Math.ceil(etichette.length / 12);
  etichette.forEach((e, i) => { if (i % passo === 0) g.append(svg('text', { x: x(i), y: H - B + 20, 'text-anchor': 'middle', class: 'asse' }, e)); });
  serie.forEach((s, n) => {
    const colore = COLORI[n % COLORI.length];
    let tratto = [];
    const chiudi = () => {
      if (tratto.length > 1) g.append(svg('polyline', { points: tratto.join(' '), fill: 'none', stroke: colore, 'stroke-width': 2.5 }));
      tratto = [];
    };
    s.valori.forEach((v, i) => {
      if (v === null) {
        chiudi();
        g.append(svg('text', { x: x(i), y: H - B - 6, 'text-anchor': 'middle', class: 'soppressa', fill: colore }, '✕'));
        return;
      }
      tratto.push(`${x(i)},${y(v)}`);
      g.append(svg('circle', { cx: x(i), cy: y(v), r: 3.5, fill: colore }));
    });
    chiudi();
  });
  const legenda = el('ul', { class: 'legenda' }, serie.map((s, n) =>
    el('li', {}, el('span', { class: 'campione', 'data-colore': n % COLORI.length }), s.nome)));
  box.replaceChildren(g, serie.length > 1 ? legenda : '');
}

/** A bar chart: one bar per label; a suppressed value (null) is marked, not drawn. */
export function graficoBarre(box, { titolo, descrizione, barre }) {
  const W = 720, H = 300, L = 64, R = 16, T = 16, B = 48;
  const max = Math.max(1, ...barre.filter((b) => b.valore !== null).map((b) => b.valore));
  const larghezza = (W - L - R) / Math.max(1, barre.length);
  const y = (v) => T + (H - T - B) * (1 - v / max);
  const id = `g${Math.random().toString(36).slice(2)}`;
  const g = svg('svg', { viewBox: `0 0 ${W} ${H}`, role: 'img', 'aria-labelledby': `${id}t ${id}d`, class: 'grafico-svg' },
    svg('title', { id: `${id}t` }, titolo), svg('desc', { id: `${id}d` }, descrizione));
  for (let k = 0; k <= 4; k++) {
    const v = (max * k) / 4;
    g.append(svg('line', { x1: L, x2: W - R, y1: y(v), y2: y(v), class: 'griglia' }),
      svg('text', { x: L - 8, y: y(v) + 4, 'text-anchor': 'end', class: 'asse' }, numero.format(Math.round(v))));
  }
  barre.forEach((b, i) => {
    const cx = L + i * larghezza + larghezza / 2;
    g.append(svg('text', { x: cx, y: H - B + 20, 'text-anchor': 'middle', class: 'asse' }, b.etichetta));
    if (b.valore === null) {
      g.append(svg('text', { x: cx, y: H - B - 6, 'text-anchor': 'middle', class: 'soppressa' }, '✕'));
    } else {
      g.append(svg('rect', { x: cx - larghezza * 0.35, y: y(b.valore), width: larghezza * 0.7, height: H - B - y(b.valore), fill: COLORI[0], class: 'barra' }));
    }
  });
  box.replaceChildren(g);
}

// ---------------------------------------------------------------- Statistiche

const DESCR = {};

function etichetta(codice) {
  return DESCR[codice] || codice;
}

function valore(c) {
  return c.soppressa ? null : Number(c.valore || 0);
}

async function statistiche() {
  const form = document.getElementById('filtro-statistiche');
  let catalogo;
  try {
    catalogo = await api('/api/v1/statistiche/catalogo');
  } catch (e) {
    annuncia(`Statistiche non disponibili: ${e.message}`, 'danger');
    return;
  }
  for (const x of [...(catalogo.misure || []), ...(catalogo.dimensioni || []), ...(catalogo.periodi || [])]) DESCR[x.codice] = x.descrizione;
  const opzioni = (sel, lista, prima) => {
    sel.replaceChildren(...(prima ? [el('option', { value: '', text: prima })] : []), ...lista.map((x) => el('option', { value: x.codice, text: x.descrizione })));
  };
  opzioni(document.getElementById('misura'), catalogo.misure || []);
  opzioni(document.getElementById('righe'), catalogo.dimensioni || [], 'Nessuna');
  opzioni(document.getElementById('periodo'), catalogo.periodi || []);
  const anno = new Date().getFullYear();
  document.getElementById('anno-da').value = anno - 1;
  document.getElementById('anno-a').value = anno;
  document.getElementById('periodo').value = 'trimestre';

  const parametri = () => {
    const p = {};
    for (const [k, v] of new FormData(form).entries()) if (v !== '') p[k] = v;
    return p;
  };
  const link = (p, format) => {
    const u = new URL('/api/v1/statistiche/tabella', location.origin);
    for (const [k, v] of Object.entries({ ...p, format })) u.searchParams.set(k, v);
    return u.pathname + u.search;
  };
  const mostra = async () => {
    const p = parametri();
    document.getElementById('scarica-csv').setAttribute('href', link(p, 'csv'));
    document.getElementById('scarica-xlsx').setAttribute('href', link(p, 'xlsx'));
    try {
      const t = await api('/api/v1/statistiche/tabella', { query: p });
      disegna(t);
      annuncia(`Tabella aggiornata: ${etichetta(t.misura)}, ${(t.celle || []).length} celle.`, 'success');
    } catch (e) {
      annuncia(`Impossibile calcolare la tabella: ${e.message}`, 'danger');
      return;
    }
    try {
      const m = await api('/api/v1/statistiche/tabella', { query: { misura: p.misura, righe: 'municipio', periodo: 'anno', anno_da: p.anno_a, anno_a: p.anno_a } });
      const celle = (m.celle || []).filter((c) => c.riga !== '*' && c.colonna === '*').sort((a, b) => a.riga.localeCompare(b.riga));
      graficoBarre(document.getElementById('grafico-municipi'), {
        titolo: `${etichetta(m.misura)} per Municipio, ${p.anno_a}`,
        descrizione: celle.map((c) => `${c.riga}: ${c.soppressa ? 'soppresso' : numero.format(valore(c))}`).join('; '),
        barre: celle.map((c) => ({ etichetta: c.riga.replace(/^M0?/, ''), valore: valore(c) })),
      });
    } catch (e) {
      document.getElementById('grafico-municipi').replaceChildren(el('p', { text: `Grafico per Municipio non disponibile: ${e.message}` }));
    }
  };
  form.addEventListener('submit', (ev) => { ev.preventDefault(); mostra(); });
  await mostra();
}

function disegna(t) {
  const celle = t.celle || [];
  const periodi = [...new Set(celle.map((c) => c.periodo))].sort();
  const chiavi = [...new Set(celle.filter((c) => c.colonna === '*').map((c) => c.riga))].sort((a, b) => (a === '*') - (b === '*') || a.localeCompare(b));
  const cella = (periodo, riga) => celle.find((c) => c.periodo === periodo && c.riga === riga && c.colonna === '*');
  const nomeRiga = (r) => (r === '*' ? 'Totale' : etichetta(r));
  const linee = (chiavi.length > 1 && chiavi.length <= 9 ? chiavi : ['*']).map((r) => ({ nome: nomeRiga(r), valori: periodi.map((p) => { const c = cella(p, r); return c ? valore(c) : null; }) }));
  graficoLinee(document.getElementById('grafico-andamento'), {
    titolo: `${etichetta(t.misura)} per ${etichetta(t.periodo)}, ${t.anno_da}–${t.anno_a}`,
    descrizione: linee.map((s) => `${s.nome}: ${s.valori.map((v, i) => `${periodi[i]} ${v === null ? 'soppresso' : numero.format(v)}`).join(', ')}`).join('. '),
    etichette: periodi,
    serie: linee,
  });
  const tabella = document.getElementById('tabella-statistiche');
  tabella.querySelector('caption').textContent = `${etichetta(t.misura)} per ${t.righe ? etichetta(t.righe) : 'totale'} e ${etichetta(t.periodo)}`;
  tabella.querySelector('thead').replaceChildren(el('tr', {}, el('th', { scope: 'col', text: t.righe ? etichetta(t.righe) : '' }),
    periodi.map((p) => el('th', { scope: 'col', class: 'text-end', text: p }))));
  tabella.querySelector('tbody').replaceChildren(...chiavi.map((r) => el('tr', {}, el('th', { scope: 'row', text: nomeRiga(r) }),
    periodi.map((p) => {
      const c = cella(p, r);
      if (!c) return el('td', { class: 'text-end', text: '—' });
      if (c.soppressa) return el('td', { class: 'text-end soppressa', 'data-soppressa': '' }, el('span', { 'aria-hidden': 'true', text: '✕' }), el('span', { class: 'visually-hidden', text: 'soppressa' }));
      const testo = t.misura === 'prestazioni' && c.somma !== undefined ? `${numero.format(valore(c))} (${euro.format(Number(c.somma || 0) / 100)})` : numero.format(valore(c));
      return el('td', { class: 'text-end', text: testo });
    }))));
  document.getElementById('nota-soppressione').textContent =
    `Soglia: le celle con meno di ${t.soglia_minima} persone sono soppresse (✕), insieme a quelle che permetterebbero di ricavarle; i valori pubblicati sono arrotondati a multipli di ${t.base_arrotondamento || 1}.`;
}

// ---------------------------------------------------------------- Registro degli accessi

async function registro() {
  const form = document.getElementById('cerca-registro');
  const altri = document.getElementById('altri-registro');
  const tbody = document.querySelector('#registro tbody');
  let token = '';
  let ultima = {};
  const riga = (a) => el('tr', {},
    el('td', { text: quando(a.at) }),
    el('td', { text: `${a.actor} (${a.actor_kind === 'sistema' ? 'sistema' : 'operatore'})` }),
    el('td', { text: a.ufficio || 'tutto l\'ente' }),
    el('td', { text: a.action }),
    el('td', { text: `${a.kind} ${a.record_id}` }),
    el('td', { text: a.purpose }));
  const cerca = async (continua) => {
    const q = continua ? { ...ultima, page_token: token } : Object.fromEntries([...new FormData(form).entries()].filter(([, v]) => v !== ''));
    ultima = { ...q };
    delete ultima.page_token;
    try {
      const r = await api('/api/v1/registro-accessi', { query: { ...q, page_size: 100 } });
      if (!r.persona_id) {
        righe(tbody, [], 'Nessuna persona dell\'ente con questi dati.', 6);
      } else if (continua) {
        tbody.append(...(r.accessi || []).map(riga));
      } else {
        righe(tbody, (r.accessi || []).map(riga), 'Nessun accesso registrato.', 6);
      }
      token = r.next_page_token || '';
      altri.hidden = !token;
      annuncia(r.persona_id ? `Registro della persona ${r.persona_id}: ${tbody.querySelectorAll('tr').length} righe.` : 'Nessuna persona trovata.', 'info');
    } catch (e) {
      annuncia(`Ricerca non riuscita: ${e.message}`, 'danger');
    }
  };
  form.addEventListener('submit', (ev) => { ev.preventDefault(); cerca(false); });
  altri.addEventListener('click', () => cerca(true));
}

// ---------------------------------------------------------------- Persone da unificare

const FINALITA_REVISIONE = 'verifica di possibili doppioni nell\'anagrafica';
const SESSI = { SESSO_MASCHIO: 'maschio', SESSO_FEMMINA: 'femmina' };
// The fields linkage compares, in its order, then the others shown side by side.
const CAMPI = [
  ['cognome', 'Cognome', (p) => p.cognome],
  ['nome', 'Nome', (p) => p.nome],
  ['data_nascita', 'Data di nascita', (p) => p.data_nascita],
  ['luogo_nascita', 'Luogo di nascita', (p) => p.luogo_nascita],
  ['sesso', 'Sesso', (p) => SESSI[p.sesso]],
  ['codice_fiscale', 'Codice fiscale', (p) => p.codice_fiscale],
];
const ALTRI_CAMPI = [
  ['Cittadinanza', (p) => p.cittadinanza],
  ['Residenza', (p) => { const r = p.residenza || {}; return [r.indirizzo, r.cap, r.codice_comune].filter(Boolean).join(', '); }],
  ['Ufficio che l\'ha registrata', (p) => (p.meta || {}).ufficio || 'tutto l\'ente'],
  ['Identificativo', (p) => (p.meta || {}).id],
];
const CONTEGGI = [['cartelle', 'Cartelle'], ['accessi', 'Accessi'], ['prestazioni', 'Prestazioni'], ['nuclei', 'Nuclei familiari']];
const STATI_REVISIONE = { STATO_REVISIONE_APERTA: 'da decidere', STATO_REVISIONE_STESSA_PERSONA: 'stessa persona', STATO_REVISIONE_PERSONE_DIVERSE: 'persone diverse', STATO_REVISIONE_ASSORBITA: 'chiusa da una unificazione' };
const peso = new Intl.NumberFormat('it-IT', { minimumFractionDigits: 1, maximumFractionDigits: 1, signDisplay: 'exceptZero' });
const percento = new Intl.NumberFormat('it-IT', { style: 'percent', maximumFractionDigits: 0 });

/** An id shortened for tables (its last 8 characters), the whole id as a tooltip. */
function idBreve(id) {
  return id ? el('code', { title: id, text: id.slice(-8) }) : '—';
}

async function revisioni() {
  const tbody = document.querySelector('#revisioni tbody');
  const altre = document.getElementById('altre-revisioni');
  const confronto = document.getElementById('confronto');
  const decisione = document.getElementById('decisione');
  let token = '';
  let contate = 0;
  let aperta = null;
  let provenienza = null;

  const indizi = (r) => (r.evidenza?.confronti || []).filter((c) => !c.mancante)
    .sort((x, y) => Math.abs(Number(y.peso || 0)) - Math.abs(Number(x.peso || 0))).slice(0, 3)
    .map((c) => `${c.campo}: ${c.livello}`).join('; ') || '—';
  const riga = (r) => {
    contate += 1;
    return el('tr', {},
      el('th', { scope: 'row', class: 'text-end', text: percento.format(Number(r.probabilita || 0)) }),
      el('td', {}, `${r.ufficio_a || '—'} · `, idBreve(r.persona_a_id)),
      el('td', {}, `${r.ufficio_b || '—'} · `, idBreve(r.persona_b_id)),
      el('td', { text: indizi(r) }),
      el('td', { class: 'azioni' }, el('button', { type: 'button', class: 'btn btn-primary btn-xs', 'data-revisione': r.id,
        'aria-label': `Esamina la coppia ${contate}`, text: 'Esamina', onclick: (ev) => apri(r.id, ev.currentTarget) })));
  };
  const carica = async (continua) => {
    const stato = document.getElementById('stato-revisioni').value;
    if (!continua) contate = 0;
    try {
      const r = await api('/api/v1/revisioni', { query: { stato, page_size: 50, page_token: continua ? token : '' } });
      const rows = (r.revisioni || []).map(riga);
      if (continua) tbody.append(...rows);
      else righe(tbody, rows, 'Nessuna coppia in questo stato.', 5);
      token = r.next_page_token || '';
      altre.hidden = !token;
    } catch (e) {
      annuncia(`Impossibile leggere le coppie: ${e.message}`, 'danger');
    }
  };
  const mostra = (d) => {
    const r = d.revisione || {};
    const a = (d.a || {}).persona || null;
    const b = (d.b || {}).persona || null;
    const conf = Object.fromEntries((r.evidenza?.confronti || []).map((c) => [c.campo, c]));
    const valore = (p, f) => (p ? f(p) || '—' : 'non più presente (unificata)');
    const fila = (nome, va, vb, livello = '—', w = '—') => el('tr', {},
      el('th', { scope: 'row', text: nome }), el('td', { text: va }), el('td', { text: vb }), el('td', { text: livello }), el('td', { class: 'text-end', text: w }));
    const rows = CAMPI.map(([campo, nome, f]) => {
      const c = conf[campo];
      return fila(nome, valore(a, f), valore(b, f), c ? c.livello : '—', c && !c.mancante ? peso.format(Number(c.peso || 0)) : '—');
    });
    for (const [nome, f] of ALTRI_CAMPI) rows.push(fila(nome, valore(a, f), valore(b, f)));
    for (const [k, nome] of CONTEGGI) rows.push(fila(`${nome} (visibili)`, numero.format(Number((d.a || {})[k] || 0)), numero.format(Number((d.b || {})[k] || 0))));
    document.querySelector('#tabella-confronto tbody').replaceChildren(...rows);
    const ev = r.evidenza || {};
    document.getElementById('sintesi-confronto').textContent =
      `Probabilità che siano la stessa persona: ${percento.format(Number(r.probabilita || 0))}; peso complessivo ${peso.format(Number(ev.peso_totale || 0))}`
      + `${ev.nomi_scambiati ? '; cognome e nome risultano scambiati' : ''}. Stato: ${STATI_REVISIONE[r.stato] || r.stato}.`;
    document.getElementById('superstite-a').checked = true;
    decisione.hidden = r.stato !== 'STATO_REVISIONE_APERTA';
  };
  const apri = async (id, da) => {
    try {
      const d = await api(`/api/v1/revisioni/${encodeURIComponent(id)}`, { query: { purpose: FINALITA_REVISIONE } });
      aperta = d.revisione;
      provenienza = da;
      mostra(d);
      confronto.hidden = false;
      document.getElementById('titolo-confronto').focus();
    } catch (e) {
      annuncia(`Impossibile aprire la coppia: ${e.message}`, 'danger');
    }
  };
  const chiudi = () => {
    confronto.hidden = true;
    aperta = null;
    const torna = provenienza && provenienza.isConnected ? provenienza
      : document.querySelector('#revisioni button[data-revisione]') || document.getElementById('stato-revisioni');
    provenienza = null;
    torna.focus();
  };
  const fusioni = async () => {
    try {
      const { fusioni: lista = [] } = await api('/api/v1/fusioni', { query: { page_size: 50 } });
      righe(document.querySelector('#fusioni tbody'), lista.map((f) => el('tr', {},
        el('th', { scope: 'row', text: quando(f.at) }),
        el('td', {}, idBreve(f.superstite_id)),
        el('td', {}, `${f.ufficio_fusa || '—'} · `, idBreve(f.fusa_id)),
        el('td', { class: 'text-end', text: numero.format(Number(f.spostati || 0)) }),
        el('td', { text: f.actor }),
        el('td', {}, f.annullata_at ? badge(`annullata il ${quando(f.annullata_at)}`, 'secondary') : badge('in vigore', 'success')),
        el('td', { class: 'azioni' }, f.annullata_at ? '' : el('button', { type: 'button', class: 'btn btn-outline-danger btn-xs', 'data-fusione': f.id,
          'aria-label': `Annulla l'unificazione ${f.id.slice(-8)}`, text: 'Annulla', onclick: () => annulla(f) })))),
      'Nessuna unificazione.', 7);
    } catch (e) {
      annuncia(`Impossibile leggere le unificazioni: ${e.message}`, 'danger');
    }
  };
  const annulla = async (f) => {
    try {
      await api(`/api/v1/fusioni/${encodeURIComponent(f.id)}/annullamento`, { method: 'POST' });
      annuncia(`Unificazione ${f.id.slice(-8)} annullata: la persona ${f.fusa_id.slice(-8)} è di nuovo a sé.`, 'success');
      await Promise.all([carica(false), fusioni()]);
      document.getElementById('titolo-fusioni').focus();
    } catch (e) {
      annuncia(`Unificazione non annullata: ${e.message}`, 'danger');
    }
  };
  const decidi = async (body, fatto) => {
    try {
      await api(`/api/v1/revisioni/${encodeURIComponent(aperta.id)}/decisione`, { method: 'POST', body });
      annuncia(fatto, 'success');
      await Promise.all([carica(false), fusioni()]);
      chiudi();
    } catch (e) {
      annuncia(`Decisione non registrata: ${e.message}`, 'danger');
    }
  };
  document.getElementById('filtro-revisioni').addEventListener('submit', (ev) => { ev.preventDefault(); carica(false); });
  altre.addEventListener('click', () => carica(true));
  decisione.addEventListener('submit', (ev) => {
    ev.preventDefault();
    const resta = document.getElementById('superstite-b').checked ? aperta.persona_b_id : aperta.persona_a_id;
    decidi({ esito: 'ESITO_STESSA_PERSONA', superstite_id: resta }, `Stessa persona: i due record sono unificati in ${resta.slice(-8)}.`);
  });
  document.getElementById('persone-diverse').addEventListener('click', () =>
    decidi({ esito: 'ESITO_PERSONE_DIVERSE' }, 'Coppia segnata come persone diverse.'));
  document.getElementById('chiudi-confronto').addEventListener('click', chiudi);
  await Promise.all([carica(false), fusioni()]);
}

// ---------------------------------------------------------------- Client e operatori

const RUOLI = ['operatore', 'consultazione', 'statistica', 'amministratore', 'dpo', 'anagrafe'];

function sceltaRuoli(box, scelti = []) {
  const nome = box.dataset.nome;
  box.replaceChildren(...RUOLI.map((r) => el('div', { class: 'form-check form-check-inline' },
    el('input', { class: 'form-check-input', type: 'checkbox', id: `${nome}-${r}`, name: nome, value: r, checked: scelti.includes(r) }),
    el('label', { class: 'form-check-label', for: `${nome}-${r}`, text: r }))));
}

function ruoliScelti(box) {
  return [...box.querySelectorAll('input:checked')].map((i) => i.value);
}

async function utenze() {
  document.querySelectorAll('.ruoli-scelta').forEach((b) => sceltaRuoli(b));
  const modifica = document.getElementById('modifica-ruoli');
  const ruoliBox = modifica.querySelector('.ruoli-scelta');
  let bersaglio = null;
  const azione = async (url, fatto) => {
    try {
      await api(url, { method: 'POST' });
      annuncia(fatto, 'success');
      await carica();
    } catch (e) {
      annuncia(`Operazione non riuscita: ${e.message}`, 'danger');
    }
  };
  const apriRuoli = (tipo, id, ruoli) => {
    bersaglio = { tipo, id };
    document.getElementById('ruoli-titolo').textContent = `Ruoli di ${id}`;
    sceltaRuoli(ruoliBox, ruoli);
    modifica.hidden = false;
    ruoliBox.querySelector('input').focus();
  };
  const stato = (x) => (x.disabled ? badge('disattivato', 'secondary') : badge('attivo', 'success'));
  const bottoni = (tipo, id, x) => el('td', { class: 'azioni' },
    el('button', { type: 'button', class: 'btn btn-outline-primary btn-xs me-2', 'aria-label': `${x.disabled ? 'Riattiva' : 'Disattiva'} ${id}`, text: x.disabled ? 'Riattiva' : 'Disattiva',
      onclick: () => azione(`/console/api/${tipo}/${encodeURIComponent(id)}/${x.disabled ? 'abilita' : 'disabilita'}`, `${id} ${x.disabled ? 'riattivato' : 'disattivato'}.`) }),
    el('button', { type: 'button', class: 'btn btn-outline-primary btn-xs', 'aria-label': `Modifica i ruoli di ${id}`, text: 'Ruoli…', onclick: () => apriRuoli(tipo, id, x.roles) }));
  const carica = async () => {
    try {
      const { operatori = [] } = await api('/console/api/operatori');
      righe(document.querySelector('#operatori tbody'), operatori.map((o) => el('tr', {},
        el('th', { scope: 'row', text: o.operator_id }), el('td', { text: o.ufficio || 'tutto l\'ente' }),
        el('td', { text: o.roles.join(', ') }), el('td', {}, stato(o)), bottoni('operatori', o.operator_id, o))), 'Nessun operatore registrato.', 5);
      const { client = [] } = await api('/console/api/client');
      righe(document.querySelector('#client tbody'), client.map((c) => el('tr', {},
        el('th', { scope: 'row', text: c.name }), el('td', {}, el('code', { text: c.client_id })), el('td', { text: c.ufficio || 'tutto l\'ente' }),
        el('td', { text: c.roles.join(', ') }),
        el('td', { text: [c.has_secret && 'segreto', c.has_certificate && 'certificato', c.pdnd_client_id && 'PDND'].filter(Boolean).join(', ') || '—' }),
        el('td', {}, stato(c)), bottoni('client', c.client_id, c))), 'Nessun client registrato.', 7);
    } catch (e) {
      annuncia(`Impossibile leggere client e operatori: ${e.message}`, 'danger');
    }
  };
  document.getElementById('annulla-ruoli').addEventListener('click', () => { modifica.hidden = true; });
  modifica.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    try {
      await api(`/console/api/${bersaglio.tipo}/${encodeURIComponent(bersaglio.id)}/ruoli`, { method: 'POST', body: { roles: ruoliScelti(ruoliBox) } });
      annuncia(`Ruoli di ${bersaglio.id} aggiornati.`, 'success');
      modifica.hidden = true;
      await carica();
    } catch (e) {
      annuncia(`Ruoli non aggiornati: ${e.message}`, 'danger');
    }
  });
  document.getElementById('nuovo-operatore').addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const f = ev.target;
    try {
      await api('/console/api/operatori', { method: 'POST', body: {
        operator_id: f.operator_id.value, codice_fiscale: f.codice_fiscale.value, ufficio: f.ufficio.value, roles: ruoliScelti(f.querySelector('.ruoli-scelta')) } });
      annuncia(`Operatore ${f.operator_id.value} registrato.`, 'success');
      f.reset();
      await carica();
    } catch (e) {
      annuncia(`Operatore non registrato: ${e.message}`, 'danger');
    }
  });
  document.getElementById('nuovo-client').addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const f = ev.target;
    try {
      const c = await api('/console/api/client', { method: 'POST', body: {
        name: f.name.value, purpose: f.purpose.value, ufficio: f.ufficio.value, pdnd_client_id: f.pdnd_client_id.value, pdnd_purpose_id: f.pdnd_purpose_id.value,
        secret: f.secret.checked, roles: ruoliScelti(f.querySelector('.ruoli-scelta')) } });
      const box = document.getElementById('segreto');
      box.replaceChildren(el('p', { class: 'mb-1', text: `Client ${c.name} registrato con identificativo ` }, el('code', { text: c.client_id })),
        c.secret ? el('p', { class: 'mb-0' }, 'Segreto (copialo ora: non sarà più mostrato): ', el('code', { text: c.secret })) : '');
      box.hidden = false;
      f.reset();
      await carica();
    } catch (e) {
      annuncia(`Client non registrato: ${e.message}`, 'danger');
    }
  });
  await carica();
}

// ---------------------------------------------------------------- Avvio

const PAGINE = { '': panoramica, consegne, inps, statistiche, registro, revisioni, utenze };

async function avvio() {
  const pagina = document.body.dataset.pagina;
  if (pagina === 'accesso' || !(pagina in PAGINE)) return;
  await sessione();
  await PAGINE[pagina]();
  document.body.dataset.pronta = 'si';
}

avvio();
