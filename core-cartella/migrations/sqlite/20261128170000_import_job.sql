-- Import jobs (ImportService): an office's export imported in the background. The state
-- survives a restart: a job whose runner stopped (lease past) is taken over and resumed, and
-- the office ids in import_origine make the resumed run import only what is missing.
-- Uploaded files are kept with the job; problems hold file, line, column and a reason only.
CREATE TABLE import_job (
    id TEXT PRIMARY KEY,
    ente TEXT NOT NULL,
    ufficio TEXT NOT NULL,
    origine TEXT NOT NULL,
    dry_run BIGINT NOT NULL,
    source TEXT NOT NULL,
    cartella TEXT NOT NULL,
    state TEXT NOT NULL,
    done BIGINT NOT NULL DEFAULT 0,
    total BIGINT NOT NULL DEFAULT 0,
    attempts BIGINT NOT NULL DEFAULT 0,
    counts BLOB,
    error TEXT NOT NULL DEFAULT '',
    created_by TEXT NOT NULL,
    created_kind TEXT NOT NULL,
    created_at TEXT NOT NULL,
    started_at TEXT,
    finished_at TEXT,
    claim TEXT,
    lease_until BIGINT
);

CREATE INDEX import_job_ente ON import_job (ente, id);
CREATE INDEX import_job_open ON import_job (state, lease_until);

CREATE TABLE import_job_file (
    job_id TEXT NOT NULL,
    name TEXT NOT NULL,
    content BLOB NOT NULL,
    PRIMARY KEY (job_id, name)
);

CREATE TABLE import_job_problem (
    job_id TEXT NOT NULL,
    seq BIGINT NOT NULL,
    file TEXT NOT NULL,
    line BIGINT NOT NULL,
    col TEXT NOT NULL,
    reason TEXT NOT NULL,
    PRIMARY KEY (job_id, seq)
);
