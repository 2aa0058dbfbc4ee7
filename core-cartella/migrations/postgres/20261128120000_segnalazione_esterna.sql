-- Referrals received from external systems (e.g. a protected hospital discharge): the
-- sender's message id, kept as an identifier of the accesso it created. The key makes the
-- same message, received twice, one case.
CREATE TABLE segnalazione_esterna (
    ente TEXT NOT NULL,
    origine TEXT NOT NULL,
    id_messaggio TEXT NOT NULL,
    accesso_id TEXT NOT NULL,
    persona_id TEXT NOT NULL,
    ricevuta_il TEXT NOT NULL,
    PRIMARY KEY (ente, origine, id_messaggio)
);

CREATE INDEX segnalazione_esterna_accesso ON segnalazione_esterna (accesso_id);
