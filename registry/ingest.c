/* station-registry ingest: verify a bundle completely, then load it in one
 * transaction with COPY.  Idempotent on (station, seq) with the record's hash;
 * the same key with another hash is a fork: refused, and an alarm raised. */
#include <getopt.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <unistd.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/asn1t.h>
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

/* One COPY text-format field of n bytes, then a tab or, when last, a newline. */
static void
tb_field_n(struct tbuf *b, const char *s, size_t n, int last)
{
	const char *run, *end = s + n;

	for (run = s; s < end; s++) {
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
	tb_put(b, last ? "\n" : "\t", 1);
}

/* One COPY text-format field (NULL is \N). */
static void
tb_field(struct tbuf *b, const char *s, int last)
{
	if (s)
		tb_field_n(b, s, strlen(s), last);
	else
		tb_put(b, last ? "\\N\n" : "\\N\t", 3);
}

static void
tb_u64(struct tbuf *b, uint64_t v, int last)
{
	char n[24];

	snprintf(n, sizeof(n), "%" PRIu64, v);
	tb_field(b, n, last);
}

/* Where one record's rows start in the COPY streams. */
struct row {
	uint64_t seq;
	size_t off;
};

struct rows {
	struct row *v;
	size_t n, cap;
	int oom;
};

/* Values the alarm queries look up, each with its record's seq (a load
 * looks up only what the records it adds name): devices provisioned, public
 * keys (keygen records and certificates), attestation certificates'
 * digests, certificates' issuer and serial (pairs, same index), and the
 * serials of certificates and revocations. */
enum { K_DONE, K_PUBKEY, K_ATTEST, K_ISSUER, K_CERT_SERIAL, K_SERIAL, K_KINDS };

struct keys {
	struct key {
		uint64_t seq;
		char *v;
	} *e;
	size_t n, cap;
	int oom;
};

struct load {
	char station[256];
	int mixed;           /* records of more than one station */
	char mixed_what[600];
	uint64_t first_seq, records;
	char (*hash)[65];    /* every record's hash (hex), by seq - first_seq */
	size_t hash_cap;
	struct tbuf rec, cert, rev;
	struct rows rec_rows, cert_rows, rev_rows; /* the lines of each stream, by seq */
	struct keys keys[K_KINDS];
	char problem[600];   /* a record the registry cannot take, though it verified */
	unsigned char *issuer_der; /* the last certificate's issuer, encoded, and as text */
	int issuer_len;
	char issuer[1024];
};

static void
rows_add(struct rows *r, uint64_t seq, size_t off)
{
	struct row *nv;
	size_t cap;

	if (r->oom)
		return;
	if (r->n == r->cap) {
		cap = r->cap ? r->cap * 2 : 1024;
		if (!(nv = realloc(r->v, cap * sizeof(*nv)))) {
			r->oom = 1;
			return;
		}
		r->v = nv;
		r->cap = cap;
	}
	r->v[r->n].seq = seq;
	r->v[r->n++].off = off;
}

static void
keys_add(struct keys *k, uint64_t seq, const char *v)
{
	struct key *ne;
	size_t cap;

	if (k->oom || !v)
		return;
	if (k->n == k->cap) {
		cap = k->cap ? k->cap * 2 : 1024;
		if (!(ne = realloc(k->e, cap * sizeof(*ne)))) {
			k->oom = 1;
			return;
		}
		k->e = ne;
		k->cap = cap;
	}
	if (!(k->e[k->n].v = strdup(v))) {
		k->oom = 1;
		return;
	}
	k->e[k->n++].seq = seq;
}

static void
keys_free(struct keys *k)
{
	size_t i;

	for (i = 0; i < k->n; i++)
		free(k->e[i].v);
	free(k->e);
	memset(k, 0, sizeof(*k));
}

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

/* What the registry reads of a certificate, decoded with a template of its
 * own: d2i_X509 also decodes the public key through OpenSSL 3's decoder
 * framework, which cost more than everything else ingest does (about 2
 * million instructions a certificate).  The key is only hashed here. */
typedef struct {
	X509_ALGOR *algor;
	ASN1_BIT_STRING *key;
} REG_SPKI;

typedef struct {
	ASN1_INTEGER *version;
	ASN1_INTEGER *serial;
	X509_ALGOR *sig_alg;
	ASN1_TYPE *issuer; /* the Name's encoding: one station's certificates share it */
	X509_VAL *validity;
	X509_NAME *subject;
	REG_SPKI *spki;
	ASN1_BIT_STRING *issuer_uid, *subject_uid;
	STACK_OF(X509_EXTENSION) *extensions;
} REG_TBS;

typedef struct {
	REG_TBS *tbs;
	X509_ALGOR *sig_alg;
	ASN1_BIT_STRING *sig;
} REG_CERT;

ASN1_SEQUENCE(REG_SPKI) = {
	ASN1_SIMPLE(REG_SPKI, algor, X509_ALGOR),
	ASN1_SIMPLE(REG_SPKI, key, ASN1_BIT_STRING),
} static_ASN1_SEQUENCE_END(REG_SPKI)

ASN1_SEQUENCE(REG_TBS) = {
	ASN1_EXP_OPT(REG_TBS, version, ASN1_INTEGER, 0),
	ASN1_SIMPLE(REG_TBS, serial, ASN1_INTEGER),
	ASN1_SIMPLE(REG_TBS, sig_alg, X509_ALGOR),
	ASN1_SIMPLE(REG_TBS, issuer, ASN1_ANY),
	ASN1_SIMPLE(REG_TBS, validity, X509_VAL),
	ASN1_SIMPLE(REG_TBS, subject, X509_NAME),
	ASN1_SIMPLE(REG_TBS, spki, REG_SPKI),
	ASN1_IMP_OPT(REG_TBS, issuer_uid, ASN1_BIT_STRING, 1),
	ASN1_IMP_OPT(REG_TBS, subject_uid, ASN1_BIT_STRING, 2),
	ASN1_EXP_SEQUENCE_OF_OPT(REG_TBS, extensions, X509_EXTENSION, 3),
} static_ASN1_SEQUENCE_END(REG_TBS)

ASN1_SEQUENCE(REG_CERT) = {
	ASN1_SIMPLE(REG_CERT, tbs, REG_TBS),
	ASN1_SIMPLE(REG_CERT, sig_alg, X509_ALGOR),
	ASN1_SIMPLE(REG_CERT, sig, ASN1_BIT_STRING),
} static_ASN1_SEQUENCE_END(REG_CERT)

static void
name_text(const X509_NAME *name, char *out, size_t n)
{
	BIO *bio = BIO_new(BIO_s_mem());
	int len = 0;

	if (bio && X509_NAME_print_ex(bio, name, 0, XN_FLAG_RFC2253) >= 0)
		len = BIO_read(bio, out, (int)n - 1);
	out[len > 0 ? len : 0] = 0;
	BIO_free(bio);
}

/* ld->issuer: the issuer Name as text, decoded only when it is not the
 * last certificate's. */
static int
issuer_text(struct load *ld, const ASN1_TYPE *t)
{
	const unsigned char *p;
	X509_NAME *name;
	unsigned char *copy;
	int len;

	if (!t || t->type != V_ASN1_SEQUENCE)
		return -1;
	p = t->value.sequence->data;
	len = t->value.sequence->length;
	if (ld->issuer_der && ld->issuer_len == len && memcmp(ld->issuer_der, p, (size_t)len) == 0)
		return 0;
	if (!(name = d2i_X509_NAME(NULL, &p, len)) || p != t->value.sequence->data + len || !(copy = malloc((size_t)len))) {
		X509_NAME_free(name);
		return -1;
	}
	name_text(name, ld->issuer, sizeof(ld->issuer));
	X509_NAME_free(name);
	memcpy(copy, t->value.sequence->data, (size_t)len);
	free(ld->issuer_der);
	ld->issuer_der = copy;
	ld->issuer_len = len;
	return 0;
}

/* The certificate an "issued" record carries (details.cert, base64 DER). */
static int
load_cert(struct load *ld, const audit_record *rec)
{
	const char *b64 = json_string_value(json_object_get(rec->details, "cert"));
	unsigned char *der = NULL, h[32];
	const unsigned char *p;
	char subject[1024], nb[32], na[32], hex[65], pkhex[65], *serial = NULL;
	const char *issuer = ld->issuer;
	REG_CERT *x = NULL;
	BIGNUM *bn = NULL;
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
	if (!(x = (REG_CERT *)ASN1_item_d2i(NULL, &p, len, ASN1_ITEM_rptr(REG_CERT))) || p != der + len)
		goto bad;
	if (issuer_text(ld, x->tbs->issuer) < 0)
		goto bad;
	name_text(x->tbs->subject, subject, sizeof(subject));
	if (!(bn = ASN1_INTEGER_to_BN(x->tbs->serial, NULL)) || !(serial = BN_bn2hex(bn)))
		goto bad;
	for (i = 0; serial[i]; i++)
		serial[i] = (char)(serial[i] >= 'A' && serial[i] <= 'F' ? serial[i] - 'A' + 'a' : serial[i]);
	asn1_time_text(x->tbs->validity->notBefore, nb, sizeof(nb));
	asn1_time_text(x->tbs->validity->notAfter, na, sizeof(na));
	st_sha256(der, (size_t)len, h);
	st_hex(h, 32, hex);
	/* The key's bytes (an EC point) hash as the keygen record's pubkey_sha256 does. */
	st_sha256(x->tbs->spki->key->data, (size_t)x->tbs->spki->key->length, h);
	st_hex(h, 32, pkhex);
	keys_add(&ld->keys[K_PUBKEY], rec->seq, pkhex);
	keys_add(&ld->keys[K_ISSUER], rec->seq, issuer);
	keys_add(&ld->keys[K_CERT_SERIAL], rec->seq, serial);
	keys_add(&ld->keys[K_SERIAL], rec->seq, serial);
	rows_add(&ld->cert_rows, rec->seq, ld->cert.len);
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
	ret = 0;
	goto out;
bad:
	snprintf(ld->problem, sizeof(ld->problem), "%s:%u: seq %" PRIu64 ": details.cert is not a base64 DER certificate",
	    rec->batch, rec->line, rec->seq);
out:
	OPENSSL_free(serial);
	BN_free(bn);
	ASN1_item_free((ASN1_VALUE *)x, ASN1_ITEM_rptr(REG_CERT));
	free(der);
	return ret;
}

static int
load_record(const audit_record *rec, void *ctx)
{
	struct load *ld = ctx;
	char *details = NULL;
	const char *serial, *span;
	json_t *rework;
	size_t span_len, k;

	if (!ld->station[0]) {
		snprintf(ld->station, sizeof(ld->station), "%s", rec->station);
	} else if (strcmp(ld->station, rec->station) != 0 && !ld->mixed) {
		ld->mixed = 1;
		snprintf(ld->mixed_what, sizeof(ld->mixed_what), "%s:%u: seq %" PRIu64 ": station '%s' after '%s'", rec->batch,
		    rec->line, rec->seq, rec->station, ld->station);
	}
	if (!ld->records)
		ld->first_seq = rec->seq;
	if (ld->records == ld->hash_cap) {
		size_t cap = ld->hash_cap ? ld->hash_cap * 2 : 1024;
		char(*nh)[65] = realloc(ld->hash, cap * sizeof(*nh));

		if (!nh)
			return -1;
		ld->hash = nh;
		ld->hash_cap = cap;
	}
	/* The walk checked the chain: seqs follow one another from the first. */
	snprintf(ld->hash[ld->records], sizeof(ld->hash[0]), "%s", rec->hash);
	/* details as the station wrote them (jsonb reads any spelling of the
	 * same value); encoded again only where the line escapes its name. */
	if (audit_record_details_span(rec, &span, &span_len) < 0) {
		if (!(details = json_dumps(rec->details, JSON_COMPACT)))
			return -1;
		span = details;
		span_len = strlen(details);
	}
	rows_add(&ld->rec_rows, rec->seq, ld->rec.len);
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
	tb_field_n(&ld->rec, span, span_len, 1);
	free(details);
	ld->records++;
	/* What the alarm queries look up (the SQL's own reading of details:
	 * ->> spells a JSON true and the string "true" alike). */
	if (rec->device && strcmp(rec->step, "done") == 0 &&
	    (strcmp(rec->result, "pass") == 0 || strcmp(rec->result, "ok") == 0)) {
		rework = json_object_get(rec->details, "rework");
		if (!json_is_true(rework) && !(json_is_string(rework) && strcmp(json_string_value(rework), "true") == 0))
			keys_add(&ld->keys[K_DONE], rec->seq, rec->device);
	} else if (strcmp(rec->step, "keygen") == 0) {
		keys_add(&ld->keys[K_PUBKEY], rec->seq, json_string_value(json_object_get(rec->details, "pubkey_sha256")));
	} else if (strcmp(rec->step, "identify") == 0) {
		keys_add(&ld->keys[K_ATTEST], rec->seq, json_string_value(json_object_get(rec->details, "attestation_sha256")));
	}
	if (strcmp(rec->step, "issued") == 0 && strcmp(rec->result, "ok") == 0 && load_cert(ld, rec) < 0)
		return -1;
	serial = json_string_value(json_object_get(rec->details, "cert_serial"));
	if (strcmp(rec->step, "revoke") == 0 && strcmp(rec->result, "ok") == 0 && serial) {
		BIGNUM *rbn = NULL;
		char *rs = NULL;

		rows_add(&ld->rev_rows, rec->seq, ld->rev.len);
		tb_field(&ld->rev, rec->station, 0);
		tb_u64(&ld->rev, rec->seq, 0);
		tb_field(&ld->rev, rec->device, 0);
		/* The journal's spelling (OpenSSL's now, lower case without leading
		 * zeros before) into the one load_cert gives certificates. */
		if (BN_hex2bn(&rbn, serial) > 0 && (rs = BN_bn2hex(rbn)))
			for (k = 0; rs[k]; k++)
				rs[k] = (char)(rs[k] >= 'A' && rs[k] <= 'F' ? rs[k] - 'A' + 'a' : rs[k]);
		tb_field(&ld->rev, rs ? rs : serial, 0);
		keys_add(&ld->keys[K_SERIAL], rec->seq, rs ? rs : serial);
		OPENSSL_free(rs);
		BN_free(rbn);
		tb_field(&ld->rev, json_string_value(json_object_get(rec->details, "reason")) ?
		        json_string_value(json_object_get(rec->details, "reason")) : "unspecified", 0);
		tb_field(&ld->rev, rec->time, 1);
	}
	for (k = 0; k < K_KINDS; k++)
		if (ld->keys[k].oom)
			return -1;
	return ld->rec.oom || ld->cert.oom || ld->rev.oom || ld->rec_rows.oom || ld->cert_rows.oom || ld->rev_rows.oom ? -1 :
	                                                                                                                   0;
}

/* A range of seqs [lo, hi]. */
struct span {
	uint64_t lo, hi;
};

static int
copy_start(struct reg *r, const char *sql, st_err *err)
{
	PGresult *res = PQexec(r->conn, sql);
	int ok = PQresultStatus(res) == PGRES_COPY_IN;

	PQclear(res);
	return ok ? 0 : st_err_set(err, ST_E_IO, "database: COPY: %s", PQerrorMessage(r->conn));
}

static int
copy_end(struct reg *r, st_err *err)
{
	PGresult *res;
	int ok;

	if (PQputCopyEnd(r->conn, NULL) != 1)
		return st_err_set(err, ST_E_IO, "database: COPY: %s", PQerrorMessage(r->conn));
	res = PQgetResult(r->conn);
	ok = PQresultStatus(res) == PGRES_COMMAND_OK;
	PQclear(res);
	while ((res = PQgetResult(r->conn)))
		PQclear(res);
	return ok ? 0 : st_err_set(err, ST_E_IO, "database: COPY: %s", PQerrorMessage(r->conn));
}

/* COPY the lines of b whose seq is in one of the new spans, each after
 * prefix (the bundle id for records, "" otherwise). */
static int
copy_new(struct reg *r, const char *sql, const struct tbuf *b, const struct rows *rows, const struct span *nw, size_t nn,
    const char *prefix, st_err *err)
{
	size_t i, k = 0, plen = strlen(prefix), end;

	if (copy_start(r, sql, err) < 0)
		return -1;
	for (i = 0; i < rows->n; i++) {
		while (k < nn && nw[k].hi < rows->v[i].seq)
			k++;
		if (k == nn)
			break;
		if (rows->v[i].seq < nw[k].lo)
			continue;
		end = i + 1 < rows->n ? rows->v[i + 1].off : b->len;
		if ((plen && PQputCopyData(r->conn, prefix, (int)plen) != 1) ||
		    PQputCopyData(r->conn, b->p + rows->v[i].off, (int)(end - rows->v[i].off)) != 1)
			return st_err_set(err, ST_E_IO, "database: COPY: %s", PQerrorMessage(r->conn));
	}
	return copy_end(r, err);
}

/* Alarms for everything the new records touch.  Each statement gets what
 * the new records name (arrays the client collected as it verified them:
 * devices, keys, serials) and looks up the rows that name the same, with
 * one index scan per array (the transaction turns off sequential and bitmap
 * scans: the tables grow faster than their statistics, and a probe for a
 * few hundred values must not become a scan of millions of rows).  Alarms
 * that look at the same rows share them.  (kind, subject) is unique, so an
 * alarm is raised once.  Each statement returns how many it raised. */
static const struct {
	const char *sql;
	int arg[3]; /* the key kinds it takes as $1, $2, $3 (-1: none) */
} alarm_q[] = {
	/* The devices provisioned (a "done" that is not a rework): at two
	 * stations, or twice at one with no rework between. */
	{ "WITH x AS MATERIALIZED (SELECT station, device, seq FROM records WHERE device = ANY ($1::text[])"
	  "  AND step = 'done' AND result IN ('pass', 'ok') AND coalesce(details->>'rework', 'false') <> 'true'),"
	  " a AS (INSERT INTO alarms (kind, subject, detail)"
	  "  SELECT 'device-two-stations', device, 'SE ' || device || ' provisioned at ' || string_agg(DISTINCT station, ', ')"
	  "  FROM x GROUP BY device HAVING count(DISTINCT station) > 1"
	  "  ON CONFLICT (kind, subject) DO NOTHING RETURNING 1),"
	  " b AS (INSERT INTO alarms (kind, subject, detail)"
	  "  SELECT DISTINCT 'device-twice', p.device || '@' || p.station,"
	  "   'SE ' || p.device || ' provisioned twice at ' || p.station || ' (seq ' || p.prev || ' and ' || p.seq || ') without a rework between'"
	  "  FROM (SELECT station, device, seq, lag(seq) OVER (PARTITION BY station, device ORDER BY seq) AS prev FROM x) p"
	  "  WHERE p.prev IS NOT NULL AND NOT EXISTS (SELECT 1 FROM records w WHERE w.station = p.station AND w.device = p.device"
	  "   AND w.seq > p.prev AND w.seq < p.seq AND w.details->>'rework' = 'true')"
	  "  ON CONFLICT (kind, subject) DO NOTHING RETURNING 1)"
	  " SELECT (SELECT count(*) FROM a) + (SELECT count(*) FROM b)", { K_DONE, -1, -1 } },
	/* One public key under two SE serials (keygen records, certificates);
	 * one attestation certificate under two (identify records). */
	{ "WITH a AS (INSERT INTO alarms (kind, subject, detail)"
	  "  SELECT 'pubkey-two-serials', k.pk, 'public key ' || k.pk || ' under SE serials ' || string_agg(DISTINCT k.device, ', ')"
	  "  FROM (SELECT device, details->>'pubkey_sha256' AS pk FROM records"
	  "    WHERE step = 'keygen' AND (details->>'pubkey_sha256') = ANY ($1::text[])"
	  "   UNION SELECT device, pubkey_sha256 FROM certificates WHERE pubkey_sha256 = ANY ($1::text[])) k"
	  "  GROUP BY k.pk HAVING count(DISTINCT k.device) > 1"
	  "  ON CONFLICT (kind, subject) DO NOTHING RETURNING 1),"
	  " b AS (INSERT INTO alarms (kind, subject, detail)"
	  "  SELECT 'attestation-two-serials', details->>'attestation_sha256',"
	  "   'attestation certificate ' || (details->>'attestation_sha256') || ' under SE serials ' || string_agg(DISTINCT device, ', ')"
	  "  FROM records WHERE step = 'identify' AND (details->>'attestation_sha256') = ANY ($2::text[])"
	  "  GROUP BY details->>'attestation_sha256' HAVING count(DISTINCT device) > 1"
	  "  ON CONFLICT (kind, subject) DO NOTHING RETURNING 1)"
	  " SELECT (SELECT count(*) FROM a) + (SELECT count(*) FROM b)", { K_PUBKEY, K_ATTEST, -1 } },
	/* The certificates of the serials the new certificates and revocations
	 * name ($3): one issuer + serial twice ($1, $2: the new pairs); revoked
	 * at one station, live according to the station that issued it. */
	{ "WITH c AS MATERIALIZED (SELECT station, seq, device, issuer, serial FROM certificates WHERE serial = ANY ($3::text[])),"
	  " a AS (INSERT INTO alarms (kind, subject, detail)"
	  "  SELECT 'cert-serial-twice', issuer || ' / ' || serial,"
	  "   'certificate serial ' || serial || ' of ' || issuer || ' issued ' || count(*) || ' times: '"
	  "   || string_agg(device || ' at ' || station || ' seq ' || seq, ', ' ORDER BY station, seq)"
	  "  FROM c WHERE (issuer, serial) IN (SELECT * FROM unnest($1::text[], $2::text[]))"
	  "  GROUP BY issuer, serial HAVING count(*) > 1"
	  "  ON CONFLICT (kind, subject) DO NOTHING RETURNING 1),"
	  " b AS (INSERT INTO alarms (kind, subject, detail)"
	  "  SELECT DISTINCT ON (c.serial, c.station) 'revoked-live', c.serial || '@' || c.station,"
	  "   'certificate ' || c.serial || ' (SE ' || c.device || ') revoked at ' || v.station || ' but live at ' || c.station"
	  "  FROM c JOIN revocations v ON v.serial = c.serial AND v.station <> c.station"
	  "  WHERE NOT EXISTS (SELECT 1 FROM revocations w WHERE w.serial = c.serial AND w.station = c.station)"
	  "  ON CONFLICT (kind, subject) DO NOTHING RETURNING 1)"
	  " SELECT (SELECT count(*) FROM a) + (SELECT count(*) FROM b)", { K_ISSUER, K_CERT_SERIAL, K_SERIAL } },
};

static int
cmp_span(const void *a, const void *b)
{
	const struct span *x = a, *y = b;

	return x->lo < y->lo ? -1 : x->lo > y->lo;
}

/* Sort and merge the spans in place; returns how many remain. */
static size_t
merge_spans(struct span *v, size_t n)
{
	size_t i, k = 0;

	qsort(v, n, sizeof(*v), cmp_span);
	for (i = 0; i < n; i++) {
		if (k && v[i].lo <= v[k - 1].hi + 1) {
			if (v[i].hi > v[k - 1].hi)
				v[k - 1].hi = v[i].hi;
		} else {
			v[k++] = v[i];
		}
	}
	return k;
}

/* Which of the bundle's records the registry already holds, checked to be
 * the same records.  Every seq the registry holds came with a bundle
 * (bundles.first_seq..last_seq), and each bundle is one hash chain: where an
 * earlier bundle [c, d] overlaps this one [a, b], the two agree on all of
 * [max(a,c), min(b,d)] exactly when they agree on the record at min(b,d).
 * So one hash per earlier bundle proves the overlap, or shows a fork.
 * Fills *held (merged, sorted); -1 on a database error; 1 on a fork (oc). */
static int
held_spans(struct reg *r, struct load *ld, struct span **held, size_t *nheld, struct reg_outcome *oc, st_err *err)
{
	uint64_t a = ld->first_seq, b = ld->first_seq + ld->records - 1, pt;
	const char *p[2];
	PGresult *res = NULL;
	struct span *v = NULL;
	char *pts = NULL;
	size_t n, i, len = 0;
	int ret = -1, nt;

	*held = NULL;
	*nheld = 0;
	p[0] = ld->station;
	if (!(res = reg_query(r, "SELECT first_seq, last_seq FROM bundles WHERE station = $1", 1, p, err)))
		goto out;
	nt = PQntuples(res);
	if (!(v = calloc((size_t)nt + 1, sizeof(*v))) || !(pts = malloc((size_t)nt * 24 + 3)))
		goto oom;
	pts[len++] = '{';
	for (i = 0, n = 0; i < (size_t)nt; i++) {
		v[n].lo = strtoull(PQgetvalue(res, (int)i, 0), NULL, 10);
		v[n].hi = strtoull(PQgetvalue(res, (int)i, 1), NULL, 10);
		if (v[n].lo > b || v[n].hi < a)
			continue;
		pt = v[n].hi < b ? v[n].hi : b;
		len += (size_t)sprintf(pts + len, "%s%" PRIu64, len > 1 ? "," : "", pt);
		n++;
	}
	pts[len++] = '}';
	pts[len] = 0;
	PQclear(res);
	res = NULL;
	if (n) {
		p[1] = pts;
		if (!(res = reg_query(r, "SELECT seq, hash FROM records WHERE station = $1 AND seq = ANY ($2::bigint[])", 2, p,
		          err)))
			goto out;
		for (i = 0; i < (size_t)PQntuples(res); i++) {
			uint64_t seq = strtoull(PQgetvalue(res, (int)i, 0), NULL, 10);
			const char *have = PQgetvalue(res, (int)i, 1), *mine = ld->hash[seq - a];

			if (strcmp(have, mine) != 0) {
				/* Name the first record that differs: it is where the two
				 * journals parted. */
				char lo[24], hi[24];
				const char *q[3] = { ld->station, lo, hi };

				PQclear(res);
				snprintf(lo, sizeof(lo), "%" PRIu64, a);
				snprintf(hi, sizeof(hi), "%" PRIu64, b);
				if (!(res = reg_query(r,
				          "SELECT seq, hash FROM records WHERE station = $1 AND seq BETWEEN $2 AND $3 ORDER BY seq", 3, q,
				          err)))
					goto out;
				for (i = 0; i < (size_t)PQntuples(res); i++) {
					seq = strtoull(PQgetvalue(res, (int)i, 0), NULL, 10);
					have = PQgetvalue(res, (int)i, 1);
					mine = ld->hash[seq - a];
					if (strcmp(have, mine) != 0)
						break;
				}
				oc->refused = 1;
				snprintf(oc->reason, sizeof(oc->reason),
				    "fork: station %s seq %" PRIu64 " is already in the registry with hash %.16s..., this bundle has "
				    "%.16s...; two journals claim the same records: find out which station's journal was copied or "
				    "rewritten",
				    ld->station, seq, have, mine);
				ret = 1;
				goto out;
			}
		}
	}
	*nheld = merge_spans(v, n);
	*held = v;
	v = NULL;
	ret = 0;
	goto out;
oom:
	st_err_set(err, ST_E_NOMEM, "out of memory");
out:
	PQclear(res);
	free(pts);
	free(v);
	return ret;
}

/* [a, b] less the held spans (sorted, merged) into nw; returns the count. */
static size_t
new_spans(uint64_t a, uint64_t b, const struct span *held, size_t nheld, struct span *nw)
{
	size_t i, n = 0;
	uint64_t at = a;

	for (i = 0; i < nheld && at <= b; i++) {
		if (held[i].hi < at)
			continue;
		if (held[i].lo > at)
			nw[n++] = (struct span){ at, held[i].lo - 1 < b ? held[i].lo - 1 : b };
		at = held[i].hi + 1;
	}
	if (at <= b)
		nw[n++] = (struct span){ at, b };
	return n;
}

/* What the station's sequence still misses, from its bundles' ranges. */
static int
report_gaps(struct reg *r, const char *station, struct reg_outcome *oc, st_err *err)
{
	const char *p[1] = { station };
	PGresult *res = reg_query(r, "SELECT first_seq, last_seq FROM bundles WHERE station = $1", 1, p, err);
	struct span *v;
	size_t n, i;
	uint64_t at = 1;

	if (!res)
		return -1;
	n = (size_t)PQntuples(res);
	if (!(v = calloc(n + 1, sizeof(*v)))) {
		PQclear(res);
		return st_err_set(err, ST_E_NOMEM, "out of memory");
	}
	for (i = 0; i < n; i++) {
		v[i].lo = strtoull(PQgetvalue(res, (int)i, 0), NULL, 10);
		v[i].hi = strtoull(PQgetvalue(res, (int)i, 1), NULL, 10);
	}
	PQclear(res);
	n = merge_spans(v, n);
	for (i = 0; i < n && json_array_size(oc->gaps) < 100; i++) {
		if (v[i].lo > at)
			json_array_append_new(oc->gaps, json_pack("[I,I]", (json_int_t)at, (json_int_t)(v[i].lo - 1)));
		at = v[i].hi + 1;
	}
	free(v);
	return 0;
}

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

/* Is seq in one of the spans (sorted, merged)? */
static int
in_spans(uint64_t seq, const struct span *v, size_t n)
{
	size_t lo = 0, hi = n;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (v[mid].hi < seq)
			lo = mid + 1;
		else if (v[mid].lo > seq)
			hi = mid;
		else
			return 1;
	}
	return 0;
}

/* The keys of the new records as a PostgreSQL array literal; how many. */
static size_t
keys_array(const struct keys *k, const struct span *nw, size_t nn, struct tbuf *out)
{
	size_t i, n = 0;
	const char *s;

	out->len = 0;
	tb_put(out, "{", 1);
	for (i = 0; i < k->n; i++) {
		if (!in_spans(k->e[i].seq, nw, nn))
			continue;
		if (n++)
			tb_put(out, ",", 1);
		tb_put(out, "\"", 1);
		for (s = k->e[i].v; *s; s++) {
			if (*s == '"' || *s == '\\')
				tb_put(out, "\\", 1);
			tb_put(out, s, 1);
		}
		tb_put(out, "\"", 1);
	}
	tb_put(out, "}", 1);
	return n;
}

/* The alarm queries for what the new spans of the bundle add. */
static int
raise_alarms(struct reg *r, const struct load *ld, const struct span *nw, size_t nn, struct reg_outcome *oc, st_err *err)
{
	struct tbuf arr[K_KINDS];
	size_t count[K_KINDS], i, k;
	const char *p[3];
	PGresult *res;
	int ret = -1;

	memset(arr, 0, sizeof(arr));
	for (k = 0; k < K_KINDS; k++)
		count[k] = keys_array(&ld->keys[k], nw, nn, &arr[k]);
	for (k = 0; k < K_KINDS; k++)
		if (arr[k].oom) {
			st_err_set(err, ST_E_NOMEM, "out of memory");
			goto out;
		}
	/* One transaction at a time from here to its commit: each statement
	 * below sees what every load that took the lock before committed, so of
	 * two loads that contradict each other the later one raises the alarm. */
	if (reg_exec(r, "SELECT pg_advisory_xact_lock(5252003); SET LOCAL enable_seqscan = off; SET LOCAL enable_bitmapscan = off",
	        err) < 0)
		goto out;
	for (i = 0; i < sizeof(alarm_q) / sizeof(alarm_q[0]); i++) {
		size_t any = 0;
		int n;

		for (n = 0; n < 3 && alarm_q[i].arg[n] >= 0; n++) {
			p[n] = arr[alarm_q[i].arg[n]].p;
			any += count[alarm_q[i].arg[n]];
		}
		if (!any)
			continue; /* the new records name nothing it looks for */
		if (!(res = reg_query(r, alarm_q[i].sql, n, p, err))) {
			st_err_prefix(err, "alarm query %zu", i + 1);
			goto out;
		}
		oc->new_alarms += strtoll(PQgetvalue(res, 0, 0), NULL, 10);
		PQclear(res);
	}
	ret = 0;
out:
	for (k = 0; k < K_KINDS; k++)
		free(arr[k].p);
	return ret;
}

static int
load_db(struct reg *r, struct load *ld, const audit_report *rep, const char *manifest_sha, struct reg_outcome *oc,
    st_err *err)
{
	const char *p[8];
	char n1[24], n2[24], n3[24], n4[24], prefix[32];
	PGresult *res = NULL;
	struct span *held = NULL, *nw = NULL;
	size_t nheld = 0, nn, i;
	uint64_t fresh = 0;
	int64_t bundle;
	int ret = -1, rc;

	/* One load of a station at a time: its fork check must see every
	 * committed record of it.  Other stations load meanwhile (the alarm
	 * queries, which look across stations, take a lock of their own). */
	if (reg_exec(r, "BEGIN", err) < 0)
		goto out;
	p[0] = ld->station;
	if (!(res = reg_query(r, "SELECT pg_advisory_xact_lock(5252002, hashtext($1))", 1, p, err)))
		goto out;
	PQclear(res);
	if (!(res = reg_query(r, "SELECT signer FROM stations WHERE station = $1", 1, p, err)))
		goto out;
	oc->new_station = PQntuples(res) == 0;
	/* A station is enrolled with the subject of the audit key that seals
	 * its journal: another station's key (it chains to the same root) must
	 * not write this station's records. */
	if (oc->new_station && !r->enroll)
		snprintf(oc->reason, sizeof(oc->reason),
		    "station %.200s is not enrolled in the registry: enroll it once with 'station-registry stations add %.200s "
		    "--cert AUDIT.pem' (the audit certificate that seals its journal: the first certificate of the bundle's "
		    "audit-chain.pem), or ingest with --enroll to enroll it with this bundle's signer (%.200s)",
		    ld->station, ld->station, rep->signer);
	else if (!oc->new_station && strcmp(PQgetvalue(res, 0, 0), rep->signer) != 0)
		snprintf(oc->reason, sizeof(oc->reason),
		    "station %.200s is enrolled with audit key %.200s, but this bundle is sealed by %.200s: another station's "
		    "key cannot write its records (if the station's audit certificate was renewed under another subject, "
		    "enrol the new one with 'station-registry stations add %.200s --cert NEW.pem --replace')",
		    ld->station, PQgetvalue(res, 0, 0), rep->signer, ld->station);
	PQclear(res);
	res = NULL;
	if (oc->reason[0]) {
		oc->refused = 1;
		ret = reg_exec(r, "ROLLBACK", err);
		goto out;
	}
	if ((rc = held_spans(r, ld, &held, &nheld, oc, err)) < 0)
		goto out;
	if (rc > 0) {
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
	if (!(nw = calloc(nheld + 1, sizeof(*nw)))) {
		st_err_set(err, ST_E_NOMEM, "out of memory");
		goto out;
	}
	nn = new_spans(ld->first_seq, ld->first_seq + ld->records - 1, held, nheld, nw);
	for (i = 0; i < nn; i++)
		fresh += nw[i].hi - nw[i].lo + 1;
	oc->new_records = (long long)fresh;
	if (fresh) {
		if (oc->new_station) {
			p[0] = ld->station;
			p[1] = rep->signer;
			if (!(res = reg_query(r, "INSERT INTO stations (station, signer) VALUES ($1, $2)", 2, p, err)))
				goto out;
			PQclear(res);
			res = NULL;
		}
		snprintf(n1, sizeof(n1), "%" PRIu64, rep->first_seq);
		snprintf(n2, sizeof(n2), "%" PRIu64, rep->last_seq);
		snprintf(n3, sizeof(n3), "%" PRIu64, ld->records);
		snprintf(n4, sizeof(n4), "%" PRIu64, fresh);
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
		snprintf(prefix, sizeof(prefix), "%" PRId64 "\t", bundle);
		if (copy_new(r,
		        "COPY records (bundle, station, seq, hash, time, operator, recipe, jig, device, step, result, engineering,"
		        " details) FROM STDIN",
		        &ld->rec, &ld->rec_rows, nw, nn, prefix, err) < 0 ||
		    copy_new(r,
		        "COPY certificates (station, seq, device, issuer, serial, subject, not_before, not_after, cert_sha256,"
		        " pubkey_sha256, time) FROM STDIN",
		        &ld->cert, &ld->cert_rows, nw, nn, "", err) < 0 ||
		    copy_new(r, "COPY revocations (station, seq, device, serial, reason, time) FROM STDIN", &ld->rev,
		        &ld->rev_rows, nw, nn, "", err) < 0)
			goto out;
		if (raise_alarms(r, ld, nw, nn, oc, err) < 0)
			goto out;
	}
	if (report_gaps(r, ld->station, oc, err) < 0 || reg_exec(r, "COMMIT", err) < 0)
		goto out;
	ret = 0;
out:
	PQclear(res);
	free(held);
	free(nw);
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

/* One bundle, verified and made ready to load (or refused: oc). */
struct prep {
	const char *path;
	struct load ld;
	audit_report *rep;
	char mhex[65];
	struct reg_outcome oc;
	int ready;
	int state;  /* 0 waiting, 1 loading, 2 done */
	int failed; /* the load failed: err */
	st_err err;
};

static void
refuse(struct prep *pp, const char *fmt, ...) ST_PRINTF(2, 3);

static void
refuse(struct prep *pp, const char *fmt, ...)
{
	va_list ap;

	pp->oc.refused = 1;
	va_start(ap, fmt);
	vsnprintf(pp->oc.reason, sizeof(pp->oc.reason), fmt, ap);
	va_end(ap);
}

/* Verify the bundle completely, collecting its rows; touches no database.
 * Safe to run for several bundles at once (trust is only read). */
static void
prepare(struct prep *pp, X509_STORE *trust)
{
	const audit_report *rep;
	int rc;
	st_err verr;

	/* One pass: the records are collected for COPY as they verify, and
	 * count only if everything (seals, manifest) verifies after them. */
	rc = audit_verify_each(pp->path, trust, scan_cb_stop, &pp->ld, &pp->rep, &verr);
	rep = pp->rep;
	if (pp->ld.mixed)
		refuse(pp, "one bundle holds one station's journal: %s", pp->ld.mixed_what);
	else if (rc > 0)
		refuse(pp, "%s", pp->ld.problem[0] ? pp->ld.problem : "out of memory");
	else if (rc < 0 && verr.code != ST_E_VERIFY)
		refuse(pp, "cannot verify: %s", verr.msg);
	else if (rep->n_problems)
		refuse(pp, "verification failed (%zu problem%s): %s", rep->n_problems, rep->n_problems == 1 ? "" : "s",
		    rep->first_broken ? rep->first_broken : rep->problems[0]);
	else if (!rep->bundle)
		refuse(pp, "not an export bundle (no manifest.json): ingest what 'station audit export' writes, not a live "
		           "journal");
	else if (!rep->records)
		refuse(pp, "the bundle holds no records");
	else if (rep->sealed != rep->batches || pp->ld.records != rep->records)
		refuse(pp, "not every batch carries a verified seal");
	else if (manifest_digest(pp->path, pp->mhex, &verr) < 0)
		refuse(pp, "%s", verr.msg);
}

static void
prep_clear(struct prep *pp)
{
	size_t k;

	audit_report_free(pp->rep);
	free(pp->ld.rec.p);
	free(pp->ld.cert.p);
	free(pp->ld.rev.p);
	free(pp->ld.rec_rows.v);
	free(pp->ld.cert_rows.v);
	free(pp->ld.rev_rows.v);
	free(pp->ld.hash);
	free(pp->ld.issuer_der);
	for (k = 0; k < K_KINDS; k++)
		keys_free(&pp->ld.keys[k]);
	pp->rep = NULL;
	memset(&pp->ld, 0, sizeof(pp->ld));
}

int
reg_ingest_bundle(struct reg *r, const char *path, X509_STORE *trust, struct reg_outcome *oc, st_err *err)
{
	struct prep pp;
	int ret = 0;

	memset(&pp, 0, sizeof(pp));
	pp.path = path;
	pp.oc = *oc;
	prepare(&pp, trust);
	if (!pp.oc.refused)
		ret = load_db(r, &pp.ld, pp.rep, pp.mhex, &pp.oc, err);
	*oc = pp.oc;
	prep_clear(&pp);
	return ret;
}

/* Several bundles: verifier threads check the next bundles while loader
 * threads, each on its own connection, load the ones verified, one
 * transaction each; the main thread reports them in the order given.  The
 * server's share of a load (COPY, index upkeep, the alarm queries) is as
 * large as the verification, and one connection is one server process: with
 * --jobs N the server works on N bundles at once.  A bundle waits for the
 * earlier bundles of its station (what is loaded, and when a bundle is
 * refused, is the same as one at a time); load_db's locks keep the fork
 * check per station and the alarm queries one at a time. */
struct pipeline {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	struct prep *jobs;
	size_t n, next, next_load, loaded, ahead;
	int stop;            /* a load failed: take no more */
	X509_STORE *trust;
	const struct reg *r; /* what every loader's connection copies */
};

static void *
verifier(void *arg)
{
	struct pipeline *pl = arg;
	size_t i;

	for (;;) {
		pthread_mutex_lock(&pl->mu);
		while (!pl->stop && pl->next < pl->n && pl->next >= pl->loaded + pl->ahead)
			pthread_cond_wait(&pl->cv, &pl->mu);
		if (pl->stop || pl->next >= pl->n) {
			pthread_mutex_unlock(&pl->mu);
			return NULL;
		}
		i = pl->next++;
		pthread_mutex_unlock(&pl->mu);
		prepare(&pl->jobs[i], pl->trust);
		pthread_mutex_lock(&pl->mu);
		pl->jobs[i].ready = 1;
		pthread_cond_broadcast(&pl->cv);
		pthread_mutex_unlock(&pl->mu);
	}
}

/* An earlier bundle of job k's station still loading (mu held). */
static int
station_busy(const struct pipeline *pl, size_t k)
{
	size_t j;

	for (j = 0; j < k; j++)
		if (pl->jobs[j].state == 1 && strcmp(pl->jobs[j].ld.station, pl->jobs[k].ld.station) == 0)
			return 1;
	return 0;
}

static void *
loader(void *arg)
{
	struct pipeline *pl = arg;
	struct reg r = *pl->r;
	struct prep *pp;
	size_t k;
	int connected = 0;

	r.conn = NULL;
	for (;;) {
		pthread_mutex_lock(&pl->mu);
		while (!pl->stop && pl->next_load < pl->n && !pl->jobs[pl->next_load].ready)
			pthread_cond_wait(&pl->cv, &pl->mu);
		if (pl->stop || pl->next_load >= pl->n) {
			pthread_mutex_unlock(&pl->mu);
			break;
		}
		k = pl->next_load++;
		pp = &pl->jobs[k];
		pp->state = 1; /* loading */
		while (station_busy(pl, k))
			pthread_cond_wait(&pl->cv, &pl->mu);
		pthread_mutex_unlock(&pl->mu);
		pp->oc.gaps = json_array();
		if (!pp->oc.refused) {
			if (!connected && reg_connect(&r, &pp->err) < 0)
				pp->failed = 1;
			else if ((connected = 1, load_db(&r, &pp->ld, pp->rep, pp->mhex, &pp->oc, &pp->err) < 0))
				pp->failed = 1;
		}
		pthread_mutex_lock(&pl->mu);
		pp->state = 2; /* done */
		if (pp->failed)
			pl->stop = 1;
		pthread_cond_broadcast(&pl->cv);
		pthread_mutex_unlock(&pl->mu);
	}
	reg_disconnect(&r);
	return NULL;
}

static unsigned
verifier_count(size_t bundles)
{
	long cpus = sysconf(_SC_NPROCESSORS_ONLN);
	unsigned n = cpus > 1 ? (unsigned)cpus : 1;

	if (n > 8)
		n = 8;
	return bundles < n ? (unsigned)bundles : n;
}

static void
ingest_usage(FILE *f)
{
	fprintf(f, "usage: station-registry [--db URI] [--json] ingest --ca ROOT.pem [--enroll] [--jobs N] BUNDLE...\n"
	           "\n"
	           "Verify each export bundle completely (seals up to ROOT.pem, the hash chain, the\n"
	           "manifest), then load it in one transaction.  A bundle that does not verify is\n"
	           "refused with the reason.  Ingesting a bundle again, or overlapping bundles,\n"
	           "changes nothing; the same station and seq with another record is a fork: refused,\n"
	           "and an alarm raised.  Gaps in a station's sequence are reported.\n"
	           "A station must be enrolled (station-registry stations add), and its bundles sealed\n"
	           "by the audit key it was enrolled with; --enroll enrolls an unknown station with\n"
	           "its bundle's signer.\n"
	           "--jobs N loads N bundles at once, each on its own connection (default: the\n"
	           "number of CPUs, at most 8): the server's work on a bundle is as large as\n"
	           "verifying it.  Bundles of one station load in the order given.\n"
	           "Exit: 0 every bundle loaded (or was already there), 1 one was refused, 2 usage or\n"
	           "configuration error (no database, bad --ca).\n");
}

static void
report(struct reg *r, json_t *all, struct prep *pp)
{
	const struct reg_outcome *oc = &pp->oc;
	size_t gi;

	if (r->json) {
		json_array_append_new(all, oc->refused ?
		        json_pack("{s:s,s:s,s:s}", "bundle", pp->path, "status", "refused", "reason", oc->reason) :
		        json_pack("{s:s,s:s,s:b,s:I,s:I,s:O}", "bundle", pp->path, "status",
		            oc->new_records ? "loaded" : "already-ingested", "new_station", oc->new_station, "new_records",
		            (json_int_t)oc->new_records, "new_alarms", (json_int_t)oc->new_alarms, "gaps", oc->gaps));
	} else if (oc->refused) {
		printf("%s: REFUSED: %s\n", reg_safe(pp->path), reg_safe(oc->reason));
	} else {
		printf("%s: %s: %lld new record%s%s", reg_safe(pp->path), oc->new_records ? "loaded" : "already ingested",
		    oc->new_records, oc->new_records == 1 ? "" : "s", oc->new_station && oc->new_records ? ", new station" : "");
		if (oc->new_alarms)
			printf(", %lld new alarm%s (station-registry alarms)", oc->new_alarms, oc->new_alarms == 1 ? "" : "s");
		printf("\n");
		for (gi = 0; gi < json_array_size(oc->gaps); gi++)
			printf("  gap: seq %" JSON_INTEGER_FORMAT "..%" JSON_INTEGER_FORMAT " not ingested yet\n",
			    json_integer_value(json_array_get(json_array_get(oc->gaps, gi), 0)),
			    json_integer_value(json_array_get(json_array_get(oc->gaps, gi), 1)));
	}
	fflush(stdout);
}

int
cmd_ingest(struct reg *r, int argc, char **argv)
{
	enum { O_CA = 1, O_JSON, O_ENROLL, O_JOBS, O_HELP };
	static const struct option opts[] = {
		{ "ca", required_argument, NULL, O_CA },
		{ "json", no_argument, NULL, O_JSON },
		{ "enroll", no_argument, NULL, O_ENROLL },
		{ "jobs", required_argument, NULL, O_JOBS },
		{ "help", no_argument, NULL, O_HELP },
		{ NULL, 0, NULL, 0 },
	};
	const char *ca = NULL;
	X509_STORE *trust = NULL;
	json_t *all = json_array();
	struct pipeline pl;
	pthread_t verifiers[8], loaders[8];
	unsigned nverify, nload, jobs = 0, t;
	size_t k;
	int c, ret = EXIT_USAGE, refused = 0, failed = 0;
	char *end;
	st_err err;

	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case O_CA: ca = optarg; break;
		case O_JSON: r->json = 1; break;
		case O_ENROLL: r->enroll = 1; break;
		case O_JOBS:
			jobs = (unsigned)strtoul(optarg, &end, 10);
			if (*end || !*optarg || jobs < 1 || jobs > 8) {
				fprintf(stderr, "station-registry ingest: --jobs %s: give a number from 1 to 8\n", optarg);
				goto out;
			}
			break;
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
	/* The database must answer before any work: a wrong --db is a usage error. */
	if (reg_connect(r, &err) < 0) {
		fprintf(stderr, "station-registry ingest: %s\n", err.msg);
		goto out;
	}
	reg_disconnect(r);
	memset(&pl, 0, sizeof(pl));
	pl.n = (size_t)(argc - optind);
	if (!(pl.jobs = calloc(pl.n, sizeof(*pl.jobs)))) {
		fprintf(stderr, "station-registry ingest: out of memory\n");
		ret = EXIT_FAIL;
		goto out;
	}
	pthread_mutex_init(&pl.mu, NULL);
	pthread_cond_init(&pl.cv, NULL);
	pl.trust = trust;
	pl.r = r;
	for (k = 0; k < pl.n; k++)
		pl.jobs[k].path = argv[optind + (int)k];
	nverify = verifier_count(pl.n);
	nload = jobs ? jobs : verifier_count(pl.n);
	if (nload > pl.n)
		nload = (unsigned)pl.n;
	pl.ahead = nverify + nload;
	for (t = 0; t < nverify; t++)
		if (pthread_create(&verifiers[t], NULL, verifier, &pl) != 0)
			break;
	nverify = t;
	for (t = 0; t < nload; t++)
		if (pthread_create(&loaders[t], NULL, loader, &pl) != 0)
			break;
	nload = t;
	if (!nverify || !nload) {
		fprintf(stderr, "station-registry ingest: cannot start threads\n");
		pthread_mutex_lock(&pl.mu);
		pl.stop = 1;
		pthread_cond_broadcast(&pl.cv);
		pthread_mutex_unlock(&pl.mu);
		failed = 1;
	}
	/* Report in the order given, as each bundle is done. */
	for (k = 0; k < pl.n && !failed; k++) {
		struct prep *pp = &pl.jobs[k];

		pthread_mutex_lock(&pl.mu);
		while (pp->state != 2 && !(pl.stop && pp->state == 0))
			pthread_cond_wait(&pl.cv, &pl.mu);
		pthread_mutex_unlock(&pl.mu);
		if (pp->state != 2)
			break; /* never started: a load before it failed */
		if (pp->failed) {
			fprintf(stderr, "station-registry ingest: %s: %s; nothing of it was loaded (the transaction rolled back): run ingest again\n",
			    pp->path, pp->err.msg);
			ret = EXIT_FAIL;
			failed = 1;
			continue;
		}
		refused |= pp->oc.refused;
		report(r, all, pp);
		json_decref(pp->oc.gaps);
		pp->oc.gaps = NULL;
		prep_clear(pp);
		pthread_mutex_lock(&pl.mu);
		pl.loaded++;
		pthread_cond_broadcast(&pl.cv);
		pthread_mutex_unlock(&pl.mu);
	}
	pthread_mutex_lock(&pl.mu);
	pl.stop = 1;
	pthread_cond_broadcast(&pl.cv);
	pthread_mutex_unlock(&pl.mu);
	for (t = 0; t < nverify; t++)
		pthread_join(verifiers[t], NULL);
	for (t = 0; t < nload; t++)
		pthread_join(loaders[t], NULL);
	/* Loaded after the failure was seen: they count, and are reported. */
	for (; k < pl.n; k++)
		if (pl.jobs[k].state == 2 && !pl.jobs[k].failed) {
			refused |= pl.jobs[k].oc.refused;
			report(r, all, &pl.jobs[k]);
		}
	for (k = 0; k < pl.n; k++) {
		json_decref(pl.jobs[k].oc.gaps);
		prep_clear(&pl.jobs[k]);
	}
	free(pl.jobs);
	pthread_cond_destroy(&pl.cv);
	pthread_mutex_destroy(&pl.mu);
	if (failed) {
		ret = EXIT_FAIL;
		goto out;
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
