-- The PDND purpose (purposeId) a client's vouchers must name: a voucher PDND issued to the
-- same client for another purpose is refused. NULL for clients without PDND; a PDND client
-- without one has its vouchers refused until it is registered.
ALTER TABLE hub_client ADD COLUMN pdnd_purpose_id TEXT;
