-- Coalescing for adapters whose delivery depends only on the state at delivery time: jobs
-- of one subject with the same non-empty `ckey`, queued before a job of theirs was claimed,
-- are delivered by that job (it reads the state they made). `cover_upto` is the newest such
-- job at claim time; `covered_by` names the job that delivered a coalesced one.
ALTER TABLE delivery ADD COLUMN ckey TEXT NOT NULL DEFAULT '';
ALTER TABLE delivery ADD COLUMN cover_upto BIGINT;
ALTER TABLE delivery ADD COLUMN covered_by BIGINT;
