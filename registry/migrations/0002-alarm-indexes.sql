-- The alarm queries reach older rows from the new ones by index: the keygen
-- records' public keys and the identify records' attestation certificates
-- (without these, every ingest read every keygen and identify record).
CREATE INDEX records_keygen_pubkey ON records ((details->>'pubkey_sha256')) WHERE step = 'keygen';
CREATE INDEX records_identify_attestation ON records ((details->>'attestation_sha256')) WHERE step = 'identify';
