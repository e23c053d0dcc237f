/* The shift quota binds (issue 13, item 9): quota.max_per_shift caps the
 * certificates signed between two releases over the whole journal, so
 * neither a new run, nor a restart, nor a station killed mid-run gets a
 * fresh allowance; once used up, issuance stops (end "quota", exit 3) on
 * this run and every later one, with the refusal in the journal, until a
 * key whose certificate the recipe lists in quota.release_signers signs a
 * release, a certificate with the authorization role.  Holding the HSM
 * PIN is not that right: a release signed by another key of the same token
 * is refused, and so is one by a listed recipe signer.  A release is verified again
 * whenever the journal is read: with another signer list it no longer
 * counts. */
#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include "stutil.h"

/* "issuing" and failed "quota" records in the journal. */
static void
count_records(stu_ws *w, unsigned *issuing, unsigned *refusals, unsigned *releases)
{
	stu_journal j;

	*issuing = *refusals = *releases = 0;
	stu_journal_load(w->audit, &j); /* the chain holds */
	stu_journal_clear(&j);
	{
		char cmd[9000];
		FILE *p;
		static char line[1 << 16];

		snprintf(cmd, sizeof(cmd), "cat '%s'/batch-*.jsonl", w->audit);
		p = popen(cmd, "r");
		ck_assert_ptr_nonnull(p);
		while (fgets(line, sizeof(line), p)) {
			json_t *rec = json_loads(line, 0, NULL);

			if (!rec)
				continue;
			if (strcmp(stu_str(rec, "step"), "issuing") == 0)
				(*issuing)++;
			if (strcmp(stu_str(rec, "step"), "quota") == 0 && strcmp(stu_str(rec, "result"), "fail") == 0)
				(*refusals)++;
			if (strcmp(stu_str(rec, "step"), "quota-release") == 0)
				(*releases)++;
			json_decref(rec);
		}
		pclose(p);
	}
}

/* A run of --count n must end as expected: passed devices, exit, end. */
static void
run(stu_ws *w, stu_sim *sim, unsigned count, int passed, int status, const char *end, const char *what)
{
	stu_run r;
	json_t *sum;

	stu_station_run(w, sim->uri, count, 1, &r);
	sum = stu_event(&r, "summary", NULL);
	ck_assert_msg(r.status == status && sum && strcmp(stu_str(sum, "end"), end) == 0 &&
	                  (passed < 0 || stu_event_count(&r, "passed") == (unsigned)passed),
	    "%s: exit %d, end \"%s\", %u passed; expected %d, %s, %d\n%s\n%s", what, r.status, stu_str(sum, "end"),
	    stu_event_count(&r, "passed"), status, end, passed, stu_tail(r.out), stu_tail(r.err));
	if (strcmp(end, "quota") == 0)
		ck_assert_msg(strstr(stu_str(sum, "stopped"), "quota.max_per_shift") &&
		                  strstr(stu_str(sum, "stopped"), "station quota release"),
		    "%s: the stop does not say what binds and what to do: %s", what, stu_str(sum, "stopped"));
	if (passed == 0 && strcmp(end, "quota") == 0)
		ck_assert_msg(stu_event_count(&r, "device_started") == 0, "%s: a device was started", what);
	stu_run_clear(&r);
}

static int
quota_cmd(stu_ws *w, char **out, const char *sub, const char *key, const char *reason)
{
	if (strcmp(sub, "status") == 0)
		return tu_station(out, "quota", "status", "--recipe", w->recipe, NULL);
	if (strcmp(key, "authorizer") == 0) /* on a token of its own, with its own PIN */
		return tu_station(out, "quota", "release", "--recipe", w->recipe, "--token", "station-authorizer",
		    "--key-label", key, "--pin-env", "STATION_AUTHORIZER_PIN", "--reason", reason, "--operator", "supervisor",
		    NULL);
	return tu_station(out, "quota", "release", "--recipe", w->recipe, "--key-label", key, "--reason", reason,
	    "--operator", "supervisor", NULL);
}

START_TEST(test_shift_quota)
{
	stu_ws *w = stu_ws_new(tu_pki);
	jigsim_config c;
	stu_sim *sim;
	stu_run r;
	unsigned issuing, refusals, releases, before, i;
	char *out = NULL;
	int rc;

	stu_recipe_edit(w, "max_per_shift: 100", "max_per_shift: 3"); /* release_signers: pki/authorizer.pem */
	stu_recipe_edit(w, "batch_size: 10", "batch_size: 1"); /* batches seal themselves: no help */
	jigsim_config_init(&c);
	c.devices = 10;
	sim = stu_sim_start(tu_pki, &c);

	run(w, sim, 1, 1, 0, "completed", "run 1");
	/* A station killed mid-run: what it issued counts all the same. */
	stu_station_start(w, sim->uri, 0, 1, &r);
	for (i = 0; i < 300; i++) {
		char *s = tu_slurp(r.out_path, NULL);
		int got = s && strstr(s, "\"passed\"");

		free(s);
		if (got)
			break;
		stu_sleep_ms(100);
	}
	kill(r.pid, SIGKILL);
	stu_station_wait(&r, 60);
	stu_run_clear(&r);
	count_records(w, &issuing, &refusals, &releases);
	ck_assert_msg(issuing >= 2, "%u issuing records after the killed run", issuing);
	/* The rest of the shift (the killed run's device resumes), then the
	 * refusal that stops the run. */
	run(w, sim, 5, -1, 3, "quota", "run 3");
	count_records(w, &issuing, &refusals, &releases);
	ck_assert_uint_eq(issuing, 3);
	ck_assert_uint_ge(refusals, 1); /* the killed run may have met the quota before it was killed */
	before = refusals;
	/* A new run does not start a new shift. */
	run(w, sim, 1, 0, 3, "quota", "run 4");
	count_records(w, &issuing, &refusals, &releases);
	ck_assert_uint_eq(issuing, 3);
	ck_assert_uint_eq(refusals, before + 1);
	rc = quota_cmd(w, &out, "status", NULL, NULL);
	ck_assert_msg(rc == 1 && strstr(out, "3 of 3"), "quota status: exit %d\n%s", rc, out);
	free(out);

	/* The HSM PIN alone is not the right to continue. */
	rc = quota_cmd(w, &out, "release", "audit", "next shift");
	ck_assert_msg(rc == 1 && strstr(out, "none of the certificates in quota.release_signers"), "release by audit: "
	    "exit %d\n%s", rc, out);
	free(out);
	run(w, sim, 1, 0, 3, "quota", "after a refused release");

	/* Listed, but a recipe signer's certificate: not the authorization role. */
	stu_recipe_edit(w, "release_signers: pki/authorizer.pem", "release_signers: pki/engineering.pem");
	rc = quota_cmd(w, &out, "release", "engineering", "shift 2");
	ck_assert_msg(rc == 1 && strstr(out, "authorization"), "release by a recipe signer: exit %d\n%s", rc, out);
	free(out);
	stu_recipe_edit(w, "release_signers: pki/engineering.pem", "release_signers: pki/authorizer.pem");
	run(w, sim, 1, 0, 3, "quota", "after a release by the wrong role");

	rc = quota_cmd(w, &out, "release", "authorizer", "shift 2, work order 77");
	ck_assert_msg(rc == 0 && strstr(out, "release 1 signed by") && strstr(out, "Authorizer"), "release: exit %d\n%s",
	    rc, out);
	free(out);
	rc = quota_cmd(w, &out, "status", NULL, NULL);
	ck_assert_msg(rc == 0 && strstr(out, "shift 2: 0 of 3"), "quota status after the release: exit %d\n%s", rc, out);
	free(out);
	/* The killed run's last device may have passed already: it passes
	 * again without a certificate, so 1 or 2 of these are issued. */
	run(w, sim, 2, 2, 0, "completed", "after the release");
	count_records(w, &issuing, &refusals, &releases);
	ck_assert_uint_eq(releases, 1);
	ck_assert_msg(issuing == 4 || issuing == 5, "%u issuing records", issuing);

	/* The release is checked, not believed: listed signers changed, it no
	 * longer opens a shift (4 or 5 issued since the journal began). */
	stu_recipe_edit(w, "release_signers: pki/authorizer.pem", "release_signers: pki/tool.pem");
	run(w, sim, 1, 0, 3, "quota", "the release's signer no longer listed");
	stu_recipe_edit(w, "release_signers: pki/tool.pem", "release_signers: pki/authorizer.pem");
	/* Listed again: the rest of shift 2, exactly, then the stop. */
	run(w, sim, 5, -1, 3, "quota", "the rest of shift 2");
	count_records(w, &issuing, &refusals, &releases);
	ck_assert_uint_eq(issuing, 6);
	run(w, sim, 1, 0, 3, "quota", "shift 2 used up");

	stu_audit_verify(w);
	stu_sim_stop(sim);
	stu_ws_free(w);
}
END_TEST

/* Without quota.release_signers nobody may release: the quota stays. */
START_TEST(test_no_release_signers)
{
	stu_ws *w = stu_ws_new(tu_pki);
	jigsim_config c;
	stu_sim *sim;
	char *out = NULL;
	int rc;

	stu_recipe_edit(w, "max_per_shift: 100", "max_per_shift: 1");
	stu_recipe_edit(w, "  release_signers: pki/authorizer.pem", "  # no release_signers");
	jigsim_config_init(&c);
	c.devices = 3;
	sim = stu_sim_start(tu_pki, &c);
	run(w, sim, 2, 1, 3, "quota", "shift of 1");
	rc = quota_cmd(w, &out, "release", "authorizer", "more");
	ck_assert_msg(rc == 2 && strstr(out, "names no quota.release_signers"), "release: exit %d\n%s", rc, out);
	free(out);
	run(w, sim, 1, 0, 3, "quota", "still used up");
	stu_audit_verify(w);
	stu_sim_stop(sim);
	stu_ws_free(w);
}
END_TEST

int
main(void)
{
	TCase *tc;
	Suite *s = tu_pki_suite("station-quota", "quota", 240, &tc);

	signal(SIGPIPE, SIG_IGN);
	tcase_add_test(tc, test_shift_quota);
	tcase_add_test(tc, test_no_release_signers);
	return tu_run_suite(s);
}
