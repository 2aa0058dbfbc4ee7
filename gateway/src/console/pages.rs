//! The console's HTML: one shell (skip link, header with who is logged in, navigation by
//! role, footer) around each page's main content. Pages hold structure and labels only; the
//! data is filled in by `console.js` from the REST API. No inline script or style anywhere
//! (the CSP forbids them).
use axum::response::Html;
use core_cartella::auth::{Caller, Role};

/// A console page.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Page {
    Panoramica,
    Consegne,
    Inps,
    Statistiche,
    Registro,
    Revisioni,
    Utenze,
}

impl Page {
    pub const ALL: [Page; 7] =
        [Page::Panoramica, Page::Consegne, Page::Inps, Page::Statistiche, Page::Registro, Page::Revisioni, Page::Utenze];

    /// Path segment under `/console/` (empty for the overview).
    pub fn slug(self) -> &'static str {
        match self {
            Page::Panoramica => "",
            Page::Consegne => "consegne",
            Page::Inps => "inps",
            Page::Statistiche => "statistiche",
            Page::Registro => "registro",
            Page::Revisioni => "revisioni",
            Page::Utenze => "utenze",
        }
    }

    pub fn title(self) -> &'static str {
        match self {
            Page::Panoramica => "Panoramica",
            Page::Consegne => "Consegne non riuscite",
            Page::Inps => "Flussi INPS SIUSS",
            Page::Statistiche => "Statistiche",
            Page::Registro => "Registro degli accessi",
            Page::Revisioni => "Persone da unificare",
            Page::Utenze => "Client e operatori",
        }
    }

    /// Roles that use the page (the API decides what each may really do).
    pub fn roles(self) -> &'static [Role] {
        match self {
            Page::Panoramica | Page::Consegne | Page::Inps | Page::Utenze => &[Role::Amministratore],
            Page::Statistiche => &[Role::Statistica, Role::Amministratore],
            Page::Registro => &[Role::Dpo],
            Page::Revisioni => &[Role::Anagrafe],
        }
    }

    fn href(self) -> String {
        format!("/console/{}", self.slug())
    }

    fn body(self) -> &'static str {
        match self {
            Page::Panoramica => PANORAMICA,
            Page::Consegne => CONSEGNE,
            Page::Inps => INPS,
            Page::Statistiche => STATISTICHE,
            Page::Registro => REGISTRO,
            Page::Revisioni => REVISIONI,
            Page::Utenze => UTENZE,
        }
    }
}

/// HTML-escapes text put in a page.
pub fn esc(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&#39;"),
            c => o.push(c),
        }
    }
    o
}

fn role_label(r: Role) -> &'static str {
    match r {
        Role::Operatore => "operatore",
        Role::Consultazione => "consultazione",
        Role::Statistica => "statistica",
        Role::Amministratore => "amministratore",
        Role::Dpo => "responsabile protezione dati",
        Role::Siuss => "INPS SIUSS",
        Role::Anagrafe => "anagrafe",
    }
}

fn head(title: &str, slug: &str) -> String {
    let unstyled = if super::assets::styled() {
        ""
    } else {
        "<p class=\"avviso-stile\">Bootstrap Italia non è stato incluso in questa build: eseguire <code>npm ci</code> in \
         <code>gateway/console</code> e ricompilare.</p>"
    };
    format!(
        "<!doctype html>\n<html lang=\"it\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{t} · Console SIGeSS</title>\
         <link rel=\"stylesheet\" href=\"/console/assets/bi/bootstrap-italia.min.css\">\
         <link rel=\"stylesheet\" href=\"/console/assets/console.css\">\
         <script type=\"module\" src=\"/console/assets/console.js\"></script>\
         </head><body data-pagina=\"{slug}\">\
         <a class=\"visually-hidden-focusable salta\" href=\"#contenuto\">Vai al contenuto principale</a>{unstyled}",
        t = esc(title),
        slug = esc(slug),
    )
}

fn header(caller: Option<&Caller>) -> String {
    let right = match caller {
        Some(c) => format!(
            "<div class=\"it-header-slim-right-zone\"><p class=\"chi mb-0 me-3\" id=\"chi\">{} <span class=\"ruoli\">({})</span></p>\
             <form method=\"post\" action=\"/oidc/rp/logout\" id=\"esci\"><input type=\"hidden\" name=\"csrf_token\" value=\"\">\
             <input type=\"hidden\" name=\"next\" value=\"/console/accesso\">\
             <button class=\"btn btn-primary btn-sm\" type=\"submit\">Esci</button></form></div>",
            esc(&c.subject),
            esc(&c.roles.iter().map(|r| role_label(*r)).collect::<Vec<_>>().join(", ")),
        ),
        None => String::new(),
    };
    format!(
        "<header class=\"it-header-wrapper\"><div class=\"it-header-slim-wrapper\"><div class=\"container\"><div class=\"row\"><div class=\"col-12\">\
         <div class=\"it-header-slim-wrapper-content\"><span class=\"navbar-brand\">Roma Capitale</span>{right}</div></div></div></div></div>\
         <div class=\"it-nav-wrapper\"><div class=\"it-header-center-wrapper\"><div class=\"container\"><div class=\"row\"><div class=\"col-12\">\
         <div class=\"it-header-center-content-wrapper\"><div class=\"it-brand-wrapper\"><a href=\"/console/\">\
         <div class=\"it-brand-text\"><div class=\"it-brand-title\">SIGeSS hub</div>\
         <div class=\"it-brand-tagline d-none d-md-block\">Console di gestione dell'hub</div></div></a></div></div></div></div></div></div></div>\
         </header>"
    )
}

const FOOTER: &str = "<footer class=\"it-footer mt-5\"><div class=\"it-footer-small-prints clearfix\"><div class=\"container\">\
    <p class=\"piede py-3 mb-0\">SIGeSS hub di Roma Capitale · software libero EUPL-1.2 · \
    <a href=\"/api/v1/docs\">documentazione delle API</a></p></div></div></footer></body></html>";

/// A page for a logged-in caller.
pub fn page(p: Page, caller: &Caller) -> Html<String> {
    let mut links = String::new();
    for q in Page::ALL {
        let mine = q.roles().iter().any(|r| caller.has(*r));
        if !mine && q != p {
            continue;
        }
        let current = if q == p { " active\" aria-current=\"page" } else { "" };
        links.push_str(&format!("<li><a class=\"list-item{current}\" href=\"{}\"><span>{}</span></a></li>", q.href(), esc(q.title())));
    }
    let allowed = p.roles().iter().any(|r| caller.has(*r));
    let warn = if allowed {
        String::new()
    } else {
        "<div class=\"alert alert-warning\" role=\"alert\">I tuoi ruoli non comprendono questa sezione: le richieste saranno rifiutate.</div>".into()
    };
    Html(format!(
        "{head}{header}<div class=\"container my-4\"><div class=\"row\">\
         <nav class=\"col-lg-3 mb-4\" aria-label=\"Sezioni della console\"><div class=\"link-list-wrapper\"><ul class=\"link-list\">{links}</ul></div></nav>\
         <main id=\"contenuto\" class=\"col-lg-9\" tabindex=\"-1\"><h1 class=\"h2 mb-4\">{t}</h1>{warn}\
         <div id=\"esito\" role=\"status\" aria-live=\"polite\"></div>{body}</main></div></div>{FOOTER}",
        head = head(p.title(), p.slug()),
        header = header(Some(caller)),
        t = esc(p.title()),
        body = p.body(),
    ))
}

/// The login page: SPID/CIE when configured, the demo operators in demo mode.
pub fn login(demo: bool, spid: bool, caller: Option<&Caller>) -> Html<String> {
    let mut body = String::new();
    if let Some(c) = caller {
        body.push_str(&format!(
            "<div class=\"alert alert-info\" role=\"status\">Hai già una sessione come {}. <a href=\"/console/\">Vai alla console</a>.</div>",
            esc(&c.subject)
        ));
    }
    if spid {
        body.push_str(
            "<h2 class=\"h4\">Accesso con identità digitale</h2><p>Gli operatori registrati nell'hub entrano con SPID o CIE.</p>\
             <p><a class=\"btn btn-primary\" href=\"/oidc/rp/?next=/console/\">Entra con SPID o CIE</a></p>",
        );
    }
    if demo {
        body.push_str("<h2 class=\"h4 mt-4\">Accesso dimostrativo</h2><p>Questo hub è in modalità dimostrativa (dati finti): scegli un operatore.</p>\
            <form method=\"post\" action=\"/console/accesso-demo\" class=\"accesso-demo\"><fieldset><legend>Operatore dimostrativo</legend>");
        for (i, (id, label, _)) in super::DEMO_OPERATORS.iter().enumerate() {
            let checked = if i == 0 { " checked" } else { "" };
            body.push_str(&format!(
                "<div class=\"form-check\"><input class=\"form-check-input\" type=\"radio\" name=\"operatore\" id=\"op-{id}\" value=\"{id}\"{checked}>\
                 <label class=\"form-check-label\" for=\"op-{id}\">{} ({id})</label></div>",
                esc(label)
            ));
        }
        body.push_str("</fieldset><button type=\"submit\" class=\"btn btn-primary mt-3\" id=\"entra-demo\">Entra</button></form>");
    }
    if !demo && !spid {
        body.push_str(
            "<div class=\"alert alert-warning\" role=\"alert\">L'accesso con SPID o CIE non è configurato su questo hub \
             (opzioni <code>--spid-entity-id</code> e <code>--spid-trust-anchor</code>).</div>",
        );
    }
    Html(format!(
        "{}{}<div class=\"container my-5\"><main id=\"contenuto\" tabindex=\"-1\"><h1 class=\"h2 mb-4\">Accesso alla console</h1>{body}</main></div>{FOOTER}",
        head("Accesso", "accesso"),
        header(None)
    ))
}

pub fn login_error(message: &str) -> Html<String> {
    Html(format!(
        "{}{}<div class=\"container my-5\"><main id=\"contenuto\" tabindex=\"-1\"><h1 class=\"h2\">Accesso non riuscito</h1>\
         <div class=\"alert alert-danger\" role=\"alert\">{}</div><p><a href=\"/console/accesso\">Torna all'accesso</a></p></main></div>{FOOTER}",
        head("Accesso non riuscito", "accesso"),
        header(None),
        esc(message)
    ))
}

pub fn not_found() -> (axum::http::StatusCode, Html<String>) {
    (
        axum::http::StatusCode::NOT_FOUND,
        Html(format!(
            "{}{}<div class=\"container my-5\"><main id=\"contenuto\" tabindex=\"-1\"><h1 class=\"h2\">Pagina non trovata</h1>\
             <p><a href=\"/console/\">Torna alla console</a></p></main></div>{FOOTER}",
            head("Pagina non trovata", ""),
            header(None)
        )),
    )
}

const PANORAMICA: &str = r##"<p class="lead">Ogni sistema a cui l'hub consegna le modifiche (adapter), il suo stato di salute e le sue consegne per stato.</p>
<div class="row g-3 mb-4" id="totali" aria-label="Totali delle consegne"></div>
<div class="table-responsive"><table class="table table-striped" id="adapters">
<caption>Adapter in uscita e consegne per stato</caption>
<thead><tr><th scope="col">Adapter</th><th scope="col">Salute</th><th scope="col" class="text-end">In attesa</th><th scope="col" class="text-end">In corso</th>
<th scope="col" class="text-end">Non riuscite</th><th scope="col" class="text-end">Consegnate</th><th scope="col">Attesa più lunga</th><th scope="col">Ultimo controllo</th></tr></thead>
<tbody></tbody></table></div>
<p><a href="/console/consegne">Vedi le consegne non riuscite</a></p>"##;

const CONSEGNE: &str = r##"<p class="lead">Le consegne che non sono riuscite dopo i tentativi previsti. Dopo aver rimosso la causa si possono riprovare, oppure scartare indicando il motivo.</p>
<form id="filtro-consegne" class="row g-3 align-items-end mb-3">
<div class="col-md-5"><div class="select-wrapper"><label for="stato-consegne">Stato</label>
<select id="stato-consegne" name="state"><option value="DELIVERY_STATE_DEAD" selected>Non riuscite</option><option value="DELIVERY_STATE_PENDING">In attesa</option>
<option value="DELIVERY_STATE_INFLIGHT">In corso</option><option value="DELIVERY_STATE_DISCARDED">Scartate</option><option value="DELIVERY_STATE_DELIVERED">Consegnate</option></select></div></div>
<div class="col-md-4"><button type="submit" class="btn btn-primary">Aggiorna</button></div></form>
<div class="table-responsive"><table class="table" id="consegne">
<caption>Consegne</caption>
<thead><tr><th scope="col">N.</th><th scope="col">Adapter</th><th scope="col">Modifica</th><th scope="col" class="text-end">Tentativi</th><th scope="col">Errore</th><th scope="col">Azioni</th></tr></thead>
<tbody></tbody></table></div>
<form id="scarta" class="border rounded p-3 mt-3" hidden>
<h2 class="h5" id="scarta-titolo">Scarta la consegna</h2>
<div class="form-group"><label for="motivo-scarto" class="active">Motivo dello scarto (da 3 a 500 caratteri)</label>
<input type="text" class="form-control" id="motivo-scarto" name="reason" minlength="3" maxlength="500" required></div>
<button type="submit" class="btn btn-danger">Scarta</button> <button type="button" class="btn btn-outline-primary" id="annulla-scarto">Annulla</button></form>"##;

const INPS: &str = r##"<p class="lead">I flussi prodotti per il SIUSS di INPS, il loro stato e gli esiti restituiti da INPS, con il significato di ogni codice.</p>
<div class="row g-3 mb-4" id="per-stato" aria-label="Flussi per stato"></div>
<form id="filtro-flussi" class="row g-3 align-items-end mb-3">
<div class="col-md-5"><div class="select-wrapper"><label for="stato-flussi">Stato</label>
<select id="stato-flussi" name="stato"><option value="">Tutti</option><option value="ready">Pronti</option><option value="served">Prelevati da INPS</option>
<option value="acknowledged">Acquisiti</option><option value="rejected">Rifiutati</option></select></div></div>
<div class="col-md-4"><button type="submit" class="btn btn-primary">Filtra</button></div></form>
<div class="table-responsive"><table class="table" id="flussi">
<caption>Flussi SIUSS, dal più recente</caption>
<thead><tr><th scope="col">Flusso</th><th scope="col">Tipo</th><th scope="col">Operazione</th><th scope="col">Ufficio</th><th scope="col">Stato</th>
<th scope="col">Esito INPS</th><th scope="col">Cosa significa</th></tr></thead><tbody></tbody></table></div>"##;

const STATISTICHE: &str = r##"<p class="lead">Il livello conoscitivo: aggregati aggiornati dal flusso delle modifiche. Le celle che descrivono meno persone della soglia sono soppresse (segnate con ✕) perché nessuno sia riconoscibile.</p>
<form id="filtro-statistiche" class="row g-3 align-items-end mb-4">
<div class="col-md-4"><div class="select-wrapper"><label for="misura">Misura</label><select id="misura" name="misura"></select></div></div>
<div class="col-md-4"><div class="select-wrapper"><label for="righe">Righe</label><select id="righe" name="righe"><option value="">Nessuna</option></select></div></div>
<div class="col-md-4"><div class="select-wrapper"><label for="periodo">Periodo</label><select id="periodo" name="periodo"></select></div></div>
<div class="col-md-3"><div class="form-group mb-0"><label for="anno-da" class="active">Dall'anno</label><input type="number" class="form-control" id="anno-da" name="anno_da" min="2000" max="2100"></div></div>
<div class="col-md-3"><div class="form-group mb-0"><label for="anno-a" class="active">All'anno</label><input type="number" class="form-control" id="anno-a" name="anno_a" min="2000" max="2100"></div></div>
<div class="col-md-6"><button type="submit" class="btn btn-primary">Mostra</button> <a class="btn btn-outline-primary" id="scarica-csv" href="#">Scarica CSV</a> <a class="btn btn-outline-primary" id="scarica-xlsx" href="#">Scarica foglio di calcolo</a></div>
</form>
<section aria-labelledby="titolo-andamento"><h2 class="h4" id="titolo-andamento">Andamento nel tempo</h2><div id="grafico-andamento" class="grafico"></div></section>
<section aria-labelledby="titolo-municipi"><h2 class="h4" id="titolo-municipi">Per Municipio</h2><div id="grafico-municipi" class="grafico"></div></section>
<section aria-labelledby="titolo-tabella"><h2 class="h4" id="titolo-tabella">Tabella</h2><p id="nota-soppressione" class="small"></p>
<div class="table-responsive"><table class="table table-sm" id="tabella-statistiche"><caption>Valori per periodo</caption><thead></thead><tbody></tbody></table></div></section>"##;

const REGISTRO: &str = r##"<p class="lead">Chi ha letto o modificato i dati di una persona, quando e per quale finalità: per le verifiche del responsabile della protezione dei dati e per le richieste di accesso dell'interessato. Anche questa consultazione viene registrata.</p>
<form id="cerca-registro" class="row g-3 align-items-end mb-4">
<div class="col-md-6"><div class="form-group mb-0"><label for="cf-registro" class="active">Codice fiscale della persona</label><input type="text" class="form-control" id="cf-registro" name="codice_fiscale" autocomplete="off" maxlength="16"></div></div>
<div class="col-md-6"><div class="form-group mb-0"><label for="persona-registro" class="active">oppure identificativo della persona</label><input type="text" class="form-control" id="persona-registro" name="persona_id" autocomplete="off"></div></div>
<div class="col-md-12"><div class="form-group mb-0"><label for="motivo-registro" class="active">Motivo della consultazione (obbligatorio)</label><input type="text" class="form-control" id="motivo-registro" name="purpose" required minlength="3" maxlength="200"></div></div>
<div class="col-md-4"><div class="form-group mb-0"><label for="operatore-registro" class="active">Solo l'operatore o il client</label><input type="text" class="form-control" id="operatore-registro" name="actor"></div></div>
<div class="col-md-4"><div class="form-group mb-0"><label for="dal-registro" class="active">Dal</label><input type="date" class="form-control" id="dal-registro" name="dal"></div></div>
<div class="col-md-4"><div class="form-group mb-0"><label for="al-registro" class="active">Al</label><input type="date" class="form-control" id="al-registro" name="al"></div></div>
<div class="col-12"><button type="submit" class="btn btn-primary">Cerca</button></div></form>
<div class="table-responsive"><table class="table" id="registro"><caption>Accessi ai dati della persona, dal più recente</caption>
<thead><tr><th scope="col">Quando</th><th scope="col">Chi</th><th scope="col">Ufficio</th><th scope="col">Azione</th><th scope="col">Dato</th><th scope="col">Finalità</th></tr></thead><tbody></tbody></table></div>
<p><button type="button" class="btn btn-outline-primary" id="altri-registro" hidden>Mostra altri</button></p>"##;

const REVISIONI: &str = r##"<p class="lead">Le coppie di persone che il collegamento delle anagrafiche non ha saputo decidere. Si confrontano i due record fianco a fianco, con la concordanza di ogni campo e il suo peso, e si decide: la stessa persona (i due record si unificano e tutto ciò che riguarda l'una passa all'altra) o due persone diverse. Ogni unificazione si può annullare. L'apertura di una coppia viene registrata come lettura delle due persone.</p>
<form id="filtro-revisioni" class="row g-3 align-items-end mb-3">
<div class="col-md-5"><div class="select-wrapper"><label for="stato-revisioni">Stato</label>
<select id="stato-revisioni" name="stato"><option value="STATO_REVISIONE_APERTA" selected>Da decidere</option><option value="STATO_REVISIONE_STESSA_PERSONA">Stessa persona</option>
<option value="STATO_REVISIONE_PERSONE_DIVERSE">Persone diverse</option></select></div></div>
<div class="col-md-4"><button type="submit" class="btn btn-primary">Aggiorna</button></div></form>
<div class="table-responsive"><table class="table" id="revisioni">
<caption>Coppie, dalla più probabile</caption>
<thead><tr><th scope="col" class="text-end">Probabilità</th><th scope="col">Persona A</th><th scope="col">Persona B</th><th scope="col">Indizi principali</th><th scope="col">Azioni</th></tr></thead>
<tbody></tbody></table></div>
<p><button type="button" class="btn btn-outline-primary" id="altre-revisioni" hidden>Mostra altre coppie</button></p>
<section id="confronto" class="border rounded p-3 my-4" aria-labelledby="titolo-confronto" hidden>
<h2 class="h4" id="titolo-confronto" tabindex="-1">Confronto</h2>
<p id="sintesi-confronto"></p>
<div class="table-responsive"><table class="table table-sm" id="tabella-confronto">
<caption>I due record fianco a fianco, con la concordanza di ogni campo e il suo peso (positivo: indizio della stessa persona)</caption>
<thead><tr><th scope="col">Campo</th><th scope="col">Persona A</th><th scope="col">Persona B</th><th scope="col">Concordanza</th><th scope="col" class="text-end">Peso</th></tr></thead>
<tbody></tbody></table></div>
<form id="decisione" class="mt-3">
<fieldset id="scelta-superstite"><legend class="h6">Se sono la stessa persona, quale record resta</legend>
<div class="form-check"><input class="form-check-input" type="radio" name="superstite" id="superstite-a" value="a" checked><label class="form-check-label" for="superstite-a">Resta la persona A</label></div>
<div class="form-check"><input class="form-check-input" type="radio" name="superstite" id="superstite-b" value="b"><label class="form-check-label" for="superstite-b">Resta la persona B</label></div></fieldset>
<button type="submit" class="btn btn-primary mt-2" id="stessa-persona">Stessa persona: unifica</button>
<button type="button" class="btn btn-outline-primary mt-2" id="persone-diverse">Persone diverse</button>
<button type="button" class="btn btn-outline-secondary mt-2" id="chiudi-confronto">Chiudi il confronto</button></form></section>
<section aria-labelledby="titolo-fusioni"><h2 class="h4" id="titolo-fusioni" tabindex="-1">Unificazioni</h2>
<div class="table-responsive"><table class="table" id="fusioni"><caption>Unificazioni, dalla più recente</caption>
<thead><tr><th scope="col">Quando</th><th scope="col">Persona che resta</th><th scope="col">Persona unificata</th><th scope="col" class="text-end">Record spostati</th><th scope="col">Chi</th><th scope="col">Stato</th><th scope="col">Azioni</th></tr></thead>
<tbody></tbody></table></div></section>"##;

const UTENZE: &str = r##"<p class="lead">Gli operatori che entrano con SPID o CIE e i sistemi (client) che chiamano l'hub: registrazione, disattivazione e ruoli.</p>
<section aria-labelledby="titolo-operatori"><h2 class="h4" id="titolo-operatori">Operatori</h2>
<div class="table-responsive"><table class="table" id="operatori"><caption>Operatori registrati</caption>
<thead><tr><th scope="col">Identificativo</th><th scope="col">Ufficio</th><th scope="col">Ruoli</th><th scope="col">Stato</th><th scope="col">Azioni</th></tr></thead><tbody></tbody></table></div>
<form id="nuovo-operatore" class="row g-3 align-items-end border rounded p-3 mb-5"><h3 class="h5 col-12">Registra un operatore</h3>
<div class="col-md-4"><div class="form-group mb-0"><label for="op-id" class="active">Identificativo</label><input type="text" class="form-control" id="op-id" name="operator_id" required></div></div>
<div class="col-md-4"><div class="form-group mb-0"><label for="op-cf" class="active">Codice fiscale</label><input type="text" class="form-control" id="op-cf" name="codice_fiscale" required maxlength="16" autocomplete="off"></div></div>
<div class="col-md-4"><div class="form-group mb-0"><label for="op-ufficio" class="active">Ufficio (vuoto: tutto l'ente)</label><input type="text" class="form-control" id="op-ufficio" name="ufficio" placeholder="M01"></div></div>
<fieldset class="col-12"><legend class="h6">Ruoli</legend><div class="ruoli-scelta" data-nome="op-ruoli"></div></fieldset>
<div class="col-12"><button type="submit" class="btn btn-primary">Registra l'operatore</button></div></form></section>
<section aria-labelledby="titolo-client"><h2 class="h4" id="titolo-client">Client di sistema</h2>
<div class="table-responsive"><table class="table" id="client"><caption>Client registrati</caption>
<thead><tr><th scope="col">Nome</th><th scope="col">Identificativo</th><th scope="col">Ufficio</th><th scope="col">Ruoli</th><th scope="col">Credenziali</th><th scope="col">Stato</th><th scope="col">Azioni</th></tr></thead><tbody></tbody></table></div>
<form id="nuovo-client" class="row g-3 align-items-end border rounded p-3"><h3 class="h5 col-12">Registra un client</h3>
<div class="col-md-6"><div class="form-group mb-0"><label for="cl-nome" class="active">Nome</label><input type="text" class="form-control" id="cl-nome" name="name" required></div></div>
<div class="col-md-6"><div class="form-group mb-0"><label for="cl-finalita" class="active">Finalità</label><input type="text" class="form-control" id="cl-finalita" name="purpose" required></div></div>
<div class="col-md-4"><div class="form-group mb-0"><label for="cl-ufficio" class="active">Ufficio (vuoto: tutto l'ente)</label><input type="text" class="form-control" id="cl-ufficio" name="ufficio"></div></div>
<div class="col-md-4"><div class="form-group mb-0"><label for="cl-pdnd" class="active">Client id PDND (facoltativo)</label><input type="text" class="form-control" id="cl-pdnd" name="pdnd_client_id"></div></div>
<div class="col-md-4"><div class="form-group mb-0"><label for="cl-pdnd-purpose" class="active">Finalità PDND (purposeId, con il client id PDND)</label><input type="text" class="form-control" id="cl-pdnd-purpose" name="pdnd_purpose_id"></div></div>
<fieldset class="col-12"><legend class="h6">Ruoli</legend><div class="ruoli-scelta" data-nome="cl-ruoli"></div></fieldset>
<div class="col-12"><div class="form-check"><input class="form-check-input" type="checkbox" id="cl-segreto" name="secret" checked><label class="form-check-label" for="cl-segreto">Genera un segreto (client credentials)</label></div></div>
<div class="col-12"><button type="submit" class="btn btn-primary">Registra il client</button></div></form>
<div id="segreto" class="alert alert-warning mt-3" role="alert" hidden></div></section>
<form id="modifica-ruoli" class="border rounded p-3 mt-4" hidden><h2 class="h5" id="ruoli-titolo">Ruoli</h2>
<fieldset><legend class="visually-hidden">Ruoli</legend><div class="ruoli-scelta" data-nome="mr-ruoli"></div></fieldset>
<button type="submit" class="btn btn-primary">Salva i ruoli</button> <button type="button" class="btn btn-outline-primary" id="annulla-ruoli">Annulla</button></form>"##;

#[cfg(test)]
mod tests {
    use super::*;

    fn caller(roles: Vec<Role>) -> Caller {
        Caller {
            kind: core_cartella::auth::CallerKind::Operatore,
            subject: "<op>".into(),
            ente: "H501".into(),
            ufficio: None,
            roles,
            purpose: String::new(),
            request_id: String::new(),
        }
    }

    #[test]
    fn navigation_follows_roles_and_escapes_names() {
        let html = page(Page::Registro, &caller(vec![Role::Dpo])).0;
        assert!(html.contains("href=\"/console/registro\""));
        assert!(!html.contains("href=\"/console/consegne\""), "a dpo has no delivery pages");
        assert!(html.contains("&lt;op&gt;") && !html.contains("<op>"));
        let admin = page(Page::Panoramica, &caller(vec![Role::Amministratore])).0;
        for p in ["consegne", "inps", "statistiche", "utenze"] {
            assert!(admin.contains(&format!("href=\"/console/{p}\"")), "{p}");
        }
        assert!(!admin.contains("<script>") && !admin.contains(" style="), "no inline script or style");
        assert!(!admin.contains("href=\"/console/revisioni\""), "the review queue is for role anagrafe");
        let anagrafe = page(Page::Revisioni, &caller(vec![Role::Anagrafe])).0;
        assert!(anagrafe.contains("href=\"/console/revisioni\""));
        assert!(anagrafe.contains("id=\"tabella-confronto\"") && !anagrafe.contains("alert-warning"), "its own page, no warning");
        assert!(!anagrafe.contains("href=\"/console/consegne\""));
    }
}
