/* Revocation: a certificate issued but never installed (the device failed
 * after SIGN) is revoked when `station run` ends; `station crl` lists it,
 * openssl accepts the CRL and rejects that leaf with it; CRL numbers
 * increase.  `station revoke`: usage and configuration errors (exit 2), an
 * already revoked certificate (exit 0, says so), and what a revocation
 * records. */
#include <ctype.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include "audit.h"
#include "rwutil.h"

/* Seconds from lastUpdate to nextUpdate. */
static long
crl_period(X509_CRL *crl)
{
	int days = 0, secs = 0;

	ck_assert_ptr_nonnull(X509_CRL_get0_nextUpdate(crl));
	ck_assert_int_eq(ASN1_TIME_diff(&days, &secs, X509_CRL_get0_lastUpdate(crl), X509_CRL_get0_nextUpdate(crl)), 1);
	return (long)days * 86400 + secs;
}

static void
device_serial(stu_sim *sim, unsigned index, char serial[JIG_STR_MAX + 1])
{
	jigsim_device_info info;

	ck_assert_int_eq(jigsim_device_get(sim->s, index, &info), 0);
	snprintf(serial, JIG_STR_MAX + 1, "%s", info.serial);
}

/* The station's copy of an SE's certificate: its path and serial. */
static char *
station_cert(stu_ws *w, const char *se, char serial[64])
{
	uint8_t *der;
	size_t len = 0;
	char *path = NULL;

	ck_assert_msg((der = stu_cert_der(w, se, &len)) != NULL, "no certificate for %s in the journal", se);
	tu_der_serial_hex(der, len, serial);
	OPENSSL_free(der);
	path = stu_cert_path(w, se);
	return path;
}

START_TEST(test_abandoned)
{
	stu_ws *w = stu_ws_new(tu_pki);
	stu_sim *sim;
	jigsim_config c;
	char good[JIG_STR_MAX + 1], bad[JIG_STR_MAX + 1], good_serial[64], bad_serial[64];
	char crl1[4200], crl2[4200], inter[4200], root[4200], *good_path, *bad_path, *out = NULL;
	size_t fail_at = 0, rev_at = 0;
	json_t *f, *recs, *rec;
	X509_CRL *x, *y;
	X509 *ca;
	FILE *fp;
	stu_journal j;
	stu_run r;
	int rc;

	/* Device 1 is good, device 2's certificate reads back wrong: it fails
	 * at INSTALL with a certificate issued and never installed. */
	jigsim_config_init(&c);
	c.devices = 2;
	c.faults = JIGSIM_F_READBACK_MISMATCH;
	c.fault_every = 2;
	sim = stu_sim_start(tu_pki, &c);
	stu_station_run(w, sim->uri, 2, 1, &r);
	ck_assert_msg(r.status == 1, "station run: exit %d\n%s\n%s", r.status, stu_tail(r.out), stu_tail(r.err));
	device_serial(sim, 1, good);
	device_serial(sim, 2, bad);
	ck_assert_ptr_nonnull(stu_event(&r, "passed", good));
	ck_assert_msg((f = stu_event(&r, "failed", bad)) != NULL, "device 2 did not fail\n%s", stu_tail(r.out));
	ck_assert_str_eq(stu_str(f, "step"), "install");
	good_path = station_cert(w, good, good_serial);
	bad_path = station_cert(w, bad, bad_serial);

	/* The journal: after the failure, a revocation of the issued serial. */
	recs = rw_records(w, bad);
	ck_assert_uint_eq(rw_count(recs, "issued", "ok"), 1);
	ck_assert_msg(strcasecmp(rw_detail(rw_record(recs, 0, "issued", "ok", NULL), "cert_serial"), bad_serial) == 0,
	    "the station's copy of %s is not the certificate it issued", bad);
	ck_assert_ptr_nonnull(rw_record(recs, 0, "install", "fail", &fail_at));
	ck_assert_uint_eq(rw_count(recs, "revoke", NULL), 1);
	ck_assert_ptr_nonnull(rec = rw_record(recs, 0, "revoke", "ok", &rev_at));
	ck_assert_uint_gt(rev_at, fail_at);
	ck_assert_msg(strcasecmp(rw_detail(rec, "cert_serial"), bad_serial) == 0, "revoked %s, issued %s",
	    rw_detail(rec, "cert_serial"), bad_serial);
	ck_assert_str_eq(rw_detail(rec, "reason"), "cessationOfOperation");
	json_decref(recs);
	recs = rw_records(w, good);
	ck_assert_uint_eq(rw_count(recs, "revoke", NULL), 0);
	json_decref(recs);

	/* The CRL lists it (and only it) with that reason; openssl accepts
	 * the CRL signed by the intermediate, not as the root's. */
	snprintf(crl1, sizeof(crl1), "%s/crl-1.pem", w->dir);
	snprintf(crl2, sizeof(crl2), "%s/crl-2.der", w->dir);
	snprintf(inter, sizeof(inter), "%s/intermediate.pem", tu_pki);
	snprintf(root, sizeof(root), "%s/root-ca.pem", tu_pki);
	rw_crl(w, crl1, NULL, NULL);
	x = rw_crl_load(crl1, 0);
	ck_assert_int_eq(rw_crl_reason(x, bad_serial), CRL_REASON_CESSATION_OF_OPERATION);
	ck_assert_int_eq(rw_crl_reason(x, good_serial), -2);
	ck_assert_int_eq(sk_X509_REVOKED_num(X509_CRL_get_REVOKED(x)), 1);
	ck_assert_int_eq(rw_crl_number(x), 1);
	ck_assert_int_eq(crl_period(x), 7 * 86400L); /* the recipe's rework.crl_next_update_days */
	ck_assert_msg(rw_openssl_crl_verify(crl1, inter, &out), "openssl crl -verify:\n%s", stu_tail(out));
	free(out);
	ck_assert_msg(!rw_openssl_crl_verify(crl1, root, &out), "openssl crl accepted the CRL as the root's:\n%s",
	    stu_tail(out));
	free(out);
	rc = rw_openssl_verify_crl(w, crl1, bad_path, &out);
	ck_assert_msg(rc != 0 && strstr(out, "certificate revoked"), "openssl verify -crl_check of the abandoned leaf: "
	    "exit %d\n%s", rc, stu_tail(out));
	free(out);
	rc = rw_openssl_verify_crl(w, crl1, good_path, &out);
	ck_assert_msg(rc == 0 && strstr(out, ": OK"), "openssl verify -crl_check of the good leaf: exit %d\n%s", rc,
	    stu_tail(out));
	free(out);

	/* The next CRL: number 2, DER, another period, the same entry, signed
	 * by the intermediate. */
	rw_crl(w, crl2, "--der", "--next-update-days=30");
	y = rw_crl_load(crl2, 1);
	ck_assert_int_eq(rw_crl_number(y), 2);
	ck_assert_int_eq(crl_period(y), 30 * 86400L);
	ck_assert_int_eq(rw_crl_reason(y, bad_serial), CRL_REASON_CESSATION_OF_OPERATION);
	ck_assert_int_eq(sk_X509_REVOKED_num(X509_CRL_get_REVOKED(y)), 1);
	ck_assert_ptr_nonnull(fp = fopen(inter, "r"));
	ck_assert_ptr_nonnull(ca = PEM_read_X509(fp, NULL, NULL, NULL));
	fclose(fp);
	ck_assert_int_eq(X509_CRL_verify(y, X509_get0_pubkey(ca)), 1);
	ck_assert_int_eq(X509_NAME_cmp(X509_CRL_get_issuer(y), X509_get_subject_name(ca)), 0);
	X509_free(ca);
	X509_CRL_free(x);
	X509_CRL_free(y);

	/* Both CRLs are in the journal, numbered. */
	recs = rw_records(w, NULL);
	ck_assert_uint_eq(rw_count(recs, "crl", "ok"), 2);
	rec = rw_record(recs, 0, "crl", "ok", &rev_at);
	ck_assert_int_eq(json_integer_value(json_object_get(json_object_get(rec, "details"), "crl_number")), 1);
	rec = rw_record(recs, rev_at + 1, "crl", "ok", NULL);
	ck_assert_int_eq(json_integer_value(json_object_get(json_object_get(rec, "details"), "crl_number")), 2);
	json_decref(recs);

	stu_journal_load(w->audit, &j);
	stu_journal_check_live(&j);
	stu_journal_clear(&j);
	stu_audit_verify(w);

	free(good_path);
	free(bad_path);
	stu_run_clear(&r);
	stu_sim_stop(sim);
	stu_ws_free(w);
}
END_TEST

/* A station killed between a device's "issuing" record and its "issued"
 * record (the HSM was signing) leaves a serial announced with no
 * certificate recorded.  The next run closes it out: a "revoke" record
 * (cessationOfOperation, "unissued") for that serial, before any device;
 * the device in the jig is provisioned with a new serial; `station crl`
 * lists the announced one, so no question remains whether a certificate
 * with it exists.  The journal state is what the kill leaves: the records
 * of the device up to and including its durable "issuing" record. */
START_TEST(test_announced_closed_out)
{
	stu_ws *w = stu_ws_new(tu_pki);
	stu_sim *sim;
	jigsim_config c;
	jigsim_device_info info;
	audit_config cfg = { 0 };
	audit_journal *aj;
	audit_event ev = { .jig = NULL, .step = "issuing", .result = "ok" };
	const char *announced = "4E0A11BEEF0DDBA11C0FFEE5EED0F00D";
	char crl[4200], *out = NULL;
	json_t *recs, *rec, *event;
	size_t i, closed = 0, at_close = 0, first_device = 0;
	stu_journal j;
	stu_ledger *l;
	X509_CRL *x;
	stu_run r;
	st_err err;

	jigsim_config_init(&c);
	c.devices = 3;
	sim = stu_sim_start(tu_pki, &c);
	stu_station_run(w, sim->uri, 1, 1, &r);
	ck_assert_msg(r.status == 0, "station run: exit %d\n%s", r.status, stu_tail(r.err));
	stu_run_clear(&r);
	/* Device 2 is in the jig: the killed station had announced its serial. */
	ck_assert_int_eq(jigsim_device_get(sim->s, 0, &info), 0);
	ck_assert_msg((aj = audit_open(w->audit, &cfg, &err)) != NULL, "audit_open: %s", err.msg);
	ev.jig = sim->uri;
	ev.device = info.serial;
	ev.details = json_pack("{s:s,s:s}", "cert_serial", announced, "pubkey_sha256",
	    "5eed5eed5eed5eed5eed5eed5eed5eed5eed5eed5eed5eed5eed5eed5eed5eed");
	ck_assert_msg(audit_append(aj, &ev, NULL, &err) == 0, "append: %s", err.msg);
	json_decref(ev.details);
	audit_close(aj);
	stu_audit_verify(w);

	stu_station_run(w, sim->uri, 1, 1, &r);
	ck_assert_msg(r.status == 0, "rerun: exit %d\n%s", r.status, stu_tail(r.err));
	ck_assert_msg((event = stu_event(&r, "revoked", info.serial)) != NULL, "the run does not say it closed %s out:\n%s",
	    announced, stu_tail(r.out));
	ck_assert_str_eq(stu_str(event, "certificate_serial"), announced);
	ck_assert_str_eq(stu_str(event, "reason"), "cessationOfOperation");
	ck_assert_ptr_nonnull(stu_event(&r, "passed", info.serial));
	stu_run_clear(&r);

	/* One close-out record, before the rerun's first device record. */
	recs = rw_records(w, info.serial);
	for (i = 0; i < json_array_size(recs); i++) {
		rec = json_array_get(recs, i);
		if (strcmp(stu_str(rec, "step"), "revoke") == 0 &&
		    strcmp(stu_str(json_object_get(rec, "details"), "cert_serial"), announced) == 0) {
			ck_assert_str_eq(stu_str(rec, "result"), "ok");
			ck_assert_str_eq(stu_str(json_object_get(rec, "details"), "reason"), "cessationOfOperation");
			ck_assert(json_is_true(json_object_get(json_object_get(rec, "details"), "unissued")));
			closed++;
			at_close = i;
		}
		if (strcmp(stu_str(rec, "step"), "identify") == 0 && !first_device && i > 0)
			first_device = i;
	}
	ck_assert_uint_eq(closed, 1);
	ck_assert_msg(at_close < first_device, "closed out at record %zu, after the device started (%zu)", at_close,
	    first_device);
	json_decref(recs);

	/* The device got a certificate of its own, with another serial. */
	stu_journal_load(w->audit, &j);
	stu_journal_check_live(&j);
	ck_assert_ptr_nonnull(l = stu_journal_dev(&j, info.serial));
	ck_assert_uint_eq(l->issued, 1);
	ck_assert_uint_eq(stu_live(l), 1);
	ck_assert_str_ne(l->done_serial, announced);
	stu_journal_clear(&j);
	stu_audit_verify(w);

	/* On the CRL; a third run closes nothing again. */
	snprintf(crl, sizeof(crl), "%s/closed.crl", w->dir);
	rw_crl(w, crl, NULL, NULL);
	ck_assert_ptr_nonnull(x = rw_crl_load(crl, 0));
	ck_assert_int_eq(rw_crl_reason(x, announced), 5); /* cessationOfOperation */
	X509_CRL_free(x);
	stu_station_run(w, sim->uri, 1, 1, &r);
	ck_assert_msg(r.status == 0, "third run: exit %d\n%s", r.status, stu_tail(r.err));
	ck_assert_msg(stu_event(&r, "revoked", NULL) == NULL, "closed out twice:\n%s", stu_tail(r.out));
	stu_run_clear(&r);
	free(out);
	stu_sim_stop(sim);
	stu_ws_free(w);
}
END_TEST

/* station revoke ARGS... with the workspace's recipe and operator "qa":
 * the exit status; the output in *out. */
static int
station_revoke(stu_ws *w, char **out, const char *a1, const char *a2, const char *a3, const char *a4)
{
	return tu_station(out, "revoke", "--recipe", w->recipe, "--operator", "qa", a1, a2, a3, a4, NULL);
}

static void
expect(int rc, char *out, int want, const char *says, const char *what)
{
	char cmd[256];

	snprintf(cmd, sizeof(cmd), "station revoke %s", what);
	stu_expect(rc, out, want, says, cmd);
}

START_TEST(test_revoke_cli)
{
	stu_ws *w = stu_ws_new(tu_pki);
	stu_sim *sim;
	jigsim_config c;
	char a[JIG_STR_MAX + 1], b[JIG_STR_MAX + 1], sa[64], sb[64], upper_b[80], crl[4200], *pa, *pb, *out = NULL;
	json_t *recs, *rec;
	X509_CRL *x;
	stu_run r;
	size_t i, n;
	int rc;

	jigsim_config_init(&c);
	c.devices = 2;
	sim = stu_sim_start(tu_pki, &c);
	stu_station_run(w, sim->uri, 2, 0, &r);
	ck_assert_msg(r.status == 0, "station run: exit %d\n%s\n%s", r.status, stu_tail(r.out), stu_tail(r.err));
	device_serial(sim, 1, a);
	device_serial(sim, 2, b);
	pa = station_cert(w, a, sa);
	pb = station_cert(w, b, sb);

	/* Usage and configuration errors: exit 2, nothing recorded. */
	rc = station_revoke(w, &out, "--device", a, "--reason", "lostInTheMail");
	expect(rc, out, 2, "unknown reason \"lostInTheMail\"", "with an unknown reason");
	rc = station_revoke(w, &out, "--device", a, "--reason", "removeFromCRL");
	expect(rc, out, 2, "unknown reason", "with reason removeFromCRL");
	rc = station_revoke(w, &out, "--reason", "keyCompromise", NULL, NULL);
	expect(rc, out, 2, "exactly one of --cert-serial or --device", "without a certificate");
	rc = station_revoke(w, &out, "--device", a, "--cert-serial", sa);
	expect(rc, out, 2, "need --recipe, --reason", "without a reason");
	rc = station_revoke(w, &out, "--cert-serial", "7f00112233445566", "--reason", "keyCompromise");
	expect(rc, out, 2, "was not issued by this station", "of an unknown serial");
	rc = station_revoke(w, &out, "--cert-serial", "not-hex", "--reason", "keyCompromise");
	expect(rc, out, 2, "expected hex digits", "of a malformed serial");
	rc = station_revoke(w, &out, "--cert-serial", "0c:5f::4e", "--reason", "keyCompromise");
	expect(rc, out, 2, "offset 5: expected hex digits", "of a malformed colon form");
	rc = station_revoke(w, &out, "--cert-serial", "0x", "--reason", "keyCompromise");
	expect(rc, out, 2, "no hex digits", "of an empty serial");
	rc = station_revoke(w, &out, "--device", "SE0000000000000000", "--reason", "keyCompromise");
	expect(rc, out, 2, "SE0000000000000000", "of an unknown device");
	recs = rw_records(w, NULL);
	ck_assert_uint_eq(rw_count(recs, "revoke", NULL), 0);
	json_decref(recs);

	/* Revocations: by device, and by serial (any case, leading zeros). */
	rc = station_revoke(w, &out, "--device", a, "--reason", "keyCompromise");
	expect(rc, out, 0, sa, "--device");
	/* sb as colon-separated lower-case bytes, as some tools print it */
	ck_assert_uint_eq(strlen(sb) % 2, 0);
	for (i = 0, n = 0; sb[i]; i += 2) {
		upper_b[n++] = (char)tolower((unsigned char)sb[i]);
		upper_b[n++] = (char)tolower((unsigned char)sb[i + 1]);
		if (sb[i + 2])
			upper_b[n++] = ':';
	}
	upper_b[n] = '\0';
	rc = station_revoke(w, &out, "--cert-serial", upper_b, "--reason", "affiliationChanged");
	expect(rc, out, 0, sb, "--cert-serial");
	/* Again: exit 0, says so, records nothing, the first reason stays
	 * (sa as 0x, lower case, leading zeros). */
	snprintf(upper_b, sizeof(upper_b), "0x00%s", sa);
	for (i = 0; upper_b[i]; i++)
		upper_b[i] = (char)tolower((unsigned char)upper_b[i]);
	rc = station_revoke(w, &out, "--cert-serial", upper_b, "--reason", "superseded");
	expect(rc, out, 0, "already revoked (keyCompromise)", "--cert-serial of a revoked certificate");
	rc = station_revoke(w, &out, "--device", b, "--reason", "superseded");
	expect(rc, out, 0, "already revoked (affiliationChanged)", "--device whose certificate is revoked");

	recs = rw_records(w, NULL);
	ck_assert_uint_eq(rw_count(recs, "revoke", "ok"), 2);
	rec = rw_record(recs, 0, "revoke", "ok", &i);
	ck_assert_str_eq(rw_detail(rec, "cert_serial"), sa);
	ck_assert_str_eq(rw_detail(rec, "reason"), "keyCompromise");
	ck_assert_str_eq(rw_detail(rec, "revoked_by"), "qa");
	ck_assert_str_eq(stu_str(rec, "operator"), "qa");
	rec = rw_record(recs, i + 1, "revoke", "ok", NULL);
	ck_assert_str_eq(rw_detail(rec, "cert_serial"), sb);
	ck_assert_str_eq(rw_detail(rec, "reason"), "affiliationChanged");
	json_decref(recs);

	/* certs/ keeps live certificates only: both copies moved aside. */
	ck_assert_ptr_null(strstr(pa, "/revoked/"));
	free(pa);
	free(pb);
	pa = stu_cert_path(w, a);
	pb = stu_cert_path(w, b);
	ck_assert_msg(strstr(pa, "/certs/revoked/") && strstr(pb, "/certs/revoked/"), "%s %s", pa, pb);

	/* The CRL says the same, and openssl rejects both leaves with it. */
	snprintf(crl, sizeof(crl), "%s/crl.pem", w->dir);
	rw_crl(w, crl, NULL, NULL);
	x = rw_crl_load(crl, 0);
	ck_assert_int_eq(rw_crl_reason(x, sa), CRL_REASON_KEY_COMPROMISE);
	ck_assert_int_eq(rw_crl_reason(x, sb), CRL_REASON_AFFILIATION_CHANGED);
	ck_assert_int_eq(sk_X509_REVOKED_num(X509_CRL_get_REVOKED(x)), 2);
	X509_CRL_free(x);
	rc = rw_openssl_verify_crl(w, crl, pa, &out);
	ck_assert_msg(rc != 0 && strstr(out, "certificate revoked"), "openssl verify -crl_check: exit %d\n%s", rc,
	    stu_tail(out));
	free(out);
	rc = rw_openssl_verify_crl(w, crl, pb, &out);
	ck_assert_msg(rc != 0 && strstr(out, "certificate revoked"), "openssl verify -crl_check: exit %d\n%s", rc,
	    stu_tail(out));
	free(out);
	stu_audit_verify(w);

	free(pa);
	free(pb);
	stu_run_clear(&r);
	stu_sim_stop(sim);
	stu_ws_free(w);
}
END_TEST


/* The URI of a certificate's one cRLDistributionPoint ("" when it has none). */
static void
cert_crl_url(const char *path, char *url, size_t cap)
{
	CRL_DIST_POINTS *dps;
	DIST_POINT *dp;
	GENERAL_NAME *g;
	FILE *f;
	X509 *x;

	url[0] = '\0';
	ck_assert_ptr_nonnull(f = fopen(path, "r"));
	ck_assert_ptr_nonnull(x = PEM_read_X509(f, NULL, NULL, NULL));
	fclose(f);
	if ((dps = X509_get_ext_d2i(x, NID_crl_distribution_points, NULL, NULL))) {
		ck_assert_int_eq(sk_DIST_POINT_num(dps), 1);
		dp = sk_DIST_POINT_value(dps, 0);
		ck_assert_ptr_nonnull(dp->distpoint);
		ck_assert_int_eq(dp->distpoint->type, 0);
		ck_assert_int_eq(sk_GENERAL_NAME_num(dp->distpoint->name.fullname), 1);
		g = sk_GENERAL_NAME_value(dp->distpoint->name.fullname, 0);
		ck_assert_int_eq(g->type, GEN_URI);
		snprintf(url, cap, "%.*s", ASN1_STRING_length(g->d.uniformResourceIdentifier),
		    (const char *)ASN1_STRING_get0_data(g->d.uniformResourceIdentifier));
		CRL_DIST_POINTS_free(dps);
	}
	X509_free(x);
}

/* An intermediate rollover in the middle of a journal: devices 1 and 2 get
 * certificates of intermediate 1, then the recipe names intermediate 2
 * (and a CRL distribution point) for devices 3 and 4.  Each intermediate's
 * CRL lists the revoked certificates it signed and no other, numbered on
 * its own; the retired one signs with --issuer; openssl checks each leaf
 * against its issuer's CRL. */
START_TEST(test_rollover)
{
	static const char *url = "http://crl.example.com/station-test-ca-2.crl";
	stu_ws *w = stu_ws_new(tu_pki);
	stu_sim *sim;
	jigsim_config c;
	char se[4][JIG_STR_MAX + 1], sn[4][64], *path[4], crl_new[4200], crl_old[4200], old_cert[4200], got[4300];
	char *out = NULL;
	json_t *recs, *rec;
	X509_CRL *x;
	stu_run r;
	size_t i, at;
	int rc;

	jigsim_config_init(&c);
	c.devices = 4;
	sim = stu_sim_start(tu_pki, &c);
	stu_station_run(w, sim->uri, 2, 0, &r);
	ck_assert_msg(r.status == 0, "station run: exit %d\n%s", r.status, stu_tail(r.err));
	stu_run_clear(&r);
	stu_recipe_edit(w, "    key: intermediate\n    cert: pki/intermediate.pem",
	    "    key: intermediate2\n    cert: pki/intermediate2.pem");
	stu_recipe_edit(w, "  validity_days: 3650\n", "  validity_days: 3650\n  crl_url: http://crl.example.com/station-test-ca-2.crl\n");
	stu_station_run(w, sim->uri, 2, 0, &r);
	ck_assert_msg(r.status == 0, "station run after the rollover: exit %d\n%s", r.status, stu_tail(r.err));
	stu_run_clear(&r);
	for (i = 0; i < 4; i++) {
		device_serial(sim, (unsigned)i + 1, se[i]);
		path[i] = station_cert(w, se[i], sn[i]);
		cert_crl_url(path[i], got, sizeof(got));
		ck_assert_str_eq(got, i < 2 ? "" : url);
	}
	rc = station_revoke(w, &out, "--device", se[0], "--reason", "keyCompromise");
	expect(rc, out, 0, sn[0], "of intermediate 1's certificate");
	rc = station_revoke(w, &out, "--device", se[2], "--reason", "superseded");
	expect(rc, out, 0, sn[2], "of intermediate 2's certificate");
	for (i = 0; i < 4; i += 2) { /* revoked: moved to certs/revoked/ */
		free(path[i]);
		path[i] = stu_cert_path(w, se[i]);
	}

	/* The current intermediate's CRL: its own revocation only, number 1. */
	snprintf(crl_new, sizeof(crl_new), "%s/ca2.crl", w->dir);
	snprintf(crl_old, sizeof(crl_old), "%s/ca1.crl", w->dir);
	snprintf(old_cert, sizeof(old_cert), "%s/intermediate.pem", tu_pki);
	rc = tu_station(&out, "crl", "--recipe", w->recipe, "--out", crl_new, NULL);
	ck_assert_msg(rc == 0 && strstr(out, "CN = Station Test Manufacturing CA 2") &&
	    strstr(out, "note: 1 revoked certificate of another issuer is not on it"), "station crl: exit %d\n%s", rc,
	    stu_tail(out));
	free(out);
	x = rw_crl_load(crl_new, 0);
	ck_assert_int_eq(sk_X509_REVOKED_num(X509_CRL_get_REVOKED(x)), 1);
	ck_assert_int_eq(rw_crl_reason(x, sn[2]), CRL_REASON_SUPERSEDED);
	ck_assert_int_eq(rw_crl_number(x), 1);
	X509_CRL_free(x);

	/* The retired one signs its own, with its own numbers. */
	rc = tu_station(&out, "crl", "--recipe", w->recipe, "--out", crl_old, "--issuer", old_cert, NULL);
	expect(rc, out, 2, "--issuer CERT and --issuer-key LABEL go together", "crl --issuer without --issuer-key");
	rc = tu_station(&out, "crl", "--recipe", w->recipe, "--out", crl_old, "--issuer", old_cert, "--issuer-key",
	    "intermediate2", NULL);
	ck_assert_msg(rc == 2, "station crl with another intermediate's key: exit %d\n%s", rc, stu_tail(out));
	free(out);
	rc = tu_station(&out, "crl", "--recipe", w->recipe, "--out", crl_old, "--issuer", w->recipe, "--issuer-key",
	    "intermediate", NULL);
	ck_assert_msg(rc == 2 && strstr(out, "--issuer"), "station crl --issuer RECIPE: exit %d\n%s", rc, stu_tail(out));
	free(out);
	snprintf(got, sizeof(got), "--issuer=%s", old_cert);
	rw_crl(w, crl_old, got, "--issuer-key=intermediate");
	rw_crl(w, crl_old, got, "--issuer-key=intermediate");
	x = rw_crl_load(crl_old, 0);
	ck_assert_int_eq(sk_X509_REVOKED_num(X509_CRL_get_REVOKED(x)), 1);
	ck_assert_int_eq(rw_crl_reason(x, sn[0]), CRL_REASON_KEY_COMPROMISE);
	ck_assert_int_eq(rw_crl_number(x), 2);
	X509_CRL_free(x);
	rw_crl(w, crl_new, NULL, NULL);
	x = rw_crl_load(crl_new, 0);
	ck_assert_int_eq(rw_crl_number(x), 2);
	X509_CRL_free(x);

	/* openssl: each CRL verifies under its issuer, and rejects its revoked
	 * leaf while its issuer's live one passes. */
	ck_assert_msg(rw_openssl_crl_verify(crl_old, old_cert, &out), "openssl crl -verify (CA 1):\n%s", stu_tail(out));
	free(out);
	snprintf(got, sizeof(got), "%s/intermediate2.pem", tu_pki);
	ck_assert_msg(rw_openssl_crl_verify(crl_new, got, &out), "openssl crl -verify (CA 2):\n%s", stu_tail(out));
	free(out);
	ck_assert_msg(!rw_openssl_crl_verify(crl_new, old_cert, &out), "CA 2's CRL verified as CA 1's:\n%s",
	    stu_tail(out));
	free(out);
	for (i = 0; i < 4; i++) {
		rc = rw_openssl_verify_crl_by(w, i < 2 ? "intermediate.pem" : "intermediate2.pem", i < 2 ? crl_old : crl_new,
		    path[i], &out);
		if (i % 2 == 0)
			ck_assert_msg(rc != 0 && strstr(out, "certificate revoked"), "openssl verify -crl_check of device %zu: "
			    "exit %d\n%s", i + 1, rc, stu_tail(out));
		else
			ck_assert_msg(rc == 0 && strstr(out, ": OK"), "openssl verify -crl_check of device %zu: exit %d\n%s",
			    i + 1, rc, stu_tail(out));
		free(out);
	}

	/* The journal names the issuer of every serial and every CRL. */
	recs = rw_records(w, NULL);
	for (at = 0, i = 0; (rec = rw_record(recs, at, "issuing", "ok", &at)); at++, i++)
		ck_assert_uint_eq(strlen(rw_detail(rec, "issuer_key_id")), 40);
	ck_assert_uint_eq(i, 4);
	ck_assert_str_ne(rw_detail(rw_record(recs, 0, "issuing", "ok", NULL), "issuer_key_id"),
	    rw_detail(rw_record(recs, 0, "crl", "ok", NULL), "issuer_key_id"));
	ck_assert_uint_eq(rw_count(recs, "crl", "ok"), 4);
	json_decref(recs);
	stu_audit_verify(w);

	for (i = 0; i < 4; i++)
		free(path[i]);
	stu_sim_stop(sim);
	stu_ws_free(w);
}
END_TEST

static Suite *
suite(void)
{
	TCase *tc;
	Suite *s = tu_pki_suite("rework-revocation", "revocation", 120, &tc);

	tcase_add_test(tc, test_abandoned);
	tcase_add_test(tc, test_revoke_cli);
	tcase_add_test(tc, test_announced_closed_out);
	tcase_add_test(tc, test_rollover);
	return s;
}

int
main(void)
{
	signal(SIGPIPE, SIG_IGN);
	return tu_run_suite(suite());
}
