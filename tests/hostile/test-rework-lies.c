/* Rework against a lying jig (issue 13, items 1-3): after RETIRE the SE must
 * report the serial, model, firmware and attestation chain it reported
 * before, and pass posture and the chain check again; anything else is a
 * FAIL with no new certificate and no revocation.  The liar signs its lies
 * with an attestation key the vendor CA certified, so only those re-checks
 * stand between it and a certificate.  An honest liar shows that the jig
 * itself is faithful: the same rework passes through it. */
#include <stdlib.h>
#include <string.h>

#include "liar.h"
#include "rwutil.h"

static const struct scenario {
	const char *name;
	liar_lies lies;
	int victim;            /* a second SE is provisioned first; the liar names it after RETIRE */
	const char *min_fw;    /* recipe se.min_firmware, NULL: the demo's */
	const char *reason;    /* NULL: the rework passes */
} cases[] = {
	{ "honest", { 0 }, 0, NULL, NULL },
	{ "firmware older after RETIRE", { .firmware_before = 1u << 24 | 5u << 16, .firmware_after = 1u << 24 | 4u << 16 | 2 },
	    0, "1.5.0", "firmware" },
	{ "another model, firmware 0.0.1 and a non-DER chain after RETIRE",
	    { .model_after = "TSE-050", .firmware_after = 1, .junk_chain_after = 1 }, 0, NULL, "model" },
	{ "a victim's serial after RETIRE", { 0 }, 1, NULL, "serial" },
};

START_TEST(test_rework_lies)
{
	const struct scenario *sc = &cases[_i];
	stu_ws *w = stu_ws_new(tu_pki);
	stu_sim *sim = rw_sim(tu_pki, 1, 0), *vsim = NULL;
	liar_lies lies = sc->lies;
	jigsim_device_info a, v;
	char edit[64], victim_cert[64] = "";
	json_t *recs, *f;
	size_t start = 0, at;
	stu_run r;
	liar *l;

	if (sc->min_fw) {
		snprintf(edit, sizeof(edit), "min_firmware: %s", sc->min_fw);
		stu_recipe_edit(w, "min_firmware: 1.4.0", edit);
	}
	if (sc->victim) {
		jigsim_config c;
		uint8_t der[JIG_BLOB_MAX];
		size_t len = 0;

		jigsim_config_init(&c);
		c.devices = 1;
		c.rma = 1;
		vsim = stu_sim_start(tu_pki, &c);
		rw_provision(w, vsim, 1);
		ck_assert_int_eq(jigsim_device_get(vsim->s, 1, &v), 0);
		rw_sim_cert(vsim, 1, der, sizeof(der), &len);
		tu_der_serial_hex(der, len, victim_cert);
		lies.serial_after = v.serial;
	}
	l = liar_start(tu_pki, sim->s, &lies);
	stu_station_run(w, l->uri, 1, 1, &r);
	ck_assert_int_eq(jigsim_device_get(sim->s, 1, &a), 0);
	ck_assert_msg(r.status == 0 && stu_event(&r, "passed", a.serial), "%s: provisioning through the liar: exit %d\n%s\n%s",
	    sc->name, r.status, stu_tail(r.out), stu_tail(r.err));
	stu_run_clear(&r);

	rw_rework(w, l->uri, "failed final test", "QA lead", &r);
	recs = rw_records(w, NULL);
	ck_assert_ptr_nonnull(rw_record(recs, 0, "rework-start", "ok", &start));
	if (!sc->reason) {
		ck_assert_msg(r.status == 0 && stu_event(&r, "passed", a.serial), "%s: exit %d\n%s\n%s", sc->name, r.status,
		    stu_tail(r.out), stu_tail(r.err));
		ck_assert_ptr_nonnull(rw_record(recs, start, "issued", "ok", &at));
	} else {
		ck_assert_msg(l->lies_told > 0, "%s: the liar never got to lie", sc->name);
		ck_assert_msg(r.status == 1, "%s: station rework: exit %d\n%s\n%s", sc->name, r.status, stu_tail(r.out),
		    stu_tail(r.err));
		ck_assert_msg((f = stu_event(&r, "failed", a.serial)) != NULL, "%s: no failed event for %s\n%s", sc->name,
		    a.serial, stu_tail(r.out));
		ck_assert_msg(strcmp(stu_str(f, "step"), "retire") == 0 && strstr(stu_str(f, "reason"), sc->reason),
		    "%s: failed at %s: %s (expected RETIRE, about the %s)", sc->name, stu_str(f, "step"),
		    stu_str(f, "reason"), sc->reason);
		ck_assert_msg(rw_record(recs, start, "issuing", NULL, &at) == NULL &&
		                  rw_record(recs, start, "issued", NULL, &at) == NULL,
		    "%s: a certificate was issued after the lie", sc->name);
		ck_assert_msg(rw_record(recs, start, "revoke", NULL, &at) == NULL, "%s: the rework revoked %s", sc->name,
		    rw_detail(rw_record(recs, start, "revoke", NULL, &at), "cert_serial"));
	}
	/* The rework journals identify and posture like the factory path: before
	 * RETIRE, and (when it got that far cleanly) after. */
	ck_assert_msg(rw_record(recs, start, "identify", "ok", &at) && rw_record(recs, start, "posture", "ok", &at),
	    "%s: the rework journal has no identify/posture records", sc->name);
	if (!sc->reason) {
		size_t retire = 0;

		ck_assert_ptr_nonnull(rw_record(recs, start, "retire", "ok", &retire));
		ck_assert_msg(rw_record(recs, retire, "identify", "ok", &at) && rw_record(recs, retire, "posture", "ok", &at),
		    "%s: no identify/posture records after RETIRE", sc->name);
	}
	if (sc->victim) {
		stu_journal j;
		stu_ledger *vl;

		stu_journal_load(w->audit, &j);
		ck_assert_ptr_nonnull(vl = stu_journal_dev(&j, v.serial));
		ck_assert_msg(vl->issued == 1 && vl->revoked == 0, "victim %s: %u issued, %u revoked (its %s)", v.serial,
		    vl->issued, vl->revoked, victim_cert);
		stu_journal_clear(&j);
	}
	stu_audit_verify(w);
	json_decref(recs);
	stu_run_clear(&r);
	liar_stop(l);
	stu_sim_stop(vsim);
	stu_sim_stop(sim);
	stu_ws_free(w);
}
END_TEST

int
main(void)
{
	TCase *tc;
	Suite *s = liar_suite("hostile-rework", "lies", 180, &tc);

	tcase_add_loop_test(tc, test_rework_lies, 0, (int)(sizeof(cases) / sizeof(cases[0])));
	return tu_run_suite(s);
}
