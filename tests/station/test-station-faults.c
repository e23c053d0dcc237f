/* Every jigsim fault against `station run`: the faulty device ends FAIL at
 * the right step with a reason that says what happened, nothing is
 * installed after a failed VERIFY, and the run goes on with the next
 * device.  Line faults that retransmission repairs leave the device PASS
 * with exactly one key generated.  Faulty and good devices alternate
 * (--fault-every 2): devices 1 and 3 are good, device 2 is faulty.  Every
 * case runs against a protocol 1.2 jig, and those 1.1 has against a 1.1
 * jig (where more of what the SE signed travels, so the reasons can be
 * more precise). */
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "stutil.h"

static const struct fault_case {
	const char *fault;
	const char *step;   /* where the faulty device fails; NULL: it passes */
	const char *reason; /* part of the reason the operator reads */
	const char *code, *disposition; /* the failed event's stable names (docs/events.schema.json) */
} cases[] = {
	{ "bad-attestation-signature", "verify", "attestation signature", "verification", "quarantine" },
	{ "attestation-wrong-key", "verify", "another public key than KEYGEN returned", "verification", "quarantine" },
	{ "replay-nonce", "verify", "nonce", "verification", "quarantine" },
	{ "unknown-se-vendor", "posture", "does not chain to the SE vendor root", "verification", "quarantine" },
	{ "already-locked", "posture", "already locked", "state", "already-provisioned" },
	{ "readback-mismatch", "install", "read back", "verification", "scrap" },
	{ "disconnect-mid-command", "csr", "GET_CSR", "disconnected", "reseat" },
	{ "slow-reply", "keygen", "KEYGEN: no answer after 250 ms", "timeout", "reseat" },
	{ "corrupt-byte", NULL, NULL, NULL, NULL },
	{ "drop-reply", NULL, NULL, NULL, NULL },
	/* 1.2 only, the last ones */
	{ "bad-delta", "posture", "delta: op", "protocol", "quarantine" },
	{ "forgets-template", "install", "NO_TEMPLATE", "jig-error", "reseat" },
};
#define NCASES (sizeof(cases) / sizeof(cases[0]))
#define NCASES_11 (NCASES - 2)

/* Steps at which no certificate exists yet. */
static int
before_sign(const char *step)
{
	return strcmp(step, "posture") == 0 || strcmp(step, "keygen") == 0 || strcmp(step, "csr") == 0 ||
	    strcmp(step, "verify") == 0;
}

START_TEST(test_fault)
{
	const struct fault_case *fc = &cases[(size_t)_i % NCASES];
	const unsigned n = 3;
	stu_ws *w = stu_ws_new(tu_pki);
	stu_sim *sim = NULL;
	jigsim_config c;
	jigsim_device_info info;
	stu_journal j;
	stu_ledger *l;
	stu_run r;
	char **paths = NULL;
	size_t npaths = 0;
	unsigned i;

	jigsim_config_init(&c);
	c.devices = n;
	c.faults = jigsim_fault_parse(fc->fault);
	ck_assert_msg(c.faults != 0, "jigsim knows no fault %s", fc->fault);
	c.fault_every = 2;
	c.max_version = (size_t)_i < NCASES ? JIG_VERSION_1_2 : JIG_VERSION_1_1;
	if (strcmp(fc->fault, "slow-reply") == 0) {
		/* Slower than the recipe allows KEYGEN, retries included. */
		stu_recipe_edit(w, "    keygen: 3000", "    keygen: 250");
		stu_recipe_edit(w, "  retries: 2", "  retries: 1");
		c.slow_ms = 1000;
	} else if (strcmp(fc->fault, "drop-reply") == 0) {
		stu_recipe_edit(w, "    keygen: 3000", "    keygen: 500"); /* the retry comes sooner */
	}
	sim = stu_sim_start(tu_pki, &c);
	stu_station_run(w, sim->uri, n, 1, &r);
	ck_assert_msg(r.status == (fc->step ? 1 : 0), "%s: station run exit %d\n%s\n%s", fc->fault, r.status, stu_tail(r.out),
	    stu_tail(r.err));

	/* Every device was handled and released: the run went on after the fault. */
	ck_assert_uint_eq(jigsim_device_count(sim->s), n);
	ck_assert_uint_eq(jigsim_released(sim->s), n);
	stu_journal_load(w->audit, &j);
	for (i = 1; i <= n; i++) {
		ck_assert_int_eq(jigsim_device_get(sim->s, i, &info), 0);
		ck_assert_msg(!!(info.faults & c.faults) == (i == 2), "device %u: faults 0x%x", i, info.faults);
		if (i == 2 && fc->step)
			continue;
		ck_assert_msg(stu_event(&r, "passed", info.serial) != NULL, "%s: device %u (%s) did not pass\n%s\n%s",
		    fc->fault, i, info.serial, stu_tail(r.out), stu_tail(r.err));
		ck_assert_uint_eq(info.keygens, 1); /* retransmission never generated a second key */
		stu_check_device_cert(w, sim->s, i, &paths, &npaths);
	}
	stu_openssl_verify(w, paths, npaths);

	ck_assert_int_eq(jigsim_device_get(sim->s, 2, &info), 0);
	ck_assert_ptr_nonnull(l = stu_journal_dev(&j, info.serial));
	if (fc->step) {
		json_t *f = stu_event(&r, "failed", info.serial);
		uint8_t cert[JIG_BLOB_MAX];
		size_t len = 0;

		ck_assert_msg(f != NULL, "%s: no failed event for device 2\n%s", fc->fault, stu_tail(r.out));
		ck_assert_msg(strcmp(stu_str(f, "step"), fc->step) == 0, "%s: failed at %s, expected %s: %s", fc->fault,
		    stu_str(f, "step"), fc->step, stu_str(f, "reason"));
		ck_assert_msg(strstr(stu_str(f, "reason"), fc->reason) != NULL, "%s: reason \"%s\" does not say \"%s\"",
		    fc->fault, stu_str(f, "reason"), fc->reason);
		ck_assert_str_ne(stu_str(f, "advice"), "");
		ck_assert_msg(strcmp(stu_str(f, "code"), fc->code) == 0 && strcmp(stu_str(f, "disposition"), fc->disposition) == 0,
		    "%s: code %s, disposition %s; expected %s, %s", fc->fault, stu_str(f, "code"), stu_str(f, "disposition"),
		    fc->code, fc->disposition);
		ck_assert_msg(stu_event(&r, "passed", info.serial) == NULL, "%s: device 2 also passed", fc->fault);
		/* The journal says the same. */
		ck_assert_uint_eq(l->fails, 1);
		ck_assert_str_eq(l->fail_step, fc->step);
		ck_assert_uint_eq(l->passes, 0);
		ck_assert_uint_eq(stu_live(l), 0);
		ck_assert_int_eq(jigsim_device_cert(sim->s, 2, 0, cert, sizeof(cert), &len), 0);
		if (before_sign(fc->step)) {
			/* Nothing signed, nothing installed (already-locked came with a
			 * foreign certificate we did not touch). */
			ck_assert_uint_eq(l->issued, 0);
			ck_assert_msg(len == 0 || strcmp(fc->fault, "already-locked") == 0,
			    "%s: a certificate was installed after failing at %s", fc->fault, fc->step);
			ck_assert_msg(stu_cert_der(w, info.serial, &len) == NULL, "%s: the station kept a certificate",
			    fc->fault);
		} else {
			/* Issued but never installed: revoked when the run ended; the
			 * failed event names the certificate, a revoked event follows. */
			json_t *rv = stu_event(&r, "revoked", info.serial);

			ck_assert_uint_eq(l->issued, 1);
			ck_assert_uint_eq(l->revoked, 1);
			ck_assert_msg(strcasecmp(stu_str(f, "certificate_serial"), l->issued_serial[0]) == 0,
			    "%s: the failed event names certificate \"%s\", the journal %s", fc->fault,
			    stu_str(f, "certificate_serial"), l->issued_serial[0]);
			ck_assert_msg(rv && strcasecmp(stu_str(rv, "certificate_serial"), l->issued_serial[0]) == 0 &&
			        strcmp(stu_str(rv, "reason"), "cessationOfOperation") == 0,
			    "%s: no revoked event for %s\n%s", fc->fault, l->issued_serial[0], stu_tail(r.out));
			ck_assert_int_eq(json_integer_value(json_object_get(stu_event(&r, "summary", NULL), "revoked")), 1);
		}
		ck_assert_int_eq(info.lifecycle, strcmp(fc->fault, "already-locked") == 0 ? JIG_LC_PROVISIONED : JIG_LC_FACTORY);
	} else {
		/* The line fault was repaired by a retransmission: the operator
		 * sees the retry, and the pass says it took one. */
		json_t *rt = stu_event(&r, "retry", info.serial), *p = stu_event(&r, "passed", info.serial);

		ck_assert_uint_eq(l->passes, 1);
		ck_assert_uint_eq(l->issued, 1);
		ck_assert_msg(rt != NULL, "%s: no retry event for device 2\n%s", fc->fault, stu_tail(r.out));
		ck_assert_int_eq(json_integer_value(json_object_get(rt, "attempt")), 2);
		ck_assert_int_eq(json_integer_value(json_object_get(rt, "of")), 3); /* the recipe's retries: 2 */
		ck_assert_str_ne(stu_str(rt, "what"), "");
		ck_assert_msg(strstr(stu_str(rt, "why"), strcmp(fc->fault, "drop-reply") == 0 ? "no answer" : "corrupt"),
		    "%s: retry why \"%s\"", fc->fault, stu_str(rt, "why"));
		ck_assert_int_ge(json_integer_value(json_object_get(p, "retries")), 1);
	}
	/* Nothing is retried for the good devices. */
	for (i = 1; i <= n; i += 2) {
		ck_assert_int_eq(jigsim_device_get(sim->s, i, &info), 0);
		ck_assert_msg(stu_event(&r, "retry", info.serial) == NULL, "%s: a retry for good device %u", fc->fault, i);
	}
	stu_journal_check_live(&j);
	stu_audit_verify(w);

	for (i = 0; i < npaths; i++)
		free(paths[i]);
	free(paths);
	stu_journal_clear(&j);
	stu_run_clear(&r);
	stu_sim_stop(sim);
	stu_ws_free(w);
}
END_TEST

/* A SET_BAUD switch that fails (nothing arrives at the new rate) is not
 * tried again when the station reconnects to that jig: two devices, each
 * cut off at GET_CSR, so the second is met on a new connection; the
 * operator reads of the failed switch once. */
START_TEST(test_baud_failed_once)
{
	stu_ws *w = stu_ws_new(tu_pki);
	stu_sim *sim = NULL;
	jigsim_config c;
	stu_run r;
	const char *p;
	unsigned notes = 0;

	jigsim_config_init(&c);
	c.devices = 2;
	stu_config_line(&c, 921600, 1);
	c.faults = JIGSIM_F_DISCONNECT;
	sim = stu_sim_start(tu_pki, &c);
	stu_station_run(w, sim->uri, 2, 1, &r);
	ck_assert_msg(stu_event_count(&r, "failed") == 2, "exit %d\n%s\n%s", r.status, stu_tail(r.out), stu_tail(r.err));
	for (p = r.out; (p = strstr(p, "SET_BAUD: no answer at 921600 baud")); p++)
		notes++;
	ck_assert_msg(notes == 1, "the failed switch was tried and noted %u times\n%s", notes, stu_tail(r.out));
	stu_run_clear(&r);
	stu_sim_stop(sim);
	stu_ws_free(w);
}
END_TEST

static Suite *
suite(void)
{
	TCase *tc;
	Suite *s = tu_pki_suite("station-faults", "faults", 120, &tc);

	tcase_add_loop_test(tc, test_fault, 0, (int)(NCASES + NCASES_11));
	tcase_add_test(tc, test_baud_failed_once);
	return s;
}

int
main(void)
{
	signal(SIGPIPE, SIG_IGN);
	return tu_run_suite(suite());
}
