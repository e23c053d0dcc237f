-- The fleet registry: every record of every station's audit journal, the
-- certificates they issued, the revocations, and the alarms raised when the
-- stations' journals contradict each other.  Applied by `station-registry init`.

-- Who may do what: ingest inserts and reads, read only reads.  Both can log in;
-- the site gives them passwords or certificates (pg_hba.conf).
DO $$
BEGIN
	IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'registry_ingest') THEN
		CREATE ROLE registry_ingest LOGIN;
	END IF;
	IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'registry_read') THEN
		CREATE ROLE registry_read LOGIN;
	END IF;
END
$$;

-- One row per station: its id and the subject of the audit key that seals its journal.
CREATE TABLE stations (
	station text PRIMARY KEY,
	signer text NOT NULL,
	first_seen timestamptz NOT NULL DEFAULT now()
);

-- One row per ingested bundle that added at least one record.
CREATE TABLE bundles (
	id bigserial PRIMARY KEY,
	station text NOT NULL REFERENCES stations,
	first_seq bigint NOT NULL,
	last_seq bigint NOT NULL,
	records bigint NOT NULL,
	new_records bigint NOT NULL,
	signer text NOT NULL,
	manifest_sha256 text NOT NULL,
	ingested_at timestamptz NOT NULL DEFAULT now()
);

-- Every journal record; (station, seq) is the natural key, hash tells two
-- versions of one record apart (a fork).
CREATE TABLE records (
	station text NOT NULL,
	seq bigint NOT NULL,
	hash text NOT NULL,
	time timestamptz NOT NULL,
	operator text NOT NULL,
	recipe text NOT NULL,
	jig text,
	device text,
	step text NOT NULL,
	result text NOT NULL,
	engineering boolean NOT NULL,
	details jsonb NOT NULL,
	bundle bigint NOT NULL,
	PRIMARY KEY (station, seq)
);
CREATE INDEX records_device ON records (device) WHERE device IS NOT NULL;
CREATE INDEX records_time ON records (time);

-- Every certificate an "issued" record carries, decoded.
CREATE TABLE certificates (
	station text NOT NULL,
	seq bigint NOT NULL,
	device text NOT NULL,
	issuer text NOT NULL,
	serial text NOT NULL,
	subject text NOT NULL,
	not_before timestamptz NOT NULL,
	not_after timestamptz NOT NULL,
	cert_sha256 text NOT NULL,
	pubkey_sha256 text NOT NULL,
	time timestamptz NOT NULL,
	PRIMARY KEY (station, seq)
);
CREATE INDEX certificates_serial ON certificates (serial);
CREATE INDEX certificates_device ON certificates (device);
CREATE INDEX certificates_pubkey ON certificates (pubkey_sha256);

-- Every "revoke" record.
CREATE TABLE revocations (
	station text NOT NULL,
	seq bigint NOT NULL,
	device text,
	serial text NOT NULL,
	reason text NOT NULL,
	time timestamptz NOT NULL,
	PRIMARY KEY (station, seq)
);
CREATE INDEX revocations_serial ON revocations (serial);

-- Contradictions between journals.  A row stays open until someone who owns
-- the registry sets cleared_at (the ingest role cannot).
CREATE TABLE alarms (
	id bigserial PRIMARY KEY,
	kind text NOT NULL,
	subject text NOT NULL,
	detail text NOT NULL,
	raised_at timestamptz NOT NULL DEFAULT now(),
	cleared_at timestamptz,
	cleared_by text,
	UNIQUE (kind, subject)
);

GRANT SELECT ON ALL TABLES IN SCHEMA public TO registry_ingest, registry_read;
GRANT INSERT ON stations, bundles, records, certificates, revocations, alarms TO registry_ingest;
GRANT USAGE ON ALL SEQUENCES IN SCHEMA public TO registry_ingest;
