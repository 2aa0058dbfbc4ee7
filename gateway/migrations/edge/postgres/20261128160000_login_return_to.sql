-- The path of this site a login returns to (the web console's page the operator asked
-- for); NULL: the landing of the operator's roles.
ALTER TABLE login_request ADD COLUMN return_to TEXT;
