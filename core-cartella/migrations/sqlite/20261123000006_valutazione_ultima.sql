-- The latest SINA/SINBA of a cartella (SIUSS flows and the portal export) is found by a
-- seek on this index instead of sorting the cartella's assessments on every read.
CREATE INDEX valutazione_ultima ON valutazione (cartella_id, tipo, data, id);
