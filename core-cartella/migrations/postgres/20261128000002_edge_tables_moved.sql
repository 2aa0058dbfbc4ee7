-- System clients, ModI signature ids, operators, logins and sessions now live in the
-- gateway's own edge store (`--edge-database-url`): core keeps records, audit, outbox and the
-- SIUSS ledger only. The hub was not in production when they moved; clients and operators
-- are registered again with `sigess client add` / `sigess operator add` (see the README).

DROP TABLE IF EXISTS operator_session;
DROP TABLE IF EXISTS login_request;
DROP TABLE IF EXISTS operator;
DROP TABLE IF EXISTS modi_jti;
DROP TABLE IF EXISTS hub_client;
