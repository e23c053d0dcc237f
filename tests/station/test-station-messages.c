/* Messages an operator can act on (issue 16, item 4): each says what is
 * wrong in the terms of the line, not of the protocol or a library, once. */
#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include "stutil.h"

/* The number of times needle occurs in s. */
static unsigned
occurrences(const char *s, const char *needle)
{
	unsigned n = 0;

	while ((s = strstr(s, needle))) {
		n++;
		s += strlen(needle);
	}
	return n;
}

/* -h is --help, on every command and sub-command. */
START_TEST(test_dash_h_everywhere)
{
	static const char *const cmds[][3] = {
		{ "run" }, { "rework" }, { "revoke" }, { "crl" }, { "hsm" }, { "hsm", "check" }, { "jig" }, { "jig", "info" },
		{ "jig", "list" }, { "recipe" }, { "recipe", "check" }, { "recipe", "sign" }, { "audit" }, { "audit", "seal" },
		{ "audit", "export" }, { "audit", "verify" },
	};
	size_t i;

	for (i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++) {
		char *out = NULL;
		int rc = cmds[i][1] ? tu_station(&out, cmds[i][0], cmds[i][1], "-h", NULL) : tu_station(&out, cmds[i][0], "-h", NULL);

		ck_assert_msg(rc == 0 && strstr(out, "usage:"), "station %s%s%s -h: exit %d\n%s", cmds[i][0],
		    cmds[i][1] ? " " : "", cmds[i][1] ? cmds[i][1] : "", rc, stu_tail(out));
		free(out);
	}
}
END_TEST

/* A part the recipe is not for: the models it allows, and "wrong recipe?". */
START_TEST(test_wrong_product)
{
	stu_ws *w = stu_ws_new(tu_pki);
	stu_sim *sim;
	jigsim_config c;
	jigsim_device_info info;
	stu_run r;
	json_t *f;

	stu_recipe_edit(w, "models: [TSE-100]", "models: [TSE-200, TSE-210]");
	jigsim_config_init(&c);
	c.devices = 1;
	sim = stu_sim_start(tu_pki, &c);
	stu_station_run(w, sim->uri, 1, 1, &r);
	ck_assert_int_eq(jigsim_device_get(sim->s, 1, &info), 0);
	ck_assert_msg((f = stu_event(&r, "failed", info.serial)) != NULL, "no failed event\n%s", stu_tail(r.out));
	ck_assert_str_eq(stu_str(f, "step"), "posture");
	ck_assert_msg(strstr(stu_str(f, "reason"), "\"TSE-100\"") && strstr(stu_str(f, "reason"), "(TSE-200, TSE-210)") &&
	        strstr(stu_str(f, "reason"), "wrong recipe"),
	    "the reason does not list the allowed models and ask: %s", stu_str(f, "reason"));
	ck_assert_str_eq(stu_str(f, "disposition"), "wrong-part");
	stu_run_clear(&r);
	stu_sim_stop(sim);
	stu_ws_free(w);
}
END_TEST

/* An empty PIN variable is said to be empty, not "not set". */
START_TEST(test_empty_pin)
{
	stu_ws *w = stu_ws_new(tu_pki);
	stu_sim *sim;
	jigsim_config c;
	stu_run r;

	jigsim_config_init(&c);
	c.devices = 1;
	sim = stu_sim_start(tu_pki, &c);
	setenv("STATION_HSM_PIN", "", 1); /* this test's own process */
	stu_station_run(w, sim->uri, 1, 0, &r);
	setenv("STATION_HSM_PIN", "123456", 1);
	ck_assert_msg(r.status == 2, "empty PIN: exit %d\n%s", r.status, stu_tail(r.err));
	ck_assert_msg(strstr(r.err, "STATION_HSM_PIN is empty") && !strstr(r.err, "not set"),
	    "the error does not say the variable is empty:\n%s", stu_tail(r.err));
	stu_run_clear(&r);
	unsetenv("STATION_HSM_PIN");
	stu_station_run(w, sim->uri, 1, 0, &r);
	setenv("STATION_HSM_PIN", "123456", 1);
	ck_assert_msg(r.status == 2 && strstr(r.err, "STATION_HSM_PIN is not set"), "unset PIN: exit %d\n%s", r.status,
	    stu_tail(r.err));
	stu_run_clear(&r);
	stu_sim_stop(sim);
	stu_ws_free(w);
}
END_TEST

/* While one station runs: the jig it holds, asked by another, says another
 * station may be connected; its journal, opened by another, names the
 * process that holds it, and the journal's folder once. */
START_TEST(test_held_jig_and_journal)
{
	stu_ws *w = stu_ws_new(tu_pki);
	stu_sim *sim, *other;
	jigsim_config c;
	stu_run first, r;
	char *out = NULL, pid[32];
	double until;
	int rc;

	jigsim_config_init(&c);
	c.devices = 0; /* never runs out */
	c.keygen_ms = 100;
	sim = stu_sim_start(tu_pki, &c);
	other = stu_sim_start(tu_pki, &c);
	stu_station_start(w, sim->uri, 0, 1, &first); /* until Ctrl-C */
	/* Running: it has its first device. */
	for (until = stu_now() + 30; stu_now() < until; stu_sleep_ms(100)) {
		char *now = tu_slurp(first.out_path, NULL);
		int started = now && strstr(now, "\"device_started\"");

		free(now);
		if (started)
			break;
	}

	rc = tu_station(&out, "jig", "info", "--jig", sim->uri, "--timeout", "500", NULL);
	ck_assert_msg(rc != 0 && strstr(out, "HELLO") && strstr(out, "another station may be connected to this jig"),
	    "jig info on a held jig: exit %d\n%s", rc, stu_tail(out));
	free(out);

	stu_station_run(w, other->uri, 1, 0, &r);
	snprintf(pid, sizeof(pid), "station process %ld ", (long)first.pid);
	ck_assert_msg(r.status == 2 && strstr(r.err, pid), "the journal in use: exit %d, the holder (%s) not named:\n%s",
	    r.status, pid, stu_tail(r.err));
	ck_assert_msg(occurrences(r.err, w->audit) == 1, "the journal's folder %s not named once:\n%s", w->audit,
	    stu_tail(r.err));
	stu_run_clear(&r);

	ck_assert_int_eq(kill(first.pid, SIGINT), 0);
	stu_station_wait(&first, 60);
	ck_assert_msg(first.status == 0, "the first run after Ctrl-C: exit %d\n%s", first.status, stu_tail(first.err));
	stu_run_clear(&first);
	stu_sim_stop(other);
	stu_sim_stop(sim);
	stu_ws_free(w);
}
END_TEST

/* station jig info on a device seated but not powered (an RMA return):
 * no protocol names, no advice to insert the device that is there. */
START_TEST(test_jig_info_unpowered)
{
	stu_ws *w = stu_ws_new(tu_pki);
	stu_sim *sim;
	jigsim_config c;
	jigsim_device_info info;
	stu_run r;
	char *out = NULL;
	int rc;

	jigsim_config_init(&c);
	c.devices = 1;
	c.rma = 1; /* comes back powered off once released */
	sim = stu_sim_start(tu_pki, &c);
	stu_station_run(w, sim->uri, 1, 1, &r);
	ck_assert_msg(r.status == 0, "station run: exit %d\n%s", r.status, stu_tail(r.err));
	stu_run_clear(&r);
	ck_assert_int_eq(jigsim_device_get(sim->s, 1, &info), 0);
	ck_assert_msg(info.present && !info.powered, "the device is %s and %s", info.present ? "present" : "gone",
	    info.powered ? "powered" : "off");
	rc = tu_station(&out, "jig", "info", "--jig", sim->uri, NULL);
	ck_assert_msg(rc == 1 && strstr(out, "in the jig but not powered") && strstr(out, "'station run' powers it on"),
	    "jig info: exit %d\n%s", rc, stu_tail(out));
	ck_assert_msg(!strstr(out, "NO_DUT") && !strstr(out, "DUT_POWER") && !strstr(out, "insert a device"),
	    "protocol jargon or contradicting advice:\n%s", stu_tail(out));
	free(out);
	stu_sim_stop(sim);
	stu_ws_free(w);
}
END_TEST

/* SoftHSM without its configuration: said plainly, not as the module's
 * CKR_GENERAL_ERROR or "no token". */
START_TEST(test_softhsm_conf)
{
	stu_ws *w = stu_ws_new(tu_pki);
	char *conf = strdup(getenv("SOFTHSM2_CONF")), *out = NULL;
	int rc;

	setenv("SOFTHSM2_CONF", "/nonexistent/softhsm2.conf", 1);
	rc = tu_station(&out, "hsm", "check", "--recipe", w->recipe, NULL);
	ck_assert_msg(rc == 2 && strstr(out, "SOFTHSM2_CONF=/nonexistent/softhsm2.conf: No such file") &&
	        strstr(out, "SoftHSM cannot read its configuration") && !strstr(out, "CKR_"),
	    "a missing SOFTHSM2_CONF file: exit %d\n%s", rc, stu_tail(out));
	free(out);
	unsetenv("SOFTHSM2_CONF");
	rc = tu_station(&out, "hsm", "check", "--recipe", w->recipe, NULL);
	ck_assert_msg(rc == 2 && strstr(out, "SOFTHSM2_CONF is not set"), "no SOFTHSM2_CONF: exit %d\n%s", rc,
	    stu_tail(out));
	free(out);
	setenv("SOFTHSM2_CONF", conf, 1);
	free(conf);
	stu_ws_free(w);
}
END_TEST

static Suite *
suite(void)
{
	TCase *tc;
	Suite *s = tu_pki_suite("station-messages", "messages", 120, &tc);

	tcase_add_test(tc, test_dash_h_everywhere);
	tcase_add_test(tc, test_wrong_product);
	tcase_add_test(tc, test_empty_pin);
	tcase_add_test(tc, test_held_jig_and_journal);
	tcase_add_test(tc, test_jig_info_unpowered);
	tcase_add_test(tc, test_softhsm_conf);
	return s;
}

int
main(void)
{
	signal(SIGPIPE, SIG_IGN);
	return tu_run_suite(suite());
}
