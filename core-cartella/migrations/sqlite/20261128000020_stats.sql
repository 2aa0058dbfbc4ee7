-- The conoscitivo projection, kept up to date from the outbox by the statistics projector.
-- `stats_cursor` is how far the outbox has been applied (one row, locked by the projector
-- that applies a batch); `stats_fatto` holds what each record contributes to each measure
-- and month; `stats_cella` the aggregates of every grouping the tables publish: the total
-- (gruppo ''), each dimension and each pair of dimensions (names in canonical order, values
-- in v1/v2, '*' when unused), at each grain (anno, trimestre, mese). `valore` counts
-- distinct records, `persone` distinct people, `somma` adds up spending or days.

CREATE TABLE stats_cursor (
    nome TEXT PRIMARY KEY,
    txid BIGINT NOT NULL,
    seq BIGINT NOT NULL,
    updated_at TEXT NOT NULL
);

INSERT INTO stats_cursor (nome, txid, seq, updated_at) VALUES ('stats', 0, 0, '');

CREATE TABLE stats_fatto (
    persona_id TEXT NOT NULL,
    record_id TEXT NOT NULL,
    misura TEXT NOT NULL,
    anno BIGINT NOT NULL,
    trimestre TEXT NOT NULL,
    mese TEXT NOT NULL,
    ente TEXT NOT NULL,
    municipio TEXT NOT NULL,
    area TEXT NOT NULL,
    prestazione TEXT NOT NULL,
    sesso TEXT NOT NULL,
    fascia_eta TEXT NOT NULL,
    somma BIGINT NOT NULL,
    PRIMARY KEY (persona_id, record_id, misura, mese)
);

CREATE TABLE stats_cella (
    ente TEXT NOT NULL,
    misura TEXT NOT NULL,
    gruppo TEXT NOT NULL,
    anno BIGINT NOT NULL,
    periodo TEXT NOT NULL,
    v1 TEXT NOT NULL,
    v2 TEXT NOT NULL,
    valore BIGINT NOT NULL,
    persone BIGINT NOT NULL,
    somma BIGINT NOT NULL,
    PRIMARY KEY (ente, misura, gruppo, anno, periodo, v1, v2)
);

-- A rebuild aggregates one measure at a time; a new month finds the open cartelle and PAI
-- of the month before.
CREATE INDEX stats_fatto_misura ON stats_fatto (misura, mese);
