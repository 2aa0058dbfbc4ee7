-- Records imported from an office's export keep the office's own identifier: a re-run of
-- the same export finds what is already in and imports only what is missing.
CREATE TABLE import_origine (
    ente TEXT NOT NULL,
    origine TEXT NOT NULL,
    kind TEXT NOT NULL,
    id_locale TEXT NOT NULL,
    record_id TEXT NOT NULL,
    imported_at TEXT NOT NULL,
    PRIMARY KEY (ente, origine, kind, id_locale)
);

CREATE INDEX import_origine_record ON import_origine (record_id);
