/* The one reader of a device's history (station/history.c): a journal
 * written with libaudit, read back by history_load, must say what resume,
 * rework, revocation, the CRL and key uniqueness need; and the history kept
 * current record by record (as `station run` does) must equal the one read
 * back from disk, so no reader can see another history than the others. */
#include <stdlib.h>
#include <string.h>

#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/x509.h>

#include "audit.h"
#include "history.h"
#include "testutil.h"

struct jw {
	char *dir;
	audit_journal *j;
	history *live; /* applied record by record, as station_journal does */
};

static void
jw_open(struct jw *w, unsigned batch_devices)
{
	audit_config cfg = { "station-h", "tester", "", batch_devices, 0, NULL };
	st_err err;

	w->dir = tu_tmpdir("history");
	ck_assert_msg((w->j = audit_open(w->dir, &cfg, &err)) != NULL, "audit_open: %s", err.msg);
	ck_assert_ptr_nonnull(w->live = history_new());
}

static void
jw_close(struct jw *w)
{
	audit_close(w->j);
	history_free(w->live);
	tu_rmtree(w->dir);
	free(w->dir);
}

/* Append one record (details stolen) and apply it to the live history. */
static void
rec(struct jw *w, const char *device, const char *step, const char *result, json_t *details)
{
	audit_event ev = { .jig = "tcp:127.0.0.1:1", .device = device, .step = step, .result = result, .details = details };
	audit_record r = { .device = device, .jig = ev.jig, .step = step, .result = result };
	audit_status s;
	uint64_t seq;
	st_err err;

	if (!details)
		ev.details = details = json_object();
	ck_assert_msg(audit_append(w->j, &ev, &seq, &err) == 0, "append %s: %s", step, err.msg);
	audit_get_status(w->j, &s);
	r.seq = seq;
	r.details = details;
	ck_assert_int_eq(history_apply(w->live, &r, s.batch), 0);
	json_decref(details);
}

/* A real certificate (self-signed P-256) with the given serial, as the
 * "issued" record holds it: base64 DER, its SHA-256, its key's SHA-256. */
struct cert {
	char *b64;
	char sha256[65];
	char pubkey_sha256[65];
	uint8_t *der;
	int len;
};

static void
make_cert(struct cert *c, long serial)
{
	EVP_PKEY *k = EVP_EC_gen("P-256");
	X509 *x = X509_new();
	unsigned char *spki = NULL;
	int n;

	ck_assert_ptr_nonnull(k);
	ck_assert_ptr_nonnull(x);
	ASN1_INTEGER_set(X509_get_serialNumber(x), serial);
	X509_gmtime_adj(X509_getm_notBefore(x), 0);
	X509_gmtime_adj(X509_getm_notAfter(x), 3600);
	X509_set_pubkey(x, k);
	ck_assert_int_gt(X509_sign(x, k, EVP_sha256()), 0);
	c->der = NULL;
	ck_assert_int_gt(c->len = i2d_X509(x, &c->der), 0);
	ck_assert_ptr_nonnull(c->b64 = malloc((size_t)(4 * ((c->len + 2) / 3) + 1)));
	EVP_EncodeBlock((unsigned char *)c->b64, c->der, c->len);
	st_sha256_hex(c->der, (size_t)c->len, c->sha256);
	ck_assert_int_gt(n = i2d_X509_PUBKEY(X509_get_X509_PUBKEY(x), &spki), 0);
	st_sha256_hex(spki, (size_t)n, c->pubkey_sha256);
	OPENSSL_free(spki);
	X509_free(x);
	EVP_PKEY_free(k);
}

static void
free_cert(struct cert *c)
{
	free(c->b64);
	OPENSSL_free(c->der);
}

static void
issue(struct jw *w, const char *dev, const char *serial, const struct cert *c, int announce)
{
	if (announce)
		rec(w, dev, "issuing", "ok", json_pack("{s:s,s:s}", "cert_serial", serial, "pubkey_sha256", c->pubkey_sha256));
	rec(w, dev, "issued", "ok", json_pack("{s:s,s:s,s:s}", "cert_serial", serial, "cert_sha256", c->sha256, "cert",
	    c->b64));
}

static int
dev_cmp(const history_device *d, void *ctx)
{
	history_device o;

	ck_assert_msg(history_device_get(ctx, d->serial, &o) == 0, "%s is only in one history", d->serial);
	ck_assert_msg(memcmp(&o, d, sizeof(o)) == 0, "the two histories of %s differ", d->serial);
	return 0;
}

static int
cert_cmp(const history_cert *c, void *ctx)
{
	history_cert o;

	ck_assert_msg(history_cert_get(ctx, c->serial, &o) == 0, "%s is only in one history", c->serial);
	/* the revocation time of an appended record is the time it was applied */
	o.revoked_at = c->revoked_at;
	ck_assert_msg(memcmp(&o, c, sizeof(o)) == 0, "the two histories of certificate %s differ", c->serial);
	return 0;
}

/* The history read from disk; it must equal the live one. */
static history *
reload(struct jw *w)
{
	history *h = history_new();
	st_err err;

	ck_assert_ptr_nonnull(h);
	ck_assert_msg(history_load(h, w->dir, &err) == 0, "history_load: %s", err.msg);
	ck_assert_uint_eq(history_device_count(h), history_device_count(w->live));
	ck_assert_uint_eq(history_cert_count(h), history_cert_count(w->live));
	history_foreach_device(h, dev_cmp, w->live);
	history_foreach_cert(h, cert_cmp, w->live);
	ck_assert_uint_eq(history_last_crl_number(h, NULL), history_last_crl_number(w->live, NULL));
	return h;
}

START_TEST(test_factory_life)
{
	struct jw w;
	struct cert c1, c2;
	history *h;
	history_device d;
	history_cert c;
	uint8_t pub[32], *der = NULL;
	size_t len, i;
	char owner[65];
	st_err err;

	make_cert(&c1, 0x0c5f4e73);
	make_cert(&c2, 0x7a);
	jw_open(&w, 3);
	/* SE-A: provisioned and locked. */
	rec(&w, "SE-A", "identify", "ok", NULL);
	issue(&w, "SE-A", "0C5F4E73", &c1, 1);
	rec(&w, "SE-A", "install", "ok", json_pack("{s:s}", "cert_serial", "0C5F4E73"));
	rec(&w, "SE-A", "lock", "ok", NULL);
	rec(&w, "SE-A", "done", "pass", json_pack("{s:s}", "cert_serial", "0C5F4E73"));
	/* SE-B: issued (in an old journal's spelling: lower case, no leading
	 * zero, no "issuing" record), then failed before INSTALL, revoked. */
	issue(&w, "SE-B", "7a", &c2, 0);
	rec(&w, "SE-B", "install", "fail", json_pack("{s:s}", "error", "timeout"));
	rec(&w, "SE-B", "revoke", "fail", json_pack("{s:s}", "cert_serial", "7A")); /* a failed revoke is none */
	/* SE-C: announced, never issued (killed while the HSM signed). */
	rec(&w, "SE-C", "issuing", "ok", json_pack("{s:s,s:s}", "cert_serial", "00C0FFEE", "pubkey_sha256",
	    "1111111111111111111111111111111111111111111111111111111111111111"));
	rec(&w, NULL, "crl", "ok", json_pack("{s:i}", "crl_number", 4));
	rec(&w, "SE-A", "done", "pass", NULL); /* closes batch 1 (3 devices) */
	rec(&w, "SE-B", "identify", "ok", NULL); /* batch 2 */

	h = reload(&w);
	ck_assert_int_eq(history_device_get(h, "SE-A", &d), 0);
	ck_assert_int_eq(d.state, HISTORY_PASSED);
	ck_assert(d.has_cert && d.cert_installed);
	ck_assert_str_eq(d.cert_serial, "0C5F4E73");
	ck_assert_uint_eq(d.issued, 1);
	ck_assert_int_eq(history_device_get(h, "SE-B", &d), 0);
	ck_assert_int_eq(d.state, HISTORY_SEEN);
	ck_assert_msg(d.has_cert && !d.cert_installed, "SE-B: live %d installed %d", d.has_cert, d.cert_installed);
	ck_assert_str_eq(d.cert_serial, "7A"); /* OpenSSL's spelling, whatever the journal said */
	ck_assert_int_eq(history_cert_get(h, "0x7a", &c), 0);
	ck_assert(c.issued && !c.revoked && !c.installed);
	ck_assert_str_eq(c.device, "SE-B");
	/* The key's digest came from the certificate itself. */
	ck_assert(c.has_pubkey);
	for (i = 0; i < 32; i++)
		sscanf(c2.pubkey_sha256 + 2 * i, "%2hhx", &pub[i]);
	ck_assert_int_eq(history_key_owner(h, pub, owner), 0);
	ck_assert_str_eq(owner, "SE-B");
	ck_assert_int_eq(history_cert_get(h, "c0ffee", &c), 0);
	ck_assert(!c.issued && !c.revoked);
	ck_assert_int_eq(history_device_get(h, "SE-C", &d), 0);
	ck_assert(!d.has_cert);
	ck_assert_uint_eq(history_last_crl_number(h, NULL), 4);
	ck_assert_uint_eq(history_issued_in_batch(h, 1), 0); /* only the open batch is counted */
	ck_assert_int_eq(history_device_get(h, "SE-Z", &d), -1);
	ck_assert_int_eq(history_cert_get(h, "0BAD", &c), -1);

	/* The certificate comes back from its "issued" record, byte for byte,
	 * from either history and in any spelling of its serial. */
	ck_assert_msg(history_cert_der(h, w.dir, "0c:5f:4e:73", &der, &len, &err) == 0, "%s", err.msg);
	ck_assert(len == (size_t)c1.len && memcmp(der, c1.der, len) == 0);
	free(der);
	ck_assert_msg(history_cert_der(w.live, w.dir, "7a", &der, &len, &err) == 0, "%s", err.msg);
	ck_assert(len == (size_t)c2.len && memcmp(der, c2.der, len) == 0);
	free(der);
	ck_assert_int_eq(history_cert_der(h, w.dir, "00C0FFEE", &der, &len, &err), -1); /* never issued */
	ck_assert_ptr_null(der);
	history_free(h);
	jw_close(&w);
	free_cert(&c1);
	free_cert(&c2);
}
END_TEST

/* Revocation, supersession, rework's retire, the close-out of an announced
 * serial, and a pass that a later refusal does not undo. */
START_TEST(test_revoke_and_rework)
{
	struct jw w;
	struct cert c1, c2, c3;
	history *h;
	history_device d;
	history_cert c;

	make_cert(&c1, 0x01);
	make_cert(&c2, 0x02);
	make_cert(&c3, 0x03);
	jw_open(&w, 0);
	issue(&w, "SE-R", "01", &c1, 1);
	rec(&w, "SE-R", "install", "ok", NULL); /* no cert_serial: the live one */
	rec(&w, "SE-R", "done", "pass", NULL);
	rec(&w, "SE-R", "posture", "fail", json_pack("{s:s}", "error", "locked")); /* a clone presented later */
	rec(&w, "SE-R", "rework-start", "ok", NULL);
	rec(&w, "SE-R", "retire", "ok", json_pack("{s:s}", "old_cert_serial", "01"));
	rec(&w, "SE-R", "revoke", "ok", json_pack("{s:s,s:s}", "cert_serial", "01", "reason", "superseded"));
	h = reload(&w);
	ck_assert_int_eq(history_device_get(h, "SE-R", &d), 0);
	ck_assert_int_eq(d.state, HISTORY_PASSED);
	ck_assert(d.retiring && !d.has_cert);
	ck_assert_str_eq(d.retired_serial, "01");
	ck_assert_int_eq(history_cert_get(h, "1", &c), 0);
	ck_assert(c.revoked && c.installed);
	ck_assert_str_eq(c.reason, "superseded");
	history_free(h);

	issue(&w, "SE-R", "02", &c2, 1);
	rec(&w, "SE-R", "install", "ok", json_pack("{s:s}", "cert_serial", "02"));
	rec(&w, "SE-R", "done", "pass", NULL);
	/* A second revocation does not change the first one's reason. */
	rec(&w, "SE-R", "revoke", "ok", json_pack("{s:s,s:s}", "cert_serial", "01", "reason", "keyCompromise"));
	/* Announced, closed out: never issued, on the CRL. */
	rec(&w, "SE-R", "issuing", "ok", json_pack("{s:s,s:s}", "cert_serial", "03", "pubkey_sha256", c3.pubkey_sha256));
	rec(&w, "SE-R", "revoke", "ok", json_pack("{s:s,s:s,s:b}", "cert_serial", "03", "reason", "cessationOfOperation",
	    "unissued", 1));
	h = reload(&w);
	ck_assert_int_eq(history_device_get(h, "SE-R", &d), 0);
	ck_assert(!d.retiring && d.has_cert && d.cert_installed);
	ck_assert_str_eq(d.cert_serial, "02");
	ck_assert_uint_eq(d.issued, 2);
	ck_assert_uint_eq(d.revoked, 2); /* 01, and 03 closed out */
	ck_assert_int_eq(history_cert_get(h, "01", &c), 0);
	ck_assert_str_eq(c.reason, "superseded");
	ck_assert_int_eq(history_cert_get(h, "03", &c), 0);
	ck_assert(c.unissued && c.revoked && !c.issued);
	ck_assert_str_eq(c.reason, "cessationOfOperation");
	history_free(h);
	jw_close(&w);
	free_cert(&c1);
	free_cert(&c2);
	free_cert(&c3);
}
END_TEST

struct rel_seen {
	unsigned n, number[4], issuing_after[4];
	char reason[4][32], station[4][32];
	int has_time[4];
};

static int
on_release(const history_release *r, void *ctx)
{
	struct rel_seen *s = ctx;
	const char *reason = json_string_value(json_object_get(r->details, "reason"));

	ck_assert_uint_lt(s->n, 4);
	s->number[s->n] = r->number;
	s->issuing_after[s->n] = r->issuing_after;
	snprintf(s->reason[s->n], sizeof(s->reason[0]), "%s", reason ? reason : "(none)");
	snprintf(s->station[s->n], sizeof(s->station[0]), "%s", r->station);
	s->has_time[s->n] = r->time && *r->time;
	s->n++;
	return 0;
}

/* The shift quota's view (quota.c): every "issuing" record, whatever its
 * result or device, and each "quota-release" record with what came after
 * it, a malformed one included (quota.c judges it, not the history). */
START_TEST(test_quota_releases)
{
	struct jw w;
	struct rel_seen s;
	history *h;

	jw_open(&w, 0);
	rec(&w, "SE-Q", "issuing", "ok", json_pack("{s:s}", "cert_serial", "11"));
	rec(&w, "SE-Q", "issuing", "fail", json_pack("{s:s}", "error", "HSM lost"));
	rec(&w, NULL, "quota-release", "ok", json_pack("{s:i,s:s}", "release", 1, "reason", "shift 2"));
	rec(&w, "SE-Q", "issuing", "ok", json_pack("{s:s}", "cert_serial", "12"));
	rec(&w, NULL, "quota-release", "ok", json_pack("{s:s}", "release", "two")); /* malformed: kept, counted */
	rec(&w, NULL, "issuing", "ok", NULL);
	h = reload(&w);
	ck_assert_uint_eq(history_issuing_count(h), 4);
	ck_assert_uint_eq(history_issuing_count(w.live), 4);
	memset(&s, 0, sizeof(s));
	history_foreach_release(h, on_release, &s);
	ck_assert_uint_eq(s.n, 2);
	ck_assert_uint_eq(s.number[0], 1);
	ck_assert_uint_eq(s.issuing_after[0], 2);
	ck_assert_str_eq(s.reason[0], "shift 2");
	ck_assert_str_eq(s.station[0], "station-h");
	ck_assert(s.has_time[0]);
	ck_assert_uint_eq(s.number[1], 2);
	ck_assert_uint_eq(s.issuing_after[1], 1);
	ck_assert_str_eq(s.reason[1], "(none)");
	/* Applied records carry no station or time: "" rather than NULL. */
	memset(&s, 0, sizeof(s));
	history_foreach_release(w.live, on_release, &s);
	ck_assert_uint_eq(s.n, 2);
	ck_assert_str_eq(s.station[0], "");
	ck_assert(!s.has_time[0]);
	history_free(h);
	jw_close(&w);
}
END_TEST

static Suite *
suite(void)
{
	Suite *s = suite_create("station-history");
	TCase *tc = tcase_create("history");

	tcase_add_test(tc, test_factory_life);
	tcase_add_test(tc, test_revoke_and_rework);
	tcase_add_test(tc, test_quota_releases);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	return tu_run_suite(suite());
}
