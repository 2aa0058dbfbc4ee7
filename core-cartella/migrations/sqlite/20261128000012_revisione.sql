-- Pairs of personas that record linkage could not decide (match probability between the
-- review and the link thresholds): a person looks at them side by side and merges them or
-- marks them as different. The evidence holds agreement levels and weights only.
CREATE TABLE revisione (
    id TEXT PRIMARY KEY,
    ente TEXT NOT NULL,
    persona_a TEXT NOT NULL,
    persona_b TEXT NOT NULL,
    probabilita REAL NOT NULL,
    evidenza TEXT NOT NULL,
    stato TEXT NOT NULL,
    created_at TEXT NOT NULL,
    decided_at TEXT,
    decided_by TEXT,
    fusione_id TEXT,
    UNIQUE (ente, persona_a, persona_b)
);

CREATE INDEX revisione_stato ON revisione (ente, stato);
