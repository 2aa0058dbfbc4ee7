-- System clients registered with the hub (OAuth2 client credentials, PDND vouchers, mTLS),
-- and the ModI signature ids already seen, shared by every gateway replica so a signed
-- request cannot be replayed through another one.

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
    created_at TEXT NOT NULL,
    disabled_at TEXT
);

CREATE TABLE modi_jti (
    issuer TEXT NOT NULL,
    jti TEXT NOT NULL,
    -- Unix seconds after which the signature is refused anyway, so the row can go.
    expires_at INTEGER NOT NULL,
    PRIMARY KEY (issuer, jti)
);

CREATE INDEX modi_jti_expires ON modi_jti (expires_at);
