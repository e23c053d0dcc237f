/* station-registry ingest: verify a bundle completely, then load it in one
 * transaction with COPY.  Idempotent on (station, seq) with the record's hash;
 * the same key with another hash is a fork: refused, and an alarm raised. */
#include <getopt.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/bn.h>
#include <openssl/x509.h>

#include "audit.h"
#include "cms.h"
#include "registry.h"

/* A growable text buffer: one COPY stream. */
struct tbuf {
	char *p;
	size_t len, cap;
	int oom;
};

static void
tb_put(struct tbuf *b, const char *s, size_t n)
{
	char *np;
	size_t cap;

	if (b->oom)
		return;
	if (b->len + n + 1 > b->cap) {
		cap = b->cap ? b->cap : 65536;
		while (cap < b->len + n + 1)
			cap *= 2;
		if (!(np = realloc(b->p, cap))) {
			b->oom = 1;
			return;
		}
		b->p = np;
		b->cap = cap;
	}
	memcpy(b->p + b->len, s, n);
	b->len += n;
	b->p[b->len] = 0;
}

/* One COPY text-format field (NULL is \N), then a tab or, when last, a newline. */
static void
tb_field(struct tbuf *b, const char *s, int last)
{
	const char *run;

	if (!s) {
		tb_put(b, "\\N", 2);
	} else {
		for (run = s; *s; s++) {
			const char *esc = NULL;

			switch (*s) {
			case '\\': esc = "\\\\"; break;
			case '\t': esc = "\\t"; break;
			case '\n': esc = "\\n"; break;
			case '\r': esc = "\\r"; break;
			default: continue;
			}
			tb_put(b, run, (size_t)(s - run));
			tb_put(b, esc, 2);
			run = s + 1;
		}
		tb_put(b, run, (size_t)(s - run));
	}
	tb_put(b, last ? "\n" : "\t", 1);
}

static void
tb_u64(struct tbuf *b, uint64_t v, int last)
{
	char n[24];

	snprintf(n, sizeof(n), "%" PRIu64, v);
	tb_field(b, n, last);
}

struct load {
	char station[256];
	int mixed;           /* records of more than one station */
	char mixed_what[600];
	uint64_t records, certs, revs;
	struct tbuf rec, cert, rev;
	char problem[600];   /* a record the registry cannot take, though it verified */
};

static void
asn1_time_text(const ASN1_TIME *t, char *out, size_t n)
{
	struct tm tm;

	if (!t || !ASN1_TIME_to_tm(t, &tm)) {
		snprintf(out, n, "1970-01-01T00:00:00Z");
		return;
	}
	strftime(out, n, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

/* The certificate an "issued" record carries (details.cert, base64 DER). */
static int
load_cert(struct load *ld, const audit_record *rec)
{
	const char *b64 = json_string_value(json_object_get(rec->details, "cert"));
	unsigned char *der = NULL, h[32];
	const unsigned char *p;
	char issuer[1024] = "", subject[1024] = "", nb[32], na[32], hex[65], pkhex[65], *serial = NULL;
	const ASN1_BIT_STRING *pk;
	X509 *x = NULL;
	BIGNUM *bn = NULL;
	BIO *bio = NULL;
	size_t n, i;
	int len, ret = -1;

	if (!b64)
		return 0; /* an issued record without the certificate: nothing to decode */
	n = strlen(b64);
	if (!(der = malloc(n / 4 * 3 + 4)) || (len = EVP_DecodeBlock(der, (const unsigned char *)b64, (int)n)) < 0)
		goto bad;
	while (n && b64[n - 1] == '=') { /* EVP_DecodeBlock counts the padding as bytes */
		len--;
		n--;
	}
	p = der;
	if (!(x = d2i_X509(NULL, &p, len)))
		goto bad;
	if ((bio = BIO_new(BIO_s_mem()))) {
		X509_NAME_print_ex(bio, X509_get_issuer_name(x), 0, XN_FLAG_RFC2253);
		len = BIO_read(bio, issuer, sizeof(issuer) - 1);
		issuer[len > 0 ? len : 0] = 0;
		BIO_free(bio);
	}
	if ((bio = BIO_new(BIO_s_mem()))) {
		X509_NAME_print_ex(bio, X509_get_subject_name(x), 0, XN_FLAG_RFC2253);
		len = BIO_read(bio, subject, sizeof(subject) - 1);
		subject[len > 0 ? len : 0] = 0;
	}
	if (!(bn = ASN1_INTEGER_to_BN(X509_get0_serialNumber(x), NULL)) || !(serial = BN_bn2hex(bn)))
		goto bad;
	for (i = 0; serial[i]; i++)
		serial[i] = (char)(serial[i] >= 'A' && serial[i] <= 'F' ? serial[i] - 'A' + 'a' : serial[i]);
	asn1_time_text(X509_get0_notBefore(x), nb, sizeof(nb));
	asn1_time_text(X509_get0_notAfter(x), na, sizeof(na));
	{
		unsigned char *d2 = NULL;

		len = i2d_X509(x, &d2);
		st_sha256(d2, (size_t)len, h);
		OPENSSL_free(d2);
	}
	st_hex(h, 32, hex);
	/* The key's bytes (an EC point) hash as the keygen record's pubkey_sha256 does. */
	pk = X509_get0_pubkey_bitstr(x);
	st_sha256(pk ? pk->data : (const unsigned char *)"", pk ? (size_t)pk->length : 0, h);
	st_hex(h, 32, pkhex);
	tb_field(&ld->cert, rec->station, 0);
	tb_u64(&ld->cert, rec->seq, 0);
	tb_field(&ld->cert, rec->device ? rec->device : "", 0);
	tb_field(&ld->cert, issuer, 0);
	tb_field(&ld->cert, serial, 0);
	tb_field(&ld->cert, subject, 0);
	tb_field(&ld->cert, nb, 0);
	tb_field(&ld->cert, na, 0);
	tb_field(&ld->cert, hex, 0);
	tb_field(&ld->cert, pkhex, 0);
	tb_field(&ld->cert, rec->time, 1);
	ld->certs++;
	ret = 0;
	goto out;
bad:
	snprintf(ld->problem, sizeof(ld->problem), "%s:%u: seq %" PRIu64 ": details.cert is not a base64 DER certificate",
	    rec->batch, rec->line, rec->seq);
out:
	BIO_free(bio);
	OPENSSL_free(serial);
	BN_free(bn);
	X509_free(x);
	free(der);
	return ret;
}

static int
load_record(const audit_record *rec, void *ctx)
{
	struct load *ld = ctx;
	char *details;
	const char *serial;

	if (!ld->station[0]) {
		snprintf(ld->station, sizeof(ld->station), "%s", rec->station);
	} else if (strcmp(ld->station, rec->station) != 0 && !ld->mixed) {
		ld->mixed = 1;
		snprintf(ld->mixed_what, sizeof(ld->mixed_what), "%s:%u: seq %" PRIu64 ": station '%s' after '%s'", rec->batch,
		    rec->line, rec->seq, rec->station, ld->station);
	}
	if (!(details = json_dumps(rec->details, JSON_COMPACT)))
		return -1;
	tb_field(&ld->rec, rec->station, 0);
	tb_u64(&ld->rec, rec->seq, 0);
	tb_field(&ld->rec, rec->hash, 0);
	tb_field(&ld->rec, rec->time, 0);
	tb_field(&ld->rec, rec->operator_name, 0);
	tb_field(&ld->rec, rec->recipe, 0);
	tb_field(&ld->rec, rec->jig, 0);
	tb_field(&ld->rec, rec->device, 0);
	tb_field(&ld->rec, rec->step, 0);
	tb_field(&ld->rec, rec->result, 0);
	tb_field(&ld->rec, rec->engineering ? "t" : "f", 0);
	tb_field(&ld->rec, details, 1);
	free(details);
	ld->records++;
	if (strcmp(rec->step, "issued") == 0 && strcmp(rec->result, "ok") == 0 && load_cert(ld, rec) < 0)
		return -1;
	serial = json_string_value(json_object_get(rec->details, "cert_serial"));
	if (strcmp(rec->step, "revoke") == 0 && strcmp(rec->result, "ok") == 0 && serial) {
		tb_field(&ld->rev, rec->station, 0);
		tb_u64(&ld->rev, rec->seq, 0);
		BIGNUM *rbn = NULL;
		char *rs = NULL;
		size_t k;

		tb_field(&ld->rev, rec->device, 0);
		/* The journal's spelling (OpenSSL's now, lower case without leading
		 * zeros before) into the one load_cert gives certificates. */
		if (BN_hex2bn(&rbn, serial) > 0 && (rs = BN_bn2hex(rbn)))
			for (k = 0; rs[k]; k++)
				rs[k] = (char)(rs[k] >= 'A' && rs[k] <= 'F' ? rs[k] - 'A' + 'a' : rs[k]);
		tb_field(&ld->rev, rs ? rs : serial, 0);
		OPENSSL_free(rs);
		BN_free(rbn);
		tb_field(&ld->rev, json_string_value(json_object_get(rec->details, "reason")) ?
		        json_string_value(json_object_get(rec->details, "reason")) : "unspecified", 0);
		tb_field(&ld->rev, rec->time, 1);
		ld->revs++;
	}
	return ld->rec.oom || ld->cert.oom || ld->rev.oom ? -1 : 0;
}

static int
copy_in(struct reg *r, const char *sql, const struct tbuf *b, st_err *err)
{
	PGresult *res = PQexec(r->conn, sql);
	int ok = PQresultStatus(res) == PGRES_COPY_IN;

	PQclear(res);
	if (!ok)
		return st_err_set(err, ST_E_IO, "database: COPY: %s", PQerrorMessage(r->conn));
	if ((b->len && PQputCopyData(r->conn, b->p, (int)b->len) != 1) || PQputCopyEnd(r->conn, NULL) != 1)
		return st_err_set(err, ST_E_IO, "database: COPY: %s", PQerrorMessage(r->conn));
	res = PQgetResult(r->conn);
	ok = PQresultStatus(res) == PGRES_COMMAND_OK;
	PQclear(res);
	while ((res = PQgetResult(r->conn)))
		PQclear(res);
	if (!ok)
		return st_err_set(err, ST_E_IO, "database: COPY: %s", PQerrorMessage(r->conn));
	return 0;
}

/* Alarms for everything the new records touch.  Each INSERT names its kind
 * once; (kind, subject) is unique, so an alarm is raised once. */
static const char *const alarm_sql[] = {
	/* One SE serial provisioned (a "done" that is not a rework) at two stations. */
	"INSERT INTO alarms (kind, subject, detail)"
	" SELECT 'device-two-stations', device, 'SE ' || device || ' provisioned at ' || string_agg(DISTINCT station, ', ')"
	" FROM records WHERE device IN (SELECT DISTINCT device FROM in_records WHERE device IS NOT NULL)"
	"  AND step = 'done' AND result IN ('pass', 'ok') AND coalesce(details->>'rework', 'false') <> 'true'"
	" GROUP BY device HAVING count(DISTINCT station) > 1"
	" ON CONFLICT (kind, subject) DO NOTHING",
	/* Provisioned twice at one station with no rework between. */
	"INSERT INTO alarms (kind, subject, detail)"
	" SELECT DISTINCT 'device-twice', p.device || '@' || p.station,"
	"  'SE ' || p.device || ' provisioned twice at ' || p.station || ' (seq ' || p.prev || ' and ' || p.seq || ') without a rework between'"
	" FROM (SELECT station, device, seq, lag(seq) OVER (PARTITION BY station, device ORDER BY seq) AS prev FROM records"
	"  WHERE device IN (SELECT DISTINCT device FROM in_records WHERE device IS NOT NULL)"
	"   AND step = 'done' AND result IN ('pass', 'ok') AND coalesce(details->>'rework', 'false') <> 'true') p"
	" WHERE p.prev IS NOT NULL AND NOT EXISTS (SELECT 1 FROM records w WHERE w.station = p.station AND w.device = p.device"
	"  AND w.seq > p.prev AND w.seq < p.seq AND w.details->>'rework' = 'true')"
	" ON CONFLICT (kind, subject) DO NOTHING",
	/* One public key under two SE serials: the keygen records and the certificates. */
	"INSERT INTO alarms (kind, subject, detail)"
	" SELECT 'pubkey-two-serials', k.pk, 'public key ' || k.pk || ' under SE serials ' || string_agg(DISTINCT k.device, ', ')"
	" FROM (SELECT device, details->>'pubkey_sha256' AS pk FROM records WHERE step = 'keygen' AND details ? 'pubkey_sha256'"
	"  UNION SELECT device, pubkey_sha256 FROM certificates) k"
	" WHERE k.pk IN (SELECT details->>'pubkey_sha256' FROM in_records WHERE step = 'keygen'"
	"  UNION SELECT pubkey_sha256 FROM in_certs)"
	" GROUP BY k.pk HAVING count(DISTINCT k.device) > 1"
	" ON CONFLICT (kind, subject) DO NOTHING",
	/* One SE attestation certificate under two serials (identify details.attestation_sha256). */
	"INSERT INTO alarms (kind, subject, detail)"
	" SELECT 'attestation-two-serials', details->>'attestation_sha256',"
	"  'attestation certificate ' || (details->>'attestation_sha256') || ' under SE serials ' || string_agg(DISTINCT device, ', ')"
	" FROM records WHERE step = 'identify' AND details->>'attestation_sha256' IN"
	"  (SELECT details->>'attestation_sha256' FROM in_records WHERE step = 'identify')"
	" GROUP BY details->>'attestation_sha256' HAVING count(DISTINCT device) > 1"
	" ON CONFLICT (kind, subject) DO NOTHING",
	/* One issuer + certificate serial twice. */
	"INSERT INTO alarms (kind, subject, detail)"
	" SELECT 'cert-serial-twice', issuer || ' / ' || serial,"
	"  'certificate serial ' || serial || ' of ' || issuer || ' issued ' || count(*) || ' times: '"
	"  || string_agg(device || ' at ' || station || ' seq ' || seq, ', ' ORDER BY station, seq)"
	" FROM certificates WHERE (issuer, serial) IN (SELECT issuer, serial FROM in_certs)"
	" GROUP BY issuer, serial HAVING count(*) > 1"
	" ON CONFLICT (kind, subject) DO NOTHING",
	/* Revoked at one station, live according to the station that issued it. */
	"INSERT INTO alarms (kind, subject, detail)"
	" SELECT DISTINCT ON (c.serial, c.station) 'revoked-live', c.serial || '@' || c.station,"
	"  'certificate ' || c.serial || ' (SE ' || c.device || ') revoked at ' || v.station || ' but live at ' || c.station"
	" FROM certificates c JOIN revocations v ON v.serial = c.serial AND v.station <> c.station"
	" WHERE (c.serial IN (SELECT serial FROM in_certs) OR c.serial IN (SELECT serial FROM in_revs))"
	"  AND NOT EXISTS (SELECT 1 FROM revocations w WHERE w.serial = c.serial AND w.station = c.station)"
	" ON CONFLICT (kind, subject) DO NOTHING",
};


static int64_t
count_of(struct reg *r, const char *sql, int n, const char *const *params, st_err *err)
{
	PGresult *res = reg_query(r, sql, n, params, err);
	int64_t v;

	if (!res)
		return -1;
	v = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
	PQclear(res);
	return v;
}

static int
load_db(struct reg *r, struct load *ld, const audit_report *rep, const char *manifest_sha, struct reg_outcome *oc,
    st_err *err)
{
	const char *p[8];
	char n1[24], n2[24], n3[24], n4[24];
	PGresult *res = NULL;
	int64_t before, after, bundle;
	size_t i;
	int ret = -1, nt;

	/* One ingest at a time: the alarm queries must see every committed record. */
	if (reg_exec(r, "BEGIN; SELECT pg_advisory_xact_lock(5252002)", err) < 0)
		goto out;
	p[0] = ld->station;
	if (!(res = reg_query(r, "SELECT signer FROM stations WHERE station = $1", 1, p, err)))
		goto out;
	oc->new_station = PQntuples(res) == 0;
	PQclear(res);
	res = NULL;
	if (reg_exec(r,
	        "CREATE TEMP TABLE in_records (LIKE records) ON COMMIT DROP;"
	        "ALTER TABLE in_records ALTER COLUMN bundle DROP NOT NULL;"
	        "CREATE TEMP TABLE in_certs (LIKE certificates) ON COMMIT DROP;"
	        "CREATE TEMP TABLE in_revs (LIKE revocations) ON COMMIT DROP",
	        err) < 0 ||
	    copy_in(r,
	        "COPY in_records (station, seq, hash, time, operator, recipe, jig, device, step, result, engineering, details)"
	        " FROM STDIN",
	        &ld->rec, err) < 0 ||
	    copy_in(r,
	        "COPY in_certs (station, seq, device, issuer, serial, subject, not_before, not_after, cert_sha256,"
	        " pubkey_sha256, time) FROM STDIN",
	        &ld->cert, err) < 0 ||
	    copy_in(r, "COPY in_revs (station, seq, device, serial, reason, time) FROM STDIN", &ld->rev, err) < 0)
		goto out;
	/* A fork: the same (station, seq) already holds another record. */
	if (!(res = reg_query(r,
	          "SELECT i.seq, r.hash, i.hash FROM in_records i JOIN records r ON r.station = i.station AND r.seq = i.seq"
	          " WHERE r.hash <> i.hash ORDER BY i.seq LIMIT 1",
	          0, NULL, err)))
		goto out;
	if (PQntuples(res)) {
		oc->refused = 1;
		snprintf(oc->reason, sizeof(oc->reason),
		    "fork: station %s seq %s is already in the registry with hash %.16s..., this bundle has %.16s...; "
		    "two journals claim the same records: find out which station's journal was copied or rewritten",
		    ld->station, PQgetvalue(res, 0, 0), PQgetvalue(res, 0, 1), PQgetvalue(res, 0, 2));
		PQclear(res);
		res = NULL;
		/* The alarm outlives the refused load: raise it in its own transaction. */
		if (reg_exec(r, "ROLLBACK", err) < 0)
			goto out;
		p[0] = ld->station;
		p[1] = oc->reason;
		if (!(res = reg_query(r,
		          "INSERT INTO alarms (kind, subject, detail) VALUES ('fork', $1, $2) ON CONFLICT (kind, subject) DO NOTHING",
		          2, p, err)))
			goto out;
		oc->new_alarms = strtoll(PQcmdTuples(res), NULL, 10);
		ret = 0;
		goto out;
	}
	PQclear(res);
	res = NULL;
	if ((oc->new_records = count_of(r,
	         "SELECT count(*) FROM in_records i WHERE NOT EXISTS"
	         " (SELECT 1 FROM records r WHERE r.station = i.station AND r.seq = i.seq)",
	         0, NULL, err)) < 0)
		goto out;
	if (oc->new_records > 0) {
		if (oc->new_station) {
			p[0] = ld->station;
			p[1] = rep->signer;
			if (!(res = reg_query(r, "INSERT INTO stations (station, signer) VALUES ($1, $2)", 2, p, err)))
				goto out;
			PQclear(res);
		}
		snprintf(n1, sizeof(n1), "%" PRIu64, rep->first_seq);
		snprintf(n2, sizeof(n2), "%" PRIu64, rep->last_seq);
		snprintf(n3, sizeof(n3), "%" PRIu64, ld->records);
		snprintf(n4, sizeof(n4), "%lld", oc->new_records);
		p[0] = ld->station;
		p[1] = n1;
		p[2] = n2;
		p[3] = n3;
		p[4] = n4;
		p[5] = rep->signer;
		p[6] = manifest_sha;
		if ((bundle = count_of(r,
		         "INSERT INTO bundles (station, first_seq, last_seq, records, new_records, signer, manifest_sha256)"
		         " VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id",
		         7, p, err)) < 0)
			goto out;
		snprintf(n1, sizeof(n1), "%" PRId64, bundle);
		p[0] = n1;
		if (!(res = reg_query(r,
		          "INSERT INTO records SELECT station, seq, hash, time, operator, recipe, jig, device, step, result,"
		          " engineering, details, $1 FROM in_records ON CONFLICT DO NOTHING",
		          1, p, err)))
			goto out;
		PQclear(res);
		res = NULL;
		if (reg_exec(r,
		        "INSERT INTO certificates SELECT * FROM in_certs ON CONFLICT DO NOTHING;"
		        "INSERT INTO revocations SELECT * FROM in_revs ON CONFLICT DO NOTHING",
		        err) < 0)
			goto out;
		if ((before = count_of(r, "SELECT count(*) FROM alarms", 0, NULL, err)) < 0)
			goto out;
		for (i = 0; i < sizeof(alarm_sql) / sizeof(alarm_sql[0]); i++)
			if (reg_exec(r, alarm_sql[i], err) < 0) {
				st_err_prefix(err, "alarm query %zu", i + 1);
				goto out;
			}
		if ((after = count_of(r, "SELECT count(*) FROM alarms", 0, NULL, err)) < 0)
			goto out;
		oc->new_alarms = after - before;
	}
	/* What the station's sequence still misses. */
	p[0] = ld->station;
	if (!(res = reg_query(r,
	          "SELECT lo, hi FROM (SELECT 1 AS lo, min(seq) - 1 AS hi FROM records WHERE station = $1"
	          " UNION ALL SELECT seq + 1, nxt - 1 FROM (SELECT seq, lead(seq) OVER (ORDER BY seq) AS nxt"
	          "  FROM records WHERE station = $1) s WHERE nxt > seq + 1) g WHERE hi >= lo ORDER BY lo LIMIT 100",
	          1, p, err)))
		goto out;
	nt = PQntuples(res);
	for (i = 0; i < (size_t)nt; i++)
		json_array_append_new(oc->gaps, json_pack("[I,I]", (json_int_t)strtoll(PQgetvalue(res, (int)i, 0), NULL, 10),
		                                    (json_int_t)strtoll(PQgetvalue(res, (int)i, 1), NULL, 10)));
	PQclear(res);
	res = NULL;
	if (reg_exec(r, "COMMIT", err) < 0)
		goto out;
	ret = 0;
out:
	PQclear(res);
	if (ret < 0 && r->conn && PQstatus(r->conn) == CONNECTION_OK)
		PQclear(PQexec(r->conn, "ROLLBACK"));
	return ret;
}

static int
manifest_digest(const char *dir, char hex[65], st_err *err)
{
	char path[4096];
	uint8_t *buf = NULL, h[32];
	size_t len;

	snprintf(path, sizeof(path), "%s/manifest.json", dir);
	if (st_file_read(path, 16 << 20, &buf, &len, err) < 0)
		return -1;
	st_sha256(buf, len, h);
	st_hex(h, 32, hex);
	free(buf);
	return 0;
}

static int
scan_cb_stop(const audit_record *rec, void *ctx)
{
	return load_record(rec, ctx) < 0 ? 1 : 0;
}

int
reg_ingest_bundle(struct reg *r, const char *path, X509_STORE *trust, struct reg_outcome *oc, st_err *err)
{
	audit_report *rep = NULL;
	struct load ld;
	char mhex[65];
	int ret = -1, rc;
	st_err verr;

	memset(&ld, 0, sizeof(ld));
	if (audit_verify(path, trust, &rep, &verr) < 0 && verr.code != ST_E_VERIFY) {
		oc->refused = 1;
		snprintf(oc->reason, sizeof(oc->reason), "cannot verify: %s", verr.msg);
		ret = 0;
		goto out;
	}
	if (rep->n_problems) {
		oc->refused = 1;
		snprintf(oc->reason, sizeof(oc->reason), "verification failed (%zu problem%s): %s", rep->n_problems,
		    rep->n_problems == 1 ? "" : "s", rep->first_broken ? rep->first_broken : rep->problems[0]);
		ret = 0;
		goto out;
	}
	if (!rep->bundle) {
		oc->refused = 1;
		snprintf(oc->reason, sizeof(oc->reason),
		    "not an export bundle (no manifest.json): ingest what 'station audit export' writes, not a live journal");
		ret = 0;
		goto out;
	}
	if (!rep->records || rep->sealed != rep->batches) {
		oc->refused = 1;
		snprintf(oc->reason, sizeof(oc->reason), "%s",
		    !rep->records ? "the bundle holds no records" : "not every batch carries a verified seal");
		ret = 0;
		goto out;
	}
	if (manifest_digest(path, mhex, &verr) < 0) {
		oc->refused = 1;
		snprintf(oc->reason, sizeof(oc->reason), "%s", verr.msg);
		ret = 0;
		goto out;
	}
	rc = audit_scan(path, scan_cb_stop, &ld, &verr);
	if (rc != 0 || ld.mixed || ld.problem[0] || ld.rec.oom) {
		oc->refused = 1;
		snprintf(oc->reason, sizeof(oc->reason), "%s",
		    ld.mixed ? ld.mixed_what : ld.problem[0] ? ld.problem : ld.rec.oom ? "out of memory" : verr.msg);
		if (ld.mixed)
			snprintf(oc->reason, sizeof(oc->reason), "one bundle holds one station's journal: %s", ld.mixed_what);
		ret = 0;
		goto out;
	}
	ret = load_db(r, &ld, rep, mhex, oc, err);
out:
	audit_report_free(rep);
	free(ld.rec.p);
	free(ld.cert.p);
	free(ld.rev.p);
	return ret;
}

static void
ingest_usage(FILE *f)
{
	fprintf(f, "usage: station-registry [--db URI] [--json] ingest --ca ROOT.pem BUNDLE...\n"
	           "\n"
	           "Verify each export bundle completely (seals up to ROOT.pem, the hash chain, the\n"
	           "manifest), then load it in one transaction.  A bundle that does not verify is\n"
	           "refused with the reason.  Ingesting a bundle again, or overlapping bundles,\n"
	           "changes nothing; the same station and seq with another record is a fork: refused,\n"
	           "and an alarm raised.  Gaps in a station's sequence are reported.\n"
	           "Exit: 0 every bundle loaded (or was already there), 1 one was refused, 2 usage or\n"
	           "configuration error (no database, bad --ca).\n");
}

int
cmd_ingest(struct reg *r, int argc, char **argv)
{
	enum { O_CA = 1, O_JSON, O_HELP };
	static const struct option opts[] = {
		{ "ca", required_argument, NULL, O_CA },
		{ "json", no_argument, NULL, O_JSON },
		{ "help", no_argument, NULL, O_HELP },
		{ NULL, 0, NULL, 0 },
	};
	const char *ca = NULL;
	X509_STORE *trust = NULL;
	json_t *all = json_array();
	size_t gi;
	int c, i, ret = EXIT_USAGE, refused = 0;
	st_err err;

	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case O_CA: ca = optarg; break;
		case O_JSON: r->json = 1; break;
		case 'h':
		case O_HELP: ingest_usage(stdout); ret = EXIT_OK; goto out;
		default: ingest_usage(stderr); goto out;
		}
	}
	if (!ca || optind >= argc) {
		ingest_usage(stderr);
		goto out;
	}
	if (!(trust = st_x509_store_load(ca, &err))) {
		fprintf(stderr, "station-registry ingest: --ca: %s\n", err.msg);
		goto out;
	}
	if (reg_connect(r, &err) < 0) {
		fprintf(stderr, "station-registry ingest: %s\n", err.msg);
		goto out;
	}
	for (i = optind; i < argc; i++) {
		struct reg_outcome oc;

		memset(&oc, 0, sizeof(oc));
		oc.gaps = json_array();
		if (reg_ingest_bundle(r, argv[i], trust, &oc, &err) < 0) {
			fprintf(stderr, "station-registry ingest: %s: %s; nothing of it was loaded (the transaction rolled back): run ingest again\n",
			    argv[i], err.msg);
			json_decref(oc.gaps);
			ret = EXIT_FAIL;
			goto out;
		}
		refused |= oc.refused;
		if (r->json) {
			json_array_append_new(all, oc.refused ?
			        json_pack("{s:s,s:s,s:s}", "bundle", argv[i], "status", "refused", "reason", oc.reason) :
			        json_pack("{s:s,s:s,s:b,s:I,s:I,s:O}", "bundle", argv[i], "status",
			            oc.new_records ? "loaded" : "already-ingested", "new_station", oc.new_station, "new_records",
			            (json_int_t)oc.new_records, "new_alarms", (json_int_t)oc.new_alarms, "gaps", oc.gaps));
		} else if (oc.refused) {
			printf("%s: REFUSED: %s\n", argv[i], oc.reason);
		} else {
			printf("%s: %s: %lld new record%s%s", argv[i], oc.new_records ? "loaded" : "already ingested",
			    oc.new_records, oc.new_records == 1 ? "" : "s", oc.new_station && oc.new_records ? ", new station" : "");
			if (oc.new_alarms)
				printf(", %lld new alarm%s (station-registry alarms)", oc.new_alarms, oc.new_alarms == 1 ? "" : "s");
			printf("\n");
			for (gi = 0; gi < json_array_size(oc.gaps); gi++)
				printf("  gap: seq %" JSON_INTEGER_FORMAT "..%" JSON_INTEGER_FORMAT " not ingested yet\n",
				    json_integer_value(json_array_get(json_array_get(oc.gaps, gi), 0)),
				    json_integer_value(json_array_get(json_array_get(oc.gaps, gi), 1)));
		}
		json_decref(oc.gaps);
	}
	if (r->json) {
		reg_print_json(json_pack("{s:O}", "bundles", all));
	}
	ret = refused ? EXIT_FAIL : EXIT_OK;
out:
	json_decref(all);
	X509_STORE_free(trust);
	return ret;
}
