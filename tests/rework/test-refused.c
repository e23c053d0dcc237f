/* `station rework` refuses a device that cannot prove it holds our live
 * identity, and never touches its credential then: exit 1, the reason on the
 * operator's screen and in the journal, nothing retired (jigsim), the old
 * certificate still installed, nothing issued.  The one exception is an
 * attestation failure of the new CSR: by then the old key is retired and
 * revoked by design, and the device ends FAIL at VERIFY with nothing new
 * issued or installed. */
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "rwutil.h"

static const struct refusal {
	const char *name;
	unsigned faults;       /* jigsim faults from the start */
	int provision;         /* `station run` provisions the device first */
	unsigned faults_after; /* then switched on for the device */
	int revoke;            /* `station revoke --device SERIAL --reason keyCompromise` first */
	int allow_foreign;     /* rework.allow_foreign_devices: true */
	const char *step;      /* where it fails */
	const char *reason;    /* what the reason says */
	uint8_t lifecycle;     /* the SE's lifecycle afterwards */
} cases[] = {
	{ "challenge signed by another key", 0, 1, JIGSIM_F_REWORK_WRONG_KEY, 0, 0, "rework",
	    "not signed by the key of the device's certificate", JIG_LC_PROVISIONED },
	{ "certificate from a foreign CA", JIGSIM_F_ALREADY_LOCKED, 0, 0, 0, 0, "rework",
	    "does not chain to one of our intermediates", JIG_LC_PROVISIONED },
	{ "foreign CA, foreign devices allowed", JIGSIM_F_ALREADY_LOCKED, 0, 0, 0, 1, "rework",
	    "does not chain to one of our intermediates", JIG_LC_PROVISIONED },
	{ "certificate revoked", 0, 1, 0, 1, 0, "rework", "is revoked", JIG_LC_PROVISIONED },
	{ "SE in factory state", 0, 0, 0, 0, 0, "rework", "factory state", JIG_LC_FACTORY },
	{ "new CSR's attestation fails", 0, 1, JIGSIM_F_BAD_ATTEST_SIG, 0, 0, "verify", "attestation signature",
	    JIG_LC_REWORK },
};

START_TEST(test_refused)
{
	const struct refusal *rc = &cases[_i];
	int retires = rc->lifecycle == JIG_LC_REWORK;
	stu_ws *w = stu_ws_new(tu_pki);
	stu_sim *sim = rw_sim(tu_pki, 1, rc->faults);
	jigsim_device_info before, info;
	uint8_t old[JIG_BLOB_MAX], now[JIG_BLOB_MAX], rpub[JIG_BLOB_MAX], rcert[JIG_BLOB_MAX], *kept = NULL;
	size_t old_len = 0, now_len = 0, rpub_len = 0, rcert_len = 0, kept_len = 0, start = 0;
	char old_serial[64] = "", *out = NULL;
	json_t *f, *recs, *rec;
	stu_journal j;
	stu_ledger *l;
	stu_run r;
	int st;

	if (rc->provision)
		rw_provision(w, sim, 1);
	ck_assert_int_eq(jigsim_device_get(sim->s, 1, &before), 0);
	rw_sim_cert(sim, 1, old, sizeof(old), &old_len);
	if (old_len)
		tu_der_serial_hex(old, old_len, old_serial);
	if (rc->faults_after)
		ck_assert_int_eq(jigsim_device_set_faults(sim->s, 1, rc->faults_after), 0);
	if (rc->revoke) {
		st = tu_station(&out, "revoke", "--recipe", w->recipe, "--device", before.serial, "--reason",
		    "keyCompromise", NULL);
		ck_assert_msg(st == 0, "station revoke: exit %d\n%s", st, stu_tail(out));
		free(out);
	}
	if (rc->allow_foreign)
		stu_recipe_edit(w, "allow_foreign_devices: false", "allow_foreign_devices: true");

	ck_assert_int_eq(jigsim_device_get(sim->s, 1, &info), 0);
	rw_rework_se(w, sim->uri, info.serial, "failed final test", "QA lead", &r);
	ck_assert_msg(r.status == 1, "%s: station rework: exit %d\n%s\n%s", rc->name, r.status, stu_tail(r.out),
	    stu_tail(r.err));
	ck_assert_msg(stu_event(&r, "passed", before.serial) == NULL, "%s: the device passed", rc->name);
	ck_assert_msg((f = stu_event(&r, "failed", before.serial)) != NULL, "%s: no failed event\n%s", rc->name,
	    stu_tail(r.out));
	ck_assert_msg(strcmp(stu_str(f, "step"), rc->step) == 0, "%s: failed at %s, expected %s: %s", rc->name,
	    stu_str(f, "step"), rc->step, stu_str(f, "reason"));
	ck_assert_msg(strstr(stu_str(f, "reason"), rc->reason) != NULL, "%s: reason \"%s\" does not say \"%s\"", rc->name,
	    stu_str(f, "reason"), rc->reason);
	ck_assert_str_ne(stu_str(f, "advice"), "");
	f = json_array_get(r.events, json_array_size(r.events) - 1);
	ck_assert_msg(strcmp(stu_str(f, "event"), "summary") == 0 && strcmp(stu_str(f, "end"), "completed") == 0 &&
	        json_integer_value(json_object_get(f, "passed")) == 0 && json_integer_value(json_object_get(f, "failed")) == 1,
	    "%s: the last event is not a completed summary of one failure:\n%s", rc->name, stu_tail(r.out));

	/* The SE. */
	ck_assert_int_eq(jigsim_device_get(sim->s, 1, &info), 0);
	ck_assert_msg(info.lifecycle == rc->lifecycle, "%s: SE is %s", rc->name, jig_lifecycle_name(info.lifecycle));
	rw_sim_cert(sim, 1, now, sizeof(now), &now_len);
	if (!retires) {
		ck_assert_msg(info.retired == 0, "%s: %u retired records", rc->name, info.retired);
		ck_assert_uint_eq(info.keygens, before.keygens);
		ck_assert_msg(now_len == old_len && memcmp(now, old, old_len) == 0, "%s: the installed certificate changed",
		    rc->name);
	} else {
		/* Retired before the new key was generated: the old certificate is
		 * the retired record's, the slot holds an unattested new key and no
		 * certificate. */
		ck_assert_uint_eq(info.retired, 1);
		ck_assert_int_eq(jigsim_device_retired(sim->s, 1, 0, rpub, sizeof(rpub), &rpub_len, rcert, sizeof(rcert),
		                     &rcert_len), 0);
		ck_assert_msg(rcert_len == old_len && memcmp(rcert, old, old_len) == 0, "the retired certificate is not the old one");
		ck_assert_uint_eq(info.keygens, before.keygens + 1);
		ck_assert_msg(now_len == 0, "%s: a certificate (%zu bytes) was installed", rc->name, now_len);
	}
	/* The station's copy is still the certificate it issued, if any. */
	kept = stu_cert_der(w, before.serial, &kept_len);
	ck_assert_msg(rc->provision ? kept && kept_len == old_len && memcmp(kept, old, old_len) == 0 : !kept,
	    "%s: the station's certificate copy changed", rc->name);
	OPENSSL_free(kept);

	/* The journal says why, issued nothing new, revoked only what it must. */
	recs = rw_records(w, before.serial);
	ck_assert_msg(rw_record(recs, 0, "rework-start", "ok", &start) != NULL, "%s: no rework-start record", rc->name);
	ck_assert_msg((rec = rw_record(recs, start, rc->step, "fail", NULL)) != NULL, "%s: no %s fail record", rc->name,
	    rc->step);
	ck_assert_msg(strstr(rw_detail(rec, "error"), rc->reason) != NULL, "%s: the journal says \"%s\"", rc->name,
	    rw_detail(rec, "error"));
	ck_assert_str_eq(rw_detail(rec, "reason"), "failed final test");
	/* Who authorized: the signer of the authorization, never a typed name. */
	ck_assert_str_eq(rw_detail(rec, "authorized_by"), "O = Station Test, CN = Station Test Rework Authorizer 1");
	ck_assert_uint_eq(strlen(rw_detail(rec, "authorization")), 32);
	ck_assert_str_eq(rw_detail(rec, "note"), "QA lead");
	ck_assert_str_ne(rw_detail(rec, "advice"), "");
	ck_assert_uint_eq(rw_count(recs, "issued", NULL), rc->provision ? 1 : 0);
	ck_assert_ptr_null(rw_record(recs, start, "issuing", NULL, NULL));
	ck_assert_ptr_null(rw_record(recs, start, "install", NULL, NULL));
	ck_assert_ptr_null(rw_record(recs, start, "done", NULL, NULL));
	if (retires) {
		ck_assert_ptr_nonnull(rec = rw_record(recs, start, "revoke", "ok", NULL));
		ck_assert_msg(strcasecmp(rw_detail(rec, "cert_serial"), old_serial) == 0, "revoked %s, not %s",
		    rw_detail(rec, "cert_serial"), old_serial);
		ck_assert_str_eq(rw_detail(rec, "reason"), "superseded");
		ck_assert_ptr_nonnull(rw_record(recs, start, "retire", "ok", NULL));
	} else {
		ck_assert_ptr_null(rw_record(recs, start, "retire", NULL, NULL));
		ck_assert_ptr_null(rw_record(recs, start, "revoke", NULL, NULL));
		ck_assert_ptr_null(rw_record(recs, start, "rework-auth", NULL, NULL));
		ck_assert_uint_eq(rw_count(recs, "revoke", NULL), rc->revoke ? 1 : 0);
	}
	json_decref(recs);
	/* Live certificates: the one provisioned, unless revoked (then none). */
	stu_journal_load(w->audit, &j);
	ck_assert_ptr_nonnull(l = stu_journal_dev(&j, before.serial));
	ck_assert_uint_eq(stu_live(l), rc->provision && !rc->revoke && !retires ? 1 : 0);
	stu_journal_clear(&j);
	stu_audit_verify(w);

	stu_run_clear(&r);
	stu_sim_stop(sim);
	stu_ws_free(w);
}
END_TEST

/* A jig whose HELLO does not offer rework (capability bit 2) is refused
 * before anything is asked of the device or written to the journal. */
START_TEST(test_jig_without_rework)
{
	stu_ws *w = stu_ws_new(tu_pki);
	stu_sim *sim = rw_sim(tu_pki, 1, 0), *plain;
	jigsim_device_info info;
	jigsim_config c;
	json_t *recs;
	stu_run r;

	rw_provision(w, sim, 1);
	ck_assert_int_eq(jigsim_device_get(sim->s, 1, &info), 0);
	jigsim_config_init(&c);
	c.devices = 1;
	c.no_rework = 1;
	plain = stu_sim_start(tu_pki, &c);
	rw_rework_se(w, plain->uri, info.serial, "failed final test", "QA lead", &r);
	ck_assert_msg(r.status == 2, "station rework: exit %d\n%s", r.status, stu_tail(r.err));
	ck_assert_msg(strstr(stu_tail(r.err), "does not offer rework (HELLO capability bit 2"), "%s", stu_tail(r.err));
	recs = rw_records(w, info.serial);
	ck_assert_ptr_null(rw_record(recs, 0, "rework-start", NULL, NULL));
	json_decref(recs);
	ck_assert_int_eq(jigsim_device_get(plain->s, 1, &info), 0);
	ck_assert_uint_eq(info.lifecycle, JIG_LC_FACTORY);
	stu_run_clear(&r);
	stu_sim_stop(plain);
	stu_sim_stop(sim);
	stu_ws_free(w);
}
END_TEST

static Suite *
suite(void)
{
	TCase *tc;
	Suite *s = tu_pki_suite("rework-refused", "refused", 120, &tc);

	tcase_add_loop_test(tc, test_refused, 0, (int)(sizeof(cases) / sizeof(cases[0])));
	tcase_add_test(tc, test_jig_without_rework);
	return s;
}

int
main(void)
{
	signal(SIGPIPE, SIG_IGN);
	return tu_run_suite(suite());
}
