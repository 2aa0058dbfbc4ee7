-- The edge's own tables, owned by the gateway: system clients (OAuth2 client credentials,
-- PDND vouchers, mTLS, ModI keys), the ModI signature ids already seen, the operators who log
-- in with SPID/CIE, the logins under way and the operators' sessions. Core's database holds
-- none of this, and the gateway holds none of core's records.

CREATE TABLE hub_client (
    client_id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    -- Argon2id PHC string; NULL for clients that never use a secret (PDND, mTLS only).
    secret_hash TEXT,
    ente TEXT NOT NULL,
    ufficio TEXT,
    -- Roles, space separated (as an OAuth2 scope).
    roles TEXT NOT NULL,
    purpose TEXT NOT NULL,
    -- Lower-case hex SHA-256 of the DER client certificate.
    cert_sha256 TEXT UNIQUE,
    pdnd_client_id TEXT UNIQUE,
    -- JWK set (JSON text) of the RSA public keys the client signs ModI requests with, each
    -- with the kid it has on PDND. NULL for clients that never sign.
    modi_jwks TEXT,
    created_at TEXT NOT NULL,
    disabled_at TEXT
);

-- Shared by every gateway replica, so a signed request cannot be replayed through another.
CREATE TABLE modi_jti (
    issuer TEXT NOT NULL,
    jti TEXT NOT NULL,
    -- Unix seconds after which the signature is refused anyway, so the row can go.
    expires_at INTEGER NOT NULL,
    PRIMARY KEY (issuer, jti)
);

CREATE INDEX modi_jti_expires ON modi_jti (expires_at);

-- The hub knows an operator by its own id; the codice fiscale is only the key SPID/CIE
-- identities are matched on. Session ids and states are stored as SHA-256 hashes, so a copy
-- of these tables does not let anyone act as a logged-in operator.
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
