/* The SQL of `station-registry device SERIAL`, shared with its benchmark
 * (registry/tests/bench-registry.c), which times these very statements over
 * one connection as a dashboard would run them.  $1 is the SE serial. */
#ifndef REGISTRY_QUERIES_H
#define REGISTRY_QUERIES_H

#define TIME_SQL(col) "to_char(" col " AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"')"

/* Every certificate, live or revoked (the first revocation of its serial). */
#define CERT_SQL                                                                                     \
	"SELECT c.serial, c.issuer, c.subject, c.device, c.station, c.seq, " TIME_SQL("c.time") " AS issued_at, " \
	TIME_SQL("c.not_after") " AS not_after, c.cert_sha256, c.pubkey_sha256,"                         \
	" CASE WHEN v.serial IS NULL THEN 'live' ELSE 'revoked' END AS status, v.station AS revoked_at_station," \
	" v.reason AS revocation_reason, " TIME_SQL("v.time") " AS revoked_at"                           \
	" FROM certificates c LEFT JOIN LATERAL (SELECT * FROM revocations w WHERE w.serial = c.serial"  \
	"  ORDER BY w.time LIMIT 1) v ON true"

#define DEVICE_RECORDS_SQL                                                                           \
	"SELECT station, seq, " TIME_SQL("time") " AS time, step, result, jig, operator, details FROM records" \
	" WHERE device = $1 ORDER BY time, station, seq"
#define DEVICE_CERTS_SQL CERT_SQL " WHERE c.device = $1 ORDER BY c.time, c.station, c.seq"
#define DEVICE_ALARMS_SQL                                                                            \
	"SELECT id, kind, detail FROM alarms WHERE cleared_at IS NULL AND (subject = $1 OR subject LIKE $1 || '@%'" \
	" OR detail LIKE '%SE ' || $1 || '%' OR detail LIKE '%serials%' || $1 || '%') ORDER BY id"

#endif
