-- The public keys a system client signs ModI requests (Agid-JWT-Signature, INTEGRITY_REST_01)
-- with: a JWK set (JSON text) of RSA public keys, each with the kid the client registered on
-- PDND. NULL for clients that never sign (ModI signatures from them are refused).

ALTER TABLE hub_client ADD COLUMN modi_jwks TEXT;
