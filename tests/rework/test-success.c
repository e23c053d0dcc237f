/* `station rework` that succeeds: a device provisioned by `station run`
 * comes back (jigsim RMA return) and is re-provisioned.  The new certificate
 * verifies and is what the SE holds; the SE keeps the old key's public half
 * and certificate as a retired record; the old certificate is in the next
 * CRL, which `openssl crl` accepts and with which `openssl verify
 * -crl_check` rejects the old leaf and accepts the new one; the journal
 * names the old and new serials, the reason and who authorized it.  And a
 * device provisioned by another station's journal: refused, unless the
 * recipe allows foreign devices. */
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/x509v3.h>

#include "rwutil.h"

static const char *const rework_steps[] = {
	"rework-start", "identify", "posture", "rework-auth", "retire", "identify", "posture", "revoke", "keygen", "verify", "issuing", "issued", "install", "lock",
	"done",
};

START_TEST(test_rework_ok)
{
	stu_ws *w = stu_ws_new(tu_pki);
	stu_sim *sim = rw_sim(tu_pki, 2, 0);
	jigsim_device_info before, info;
	uint8_t old[JIG_BLOB_MAX], now[JIG_BLOB_MAX], rpub[JIG_BLOB_MAX], rcert[JIG_BLOB_MAX], pub[JIG_BLOB_MAX];
	size_t old_len = 0, now_len = 0, rpub_len = 0, rcert_len = 0, pub_len = 0, npaths = 0, i, at = 0, start = 0;
	int named = 0;
	char old_serial[64], new_serial[64], crl[4200], inter[4200], **paths = NULL, *old_path, *out = NULL, *authz;
	json_t *ev, *recs, *rec;
	X509_CRL *x;
	stu_journal j;
	stu_ledger *l;
	stu_run r;
	int rc;

	rw_provision(w, sim, 1);
	ck_assert_int_eq(jigsim_device_get(sim->s, 1, &before), 0);
	rw_sim_cert(sim, 1, old, sizeof(old), &old_len);
	ck_assert_uint_gt(old_len, 0);
	tu_der_serial_hex(old, old_len, old_serial);
	old_path = rw_write_cert(w, "old.pem", old, old_len);

	rw_rework(w, sim->uri, "RMA 1234", "QA lead", &r);
	ck_assert_msg(r.status == 0, "station rework: exit %d\n%s\n%s", r.status, stu_tail(r.out), stu_tail(r.err));
	ck_assert_msg((ev = stu_event(&r, "passed", before.serial)) != NULL, "no passed event for %s\n%s", before.serial,
	    stu_tail(r.out));
	ck_assert_uint_eq(stu_event_count(&r, "failed"), 0);
	snprintf(new_serial, sizeof(new_serial), "%s", stu_str(ev, "certificate_serial"));
	ck_assert_str_ne(new_serial, "");
	ck_assert_msg(strcasecmp(new_serial, old_serial) != 0, "rework kept certificate %s", old_serial);
	/* It ends with a summary, as a run does. */
	ev = json_array_get(r.events, json_array_size(r.events) - 1);
	ck_assert_msg(strcmp(stu_str(ev, "event"), "summary") == 0 && strcmp(stu_str(ev, "end"), "completed") == 0 &&
	        json_integer_value(json_object_get(ev, "passed")) == 1 && json_integer_value(json_object_get(ev, "failed")) == 0,
	    "the last event is not a completed summary of one pass:\n%s", stu_tail(r.out));
	ck_assert_uint_eq(stu_event_count(&r, "summary"), 1);

	/* The SE: provisioned again, with a new key and the new certificate
	 * (byte for byte the station's copy, for the slot's key, naming the SE
	 * serial), and the old ones kept as one retired record. */
	ck_assert_int_eq(jigsim_device_get(sim->s, 1, &info), 0);
	ck_assert_int_eq(info.lifecycle, JIG_LC_PROVISIONED);
	ck_assert_uint_eq(info.retired, 1);
	ck_assert_uint_eq(info.keygens, before.keygens + 1);
	stu_check_device_cert(w, sim->s, 1, &paths, &npaths);
	rw_sim_cert(sim, 1, now, sizeof(now), &now_len);
	{
		char s[64];

		tu_der_serial_hex(now, now_len, s);
		ck_assert_msg(strcasecmp(s, new_serial) == 0, "the SE holds %s, the station reported %s", s, new_serial);
	}
	ck_assert_int_eq(jigsim_device_retired(sim->s, 1, 0, rpub, sizeof(rpub), &rpub_len, rcert, sizeof(rcert),
	                     &rcert_len), 0);
	ck_assert_msg(rcert_len == old_len && memcmp(rcert, old, old_len) == 0,
	    "the retired record does not hold the old certificate");
	ck_assert_int_eq(jigsim_device_pubkey(sim->s, 1, 0, pub, sizeof(pub), &pub_len), 0);
	ck_assert_msg(rpub_len > 0 && !(rpub_len == pub_len && memcmp(rpub, pub, pub_len) == 0),
	    "the retired key is the current key");
	ck_assert_int_eq(jigsim_device_retired(sim->s, 1, 1, rpub, sizeof(rpub), &rpub_len, rcert, sizeof(rcert),
	                     &rcert_len), -1);
	stu_openssl_verify(w, paths, npaths);

	/* The next CRL lists the old certificate (superseded), not the new
	 * one; openssl accepts the CRL and, with it, rejects the old leaf. */
	snprintf(crl, sizeof(crl), "%s/crl.pem", w->dir);
	snprintf(inter, sizeof(inter), "%s/intermediate.pem", tu_pki);
	rw_crl(w, crl, NULL, NULL);
	x = rw_crl_load(crl, 0);
	ck_assert_int_eq(rw_crl_reason(x, old_serial), CRL_REASON_SUPERSEDED);
	ck_assert_int_eq(rw_crl_reason(x, new_serial), -2);
	ck_assert_int_eq(sk_X509_REVOKED_num(X509_CRL_get_REVOKED(x)), 1);
	X509_CRL_free(x);
	ck_assert_msg(rw_openssl_crl_verify(crl, inter, &out), "openssl crl -verify:\n%s", stu_tail(out));
	free(out);
	rc = rw_openssl_verify_crl(w, crl, old_path, &out);
	ck_assert_msg(rc != 0 && strstr(out, "certificate revoked"), "openssl verify -crl_check of the old leaf: exit %d\n%s",
	    rc, stu_tail(out));
	free(out);
	rc = rw_openssl_verify_crl(w, crl, paths[0], &out);
	ck_assert_msg(rc == 0 && strstr(out, ": OK"), "openssl verify -crl_check of the new leaf: exit %d\n%s", rc,
	    stu_tail(out));
	free(out);

	/* The journal: the rework's steps in order, each naming the reason, who
	 * authorized it, the old certificate once it was proven, and the new
	 * one once it exists. */
	recs = rw_records(w, before.serial);
	ck_assert_ptr_nonnull(rw_record(recs, 0, "rework-start", "ok", &start));
	for (i = 0, at = start; i < sizeof(rework_steps) / sizeof(rework_steps[0]); i++) {
		ck_assert_msg((rec = rw_record(recs, at, rework_steps[i], NULL, &at)) != NULL,
		    "no \"%s\" record after the rework started", rework_steps[i]);
		ck_assert_str_eq(stu_str(rec, "result"), strcmp(rework_steps[i], "done") == 0 ? "pass" : "ok");
	}
	for (i = start; i < json_array_size(recs); i++) {
		const char *step;

		rec = json_array_get(recs, i);
		step = stu_str(rec, "step");
		ck_assert_msg(json_is_true(json_object_get(json_object_get(rec, "details"), "rework")),
		    "record %s is not marked as rework", step);
		ck_assert_str_eq(rw_detail(rec, "reason"), strcmp(step, "revoke") == 0 ? "superseded" : "RMA 1234");
		/* Who authorized: the signer of the authorization, never a typed name. */
		ck_assert_str_eq(rw_detail(rec, "authorized_by"), "O = Station Test, CN = Station Test Rework Authorizer 1");
		ck_assert_uint_eq(strlen(rw_detail(rec, "authorization")), 32);
		ck_assert_str_eq(rw_detail(rec, "note"), "QA lead");
		ck_assert_str_eq(stu_str(rec, "operator"), "rw");
		/* From the identity proof on, the records name the old certificate
		 * (identify and posture come before it is read). */
		if (strcmp(step, "rework-auth") == 0)
			named = 1;
		if (named)
			ck_assert_msg(strcasecmp(rw_detail(rec, "old_cert_serial"), old_serial) == 0,
			    "record %s: old_cert_serial \"%s\", expected %s", step, rw_detail(rec, "old_cert_serial"), old_serial);
	}
	rec = rw_record(recs, start, "revoke", NULL, NULL);
	ck_assert_msg(strcasecmp(rw_detail(rec, "cert_serial"), old_serial) == 0, "rework revoked %s, not %s",
	    rw_detail(rec, "cert_serial"), old_serial);
	rec = rw_record(recs, start, "issued", NULL, &at);
	ck_assert_msg(strcasecmp(rw_detail(rec, "cert_serial"), new_serial) == 0, "rework issued %s, reported %s",
	    rw_detail(rec, "cert_serial"), new_serial);
	for (i = at + 1; i < json_array_size(recs); i++) {
		rec = json_array_get(recs, i);
		ck_assert_msg(strcasecmp(rw_detail(rec, "new_cert_serial"), new_serial) == 0,
		    "record %s after issuance: new_cert_serial \"%s\", expected %s", stu_str(rec, "step"),
		    rw_detail(rec, "new_cert_serial"), new_serial);
	}
	rec = rw_record(recs, start, "done", "pass", NULL);
	ck_assert_msg(strcasecmp(rw_detail(rec, "cert_serial"), new_serial) == 0, "done names %s",
	    rw_detail(rec, "cert_serial"));
	json_decref(recs);

	stu_journal_load(w->audit, &j);
	ck_assert_ptr_nonnull(l = stu_journal_dev(&j, before.serial));
	ck_assert_uint_eq(l->issued, 2);
	ck_assert_uint_eq(l->revoked, 1);
	ck_assert_uint_eq(l->passes, 2);
	ck_assert_uint_eq(l->fails, 0);
	stu_journal_check_live(&j);
	stu_journal_clear(&j);
	stu_audit_verify(w);

	/* The plain output ends with a last line too: the panel's second device,
	 * never provisioned, is refused. */
	authz = rw_authorize(w, NULL, "RMA 1235");
	rc = tu_station(&out, "rework", "--recipe", w->recipe, "--jig", sim->uri, "--authorization", authz, NULL);
	free(authz);
	ck_assert_msg(rc == 1, "station rework of a fresh device: exit %d\n%s", rc, stu_tail(out));
	ck_assert_msg(strstr(out, "\nREWORK FAILED  passed 0, failed 1; rework completed\n"), "no last line:\n%s",
	    stu_tail(out));
	free(out);

	for (i = 0; i < npaths; i++)
		free(paths[i]);
	free(paths);
	free(old_path);
	stu_run_clear(&r);
	stu_sim_stop(sim);
	stu_ws_free(w);
}
END_TEST

/* A device this station's journal has never seen (another station, with its
 * own journal, provisioned it; same intermediate): refused with
 * rework.allow_foreign_devices false (_i == 0), reworked with it true. */
START_TEST(test_foreign_device)
{
	int allow = _i;
	stu_ws *w = stu_ws_new(tu_pki), *other = stu_ws_new(tu_pki);
	stu_sim *sim = rw_sim(tu_pki, 1, 0);
	jigsim_device_info before, info;
	uint8_t old[JIG_BLOB_MAX], now[JIG_BLOB_MAX];
	size_t old_len = 0, now_len = 0, npaths = 0, i;
	char old_serial[64], **paths = NULL;
	json_t *recs, *f;
	stu_run r;

	rw_provision(other, sim, 1);
	ck_assert_int_eq(jigsim_device_get(sim->s, 1, &before), 0);
	rw_sim_cert(sim, 1, old, sizeof(old), &old_len);
	tu_der_serial_hex(old, old_len, old_serial);
	if (allow)
		stu_recipe_edit(w, "allow_foreign_devices: false", "allow_foreign_devices: true");

	rw_rework_se(w, sim->uri, before.serial, "ownership transfer", "line lead", &r);
	ck_assert_int_eq(jigsim_device_get(sim->s, 1, &info), 0);
	recs = rw_records(w, before.serial);
	if (!allow) {
		ck_assert_msg(r.status == 1, "station rework: exit %d\n%s\n%s", r.status, stu_tail(r.out), stu_tail(r.err));
		ck_assert_msg((f = stu_event(&r, "failed", before.serial)) != NULL, "no failed event\n%s", stu_tail(r.out));
		ck_assert_str_eq(stu_str(f, "step"), "rework");
		ck_assert_msg(strstr(stu_str(f, "reason"), "never seen") && strstr(stu_str(f, "reason"), "allow_foreign_devices"),
		    "reason: %s", stu_str(f, "reason"));
		ck_assert_uint_eq(info.retired, 0);
		ck_assert_int_eq(info.lifecycle, JIG_LC_PROVISIONED);
		ck_assert_uint_eq(info.keygens, before.keygens);
		rw_sim_cert(sim, 1, now, sizeof(now), &now_len);
		ck_assert_msg(now_len == old_len && memcmp(now, old, old_len) == 0, "the old certificate is gone");
		ck_assert_uint_eq(rw_count(recs, "retire", NULL), 0);
		ck_assert_uint_eq(rw_count(recs, "revoke", NULL), 0);
		ck_assert_uint_eq(rw_count(recs, "issuing", NULL), 0);
		ck_assert_uint_eq(rw_count(recs, "rework", "fail"), 1);
	} else {
		ck_assert_msg(r.status == 0, "station rework: exit %d\n%s\n%s", r.status, stu_tail(r.out), stu_tail(r.err));
		ck_assert_ptr_nonnull(stu_event(&r, "passed", before.serial));
		ck_assert_uint_eq(info.retired, 1);
		stu_check_device_cert(w, sim->s, 1, &paths, &npaths);
		stu_openssl_verify(w, paths, npaths);
		/* This station revoked the other station's certificate. */
		ck_assert_uint_eq(rw_count(recs, "revoke", "ok"), 1);
		ck_assert_msg(strcasecmp(rw_detail(rw_record(recs, 0, "revoke", "ok", NULL), "cert_serial"), old_serial) == 0,
		    "rework revoked another certificate than %s", old_serial);
		ck_assert_uint_eq(rw_count(recs, "issued", "ok"), 1);
		ck_assert_uint_eq(rw_count(recs, "done", "pass"), 1);
	}
	json_decref(recs);
	stu_audit_verify(w);

	for (i = 0; i < npaths; i++)
		free(paths[i]);
	free(paths);
	stu_run_clear(&r);
	stu_sim_stop(sim);
	stu_ws_free(other);
	stu_ws_free(w);
}
END_TEST

static Suite *
suite(void)
{
	TCase *tc;
	Suite *s = tu_pki_suite("rework", "rework", 120, &tc);

	tcase_add_test(tc, test_rework_ok);
	tcase_add_loop_test(tc, test_foreign_device, 0, 2);
	return s;
}

int
main(void)
{
	signal(SIGPIPE, SIG_IGN);
	return tu_run_suite(suite());
}
