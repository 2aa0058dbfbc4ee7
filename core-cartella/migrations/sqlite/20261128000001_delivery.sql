-- The delivery engine: per adapter, the position it has planned the outbox up to, and one
-- job per change it follows. A job is `pending` (due at `due_at`), `inflight` (claimed by
-- `claim` until `lease_until`), `delivered`, `dead` (a dead letter a person may retry or
-- discard) or `discarded`. Jobs of one subject are delivered in (txid, seq, id) order.
-- Times are milliseconds since the epoch.

CREATE TABLE delivery_cursor (
    adapter TEXT PRIMARY KEY,
    txid BIGINT NOT NULL,
    seq BIGINT NOT NULL,
    generation BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);

CREATE TABLE delivery (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    adapter TEXT NOT NULL,
    generation BIGINT NOT NULL,
    subject TEXT NOT NULL,
    txid BIGINT NOT NULL,
    seq BIGINT NOT NULL,
    kind TEXT NOT NULL,
    record_id TEXT NOT NULL,
    op BIGINT NOT NULL,
    version BIGINT NOT NULL,
    ente TEXT NOT NULL,
    ufficio TEXT NOT NULL,
    persona_id TEXT,
    cartella_id TEXT,
    occurred_at TEXT NOT NULL,
    state TEXT NOT NULL,
    attempts BIGINT NOT NULL,
    due_at BIGINT NOT NULL,
    lease_until BIGINT,
    claim TEXT,
    delivered_keys TEXT NOT NULL,
    last_error_code TEXT,
    last_error TEXT,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    finished_at BIGINT,
    discard_reason TEXT,
    UNIQUE (adapter, generation, txid, seq)
);

CREATE INDEX delivery_open ON delivery (adapter, txid, seq, id) WHERE state IN ('pending', 'inflight');

CREATE INDEX delivery_subject_open ON delivery (adapter, subject, txid, seq, id) WHERE state IN ('pending', 'inflight');

CREATE INDEX delivery_state ON delivery (adapter, state, id);

CREATE INDEX delivery_subject ON delivery (subject, id);

-- What each adapter's last health check said, written by the workers running it.
CREATE TABLE delivery_adapter (
    adapter TEXT PRIMARY KEY,
    healthy BIGINT NOT NULL,
    detail TEXT NOT NULL,
    checked_at BIGINT NOT NULL
);

-- The SIUSS producer's position moves to the engine: its adapter starts where it was.
INSERT INTO delivery_cursor (adapter, txid, seq, generation, updated_at)
SELECT 'siuss', txid, seq, 0, 0 FROM siuss_cursore WHERE nome LIKE 'siuss:%' ORDER BY txid, seq LIMIT 1;
