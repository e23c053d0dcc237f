/* The attestation certificate binds the model (issue 13, item 5): a genuine
 * vendor certificate for model TSE-050 does not vouch for an SE that claims
 * TSE-100.  The liar holds an attestation key the vendor CA certified (a
 * compromised key of a cheaper part) and signs its attestations
 * consistently, so only the model check of POSTURE stands between it and a
 * certificate.  Both ways a recipe can say how the vendor names the model
 * are attacked: a subject attribute (the test vendor's "CN=MODEL
 * attestation") and a certificatePolicies OID per model. */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "liar.h"
#include "rwutil.h"

#define OID_100 "1.3.6.1.4.1.55555.1.100"
#define OID_050 "1.3.6.1.4.1.55555.1.50"

static const struct scenario {
	const char *name;
	liar_lies lies;
	int policies;         /* the recipe names models by policy OID (TSE-100 and TSE-050 allowed) */
	const char *reason;   /* NULL: the device passes */
} cases[] = {
	{ "honest certificate, subject rule", { 0 }, 0, NULL },
	{ "a TSE-050 certificate from an SE claiming TSE-100, subject rule", { .attest_cert_model = "TSE-050" }, 0,
	    "not for SE model \"TSE-100\": its CN is \"TSE-050 attestation\"" },
	{ "a certificate naming the model with a suffix, subject rule", { .attest_cert_model = "TSE-100-LITE" }, 0,
	    "not for SE model \"TSE-100\"" },
	{ "honest certificate, policy rule", { .attest_cert_policy = OID_100 }, 1, NULL },
	{ "the TSE-050 policy from an SE claiming TSE-100", { .attest_cert_policy = OID_050 }, 1,
	    "is for SE model \"TSE-050\"" },
	{ "both models' policies in one certificate", { .attest_cert_policy = OID_100 "," OID_050 }, 1,
	    "is for SE model \"TSE-050\"" },
	{ "no policy at all, policy rule", { 0 }, 1, "certificatePolicies" },
	{ "another policy only, policy rule", { .attest_cert_policy = "1.3.6.1.4.1.55555.9" }, 1,
	    "lacks policy " OID_100 },
};

/* The journal has the device's failure at POSTURE (the step's spelling is
 * the step table's business, not this test's). */
static int
posture_failed(json_t *recs)
{
	size_t i;
	json_t *rec;

	json_array_foreach (recs, i, rec)
		if (strcmp(stu_str(rec, "result"), "fail") == 0 && strcasecmp(stu_str(rec, "step"), "posture") == 0)
			return 1;
	return 0;
}

START_TEST(test_model)
{
	const struct scenario *sc = &cases[_i];
	stu_ws *w = stu_ws_new(tu_pki);
	stu_sim *sim = rw_sim(tu_pki, 1, 0);
	jigsim_device_info a;
	json_t *recs, *f;
	size_t at;
	stu_run r;
	liar *l;

	if (sc->policies) {
		stu_recipe_edit(w, "models: [TSE-100]", "models: [TSE-100, TSE-050]");
		stu_recipe_edit(w, "    subject: CN=${se.model} attestation",
		    "    policies: {TSE-100: " OID_100 ", TSE-050: " OID_050 "}");
	}
	l = liar_start(tu_pki, sim->s, &sc->lies);
	stu_station_run(w, l->uri, 1, 1, &r);
	ck_assert_int_eq(jigsim_device_get(sim->s, 1, &a), 0);
	recs = rw_records(w, a.serial);
	if (!sc->reason) {
		ck_assert_msg(r.status == 0 && stu_event(&r, "passed", a.serial), "%s: exit %d\n%s\n%s", sc->name, r.status,
		    stu_tail(r.out), stu_tail(r.err));
	} else {
		ck_assert_msg(r.status == 1, "%s: exit %d, expected 1 (a failed device)\n%s\n%s", sc->name, r.status,
		    stu_tail(r.out), stu_tail(r.err));
		ck_assert_msg((f = stu_event(&r, "failed", a.serial)) != NULL, "%s: no failed event\n%s", sc->name,
		    stu_tail(r.out));
		ck_assert_msg(strcmp(stu_str(f, "step"), "posture") == 0 && strstr(stu_str(f, "reason"), sc->reason),
		    "%s: failed at %s: %s (expected POSTURE: ...%s...)", sc->name, stu_str(f, "step"), stu_str(f, "reason"),
		    sc->reason);
		ck_assert_msg(rw_record(recs, 0, "issuing", NULL, &at) == NULL && rw_record(recs, 0, "auth", NULL, &at) == NULL,
		    "%s: the station went past POSTURE", sc->name);
		ck_assert_msg(posture_failed(recs), "%s: no posture failure in the journal", sc->name);
	}
	stu_audit_verify(w);
	json_decref(recs);
	stu_run_clear(&r);
	liar_stop(l);
	stu_sim_stop(sim);
	stu_ws_free(w);
}
END_TEST

int
main(void)
{
	TCase *tc;
	Suite *s = liar_suite("hostile-model", "model", 120, &tc);

	tcase_add_loop_test(tc, test_model, 0, (int)(sizeof(cases) / sizeof(cases[0])));
	return tu_run_suite(s);
}
