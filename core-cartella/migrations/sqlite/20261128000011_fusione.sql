-- Merges of two personas found to be one person. The merged persona's row is kept here as
-- it was, with the records moved to the survivor, so a merge can be undone.
CREATE TABLE fusione (
    id TEXT PRIMARY KEY,
    ente TEXT NOT NULL,
    superstite TEXT NOT NULL,
    fusa TEXT NOT NULL,
    fusa_ufficio TEXT NOT NULL,
    fusa_version BIGINT NOT NULL,
    fusa_created_at TEXT NOT NULL,
    fusa_updated_at TEXT NOT NULL,
    fusa_updated_by TEXT NOT NULL,
    fusa_body BLOB NOT NULL,
    -- Moved records, one "table:id" per line.
    spostati TEXT NOT NULL,
    at TEXT NOT NULL,
    actor TEXT NOT NULL,
    annullata_at TEXT
);

CREATE INDEX fusione_fusa ON fusione (fusa);
