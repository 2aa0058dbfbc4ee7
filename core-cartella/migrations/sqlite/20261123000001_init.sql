-- Initial schema: one table per record kind (indexed columns + the protobuf body),
-- the household membership, the sharing bases, the audit trail and the outbox.

CREATE TABLE persona (
    id TEXT PRIMARY KEY,
    version INTEGER NOT NULL,
    ente TEXT NOT NULL,
    ufficio TEXT NOT NULL,
    persona_id TEXT,
    cartella_id TEXT,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    updated_by TEXT NOT NULL,
    body BLOB NOT NULL,
    codice_fiscale TEXT UNIQUE,
    cognome_norm TEXT NOT NULL,
    nome_norm TEXT NOT NULL,
    data_nascita TEXT
);

CREATE TABLE nucleo (
    id TEXT PRIMARY KEY,
    version INTEGER NOT NULL,
    ente TEXT NOT NULL,
    ufficio TEXT NOT NULL,
    persona_id TEXT,
    cartella_id TEXT,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    updated_by TEXT NOT NULL,
    body BLOB NOT NULL
);

CREATE TABLE accesso (
    id TEXT PRIMARY KEY,
    version INTEGER NOT NULL,
    ente TEXT NOT NULL,
    ufficio TEXT NOT NULL,
    persona_id TEXT,
    cartella_id TEXT,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    updated_by TEXT NOT NULL,
    body BLOB NOT NULL,
    data TEXT
);

CREATE TABLE cartella (
    id TEXT PRIMARY KEY,
    version INTEGER NOT NULL,
    ente TEXT NOT NULL,
    ufficio TEXT NOT NULL,
    persona_id TEXT,
    cartella_id TEXT,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    updated_by TEXT NOT NULL,
    body BLOB NOT NULL,
    area_utenza INTEGER NOT NULL,
    stato INTEGER NOT NULL
);

CREATE TABLE diario (
    id TEXT PRIMARY KEY,
    version INTEGER NOT NULL,
    ente TEXT NOT NULL,
    ufficio TEXT NOT NULL,
    persona_id TEXT,
    cartella_id TEXT,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    updated_by TEXT NOT NULL,
    body BLOB NOT NULL,
    data TEXT
);

CREATE TABLE valutazione (
    id TEXT PRIMARY KEY,
    version INTEGER NOT NULL,
    ente TEXT NOT NULL,
    ufficio TEXT NOT NULL,
    persona_id TEXT,
    cartella_id TEXT,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    updated_by TEXT NOT NULL,
    body BLOB NOT NULL,
    data TEXT,
    tipo TEXT
);

CREATE TABLE pai (
    id TEXT PRIMARY KEY,
    version INTEGER NOT NULL,
    ente TEXT NOT NULL,
    ufficio TEXT NOT NULL,
    persona_id TEXT,
    cartella_id TEXT,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    updated_by TEXT NOT NULL,
    body BLOB NOT NULL
);

CREATE TABLE prestazione (
    id TEXT PRIMARY KEY,
    version INTEGER NOT NULL,
    ente TEXT NOT NULL,
    ufficio TEXT NOT NULL,
    persona_id TEXT,
    cartella_id TEXT,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    updated_by TEXT NOT NULL,
    body BLOB NOT NULL,
    codice_prestazione TEXT NOT NULL,
    anno INTEGER,
    spesa_centesimi INTEGER NOT NULL,
    stato INTEGER NOT NULL
);

CREATE TABLE condivisione (
    id TEXT PRIMARY KEY,
    version INTEGER NOT NULL,
    ente TEXT NOT NULL,
    ufficio TEXT NOT NULL,
    persona_id TEXT,
    cartella_id TEXT,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    updated_by TEXT NOT NULL,
    body BLOB NOT NULL,
    ufficio_destinatario TEXT NOT NULL,
    valida_fino_al TEXT,
    scrittura INTEGER NOT NULL
);

CREATE TABLE nucleo_membro (
    nucleo_id TEXT NOT NULL,
    persona_id TEXT NOT NULL,
    PRIMARY KEY (nucleo_id, persona_id)
);

CREATE TABLE audit (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    at TEXT NOT NULL,
    actor_kind TEXT NOT NULL,
    actor TEXT NOT NULL,
    ente TEXT NOT NULL,
    ufficio TEXT,
    action TEXT NOT NULL,
    kind TEXT NOT NULL,
    record_id TEXT NOT NULL,
    purpose TEXT NOT NULL,
    request_id TEXT NOT NULL
);

-- txid orders the feed by commit visibility (see store::feed); seq breaks ties.
CREATE TABLE outbox (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    txid INTEGER NOT NULL DEFAULT 0,
    kind TEXT NOT NULL,
    record_id TEXT NOT NULL,
    op INTEGER NOT NULL,
    version INTEGER NOT NULL,
    ente TEXT NOT NULL,
    ufficio TEXT NOT NULL,
    persona_id TEXT,
    cartella_id TEXT,
    occurred_at TEXT NOT NULL
);

CREATE INDEX outbox_order ON outbox (txid, seq);

CREATE INDEX persona_scope ON persona (ente, ufficio);

CREATE INDEX persona_cognome ON persona (cognome_norm, nome_norm);

CREATE INDEX nucleo_scope ON nucleo (ente, ufficio);

CREATE INDEX accesso_scope ON accesso (ente, ufficio);

CREATE INDEX accesso_persona ON accesso (persona_id);

CREATE INDEX cartella_scope ON cartella (ente, ufficio);

CREATE INDEX cartella_persona ON cartella (persona_id);

CREATE INDEX diario_cartella ON diario (cartella_id);

CREATE INDEX valutazione_cartella ON valutazione (cartella_id);

CREATE INDEX pai_cartella ON pai (cartella_id);

CREATE INDEX prestazione_cartella ON prestazione (cartella_id);

CREATE INDEX prestazione_stats ON prestazione (ente, anno, ufficio, codice_prestazione);

CREATE INDEX condivisione_dest ON condivisione (ufficio_destinatario, cartella_id);

CREATE INDEX condivisione_cartella ON condivisione (cartella_id);

CREATE INDEX nucleo_membro_persona ON nucleo_membro (persona_id);

CREATE INDEX audit_record ON audit (kind, record_id);

CREATE INDEX audit_actor ON audit (actor, at);
