-- Operators who log in with SPID/CIE, the logins under way, and their server-side sessions.
-- The hub knows an operator by its own id; the codice fiscale is only the key SPID/CIE
-- identities are matched on. Session ids and states are stored as SHA-256 hashes, so a
-- copy of this table does not let anyone act as a logged-in operator.

CREATE TABLE operator (
    operator_id TEXT PRIMARY KEY,
    codice_fiscale TEXT NOT NULL UNIQUE,
    ente TEXT NOT NULL,
    ufficio TEXT,
    -- Roles, space separated.
    roles TEXT NOT NULL,
    created_at TEXT NOT NULL,
    disabled_at TEXT
);

CREATE TABLE login_request (
    state_hash TEXT PRIMARY KEY,
    -- Hash of the random value in the browser's pre-login cookie: the callback must come
    -- from the browser that started the login.
    browser_hash TEXT NOT NULL,
    provider TEXT NOT NULL,
    nonce TEXT NOT NULL,
    code_verifier TEXT NOT NULL,
    acr TEXT NOT NULL,
    -- Unix seconds.
    expires_at INTEGER NOT NULL
);

CREATE INDEX login_request_expires ON login_request (expires_at);

CREATE TABLE operator_session (
    id_hash TEXT PRIMARY KEY,
    operator_id TEXT NOT NULL REFERENCES operator (operator_id),
    csrf_token TEXT NOT NULL,
    provider TEXT NOT NULL,
    -- Kept only to revoke it at the provider on logout.
    access_token TEXT,
    -- Unix seconds: login, last request, and the absolute end.
    created_at INTEGER NOT NULL,
    last_seen INTEGER NOT NULL,
    expires_at INTEGER NOT NULL
);

CREATE INDEX operator_session_expires ON operator_session (expires_at);
