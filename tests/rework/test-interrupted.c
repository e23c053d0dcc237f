/* A rework that fails after it began changing the device still leaves one
 * live certificate at most, and every other one revoked:
 * - RETIRE executed but its reply lost: the station gives up with the SE
 *   in rework state; the next `station rework` finishes the job and the old
 *   certificate ends revoked (superseded);
 * - the new certificate reads back wrong at INSTALL: it was issued and never
 *   installed, so it is revoked (cessationOfOperation) when the rework
 *   ends, as `station run` does for the factory path. */
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/x509v3.h>

#include "rwutil.h"

/* Every certificate issued to the SE but `live` is revoked. */
static void
check_revoked_but(stu_ws *w, const char *se, const char *live)
{
	stu_journal j;
	stu_ledger *l;
	unsigned i, k;

	stu_journal_load(w->audit, &j);
	ck_assert_ptr_nonnull(l = stu_journal_dev(&j, se));
	for (i = 0; i < l->issued; i++) {
		int revoked = 0;

		for (k = 0; k < l->revoked; k++)
			revoked |= strcasecmp(l->issued_serial[i], l->revoked_serial[k]) == 0;
		ck_assert_msg(revoked == (!live || strcasecmp(l->issued_serial[i], live) != 0),
		    "SE %s: certificate %s is %s", se, l->issued_serial[i], revoked ? "revoked" : "live");
	}
	ck_assert_uint_eq(stu_live(l), live ? 1 : 0);
	stu_journal_clear(&j);
}

START_TEST(test_retire_reply_lost)
{
	stu_ws *w = stu_ws_new(tu_pki);
	stu_sim *sim;
	jigsim_config c;
	jigsim_device_info info;
	uint8_t old[JIG_BLOB_MAX];
	size_t old_len = 0, npaths = 0, i;
	char old_serial[64], new_serial[64], crl[4200], **paths = NULL;
	json_t *ev, *recs, *rec;
	X509_CRL *x;
	stu_run r;

	/* Commands time out sooner: the lost reply costs less waiting. */
	stu_recipe_edit(w, "    default: 2000", "    default: 600");
	jigsim_config_init(&c);
	c.devices = 1;
	c.rma = 1;
	c.pause_cmd = JIG_CMD_RETIRE;
	c.pause_after = 1;
	sim = stu_sim_start(tu_pki, &c);
	rw_provision(w, sim, 1);
	rw_sim_cert(sim, 1, old, sizeof(old), &old_len);
	tu_der_serial_hex(old, old_len, old_serial);

	rw_rework(w, sim->uri, "RMA 77", "QA lead", &r);
	ck_assert_msg(r.status == 1, "station rework: exit %d\n%s\n%s", r.status, stu_tail(r.out), stu_tail(r.err));
	ck_assert_msg((ev = stu_event(&r, "failed", NULL)) != NULL, "no failed event\n%s", stu_tail(r.out));
	ck_assert_str_eq(stu_str(ev, "step"), "retire");
	ck_assert_int_eq(jigsim_device_get(sim->s, 1, &info), 0);
	ck_assert_msg(info.present && info.lifecycle == JIG_LC_REWORK && info.retired == 1,
	    "SE %s: %s, %s, %u retired", info.serial, info.present ? "present" : "gone",
	    jig_lifecycle_name(info.lifecycle), info.retired);
	stu_run_clear(&r);

	/* Again: it resumes from the retired state and passes. */
	rw_rework(w, sim->uri, "RMA 77", "QA lead", &r);
	ck_assert_msg(r.status == 0, "station rework again: exit %d\n%s\n%s", r.status, stu_tail(r.out), stu_tail(r.err));
	ck_assert_ptr_nonnull(ev = stu_event(&r, "passed", info.serial));
	snprintf(new_serial, sizeof(new_serial), "%s", stu_str(ev, "certificate_serial"));
	ck_assert_int_eq(jigsim_device_get(sim->s, 1, &info), 0);
	ck_assert_int_eq(info.lifecycle, JIG_LC_PROVISIONED);
	ck_assert_uint_eq(info.retired, 1);
	stu_check_device_cert(w, sim->s, 1, &paths, &npaths);
	stu_openssl_verify(w, paths, npaths);

	/* The old certificate is revoked (superseded), the new one is live. */
	check_revoked_but(w, info.serial, new_serial);
	recs = rw_records(w, info.serial);
	ck_assert_uint_eq(rw_count(recs, "revoke", "ok"), 1);
	rec = rw_record(recs, 0, "revoke", "ok", NULL);
	ck_assert_msg(strcasecmp(rw_detail(rec, "cert_serial"), old_serial) == 0, "revoked %s, not the old %s",
	    rw_detail(rec, "cert_serial"), old_serial);
	ck_assert_str_eq(rw_detail(rec, "reason"), "superseded");
	/* The resumed rework's records name the old certificate too. */
	rec = rw_record(recs, 0, "done", "pass", &i);
	rec = rw_record(recs, i + 1, "done", "pass", NULL);
	ck_assert_ptr_nonnull(rec);
	ck_assert_msg(strcasecmp(rw_detail(rec, "old_cert_serial"), old_serial) == 0, "old_cert_serial \"%s\"",
	    rw_detail(rec, "old_cert_serial"));
	json_decref(recs);
	snprintf(crl, sizeof(crl), "%s/crl.pem", w->dir);
	rw_crl(w, crl, NULL, NULL);
	x = rw_crl_load(crl, 0);
	ck_assert_int_eq(rw_crl_reason(x, old_serial), CRL_REASON_SUPERSEDED);
	ck_assert_int_eq(rw_crl_reason(x, new_serial), -2);
	X509_CRL_free(x);
	stu_audit_verify(w);

	for (i = 0; i < npaths; i++)
		free(paths[i]);
	free(paths);
	stu_run_clear(&r);
	stu_sim_stop(sim);
	stu_ws_free(w);
}
END_TEST

/* Switch readback-mismatch on for device 1 once RETIRE has run (the
 * rework's own READ_CERT of the old certificate must still read true): the
 * SE's KEYGEN and GET_CSR latencies leave a second for it. */
struct breaker {
	jigsim *s;
	atomic_int done; /* the rework ended: stop waiting */
};

static void *
break_readback(void *arg)
{
	struct breaker *b = arg;
	jigsim_device_info info;

	while (jigsim_device_get(b->s, 1, &info) == 0 && info.retired == 0 && !atomic_load(&b->done))
		stu_sleep_ms(1);
	if (info.retired)
		jigsim_device_set_faults(b->s, 1, JIGSIM_F_READBACK_MISMATCH);
	return NULL;
}

START_TEST(test_install_fails)
{
	stu_ws *w = stu_ws_new(tu_pki);
	stu_sim *sim;
	jigsim_config c;
	pthread_t breaker;
	struct breaker b;
	jigsim_device_info info;
	uint8_t old[JIG_BLOB_MAX];
	size_t old_len = 0, at = 0;
	char old_serial[64], new_serial[64], crl[4200], inter[4200], *out = NULL;
	json_t *ev, *recs, *rec;
	X509_CRL *x;
	stu_run r;

	jigsim_config_init(&c);
	c.devices = 1;
	c.rma = 1;
	c.keygen_ms = 500;
	c.csr_ms = 500;
	sim = stu_sim_start(tu_pki, &c);
	rw_provision(w, sim, 1);
	ck_assert_int_eq(jigsim_device_get(sim->s, 1, &info), 0);
	rw_sim_cert(sim, 1, old, sizeof(old), &old_len);
	tu_der_serial_hex(old, old_len, old_serial);

	b.s = sim->s;
	atomic_init(&b.done, 0);
	ck_assert_int_eq(pthread_create(&breaker, NULL, break_readback, &b), 0);
	rw_rework(w, sim->uri, "RMA 78", "QA lead", &r);
	atomic_store(&b.done, 1);
	pthread_join(breaker, NULL);
	ck_assert_msg(r.status == 1, "station rework: exit %d\n%s\n%s", r.status, stu_tail(r.out), stu_tail(r.err));
	ck_assert_ptr_nonnull(ev = stu_event(&r, "failed", info.serial));
	ck_assert_str_eq(stu_str(ev, "step"), "install");
	ck_assert_msg(strstr(stu_str(ev, "reason"), "read back") != NULL, "reason: %s", stu_str(ev, "reason"));

	/* Two certificates issued to the SE, none live: the old one superseded,
	 * the new one never installed. */
	recs = rw_records(w, info.serial);
	ck_assert_ptr_nonnull(rw_record(recs, 0, "rework-start", "ok", &at));
	ck_assert_ptr_nonnull(rec = rw_record(recs, at, "issued", "ok", NULL));
	snprintf(new_serial, sizeof(new_serial), "%s", rw_detail(rec, "cert_serial"));
	ck_assert_str_ne(new_serial, "");
	ck_assert_uint_eq(rw_count(recs, "revoke", "ok"), 2);
	rec = rw_record(recs, at, "revoke", "ok", &at);
	ck_assert_msg(strcasecmp(rw_detail(rec, "cert_serial"), old_serial) == 0, "first revoked %s",
	    rw_detail(rec, "cert_serial"));
	ck_assert_str_eq(rw_detail(rec, "reason"), "superseded");
	ck_assert_ptr_nonnull(rw_record(recs, at, "install", "fail", &at));
	ck_assert_ptr_nonnull(rec = rw_record(recs, at, "revoke", "ok", NULL));
	ck_assert_str_eq(rw_detail(rec, "cert_serial"), new_serial);
	ck_assert_str_eq(rw_detail(rec, "reason"), "cessationOfOperation");
	json_decref(recs);
	check_revoked_but(w, info.serial, NULL);

	/* The CRL says so, and openssl accepts it. */
	snprintf(crl, sizeof(crl), "%s/crl.pem", w->dir);
	snprintf(inter, sizeof(inter), "%s/intermediate.pem", tu_pki);
	rw_crl(w, crl, NULL, NULL);
	x = rw_crl_load(crl, 0);
	ck_assert_int_eq(rw_crl_reason(x, old_serial), CRL_REASON_SUPERSEDED);
	ck_assert_int_eq(rw_crl_reason(x, new_serial), CRL_REASON_CESSATION_OF_OPERATION);
	X509_CRL_free(x);
	ck_assert_msg(rw_openssl_crl_verify(crl, inter, &out), "openssl crl -verify:\n%s", stu_tail(out));
	free(out);
	stu_audit_verify(w);

	stu_run_clear(&r);
	stu_sim_stop(sim);
	stu_ws_free(w);
}
END_TEST

static Suite *
suite(void)
{
	TCase *tc;
	Suite *s = tu_pki_suite("rework-interrupted", "interrupted", 120, &tc);

	tcase_add_test(tc, test_retire_reply_lost);
	tcase_add_test(tc, test_install_fails);
	return s;
}

int
main(void)
{
	signal(SIGPIPE, SIG_IGN);
	return tu_run_suite(suite());
}
