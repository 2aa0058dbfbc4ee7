-- A codice fiscale is unique within an ente, not across enti: one ente's uniqueness check
-- must not reveal (nor be blocked by) another ente's persona. SQLite cannot drop a column's
-- UNIQUE constraint, so the table is rebuilt (no foreign key points at it).
CREATE TABLE persona_new (
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
    codice_fiscale TEXT,
    cognome_norm TEXT NOT NULL,
    nome_norm TEXT NOT NULL,
    data_nascita TEXT,
    UNIQUE (ente, codice_fiscale)
);

INSERT INTO persona_new (id, version, ente, ufficio, persona_id, cartella_id, created_at, updated_at, updated_by, body, codice_fiscale, cognome_norm, nome_norm, data_nascita)
SELECT id, version, ente, ufficio, persona_id, cartella_id, created_at, updated_at, updated_by, body, codice_fiscale, cognome_norm, nome_norm, data_nascita FROM persona;

DROP TABLE persona;

ALTER TABLE persona_new RENAME TO persona;

CREATE INDEX persona_scope ON persona (ente, ufficio);

CREATE INDEX persona_cognome ON persona (cognome_norm, nome_norm);
