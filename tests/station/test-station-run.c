/* `station run` end to end against jigsim: a panel of devices provisioned,
 * the certificates checked against what each SE holds and by `openssl
 * verify`, the journal audited; the --json stream; the exit codes. */
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "stutil.h"

/* 20 devices pass; each certificate verifies against the test root, names
 * the SE serial, is byte for byte what the SE returns; every SE is locked;
 * the live journal verifies. */
START_TEST(test_twenty_devices)
{
	const unsigned n = 20;
	stu_ws *w = stu_ws_new(tu_pki);
	stu_sim *sim = NULL;
	jigsim_config c;
	stu_journal j;
	stu_run r;
	char **paths = NULL;
	size_t npaths = 0, i;
	json_t *sum;

	jigsim_config_init(&c);
	c.devices = n;
	sim = stu_sim_start(tu_pki, &c);
	stu_station_run(w, sim->uri, n, 1, &r);
	ck_assert_msg(r.status == 0, "station run: exit %d\n%s\n%s", r.status, stu_tail(r.out), stu_tail(r.err));
	ck_assert_uint_eq(stu_event_count(&r, "passed"), n);
	ck_assert_uint_eq(stu_event_count(&r, "failed"), 0);
	ck_assert_uint_eq(jigsim_device_count(sim->s), n);
	ck_assert_uint_eq(jigsim_released(sim->s), n);

	stu_journal_load(w->audit, &j);
	for (i = 1; i <= n; i++) {
		jigsim_device_info info;
		json_t *ev;
		uint8_t *der;
		size_t len;
		char serial[64];
		stu_ledger *l;

		ck_assert_int_eq(jigsim_device_get(sim->s, (unsigned)i, &info), 0);
		ck_assert_uint_eq(info.keygens, 1);
		stu_check_device_cert(w, sim->s, (unsigned)i, &paths, &npaths);
		/* The operator (and the MES) saw this device pass with this certificate. */
		ck_assert_msg((ev = stu_event(&r, "passed", info.serial)) != NULL, "no passed event for %s", info.serial);
		ck_assert_ptr_nonnull(der = stu_cert_der(w, info.serial, &len));
		tu_der_serial_hex(der, len, serial);
		ck_assert_msg(strcmp(stu_str(ev, "certificate_serial"), serial) == 0, "%s: event names %s, cert is %s",
		    info.serial, stu_str(ev, "certificate_serial"), serial);
		OPENSSL_free(der);
		/* The journal: one certificate issued, none revoked, passed with it. */
		ck_assert_msg((l = stu_journal_dev(&j, info.serial)) != NULL, "journal never saw %s", info.serial);
		ck_assert_uint_eq(l->issued, 1);
		ck_assert_uint_eq(l->revoked, 0);
		ck_assert_uint_eq(l->passes, 1);
		ck_assert_uint_eq(l->fails, 0);
		ck_assert_str_eq(l->done_serial, l->issued_serial[0]);
		ck_assert_str_eq(l->done_serial, serial);
		if (i == 1) {
			/* grep the journal for the serial as `openssl x509 -serial` prints it */
			char cmd[9000], *out = NULL, *nl;

			snprintf(cmd, sizeof(cmd), "openssl x509 -noout -serial -in '%s/certs/%s.pem' | sed 's/^serial=//'",
			    w->audit, info.serial);
			ck_assert_int_eq(tu_sh(cmd, &out), 0);
			if ((nl = strchr(out, '\n')))
				*nl = '\0';
			ck_assert_str_eq(out, serial);
			snprintf(cmd, sizeof(cmd), "grep -c '\"cert_serial\":\"%s\"' '%s'/batch-*.jsonl | awk -F: '{n += $NF} END {print n}'",
			    out, w->audit);
			free(out);
			ck_assert_int_eq(tu_sh(cmd, &out), 0);
			ck_assert_msg(atoi(out) >= 3, "the journal names OpenSSL's spelling of the serial %d times (issuing, "
			    "issued, done at least)", atoi(out));
			free(out);
		}
	}
	ck_assert_uint_eq(j.n, n);
	stu_journal_check_live(&j);
	stu_openssl_verify(w, paths, npaths);
	stu_audit_verify(w);

	sum = json_array_get(r.events, json_array_size(r.events) - 1);
	ck_assert_str_eq(stu_str(sum, "event"), "summary");
	ck_assert_int_eq(json_integer_value(json_object_get(sum, "passed")), n);
	ck_assert_int_eq(json_integer_value(json_object_get(sum, "failed")), 0);

	for (i = 0; i < npaths; i++)
		free(paths[i]);
	free(paths);
	stu_journal_clear(&j);
	stu_run_clear(&r);
	stu_sim_stop(sim);
	stu_ws_free(w);
}
END_TEST

/* Invariant 7: the station never dumps core (it holds the PIN and a token
 * session): its core file limit is 0, soft and hard. */
START_TEST(test_no_core_dumps)
{
	stu_ws *w = stu_ws_new(tu_pki);
	stu_sim *sim;
	jigsim_config c;
	stu_run r;
	char path[64], soft[32], hard[32], *limits, *line;
	int i;

	jigsim_config_init(&c);
	c.devices = 1;
	sim = stu_sim_start(tu_pki, &c);
	stu_station_start(w, sim->uri, 2, 1, &r); /* the second device never comes: it waits */
	for (i = 0; i < 1500 && jigsim_released(sim->s) < 1; i++)
		usleep(20000);
	ck_assert_uint_eq(jigsim_released(sim->s), 1);
	snprintf(path, sizeof(path), "/proc/%ld/limits", (long)r.pid);
	ck_assert_ptr_nonnull(limits = tu_slurp(path, NULL));
	ck_assert_ptr_nonnull(line = strstr(limits, "Max core file size"));
	ck_assert_int_eq(sscanf(line + strlen("Max core file size"), "%31s %31s", soft, hard), 2);
	ck_assert_msg(strcmp(soft, "0") == 0 && strcmp(hard, "0") == 0, "core limit %s/%s", soft, hard);
	free(limits);
	kill(r.pid, SIGTERM);
	stu_station_wait(&r, 30);
	stu_run_clear(&r);
	stu_sim_stop(sim);
	stu_ws_free(w);
}
END_TEST

/* A recipe's fixed notAfter reaches the certificate: the profile, not the
 * CSR, decides validity (invariant 3). */
START_TEST(test_fixed_not_after)
{
	stu_ws *w = stu_ws_new(tu_pki);
	stu_sim *sim;
	jigsim_config c;
	stu_run r;
	char cmd[8192], *out = NULL;

	jigsim_config_init(&c);
	c.devices = 1;
	sim = stu_sim_start(tu_pki, &c);
	stu_recipe_edit(w, "validity_days: 3650", "not_after: 20491231120000Z");
	stu_station_run(w, sim->uri, 1, 1, &r);
	ck_assert_msg(r.status == 0, "station run: exit %d\n%s\n%s", r.status, stu_tail(r.out), stu_tail(r.err));
	snprintf(cmd, sizeof(cmd), "for f in %s/certs/*.pem; do openssl x509 -in \"$f\" -noout -enddate; done", w->audit);
	ck_assert_int_eq(tu_sh(cmd, &out), 0);
	ck_assert_msg(strstr(out, "notAfter=Dec 31 12:00:00 2049 GMT"), "%s", out);
	free(out);
	stu_run_clear(&r);
	stu_sim_stop(sim);
	stu_ws_free(w);
}
END_TEST

/* A station killed between writing a temporary and its rename leaves
 * NAME.tmp.PID in the journal folder, certs/ and vendor-chains/; the next
 * run, holding the journal's lock, removes those of dead processes. */
START_TEST(test_stale_temporaries)
{
	static const char *const where[] = { "", "/certs", "/vendor-chains" };
	stu_ws *w = stu_ws_new(tu_pki);
	stu_sim *sim;
	jigsim_config c;
	stu_run r;
	char cmd[16384];
	pid_t dead;
	size_t i;

	if ((dead = fork()) == 0)
		_exit(0);
	ck_assert_int_gt(dead, 0);
	ck_assert_int_eq(waitpid(dead, NULL, 0), dead);
	for (i = 0; i < sizeof(where) / sizeof(where[0]); i++) {
		snprintf(cmd, sizeof(cmd), "mkdir -p '%s%s' && echo x > '%s%s/f.tmp.%ld'", w->audit, where[i], w->audit,
		    where[i], (long)dead);
		stu_sh_ok(NULL, "%s", cmd);
	}
	jigsim_config_init(&c);
	c.devices = 1;
	sim = stu_sim_start(tu_pki, &c);
	stu_station_run(w, sim->uri, 1, 1, &r);
	ck_assert_msg(r.status == 0, "station run: exit %d\n%s\n%s", r.status, stu_tail(r.out), stu_tail(r.err));
	for (i = 0; i < sizeof(where) / sizeof(where[0]); i++) {
		snprintf(cmd, sizeof(cmd), "%s%s/f.tmp.%ld", w->audit, where[i], (long)dead);
		ck_assert_msg(access(cmd, F_OK) != 0, "%s is still there", cmd);
	}
	stu_run_clear(&r);
	stu_sim_stop(sim);
	stu_ws_free(w);
}
END_TEST

/* --json: every line is one JSON object, and every device has its outcome
 * in it (passed, or failed with step, reason and advice), then a summary
 * that adds up.  Faulty and good devices alternate. */
START_TEST(test_json_events)
{
	const unsigned n = 4;
	stu_ws *w = stu_ws_new(tu_pki);
	stu_sim *sim = NULL;
	jigsim_config c;
	stu_run r;
	unsigned i, passed = 0, failed = 0;
	json_t *ev, *sum;
	size_t k;

	jigsim_config_init(&c);
	c.devices = n;
	c.faults = jigsim_fault_parse("bad-attestation-signature");
	c.fault_every = 2;
	sim = stu_sim_start(tu_pki, &c);
	stu_station_run(w, sim->uri, n, 1, &r);
	ck_assert_msg(r.status == 1, "station run: exit %d, expected 1 (a device failed)\n%s\n%s", r.status, stu_tail(r.out),
	    stu_tail(r.err));
	for (i = 1; i <= n; i++) {
		jigsim_device_info info;
		json_t *p, *f;

		ck_assert_int_eq(jigsim_device_get(sim->s, i, &info), 0);
		ck_assert_ptr_nonnull(stu_event(&r, "device_started", info.serial));
		p = stu_event(&r, "passed", info.serial);
		f = stu_event(&r, "failed", info.serial);
		ck_assert_msg(!!p + !!f == 1, "device %s: %d passed and %d failed events", info.serial, !!p, !!f);
		if (i % 2) {
			ck_assert_ptr_nonnull(p);
			ck_assert_str_ne(stu_str(p, "certificate_serial"), "");
			ck_assert_str_eq(stu_str(p, "jig"), sim->uri);
			ck_assert(json_is_false(json_object_get(p, "resumed")));
		} else {
			ck_assert_ptr_nonnull(f);
			ck_assert_str_eq(stu_str(f, "step"), "verify");
			ck_assert_str_ne(stu_str(f, "reason"), "");
			ck_assert_str_ne(stu_str(f, "advice"), "");
			ck_assert_str_eq(stu_str(f, "jig"), sim->uri);
		}
	}
	/* Step events name the device and a step; outcomes add up. */
	json_array_foreach(r.events, k, ev) {
		const char *kind = stu_str(ev, "event");

		if (strcmp(kind, "step") == 0) {
			ck_assert_str_ne(stu_str(ev, "device"), "");
			ck_assert_str_ne(stu_str(ev, "step"), "");
		}
		passed += strcmp(kind, "passed") == 0;
		failed += strcmp(kind, "failed") == 0;
	}
	ck_assert_uint_eq(passed, n / 2);
	ck_assert_uint_eq(failed, n / 2);
	sum = json_array_get(r.events, json_array_size(r.events) - 1);
	ck_assert_str_eq(stu_str(sum, "event"), "summary");
	ck_assert_int_eq(json_integer_value(json_object_get(sum, "passed")), passed);
	ck_assert_int_eq(json_integer_value(json_object_get(sum, "failed")), failed);
	ck_assert_msg(stu_event_count(&r, "summary") == 1, "more than one summary");
	/* The summary's status and reason, and per jig what failed where. */
	ck_assert_str_eq(stu_str(sum, "status"), "completed");
	ck_assert_str_eq(stu_str(sum, "reason"), "completed");
	{
		json_t *jigs = json_object_get(sum, "jigs"), *j0 = json_array_get(jigs, 0);

		ck_assert_uint_eq(json_array_size(jigs), 1);
		ck_assert_str_eq(stu_str(j0, "jig"), sim->uri);
		ck_assert_int_eq(json_integer_value(json_object_get(j0, "passed")), n / 2);
		ck_assert_int_eq(json_integer_value(json_object_get(json_object_get(j0, "failures_by_step"), "verify")), n / 2);
	}
	/* The first event says what runs, where, by whom, in which schema. */
	ev = json_array_get(r.events, 0);
	ck_assert_str_eq(stu_str(ev, "event"), "run_started");
	ck_assert_int_eq(json_integer_value(json_object_get(ev, "schema_version")), 1);
	ck_assert_str_eq(stu_str(ev, "command"), "run");
	ck_assert_str_eq(stu_str(ev, "operator"), "stu");
	ck_assert_str_ne(stu_str(ev, "station_id"), "");
	ck_assert_int_eq(json_integer_value(json_object_get(ev, "count")), n);
	ck_assert_str_eq(stu_str(json_object_get(ev, "recipe"), "name"), "demo-sensor");
	ck_assert_uint_eq(strlen(stu_str(json_object_get(ev, "recipe"), "digest")), 64);
	ck_assert_str_eq(json_string_value(json_array_get(json_object_get(ev, "jigs"), 0)), sim->uri);
	/* One run id on every event. */
	json_array_foreach(r.events, k, sum)
		ck_assert_str_eq(stu_str(sum, "run_id"), stu_str(ev, "run_id"));
	stu_run_clear(&r);
	stu_sim_stop(sim);
	stu_ws_free(w);
}
END_TEST

/* A loopback port nobody listens on. */
static unsigned
dead_port(void)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t len = sizeof(a);
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
	ck_assert_int_eq(getsockname(fd, (struct sockaddr *)&a, &len), 0);
	close(fd);
	return ntohs(a.sin_port);
}

/* Configuration errors end the run with exit 2 and say what is wrong, before
 * any device is touched. */
START_TEST(test_exit_codes)
{
	stu_ws *w = stu_ws_new(tu_pki);
	stu_sim *sim = NULL;
	jigsim_config c;
	char jig[64], missing[4200];
	stu_run r;

	jigsim_config_init(&c);
	c.devices = 1;
	sim = stu_sim_start(tu_pki, &c);

	/* No such recipe. */
	snprintf(missing, sizeof(missing), "%s/no-such.yaml", w->dir);
	{
		char *out = NULL;
		int rc = tu_station(&out, "run", "--recipe", missing, "--jig", sim->uri, "--count", "1", NULL);

		ck_assert_msg(rc == 2, "missing recipe: exit %d\n%s", rc, stu_tail(out));
		ck_assert_msg(strstr(out, "no-such.yaml"), "the error does not name the recipe:\n%s", stu_tail(out));
		free(out);
		rc = tu_station(&out, "run", "--jig", sim->uri, NULL);
		ck_assert_msg(rc == 2, "no --recipe: exit %d\n%s", rc, stu_tail(out));
		free(out);
		/* An operator's name with a control character (an escape sequence), or too long. */
		rc = tu_station(&out, "run", "--recipe", w->recipe, "--jig", sim->uri, "--count", "1", "--operator",
		    "\x1b[2Jeve", NULL);
		ck_assert_msg(rc == 2 && strstr(out, "--operator: byte 1 is a control character (0x1b)"), "exit %d\n%s", rc,
		    stu_tail(out));
		free(out);
		memset(missing, 'a', 200);
		missing[200] = '\0';
		rc = tu_station(&out, "run", "--recipe", w->recipe, "--jig", sim->uri, "--count", "1", "--operator", missing,
		    NULL);
		ck_assert_msg(rc == 2 && strstr(out, "--operator: 200 bytes"), "exit %d\n%s", rc, stu_tail(out));
		free(out);
	}

	/* A recipe with a typo. */
	stu_recipe_edit(w, "  batch_size: 10\n", "  batch_size: 10\n  bacth_size: 10\n");
	stu_station_run(w, sim->uri, 1, 1, &r);
	ck_assert_msg(r.status == 2, "bad recipe: exit %d\n%s\n%s", r.status, stu_tail(r.out), stu_tail(r.err));
	ck_assert_msg(strstr(r.err, "bacth_size"), "the error does not name the key:\n%s", stu_tail(r.err));
	stu_run_clear(&r);
	stu_recipe_edit(w, "  bacth_size: 10\n", "");

	/* A wrong HSM PIN (this test runs in its own process: the change stays here). */
	setenv("STATION_HSM_PIN", "000000", 1);
	stu_station_run(w, sim->uri, 1, 1, &r);
	setenv("STATION_HSM_PIN", "123456", 1); /* the TEST PIN, see fixtures/make-test-pki */
	ck_assert_msg(r.status == 2, "wrong PIN: exit %d\n%s\n%s", r.status, stu_tail(r.out), stu_tail(r.err));
	ck_assert_msg(strstr(r.err, "PIN"), "the error does not mention the PIN:\n%s", stu_tail(r.err));
	ck_assert_msg(!strstr(r.err, "000000"), "the error shows the PIN:\n%s", stu_tail(r.err));
	stu_run_clear(&r);

	/* No jig at that address. */
	snprintf(jig, sizeof(jig), "tcp:127.0.0.1:%u", dead_port());
	stu_station_start(w, jig, 1, 1, &r);
	stu_station_wait(&r, 30);
	ck_assert_msg(r.status == 2, "unreachable jig: exit %d\n%s\n%s", r.status, stu_tail(r.out), stu_tail(r.err));
	ck_assert_msg(strstr(r.err, jig) && strstr(r.err, "cannot be reached"), "the error does not name the jig:\n%s",
	    stu_tail(r.err));
	/* No device: no yield and no rate, in the summary event either. */
	{
		json_t *sum = stu_event(&r, "summary", NULL);

		ck_assert_ptr_nonnull(sum);
		ck_assert_str_eq(stu_str(sum, "end"), "configuration");
		ck_assert_str_eq(stu_str(sum, "status"), "stopped");
		ck_assert_str_eq(stu_str(sum, "reason"), "configuration");
		/* The halt comes before the summary and says why. */
		ck_assert_msg(stu_event(&r, "halt", NULL) && strstr(stu_str(stu_event(&r, "halt", NULL), "message"),
		    "cannot be reached") && strcmp(stu_str(stu_event(&r, "halt", NULL), "reason"), "configuration") == 0,
		    "no halt event saying why:\n%s", stu_tail(r.out));
		ck_assert_int_eq(json_integer_value(json_object_get(sum, "passed")), 0);
		ck_assert_msg(!json_object_get(sum, "yield_percent") && !json_object_get(sum, "devices_per_hour"),
		    "a yield or a rate of zero devices: %s", stu_tail(r.out));
	}
	stu_run_clear(&r);
	/* The same on the plain output: the reason once (stderr, not stdout as
	 * well), a last line without a yield of zero devices. */
	stu_station_start(w, jig, 1, 0, &r);
	stu_station_wait(&r, 30);
	ck_assert_msg(r.status == 2, "unreachable jig, plain: exit %d\n%s\n%s", r.status, stu_tail(r.out), stu_tail(r.err));
	ck_assert_msg(strstr(r.err, "cannot be reached") && !strstr(strstr(r.err, "cannot be reached") + 1, "cannot be reached"),
	    "the reason is not on stderr exactly once:\n%s", stu_tail(r.err));
	ck_assert_msg(!strstr(r.out, "cannot be reached"), "the reason is on stdout as well:\n%s", stu_tail(r.out));
	ck_assert_msg(strstr(r.out, "RUN STOPPED  passed 0, failed 0; run stopped: configuration error after 0 of --count 1"),
	    "last line:\n%s", stu_tail(r.out));
	ck_assert_msg(!strstr(r.out, "yield") && !strstr(r.out, "devices/h"), "a yield or a rate of zero devices:\n%s",
	    stu_tail(r.out));
	stu_run_clear(&r);

	/* Nothing above touched the device: it is still factory-fresh and the
	 * station can provision it now. */
	{
		jigsim_device_info info;

		ck_assert_int_eq(jigsim_device_get(sim->s, 1, &info), 0);
		ck_assert_int_eq(info.lifecycle, JIG_LC_FACTORY);
		ck_assert_uint_eq(info.keygens, 0);
	}
	stu_station_run(w, sim->uri, 1, 1, &r);
	ck_assert_msg(r.status == 0, "good run: exit %d\n%s\n%s", r.status, stu_tail(r.out), stu_tail(r.err));
	stu_run_clear(&r);
	stu_sim_stop(sim);
	stu_ws_free(w);
}
END_TEST

static Suite *
suite(void)
{
	TCase *tc;
	Suite *s = tu_pki_suite("station-run", "run", 120, &tc);

	tcase_add_test(tc, test_twenty_devices);
	tcase_add_test(tc, test_json_events);
	tcase_add_test(tc, test_exit_codes);
	tcase_add_test(tc, test_fixed_not_after);
	tcase_add_test(tc, test_no_core_dumps);
	tcase_add_test(tc, test_stale_temporaries);
	return s;
}

int
main(void)
{
	signal(SIGPIPE, SIG_IGN);
	return tu_run_suite(suite());
}
