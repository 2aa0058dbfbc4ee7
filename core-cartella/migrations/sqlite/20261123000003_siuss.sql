-- SIUSS flow ledger: the flows produced for INPS (one prestazione each), their state
-- (ready → served → acknowledged / rejected) and INPS's esiti; the per-ente per-day
-- progressivo of flow ids; what the hub last decided for each prestazione; and the outbox
-- cursor of the producing worker.

-- seq is the ledger order; ts_flusso (ms) is strictly increasing with seq within an ente,
-- so `since` (the ts_flusso of the last flow INPS acquired) never skips or repeats a flow.
CREATE TABLE siuss_flusso (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id_flusso TEXT NOT NULL UNIQUE,
    ente TEXT NOT NULL,
    denominazione_ente TEXT NOT NULL,
    ufficio TEXT NOT NULL,
    prestazione_id TEXT NOT NULL,
    prestazione_version INTEGER NOT NULL,
    tipo TEXT NOT NULL,
    operazione TEXT NOT NULL,
    ts_flusso INTEGER NOT NULL,
    xml BLOB NOT NULL,
    impronta TEXT NOT NULL,
    snapshot BLOB,
    stato TEXT NOT NULL,
    created_at TEXT NOT NULL,
    served_at TEXT,
    codice_esito TEXT,
    descrizione_esito TEXT,
    id_acquisizione_siuss TEXT,
    ts_acquisizione TEXT,
    esito_at TEXT
);

CREATE INDEX siuss_flusso_ts ON siuss_flusso (ente, ts_flusso);

CREATE INDEX siuss_flusso_prestazione ON siuss_flusso (prestazione_id, seq);

CREATE TABLE siuss_progressivo (
    ente TEXT NOT NULL,
    giorno TEXT NOT NULL,
    ultimo INTEGER NOT NULL,
    PRIMARY KEY (ente, giorno)
);

-- violazioni: JSON array of {path, rule, message} (never values) while the prestazione
-- cannot be sent; empty array once it can.
CREATE TABLE siuss_prestazione (
    prestazione_id TEXT PRIMARY KEY,
    ente TEXT NOT NULL,
    ufficio TEXT NOT NULL,
    version INTEGER NOT NULL,
    violazioni TEXT NOT NULL,
    nota TEXT,
    updated_at TEXT NOT NULL
);

CREATE TABLE siuss_cursore (
    nome TEXT PRIMARY KEY,
    txid INTEGER NOT NULL,
    seq INTEGER NOT NULL
);

-- The portal export walks an ente's prestazioni grouped by person.
CREATE INDEX prestazione_ente_persona ON prestazione (ente, persona_id, id);
