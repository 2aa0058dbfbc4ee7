-- A codice fiscale is unique within an ente, not across enti: one ente's uniqueness check
-- must not reveal (nor be blocked by) another ente's persona.
ALTER TABLE persona DROP CONSTRAINT persona_codice_fiscale_key;

ALTER TABLE persona ADD CONSTRAINT persona_ente_codice_fiscale_key UNIQUE (ente, codice_fiscale);
