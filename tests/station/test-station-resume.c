/* Crash and resume: the station is killed with SIGKILL at every step
 * boundary of a device's conversation in turn (jigsim pauses before or
 * after a command and the test kills the station then), and a second run
 * finishes that device: never two live certificates for one SE, a
 * certificate issued before the crash is the one installed, and the journal
 * verifies after the crash and after the rerun.  Ctrl-C ends a run cleanly. */
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include "stutil.h"

/* Every command of the factory path in protocol 1.2 (jigsim's default),
 * before and after it: HELLO, SE_INFO and VENDOR_CHAIN (IDENTIFY: the first
 * device's chain is not cached yet), AUTH_RESPONSE, KEYGEN, GET_CSR,
 * INSTALL_CERT and CERT_TEMPLATE (the connection's first INSTALL_CERT is
 * answered NO_TEMPLATE), READ_CERT, LOCK and DUT_POWER (the release after
 * the "done" record: killed before it, the rerun reads the locked SE's
 * certificate back, finds the journal's live one and passes the device
 * without issuing anything).  jigsim pauses at the first time any device
 * gets the command, so each point is the first device's (DUT_STATUS is
 * sent only to an empty jig: not on this path).  In the order sent. */
static const struct boundary {
	uint8_t cmd;
	int after;
} boundaries[] = {
	{ JIG_CMD_HELLO, 0 },
	{ JIG_CMD_HELLO, 1 },
	{ JIG_CMD_SE_INFO, 0 },
	{ JIG_CMD_SE_INFO, 1 },
	{ JIG_CMD_VENDOR_CHAIN, 0 },
	{ JIG_CMD_VENDOR_CHAIN, 1 },
	{ JIG_CMD_AUTH_RESPONSE, 0 },
	{ JIG_CMD_AUTH_RESPONSE, 1 },
	{ JIG_CMD_KEYGEN, 0 },
	{ JIG_CMD_KEYGEN, 1 },
	{ JIG_CMD_GET_CSR, 0 },
	{ JIG_CMD_GET_CSR, 1 },
	{ JIG_CMD_INSTALL_CERT, 0 },
	{ JIG_CMD_INSTALL_CERT, 1 },
	{ JIG_CMD_CERT_TEMPLATE, 0 },
	{ JIG_CMD_CERT_TEMPLATE, 1 },
	{ JIG_CMD_READ_CERT, 0 },
	{ JIG_CMD_READ_CERT, 1 },
	{ JIG_CMD_LOCK, 0 },
	{ JIG_CMD_LOCK, 1 },
	{ JIG_CMD_DUT_POWER, 0 },
	{ JIG_CMD_DUT_POWER, 1 },
};

/* Where cmd comes in the conversation: its first index in boundaries. */
static int
path_pos(uint8_t cmd)
{
	int i, n = (int)(sizeof(boundaries) / sizeof(boundaries[0]));

	for (i = 0; i < n && boundaries[i].cmd != cmd; i++)
		;
	ck_assert_msg(i < n, "0x%02x is not on the factory path", cmd);
	return i;
}

/* The station to kill when jigsim pauses (called on jigsim's thread). */
struct killer {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	pid_t pid;
	int fired;
};

static void
on_pause(void *arg, uint8_t cmd, int after)
{
	struct killer *k = arg;

	(void)cmd;
	(void)after;
	pthread_mutex_lock(&k->lock);
	while (k->pid <= 0)
		pthread_cond_wait(&k->cond, &k->lock);
	k->fired = 1; /* before the kill: the test sees the station die right after it */
	kill(k->pid, SIGKILL);
	pthread_mutex_unlock(&k->lock);
}

START_TEST(test_kill_and_resume)
{
	const struct boundary *b = &boundaries[_i];
	const char *cmd = jig_cmd_name(b->cmd), *when = b->after ? "after" : "before";
	struct killer k = { PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, 0 };
	stu_ws *w = stu_ws_new(tu_pki);
	stu_sim *sim = NULL;
	jigsim_config c;
	jigsim_device_info info;
	stu_journal j;
	stu_ledger *l;
	stu_run r;
	char first_cert[41] = "", **paths = NULL;
	size_t npaths = 0;
	json_t *ev;
	int issued_before, passed_before, fired;
	unsigned i, left;

	/* Two devices: the first is interrupted, the second follows it. */
	jigsim_config_init(&c);
	c.devices = 2;
	c.pause_cmd = b->cmd;
	c.pause_after = b->after;
	c.on_pause = on_pause;
	c.on_pause_arg = &k;
	sim = stu_sim_start(tu_pki, &c);

	stu_station_start(w, sim->uri, 2, 1, &r);
	pthread_mutex_lock(&k.lock);
	k.pid = r.pid;
	pthread_cond_signal(&k.cond);
	pthread_mutex_unlock(&k.lock);
	stu_station_wait(&r, 60);
	pthread_mutex_lock(&k.lock);
	fired = k.fired;
	pthread_mutex_unlock(&k.lock);
	ck_assert_msg(fired, "%s %s: jigsim never paused\n%s\n%s", when, cmd, stu_tail(r.out), stu_tail(r.err));
	ck_assert_msg(r.status == 128 + SIGKILL, "%s %s: station exit %d, expected SIGKILL", when, cmd, r.status);
	stu_run_clear(&r);

	/* The journal of a killed station verifies as it is. */
	stu_audit_verify(w);
	ck_assert_int_eq(jigsim_device_get(sim->s, 1, &info), 0);
	stu_journal_load(w->audit, &j);
	l = stu_journal_dev(&j, info.serial);
	/* Until IDENTIFY has the whole attestation certificate (after
	 * VENDOR_CHAIN) the journal knows no device. */
	ck_assert_msg((l != NULL) == (path_pos(b->cmd) > path_pos(JIG_CMD_VENDOR_CHAIN)), "%s %s: %s in the journal",
	    when, cmd, l ? "a device" : "no device");
	issued_before = l && l->issued == 1;
	passed_before = l && l->passes == 1;
	if (l) {
		ck_assert_uint_le(l->issued, 1);
		ck_assert_uint_le(l->passes, 1);
	}
	if (issued_before)
		snprintf(first_cert, sizeof(first_cert), "%s", l->issued_serial[0]);
	/* A certificate exists exactly when the SE got as far as INSTALL_CERT;
	 * the device passed exactly when the kill came at its release. */
	ck_assert_int_eq(issued_before, path_pos(b->cmd) >= path_pos(JIG_CMD_INSTALL_CERT));
	ck_assert_int_eq(passed_before, b->cmd == JIG_CMD_DUT_POWER);
	stu_journal_check_live(&j);
	stu_journal_clear(&j);

	/* The rerun finishes the device (unless it was released already),
	 * then provisions the next. */
	left = 2 - jigsim_released(sim->s);
	ck_assert_uint_eq(left, b->cmd == JIG_CMD_DUT_POWER && b->after ? 1 : 2);
	stu_station_run(w, sim->uri, left, 1, &r);
	ck_assert_msg(r.status == 0, "%s %s: rerun exit %d\n%s\n%s", when, cmd, r.status, stu_tail(r.out), stu_tail(r.err));
	ck_assert_uint_eq(stu_event_count(&r, "failed"), 0);
	ev = stu_event(&r, "passed", info.serial);
	if (left == 2) {
		ck_assert_msg(ev != NULL, "%s %s: %s did not pass on the rerun\n%s", when, cmd, info.serial, stu_tail(r.out));
		/* "resumed": it took up the certificate issued before the crash. */
		ck_assert_msg(json_is_true(json_object_get(ev, "resumed")) == issued_before, "%s %s: resumed is %s", when,
		    cmd, json_is_true(json_object_get(ev, "resumed")) ? "true" : "false");
		if (issued_before)
			ck_assert_str_eq(stu_str(ev, "certificate_serial"), first_cert);
	} else {
		ck_assert_msg(ev == NULL, "%s %s: the released %s was provisioned again", when, cmd, info.serial);
	}
	ck_assert_uint_eq(stu_event_count(&r, "passed"), left);
	ck_assert_uint_eq(jigsim_released(sim->s), 2);
	for (i = 1; i <= 2; i++)
		stu_check_device_cert(w, sim->s, i, &paths, &npaths);
	stu_openssl_verify(w, paths, npaths);

	ck_assert_int_eq(jigsim_device_get(sim->s, 1, &info), 0);
	/* With a certificate issued, the SE kept its key (KEYGEN KEEP). */
	if (issued_before)
		ck_assert_uint_eq(info.keygens, 1);
	else
		ck_assert_uint_le(info.keygens, 2);

	stu_journal_load(w->audit, &j);
	stu_journal_check_live(&j);
	ck_assert_ptr_nonnull(l = stu_journal_dev(&j, info.serial));
	ck_assert_uint_eq(l->passes, (unsigned)passed_before + (left == 2)); /* a rerun of a passed device passes it again */
	ck_assert_uint_eq(l->issued, 1); /* never a second certificate for the same key */
	ck_assert_uint_eq(l->revoked, 0);
	ck_assert_uint_eq(stu_live(l), 1);
	if (issued_before)
		ck_assert_str_eq(l->done_serial, first_cert);
	if (issued_before && !passed_before)
		ck_assert_uint_ge(l->resumes, 1);
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

/* Count "passed" lines the running station has written so far. */
static unsigned
passed_so_far(const char *path)
{
	char *text = tu_slurp(path, NULL), *at;
	unsigned n = 0;

	for (at = text; at && (at = strstr(at, "\"event\":\"passed\"")); at++)
		n++;
	free(text);
	return n;
}

/* Ctrl-C in the middle of a run: the device in progress is finished or
 * abandoned, the run ends with its summary, the journal verifies, nothing
 * failed, and the next run picks up the device left in the jig. */
START_TEST(test_ctrl_c)
{
	stu_ws *w = stu_ws_new(tu_pki);
	stu_sim *sim = NULL;
	jigsim_config c;
	jigsim_device_info info;
	stu_journal j;
	stu_run r;
	json_t *sum;
	double deadline;
	size_t i;

	jigsim_config_init(&c);
	c.devices = 500;
	c.keygen_ms = 20; /* a device takes long enough to be caught in the middle */
	c.csr_ms = 20;
	sim = stu_sim_start(tu_pki, &c);

	stu_station_start(w, sim->uri, 0, 1, &r); /* no --count: until Ctrl-C */
	deadline = stu_now() + 30;
	while (passed_so_far(r.out_path) < 3 && stu_now() < deadline)
		stu_sleep_ms(10);
	ck_assert_msg(passed_so_far(r.out_path) >= 3, "no device passed in 30 s");
	ck_assert_int_eq(kill(r.pid, SIGINT), 0);
	stu_station_wait(&r, 30);
	ck_assert_msg(r.status == 0, "after Ctrl-C: exit %d\n%s\n%s", r.status, stu_tail(r.out), stu_tail(r.err));
	ck_assert_uint_eq(stu_event_count(&r, "failed"), 0);
	sum = json_array_get(r.events, json_array_size(r.events) - 1);
	ck_assert_str_eq(stu_str(sum, "event"), "summary");
	ck_assert_int_eq(json_integer_value(json_object_get(sum, "passed")), stu_event_count(&r, "passed"));
	ck_assert_uint_ge(stu_event_count(&r, "passed"), 3);
	ck_assert_uint_lt(jigsim_device_count(sim->s), c.devices); /* it did stop */
	stu_audit_verify(w);

	/* Each device the station started either passed or was abandoned. */
	stu_journal_load(w->audit, &j);
	for (i = 0; i < j.n; i++) {
		ck_assert_uint_eq(j.dev[i].fails, 0);
		ck_assert_msg(j.dev[i].passes + j.dev[i].abandons == 1, "SE %s: %u passes, %u abandons", j.dev[i].serial,
		    j.dev[i].passes, j.dev[i].abandons);
	}
	stu_journal_check_live(&j);
	stu_journal_clear(&j);
	stu_run_clear(&r);

	/* The device now in the jig (left there or the next one) passes. */
	ck_assert_int_eq(jigsim_device_get(sim->s, 0, &info), 0);
	stu_station_run(w, sim->uri, 1, 1, &r);
	ck_assert_msg(r.status == 0, "rerun: exit %d\n%s\n%s", r.status, stu_tail(r.out), stu_tail(r.err));
	ck_assert_msg(stu_event(&r, "passed", info.serial) != NULL, "%s did not pass on the rerun\n%s", info.serial, stu_tail(r.out));
	stu_journal_load(w->audit, &j);
	stu_journal_check_live(&j);
	stu_journal_clear(&j);
	stu_audit_verify(w);
	stu_run_clear(&r);
	stu_sim_stop(sim);
	stu_ws_free(w);
}
END_TEST

/* How a run stopped early says so: the last line (and the --json summary)
 * names the reason, the exit code is 3 (README "Exit codes"), SIGHUP is
 * handled like SIGTERM, and no message after a signal but SIGINT speaks of
 * Ctrl-C.  A second signal quits at once and still prints the last line. */
static const struct stop_case {
	int sig;
	int json;
	int twice;
	const char *end;
} stop_cases[] = {
	{ SIGINT, 1, 0, "interrupt" },
	{ SIGTERM, 0, 0, "SIGTERM" },
	{ SIGHUP, 1, 0, "sighup" },
	{ SIGTERM, 1, 0, "sigterm" },
	{ SIGINT, 1, 1, "quit" },
};

static const char *
last_line(const char *out, char *buf, size_t size)
{
	size_t n = strlen(out);
	const char *p;

	while (n > 0 && out[n - 1] == '\n')
		n--;
	for (p = out + n; p > out && p[-1] != '\n'; p--)
		;
	snprintf(buf, size, "%.*s", (int)(out + n - p), p);
	return buf;
}

static int
out_has(const char *path, const char *needle)
{
	char *text = tu_slurp(path, NULL);
	int found = text && strstr(text, needle);

	free(text);
	return found;
}

START_TEST(test_stop_reason)
{
	const struct stop_case *sc = &stop_cases[_i];
	stu_ws *w = stu_ws_new(tu_pki);
	stu_sim *sim = NULL;
	jigsim_config c;
	stu_run r;
	char line[4096];
	double deadline;

	jigsim_config_init(&c);
	c.devices = 100;
	c.keygen_ms = 20;
	if (sc->twice) {
		/* The second device never answers KEYGEN: the run cannot finish
		 * it, so only the second signal ends the run. */
		c.pause_cmd = JIG_CMD_KEYGEN;
	}
	sim = stu_sim_start(tu_pki, &c);
	stu_station_start(w, sim->uri, 100, sc->json, &r);
	deadline = stu_now() + 30;
	if (sc->twice) {
		stu_sleep_ms(1500);
	} else {
		while (stu_now() < deadline && !out_has(r.out_path, sc->json ? "\"event\":\"passed\"" : "PASS"))
			stu_sleep_ms(20);
		ck_assert_msg(stu_now() < deadline, "no device passed in 30 s");
	}
	ck_assert_int_eq(kill(r.pid, sc->sig), 0);
	if (sc->twice) {
		stu_sleep_ms(300);
		ck_assert_int_eq(kill(r.pid, sc->sig), 0);
	}
	stu_station_wait(&r, 60);
	ck_assert_msg(r.status == 3, "after signal %d: exit %d, expected 3 (stopped early)\n%s\n%s", sc->sig, r.status,
	    stu_tail(r.out), stu_tail(r.err));
	if (sc->json) {
		json_t *sum = json_array_get(r.events, json_array_size(r.events) - 1);

		ck_assert_str_eq(stu_str(sum, "event"), "summary");
		ck_assert_str_eq(stu_str(sum, "end"), sc->end);
	} else {
		last_line(r.out, line, sizeof(line));
		ck_assert_msg(strncmp(line, "RUN STOPPED", 11) == 0 && strstr(line, sc->end) && strstr(line, "of --count 100"),
		    "last line: %s", line);
	}
	if (sc->sig != SIGINT)
		ck_assert_msg(strstr(r.err, "Ctrl-C") == NULL, "stderr after signal %d speaks of Ctrl-C:\n%s", sc->sig,
		    stu_tail(r.err));
	stu_run_clear(&r);
	stu_sim_stop(sim);
	stu_ws_free(w);
}
END_TEST

/* A signal while the last device of --count is past signing stops
 * nothing: that device is finished, so the run completed and exits 0
 * (README "Exit codes": 3 is for a run stopped before its --count). */
START_TEST(test_stop_during_last)
{
	stu_ws *w = stu_ws_new(tu_pki);
	stu_sim *sim = NULL;
	jigsim_config c;
	stu_run r;
	json_t *sum;
	double deadline;

	jigsim_config_init(&c);
	c.devices = 2;
	c.cmd_ms = 300;
	sim = stu_sim_start(tu_pki, &c);
	stu_station_start(w, sim->uri, 1, 1, &r);
	deadline = stu_now() + 30;
	while (stu_now() < deadline && !out_has(r.out_path, "\"step\":\"install\""))
		stu_sleep_ms(20);
	ck_assert_msg(stu_now() < deadline, "no INSTALL_CERT in 30 s");
	ck_assert_int_eq(kill(r.pid, SIGTERM), 0);
	stu_station_wait(&r, 60);
	ck_assert_msg(r.status == 0, "exit %d, expected 0\n%s\n%s", r.status, stu_tail(r.out), stu_tail(r.err));
	sum = json_array_get(r.events, json_array_size(r.events) - 1);
	ck_assert_str_eq(stu_str(sum, "event"), "summary");
	ck_assert_str_eq(stu_str(sum, "end"), "completed");
	ck_assert_int_eq(stu_event_count(&r, "passed"), 1);
	stu_audit_verify(w);
	stu_run_clear(&r);
	stu_sim_stop(sim);
	stu_ws_free(w);
}
END_TEST

/* A run that reaches its --count says it completed, and exits 0. */
START_TEST(test_completed)
{
	stu_ws *w = stu_ws_new(tu_pki);
	stu_sim *sim = NULL;
	jigsim_config c;
	stu_run r;
	char line[4096];
	json_t *sum;

	jigsim_config_init(&c);
	c.devices = 3;
	sim = stu_sim_start(tu_pki, &c);
	stu_station_run(w, sim->uri, 2, 1, &r);
	ck_assert_msg(r.status == 0, "exit %d\n%s", r.status, stu_tail(r.err));
	sum = json_array_get(r.events, json_array_size(r.events) - 1);
	ck_assert_str_eq(stu_str(sum, "end"), "completed");
	stu_run_clear(&r);
	stu_station_run(w, sim->uri, 1, 0, &r);
	ck_assert_msg(r.status == 0, "exit %d\n%s", r.status, stu_tail(r.err));
	last_line(r.out, line, sizeof(line));
	ck_assert_msg(strncmp(line, "RUN PASSED", 10) == 0 && strstr(line, "run completed: 1 of --count 1"), "last line: %s",
	    line);
	stu_run_clear(&r);
	stu_sim_stop(sim);
	stu_ws_free(w);
}
END_TEST

static Suite *
suite(void)
{
	TCase *tc;
	Suite *s = tu_pki_suite("station-resume", "resume", 120, &tc);

	tcase_add_loop_test(tc, test_kill_and_resume, 0, (int)(sizeof(boundaries) / sizeof(boundaries[0])));
	tcase_add_test(tc, test_ctrl_c);
	tcase_add_loop_test(tc, test_stop_reason, 0, (int)(sizeof(stop_cases) / sizeof(stop_cases[0])));
	tcase_add_test(tc, test_completed);
	tcase_add_test(tc, test_stop_during_last);
	return s;
}

int
main(void)
{
	signal(SIGPIPE, SIG_IGN);
	return tu_run_suite(suite());
}
