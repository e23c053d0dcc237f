/* Gang provisioning when jigs misbehave: a jig unplugged in the middle of a
 * device while the others go on; an SE that failed on one jig and is put
 * into another (the device index and the journal are shared); and the
 * operator's terminal with one line per jig. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pty.h>
#include <signal.h>
#include <spawn.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "gangutil.h"

extern char **environ;

/* Position of the first event matching kind, jig and (unless NULL) a
 * substring of its message or device; -1 when none. */
static long
find_event(const stu_run *r, const char *kind, const char *jig, const char *message, const char *device)
{
	size_t i;
	json_t *ev;

	json_array_foreach(r->events, i, ev) {
		if (strcmp(stu_str(ev, "event"), kind) || strcmp(stu_str(ev, "jig"), jig))
			continue;
		if (message && !strstr(stu_str(ev, "message"), message))
			continue;
		if (device && strcmp(stu_str(ev, "device"), device))
			continue;
		return (long)i;
	}
	return -1;
}

static unsigned
released_by(stu_sim **sim, size_t n)
{
	unsigned r = 0;
	size_t i;

	for (i = 0; i < n; i++)
		r += jigsim_released(sim[i]->s);
	return r;
}

/* Three jigs; the third is unplugged (connection dropped, port closed) in
 * the middle of its second device's KEYGEN and plugged back in on the same
 * port 1.5 s later.  That device fails at KEYGEN with a reason naming the
 * jig; the operator is told the jig is gone and when it is back; the other
 * two jigs go on meanwhile; the third is reopened and finishes its panel. */
START_TEST(test_jig_unplugged)
{
	enum { PER_JIG = 12, PANEL_C = 8 };
	const unsigned total = 2 * PER_JIG + PANEL_C;
	stu_ws *w = stu_ws_new(tu_pki);
	stu_sim *sim[2];
	jigsim *core;
	gang_port *port;
	const char *uris[3];
	jigsim_config c;
	jigsim_device_info info;
	unsigned before, during, k;
	char **paths = NULL;
	size_t npaths = 0, i;
	long failed_at, back_at, next_at;
	stu_journal j;
	stu_run r;
	json_t *f;

	jigsim_config_init(&c);
	c.keygen_ms = c.csr_ms = 20; /* devices take a moment, so the other jigs are still busy */
	c.devices = PER_JIG;
	for (i = 0; i < 2; i++) {
		c.id = (unsigned)i + 1;
		sim[i] = stu_sim_start(tu_pki, &c);
		uris[i] = sim[i]->uri;
	}
	c.id = 3;
	c.devices = PANEL_C;
	core = gang_core_new(tu_pki, &c);
	port = gang_port_new(core);
	uris[2] = gang_port_uri(port);
	gang_port_arm(port, JIG_CMD_KEYGEN, 2, GANG_UNPLUG, NULL);

	stu_station_start_jigs(w, uris, 3, total, 1, &r);
	ck_assert_msg(gang_port_wait_cut(port, 60) == 0, "the third jig never reached its second KEYGEN");
	before = released_by(sim, 2);
	stu_sleep_ms(1500);
	during = released_by(sim, 2);
	gang_port_plug(port);
	stu_station_wait(&r, 120);

	ck_assert_msg(during > before && before < 2 * PER_JIG, "the other jigs stood still while one was unplugged "
	    "(%u devices released before, %u after)", before, during);
	ck_assert_msg(r.status == 1, "station run: exit %d, expected 1 (one device failed)\n%s\n%s", r.status,
	    stu_tail(r.out), stu_tail(r.err));
	ck_assert_uint_eq(stu_event_count(&r, "passed"), total - 1);
	ck_assert_uint_eq(stu_event_count(&r, "failed"), 1);

	/* The device in the jig when it went away failed, and said why and where. */
	ck_assert_int_eq(jigsim_device_get(core, 2, &info), 0);
	ck_assert_msg((f = stu_event(&r, "failed", info.serial)) != NULL, "no failed event for %s\n%s", info.serial,
	    stu_tail(r.out));
	ck_assert_str_eq(stu_str(f, "jig"), uris[2]);
	ck_assert_str_eq(stu_str(f, "step"), "keygen");
	ck_assert_msg(strstr(stu_str(f, "reason"), uris[2]) && strstr(stu_str(f, "reason"), "KEYGEN"),
	    "reason does not name the jig and the command: %s", stu_str(f, "reason"));
	ck_assert_str_ne(stu_str(f, "advice"), "");
	ck_assert_int_eq(info.lifecycle, JIG_LC_FACTORY);
	ck_assert_uint_eq(info.keygens, 0);
	ck_assert_int_eq(info.present, 0); /* released once the jig was back */

	/* The operator saw the jig go and come back, before its next device. */
	failed_at = find_event(&r, "failed", uris[2], NULL, info.serial);
	ck_assert_msg(find_event(&r, "jig", uris[2], "retrying", NULL) > failed_at, "no 'retrying' note for %s\n%s",
	    uris[2], stu_tail(r.out));
	back_at = find_event(&r, "jig", uris[2], "connected again", NULL);
	ck_assert_msg(back_at > failed_at, "no 'connected again' note for %s\n%s", uris[2], stu_tail(r.out));
	ck_assert_int_eq(jigsim_device_get(core, 3, &info), 0);
	next_at = find_event(&r, "device_started", uris[2], NULL, info.serial);
	ck_assert_msg(next_at > back_at, "device 3 of the unplugged jig started at event %ld, the jig was back at %ld",
	    next_at, back_at);
	ck_assert_uint_ge(gang_port_connections(port), 2);

	/* Every other device passed, on all three jigs. */
	ck_assert_uint_eq(jigsim_released(core), PANEL_C);
	for (k = 1; k <= PANEL_C; k++)
		if (k != 2)
			stu_check_device_cert(w, core, k, &paths, &npaths);
	for (i = 0; i < 2; i++) {
		ck_assert_uint_eq(jigsim_released(sim[i]->s), PER_JIG);
		for (k = 1; k <= PER_JIG; k++)
			stu_check_device_cert(w, sim[i]->s, k, &paths, &npaths);
	}
	stu_openssl_verify(w, paths, npaths);
	stu_journal_load(w->audit, &j);
	ck_assert_uint_eq(j.n, total);
	stu_journal_check_live(&j);
	stu_audit_verify(w);

	for (i = 0; i < npaths; i++)
		free(paths[i]);
	free(paths);
	stu_journal_clear(&j);
	stu_run_clear(&r);
	gang_port_free(port);
	jigsim_free(core);
	for (i = 0; i < 2; i++)
		stu_sim_stop(sim[i]);
	stu_ws_free(w);
}
END_TEST

/* One SE on two jigs in a row: the line to jig A drops while the station
 * installs the certificate it just issued, so the device fails there with
 * the certificate issued but not installed; the operator moves it to jig B,
 * which has finished its own device.  Jig B resumes it: the same SE key
 * (KEYGEN with KEEP), the certificate already issued installed and locked,
 * no second certificate. */
START_TEST(test_se_moves_to_another_jig)
{
	stu_ws *w = stu_ws_new(tu_pki);
	jigsim *x, *y, *empty;
	gang_port *a, *b;
	const char *uris[2];
	jigsim_config c;
	jigsim_device_info info;
	char **paths = NULL, serial[JIG_STR_MAX + 1];
	size_t npaths = 0, i;
	stu_ledger *l;
	stu_journal j;
	stu_run r;
	json_t *f, *p;
	double deadline;

	jigsim_config_init(&c);
	c.devices = 1;
	c.id = 1;
	x = gang_core_new(tu_pki, &c);
	c.id = 2;
	y = gang_core_new(tu_pki, &c);
	c.id = 3;
	empty = gang_core_new(tu_pki, &c);
	gang_core_release(empty); /* what jig A holds once the SE is taken out */
	a = gang_port_new(x);
	b = gang_port_new(y);
	uris[0] = gang_port_uri(a);
	uris[1] = gang_port_uri(b);
	gang_port_arm(a, JIG_CMD_INSTALL_CERT, 1, GANG_HANGUP, empty);
	ck_assert_int_eq(jigsim_device_get(x, 1, &info), 0);
	snprintf(serial, sizeof(serial), "%s", info.serial);

	stu_station_start_jigs(w, uris, 2, 3, 1, &r);
	ck_assert_msg(gang_port_wait_cut(a, 60) == 0, "jig A never got INSTALL_CERT");
	/* Moved only once the station has given up on it at jig A, and jig B
	 * is free. */
	ck_assert_msg(gang_wait_output(&r, 60, "\"event\":\"failed\"", serial, NULL) == 0,
	    "no failed event for %s on jig A", serial);
	for (deadline = stu_now() + 60; jigsim_released(y) < 1 && stu_now() < deadline;)
		stu_sleep_ms(20);
	ck_assert_uint_eq(jigsim_released(y), 1);
	gang_port_attach(b, x);
	stu_station_wait(&r, 90);

	ck_assert_msg(r.status == 1, "station run: exit %d, expected 1 (one failure)\n%s\n%s", r.status, stu_tail(r.out),
	    stu_tail(r.err));
	ck_assert_msg((f = stu_event(&r, "failed", serial)) != NULL, "%s", stu_tail(r.out));
	ck_assert_str_eq(stu_str(f, "jig"), uris[0]);
	ck_assert_str_eq(stu_str(f, "step"), "install");
	ck_assert_msg((p = stu_event(&r, "passed", serial)) != NULL, "%s never passed\n%s", serial, stu_tail(r.out));
	ck_assert_str_eq(stu_str(p, "jig"), uris[1]);
	ck_assert(json_is_true(json_object_get(p, "resumed")));
	ck_assert_uint_eq(stu_event_count(&r, "passed"), 2);

	/* One certificate for the SE: issued on jig A, installed on jig B. */
	stu_journal_load(w->audit, &j);
	ck_assert_ptr_nonnull(l = stu_journal_dev(&j, serial));
	ck_assert_uint_eq(l->issued, 1);
	ck_assert_uint_eq(l->revoked, 0);
	ck_assert_uint_eq(l->fails, 1);
	ck_assert_uint_eq(l->passes, 1);
	ck_assert_uint_ge(l->resumes, 1);
	ck_assert(strcasecmp(l->done_serial, l->issued_serial[0]) == 0);
	ck_assert(strcasecmp(stu_str(p, "certificate_serial"), l->issued_serial[0]) == 0);
	ck_assert_int_eq(jigsim_device_get(x, 1, &info), 0);
	ck_assert_uint_eq(info.keygens, 1);
	stu_check_device_cert(w, x, 1, &paths, &npaths);
	stu_check_device_cert(w, y, 1, &paths, &npaths);
	stu_openssl_verify(w, paths, npaths);
	stu_journal_check_live(&j);
	stu_audit_verify(w);

	for (i = 0; i < npaths; i++)
		free(paths[i]);
	free(paths);
	stu_journal_clear(&j);
	stu_run_clear(&r);
	gang_port_free(a);
	gang_port_free(b);
	jigsim_free(x);
	jigsim_free(y);
	jigsim_free(empty);
	stu_ws_free(w);
}
END_TEST

/* Outcome events for device serial, in order: "passed" or "failed@STEP". */
static void
outcomes_of(const stu_run *r, const char *serial, char *out, size_t cap)
{
	size_t i, n = 0;
	json_t *ev;

	out[0] = '\0';
	json_array_foreach(r->events, i, ev) {
		const char *kind = stu_str(ev, "event");

		if (strcmp(stu_str(ev, "device"), serial))
			continue;
		if (strcmp(kind, "passed") == 0)
			n += (size_t)snprintf(out + n, cap - n, "%spassed", n ? " " : "");
		else if (strcmp(kind, "failed") == 0)
			n += (size_t)snprintf(out + n, cap - n, "%sfailed@%s", n ? " " : "", stu_str(ev, "step"));
		ck_assert_uint_lt(n, cap);
	}
}

/* An SE the station provisioned comes back in the factory state with the
 * same identity (a clone): refused at POSTURE as a clone — and again the
 * next time, in this run and in the next one.  A refusal must not make the
 * journal forget that the SE passed: the second clone would be taken for a
 * device to resume, and with another key would get the genuine device's
 * certificate revoked and a new one issued. */
START_TEST(test_clone_refused_every_time)
{
	stu_ws *w = stu_ws_new(tu_pki);
	jigsim *x;
	gang_port *port;
	const char *uri;
	jigsim_config c;
	jigsim_device_info info;
	char **paths = NULL, got[256];
	size_t npaths = 0;
	stu_ledger *l;
	stu_journal j;
	stu_run r;
	json_t *f;

	jigsim_config_init(&c);
	c.devices = 1;
	x = gang_core_new(tu_pki, &c);
	port = gang_port_new(x);
	gang_port_clone(port, 1);
	uri = gang_port_uri(port);
	ck_assert_int_eq(jigsim_device_get(x, 1, &info), 0);

	stu_station_start_jigs(w, &uri, 1, 3, 1, &r);
	stu_station_wait(&r, 60);
	ck_assert_msg(r.status == 1, "station run: exit %d\n%s\n%s", r.status, stu_tail(r.out), stu_tail(r.err));
	outcomes_of(&r, info.serial, got, sizeof(got));
	ck_assert_str_eq(got, "passed failed@posture failed@posture");
	f = stu_event(&r, "failed", info.serial);
	ck_assert_msg(strstr(stu_str(f, "reason"), "cloned"), "reason: %s", stu_str(f, "reason"));
	stu_run_clear(&r);

	/* The next run rebuilds what it knows from the journal. */
	stu_station_start_jigs(w, &uri, 1, 1, 1, &r);
	stu_station_wait(&r, 60);
	ck_assert_msg(r.status == 1, "second run: exit %d\n%s\n%s", r.status, stu_tail(r.out), stu_tail(r.err));
	outcomes_of(&r, info.serial, got, sizeof(got));
	ck_assert_str_eq(got, "failed@posture");

	stu_journal_load(w->audit, &j);
	ck_assert_ptr_nonnull(l = stu_journal_dev(&j, info.serial));
	ck_assert_uint_eq(l->issued, 1);
	ck_assert_uint_eq(l->revoked, 0);
	ck_assert_uint_eq(l->passes, 1);
	ck_assert_uint_eq(l->fails, 3);
	ck_assert_int_eq(jigsim_device_get(x, 1, &info), 0);
	ck_assert_uint_eq(info.keygens, 1);
	stu_check_device_cert(w, x, 1, &paths, &npaths);
	stu_journal_check_live(&j);
	stu_audit_verify(w);

	free(paths[0]);
	free(paths);
	stu_journal_clear(&j);
	stu_run_clear(&r);
	gang_port_free(port);
	jigsim_free(x);
	stu_ws_free(w);
}
END_TEST

/* Two SEs with one serial on two jigs at the same moment: one is
 * provisioned, the other refused at POSTURE as a clone while the first is
 * still in progress (the journal cannot know yet), and only one certificate
 * is ever issued for that serial. */
START_TEST(test_clone_on_two_jigs_at_once)
{
	stu_ws *w = stu_ws_new(tu_pki);
	jigsim *x[2];
	gang_port *port[2];
	const char *uris[2];
	jigsim_config c;
	stu_journal j;
	stu_ledger *l;
	stu_run r;
	json_t *f;
	int i;

	jigsim_config_init(&c);
	c.devices = 1;
	c.fixed_serial = "SECLONE0000000001";
	c.keygen_ms = c.csr_ms = 400; /* long enough for the two to overlap */
	for (i = 0; i < 2; i++) {
		x[i] = gang_core_new(tu_pki, &c);
		port[i] = gang_port_new(x[i]);
		uris[i] = gang_port_uri(port[i]);
	}
	stu_station_start_jigs(w, uris, 2, 2, 1, &r);
	stu_station_wait(&r, 60);
	ck_assert_msg(r.status == 1, "station run: exit %d\n%s\n%s", r.status, stu_tail(r.out), stu_tail(r.err));
	ck_assert_uint_eq(stu_event_count(&r, "passed"), 1);
	ck_assert_uint_eq(stu_event_count(&r, "failed"), 1);
	f = stu_event(&r, "failed", "SECLONE0000000001");
	ck_assert_str_eq(stu_str(f, "step"), "posture");
	ck_assert_msg(strstr(stu_str(f, "reason"), "at this moment"), "reason: %s", stu_str(f, "reason"));

	stu_journal_load(w->audit, &j);
	ck_assert_ptr_nonnull(l = stu_journal_dev(&j, "SECLONE0000000001"));
	ck_assert_uint_eq(l->issued, 1);
	stu_journal_check_live(&j);
	stu_audit_verify(w);

	stu_journal_clear(&j);
	stu_run_clear(&r);
	for (i = 0; i < 2; i++) {
		gang_port_free(port[i]);
		jigsim_free(x[i]);
	}
	stu_ws_free(w);
}
END_TEST

/* The station with its stdout on a terminal: returns everything it wrote
 * (the pty turns "\n" into "\r\n") and its exit status. */
static char *
run_on_terminal(stu_ws *w, const char *const *jigs, size_t njigs, unsigned count, int *status)
{
	posix_spawn_file_actions_t fa;
	char countbuf[16], err_path[4200], *argv[16];
	char *out = NULL;
	size_t len = 0, n = 0, i;
	int master = -1, slave = -1, rc;
	double deadline = stu_now() + 90;
	pid_t pid;

	ck_assert_int_eq(openpty(&master, &slave, NULL, NULL, NULL), 0);
	snprintf(countbuf, sizeof(countbuf), "%u", count);
	snprintf(err_path, sizeof(err_path), "%s/tty.err", w->dir);
	argv[n++] = (char *)tu_station_exe();
	argv[n++] = (char *)"run";
	argv[n++] = (char *)"--recipe";
	argv[n++] = w->recipe;
	for (i = 0; i < njigs; i++) {
		argv[n++] = (char *)"--jig";
		argv[n++] = (char *)jigs[i];
	}
	argv[n++] = (char *)"--count";
	argv[n++] = countbuf;
	argv[n] = NULL;
	ck_assert_ptr_nonnull(argv[0]);
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
	posix_spawn_file_actions_adddup2(&fa, slave, 1);
	posix_spawn_file_actions_addopen(&fa, 2, err_path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	posix_spawn_file_actions_addclose(&fa, master);
	rc = posix_spawn(&pid, argv[0], &fa, NULL, argv, environ);
	posix_spawn_file_actions_destroy(&fa);
	ck_assert_msg(rc == 0, "cannot run %s: %s", argv[0], strerror(rc));
	close(slave);
	/* Read until the child closes its end (EIO on Linux). */
	for (;;) {
		struct pollfd pfd = { .fd = master, .events = POLLIN };
		char buf[4096];
		ssize_t got;

		ck_assert_msg(stu_now() < deadline, "station on a terminal still running after 90 s");
		if (poll(&pfd, 1, 200) <= 0)
			continue;
		got = read(master, buf, sizeof(buf));
		if (got < 0 && errno == EINTR)
			continue;
		if (got <= 0)
			break;
		ck_assert_ptr_nonnull(out = realloc(out, len + (size_t)got + 1));
		memcpy(out + len, buf, (size_t)got);
		len += (size_t)got;
		out[len] = '\0';
	}
	close(master);
	*status = stu_wait(pid, 30, NULL);
	return out ? out : strdup("");
}

/* A line holding a, b, c and d in this order. */
static int
has_line(const char *out, const char *a, const char *b, const char *c, const char *d)
{
	const char *at = out;

	while ((at = strstr(at, a))) {
		const char *end = strchr(at, '\n'), *pb = strstr(at, b), *pc = pb ? strstr(pb, c) : NULL;
		const char *pd = pc ? strstr(pc, d) : NULL;

		if (pd && (!end || pd < end))
			return 1;
		at += strlen(a);
	}
	return 0;
}

/* A status line of jig `name` as drawn on the terminal: erased, then the
 * name, then what follows. */
static int
has_status_line(const char *out, const char *name, const char *serial, const char *with)
{
	const char *at = out;
	char head[128];

	snprintf(head, sizeof(head), "\033[2K  %s ", name);
	while ((at = strstr(at, head))) {
		const char *end = strchr(at, '\n');
		size_t n = end ? (size_t)(end - at) : strlen(at);
		char *line = strndup(at, n);
		int ok = line && (!serial || strstr(line, serial)) && strstr(line, with);

		free(line);
		if (ok)
			return 1;
		at += strlen(head);
	}
	return 0;
}

/* On a terminal: a status block of one line per jig (name, device serial,
 * step, elapsed time, last result) and a totals line (passed, failed,
 * yield, devices per hour), erased and redrawn in place; PASS lines scroll
 * above it; the run ends with the summary. */
START_TEST(test_terminal_display)
{
	enum { NJIGS = 2, PER_JIG = 3 };
	stu_ws *w = stu_ws_new(tu_pki);
	stu_sim *sim[NJIGS];
	const char *uris[NJIGS];
	jigsim_config c;
	char *out, redraw[64];
	int status, busy;
	unsigned k;
	size_t i;

	jigsim_config_init(&c);
	c.devices = PER_JIG;
	c.keygen_ms = 400; /* long enough for a redraw in the middle of KEYGEN */
	for (i = 0; i < NJIGS; i++) {
		c.id = (unsigned)i + 1;
		sim[i] = stu_sim_start(tu_pki, &c);
		uris[i] = sim[i]->uri;
	}
	setenv("TERM", "xterm", 1); /* not the test environment's: a "dumb" one gets plain lines */
	out = run_on_terminal(w, uris, NJIGS, NJIGS * PER_JIG, &status);
	ck_assert_msg(status == 0, "station run on a terminal: exit %d\n%s", status, stu_tail(out));

	/* Redrawn in place: up over the block (header, jigs, totals), erasing
	 * each line. */
	snprintf(redraw, sizeof(redraw), "%s\033[1A\033[2K", "\033[1A\033[2K\033[1A\033[2K\033[1A\033[2K");
	ck_assert_msg(strstr(out, redraw) != NULL, "the status block is never redrawn in place:\n%s", stu_tail(out));
	for (i = 0; i < NJIGS; i++) {
		busy = 0;
		for (k = 1; k <= PER_JIG; k++) {
			jigsim_device_info info;

			ck_assert_int_eq(jigsim_device_get(sim[i]->s, k, &info), 0);
			/* While busy: the device serial, the step and the elapsed time. */
			busy |= has_status_line(out, uris[i], info.serial, " KEYGEN ") &&
			    has_status_line(out, uris[i], info.serial, "s  ");
			ck_assert_msg(has_line(out, uris[i], "PASS", info.serial, "  cert "), "no PASS line for %s on %s:\n%s",
			    info.serial, uris[i], stu_tail(out));
		}
		ck_assert_msg(busy, "jig %s: no status line with a device serial at KEYGEN:\n%s", uris[i], stu_tail(out));
		ck_assert_msg(has_status_line(out, uris[i], NULL, "last: PASS SE"), "jig %s: no last result:\n%s", uris[i],
		    stu_tail(out));
	}
	ck_assert_msg(strstr(out, "\033[2K  6/6  passed ") && strstr(out, "% ") && strstr(out, " devices/h"),
	    "no totals line:\n%s", stu_tail(out));
	ck_assert_msg(strstr(out, "failed 0  yield 100.0%"), "totals line without failed/yield:\n%s", stu_tail(out));
	ck_assert_msg(strstr(out, "RUN PASSED  passed 6, failed 0, yield 100.0%"), "no summary:\n%s", stu_tail(out));
	ck_assert_msg(strstr(out, "\033[1;32mPASS\033[0m"), "PASS is not green:\n%s", stu_tail(out));
	free(out);
	for (i = 0; i < NJIGS; i++)
		stu_sim_stop(sim[i]);
	stu_ws_free(w);
}
END_TEST

/* NO_COLOR (https://no-color.org): the block is still redrawn in place, in
 * no color.  TERM=dumb: a terminal that cannot move the cursor gets the
 * plain lines, without one escape sequence. */
START_TEST(test_terminal_no_color_dumb)
{
	stu_ws *w = stu_ws_new(tu_pki);
	stu_sim *sim;
	jigsim_config c;
	const char *uri;
	char *out;
	int status;

	jigsim_config_init(&c);
	c.devices = 4;
	sim = stu_sim_start(tu_pki, &c);
	uri = sim->uri;

	setenv("TERM", "xterm", 1);
	setenv("NO_COLOR", "1", 1);
	out = run_on_terminal(w, &uri, 1, 2, &status);
	ck_assert_msg(status == 0, "NO_COLOR: exit %d\n%s", status, stu_tail(out));
	ck_assert_msg(strstr(out, "\033[2K") && strstr(out, "  PASS  "), "NO_COLOR: no status block or PASS line:\n%s",
	    stu_tail(out));
	ck_assert_msg(!strstr(out, "\033[1;3"), "NO_COLOR: colors on the screen:\n%s", stu_tail(out));
	free(out);

	unsetenv("NO_COLOR");
	setenv("TERM", "dumb", 1);
	out = run_on_terminal(w, &uri, 1, 2, &status);
	ck_assert_msg(status == 0, "TERM=dumb: exit %d\n%s", status, stu_tail(out));
	ck_assert_msg(!strchr(out, '\033'), "TERM=dumb: an escape sequence on the screen:\n%s", stu_tail(out));
	ck_assert_msg(strstr(out, "  PASS  ") && strstr(out, "RUN PASSED  passed 2, failed 0"),
	    "TERM=dumb: no PASS or last line:\n%s", stu_tail(out));
	free(out);
	stu_sim_stop(sim);
	stu_ws_free(w);
}
END_TEST

static Suite *
suite(void)
{
	TCase *tc;
	Suite *s = tu_pki_suite("gang-link", "link", 240, &tc);

	tcase_add_test(tc, test_jig_unplugged);
	tcase_add_test(tc, test_se_moves_to_another_jig);
	tcase_add_test(tc, test_terminal_display);
	tcase_add_test(tc, test_terminal_no_color_dumb);
	tcase_add_test(tc, test_clone_refused_every_time);
	tcase_add_test(tc, test_clone_on_two_jigs_at_once);
	return s;
}

int
main(void)
{
	signal(SIGPIPE, SIG_IGN);
	return tu_run_suite(suite());
}
