/* One key and signature policy (issue 13, item 6a): a CSR that libhsm would
 * refuse (ecdsa-with-SHA1, or a P-256 key with explicit curve parameters)
 * is refused at VERIFY by the same function,
 * and fails that device only: the honest jig beside the liar goes on. */
#include <stdlib.h>
#include <string.h>

#include "liar.h"
#include "rwutil.h"

START_TEST(test_sha1_csr_fails_one_device)
{
	stu_ws *w = stu_ws_new(tu_pki);
	jigsim_config c;
	stu_sim *sim, *honest;
	liar_lies lies = { .own_keys = 1, .csr_sha1 = _i == 0, .explicit_key = _i == 1 };
	const char *why = _i == 0 ? "signature algorithm" : "explicit curve parameters";
	jigsim_device_info bad, a, b;
	const char *jigs[2];
	json_t *f;
	stu_run r;
	liar *l;

	jigsim_config_init(&c);
	c.devices = 1;
	sim = stu_sim_start(tu_pki, &c);
	c.devices = 2;
	honest = stu_sim_start(tu_pki, &c);
	l = liar_start(tu_pki, sim->s, &lies);
	jigs[0] = l->uri;
	jigs[1] = honest->uri;
	stu_station_start_jigs(w, jigs, 2, 3, 1, &r);
	stu_station_wait(&r, 90);
	ck_assert_int_eq(jigsim_device_get(sim->s, 1, &bad), 0);
	ck_assert_int_eq(jigsim_device_get(honest->s, 1, &a), 0);
	ck_assert_int_eq(jigsim_device_get(honest->s, 2, &b), 0);
	ck_assert_msg((f = stu_event(&r, "failed", bad.serial)) != NULL, "no failed event for %s\n%s\n%s", bad.serial,
	    stu_tail(r.out), stu_tail(r.err));
	ck_assert_msg(strcmp(stu_str(f, "step"), "verify") == 0 && strstr(stu_str(f, "reason"), why),
	    "failed at %s: %s", stu_str(f, "step"), stu_str(f, "reason"));
	ck_assert_msg(stu_event(&r, "passed", a.serial) && stu_event(&r, "passed", b.serial),
	    "the honest jig's devices did not both pass: exit %d\n%s", r.status, stu_tail(r.out));
	ck_assert_msg(r.status == 1, "exit %d (one device failed, the run was not stopped)\n%s", r.status, stu_tail(r.err));
	liar_test_end(w, &r, l, honest, sim);
}
END_TEST

int
main(void)
{
	TCase *tc;
	Suite *s = liar_suite("hostile-policy", "policy", 120, &tc);

	tcase_add_loop_test(tc, test_sha1_csr_fails_one_device, 0, 2);
	return tu_run_suite(s);
}
