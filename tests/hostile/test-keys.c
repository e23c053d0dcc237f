/* Key uniqueness against a lying jig (issue 13, item 4): the liar plays the
 * key slot with keys of its own.  Rework must not re-certify the retired key,
 * and one public key is never certified for two SE serials, whether the
 * first certificate is in this run or in the journal from an earlier one. */
#include <stdlib.h>
#include <string.h>

#include "liar.h"
#include "rwutil.h"

/* Nothing after position from in recs issues a certificate. */
static void
no_issuance(json_t *recs, size_t from, const char *what)
{
	size_t at;

	ck_assert_msg(rw_record(recs, from, "issuing", NULL, &at) == NULL && rw_record(recs, from, "issued", NULL, &at) == NULL,
	    "%s: a certificate was issued", what);
}

static void
failed_at_keygen(stu_run *r, const char *serial, const char *reason, const char *what)
{
	json_t *f = stu_event(r, "failed", serial);

	ck_assert_msg(r->status == 1, "%s: exit %d\n%s\n%s", what, r->status, stu_tail(r->out), stu_tail(r->err));
	ck_assert_msg(f != NULL, "%s: no failed event for %s\n%s", what, serial, stu_tail(r->out));
	ck_assert_msg(strcmp(stu_str(f, "step"), "keygen") == 0 && strstr(stu_str(f, "reason"), reason),
	    "%s: failed at %s: %s", what, stu_str(f, "step"), stu_str(f, "reason"));
}

START_TEST(test_rework_retired_key)
{
	stu_ws *w = stu_ws_new(tu_pki);
	stu_sim *sim = rw_sim(tu_pki, 1, 0);
	liar_lies lies = { .own_keys = 1, .reuse_key = _i };
	jigsim_device_info a;
	json_t *recs;
	size_t start = 0;
	stu_run r;
	liar *l = liar_start(tu_pki, sim->s, &lies);

	stu_station_run(w, l->uri, 1, 1, &r);
	ck_assert_int_eq(jigsim_device_get(sim->s, 1, &a), 0);
	ck_assert_msg(r.status == 0 && stu_event(&r, "passed", a.serial), "provisioning: exit %d\n%s\n%s", r.status,
	    stu_tail(r.out), stu_tail(r.err));
	stu_run_clear(&r);
	rw_rework(w, l->uri, "failed final test", "QA lead", &r);
	recs = rw_records(w, NULL);
	ck_assert_ptr_nonnull(rw_record(recs, 0, "rework-start", "ok", &start));
	if (_i) {
		failed_at_keygen(&r, a.serial, "had certified before", "the retired key again");
		no_issuance(recs, start, "the retired key again");
	} else {
		/* the control: a liar with a fresh key is reworked */
		ck_assert_msg(r.status == 0 && stu_event(&r, "passed", a.serial), "fresh key: exit %d\n%s\n%s", r.status,
		    stu_tail(r.out), stu_tail(r.err));
	}
	stu_audit_verify(w);
	json_decref(recs);
	stu_run_clear(&r);
	liar_stop(l);
	stu_sim_stop(sim);
	stu_ws_free(w);
}
END_TEST

/* _i 0: the second SE comes in the same run; 1: in a later run. */
START_TEST(test_one_key_two_serials)
{
	stu_ws *w = stu_ws_new(tu_pki);
	stu_sim *sim;
	jigsim_config c;
	EVP_PKEY *key = EVP_EC_gen("P-256");
	liar_lies lies = { .own_keys = 1, .shared_key = key };
	jigsim_device_info a, b;
	json_t *recs;
	size_t start = 0;
	stu_run r;
	liar *l;
	stu_journal j;

	ck_assert_ptr_nonnull(key);
	jigsim_config_init(&c);
	c.devices = 2;
	sim = stu_sim_start(tu_pki, &c);
	l = liar_start(tu_pki, sim->s, &lies);
	if (_i) {
		stu_station_run(w, l->uri, 1, 1, &r);
		ck_assert_int_eq(jigsim_device_get(sim->s, 1, &a), 0);
		ck_assert_msg(r.status == 0 && stu_event(&r, "passed", a.serial), "first SE: exit %d\n%s\n%s", r.status,
		    stu_tail(r.out), stu_tail(r.err));
		stu_run_clear(&r);
		stu_station_run(w, l->uri, 1, 1, &r);
	} else {
		stu_station_run(w, l->uri, 2, 1, &r);
	}
	ck_assert_int_eq(jigsim_device_get(sim->s, 1, &a), 0);
	ck_assert_int_eq(jigsim_device_get(sim->s, 2, &b), 0);
	ck_assert_msg(stu_event(&r, "passed", b.serial) == NULL, "SE %s was certified with SE %s's key", b.serial,
	    a.serial);
	failed_at_keygen(&r, b.serial, "another SE", "one key, two serials");
	recs = rw_records(w, b.serial);
	no_issuance(recs, 0, "one key, two serials");
	json_decref(recs);
	stu_journal_load(w->audit, &j);
	ck_assert_msg(stu_journal_dev(&j, a.serial) && stu_journal_dev(&j, a.serial)->issued == 1, "SE %s: not issued once",
	    a.serial);
	stu_journal_clear(&j);
	(void)start;
	stu_run_clear(&r);
	liar_stop(l);
	EVP_PKEY_free(key);
	stu_sim_stop(sim);
	stu_ws_free(w);
}
END_TEST

int
main(void)
{
	TCase *tc;
	Suite *s = liar_suite("hostile-keys", "keys", 180, &tc);

	tcase_add_loop_test(tc, test_rework_retired_key, 0, 2);
	tcase_add_loop_test(tc, test_one_key_two_serials, 0, 2);
	return tu_run_suite(s);
}
