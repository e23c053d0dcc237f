/* A network HSM: the whole station (a gang of four jigs, audit sealing,
 * the CRL and recipe signing) through p11-kit's remoting — `p11-kit
 * server` exposes the test PKI's SoftHSM token on a unix socket and the
 * station's module is p11-kit-client.so, the way a station reaches a
 * network HSM.  The server killed mid-run: a clear error naming the HSM,
 * no half-issued device, and the rerun after a restart resumes. */
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "gangutil.h"

enum { NJIGS = 4 };

/* Four jigs, twenty devices, then seal, CRL and recipe signature: every
 * signature made in the token behind the socket. */
START_TEST(test_gang_through_p11kit_server)
{
	enum { PER_JIG = 5 };
	stu_ws *w = gang_ws_module(tu_pki, TU_P11KIT_CLIENT);
	pid_t server = tu_p11kit_server_start(w->dir, "station-test");
	stu_sim *sim[NJIGS];
	const char *uris[NJIGS];
	size_t i;

	gang_sims_start(tu_pki, NJIGS, PER_JIG, 0, sim, uris);
	gang_provision_and_sign(w, sim, uris, NJIGS, PER_JIG);
	tu_p11kit_server_stop(server);
	for (i = 0; i < NJIGS; i++)
		stu_sim_stop(sim[i]);
	stu_ws_free(w);
}
END_TEST

/* The server dies while the gang runs: the station stops with an error
 * naming the token and the module, no device holds a certificate the
 * journal does not close, and after a restart the rerun finishes the
 * rest. */
START_TEST(test_server_killed_mid_run)
{
	enum { PER_JIG = 12 };
	stu_ws *w = gang_ws_module(tu_pki, TU_P11KIT_CLIENT);
	pid_t server = tu_p11kit_server_start(w->dir, "station-test");
	stu_sim *sim[NJIGS];
	const char *uris[NJIGS];
	char *all;
	size_t i;
	unsigned k, passed1, failed1, passed = 0, rejected = 0;
	stu_journal j;
	stu_ledger *l;
	stu_run r;

	gang_sims_start(tu_pki, NJIGS, PER_JIG, 20, sim, uris);
	stu_station_start_jigs(w, uris, NJIGS, NJIGS * PER_JIG, 1, &r);
	ck_assert_int_eq(gang_wait_output(&r, 120, "\"passed\"", NULL), 0);
	tu_p11kit_server_stop(server);
	stu_station_wait(&r, 150);
	passed1 = stu_event_count(&r, "passed");
	failed1 = stu_event_count(&r, "failed");
	ck_assert_msg(r.status != 0 && passed1 < NJIGS * PER_JIG, "station run: exit %d after %u passed\n%s", r.status,
	    passed1, stu_tail(r.err));
	ck_assert_int_ne(asprintf(&all, "%s\n%s", r.out ? r.out : "", r.err ? r.err : ""), -1);
	ck_assert_msg(strstr(all, "station-test") && strstr(all, "p11-kit-client.so") && strstr(all, "CKR_"),
	    "the error does not name the HSM:\n%s", stu_tail(all));
	free(all);
	stu_journal_load(w->audit, &j);
	stu_journal_check_live(&j);
	stu_journal_clear(&j);
	stu_run_clear(&r);

	server = tu_p11kit_server_start(w->dir, "station-test");
	/* Devices that failed when the HSM went away left the jig (to the
	 * reject bin, nothing issued): the rerun handles all the others. */
	stu_station_start_jigs(w, uris, NJIGS, NJIGS * PER_JIG - passed1 - failed1, 1, &r);
	stu_station_wait(&r, 150);
	ck_assert_msg(r.status == 0, "rerun: exit %d\n%s\n%s", r.status, stu_tail(r.out), stu_tail(r.err));
	stu_journal_load(w->audit, &j);
	for (i = 0; i < NJIGS; i++)
		for (k = 1; k <= PER_JIG; k++) {
			jigsim_device_info info;

			ck_assert_int_eq(jigsim_device_get(sim[i]->s, k, &info), 0);
			if (info.lifecycle == JIG_LC_PROVISIONED) {
				passed++;
				continue;
			}
			/* Not provisioned: failed in the first run, with nothing issued. */
			ck_assert_int_eq(info.lifecycle, JIG_LC_FACTORY);
			ck_assert_msg((l = stu_journal_dev(&j, info.serial)) != NULL && l->issued == 0 && l->fails == 1,
			    "SE %s neither provisioned nor cleanly failed", info.serial);
			rejected++;
		}
	ck_assert_uint_eq(passed + rejected, NJIGS * PER_JIG);
	ck_assert_uint_eq(rejected, failed1);
	ck_assert_uint_eq(passed, passed1 + stu_event_count(&r, "passed"));
	stu_journal_check_live(&j);
	stu_journal_clear(&j);
	stu_audit_verify(w);

	tu_p11kit_server_stop(server);
	for (i = 0; i < NJIGS; i++)
		stu_sim_stop(sim[i]);
	stu_run_clear(&r);
	stu_ws_free(w);
}
END_TEST

static Suite *
suite(void)
{
	TCase *tc;
	Suite *s = tu_pki_suite("gang-nethsm", "nethsm", 280, &tc);

	tcase_add_test(tc, test_gang_through_p11kit_server);
	tcase_add_test(tc, test_server_killed_mid_run);
	return s;
}

int
main(void)
{
	signal(SIGPIPE, SIG_IGN);
	return tu_run_suite(suite());
}
