/* Loops with bounds (issue 13, item 8): a jig that keeps failing the same
 * way — a bad SE_INFO, a device "seated but unpowered" that power-on never
 * powers, a jig that goes away — gets bounded retries with growing pauses
 * and one operator note per condition, then is taken out of the run with a
 * reason.  The other jigs go on; with one jig the run stops ("jig",
 * exit 3).  Before, the station reconnected at once and printed a line per
 * attempt (123,408 lines in 45 s), spun without sleeping on the unpowered
 * device, and the run never ended. */
#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include "liar.h"
#include "rwutil.h"

static const struct scenario {
	const char *name;
	liar_lies lies;
	int honest;          /* an honest jig beside the liar (no --count; Ctrl-C ends the run) */
	int gone;            /* the liar passes one device, then closes its port for good */
	const char *reason;  /* in the note that takes the liar out */
} cases[] = {
	{ "invalid UTF-8 in every SE_INFO, one jig", { .raw_serial = "SE\xff\xfe" "01" }, 0, 0, "SE_INFO" },
	{ "seated but never powered, one jig", { .unpowered = 1 }, 0, 0, "DUT_POWER on does not power it" },
	{ "the jig goes away after one device", { 0 }, 0, 1, "" },
	{ "invalid UTF-8 in every SE_INFO beside an honest jig", { .raw_serial = "SE\xff\xfe" "01" }, 1, 0, "SE_INFO" },
};

/* The --json events so far (the run is still going): how many are about
 * jig uri, how many say it was taken out, how many devices passed. */
static void
scan_events(const char *path, const char *uri, unsigned *notes, unsigned *out, unsigned *passed)
{
	char *s = tu_slurp(path, NULL), *line, *save = NULL;

	*notes = *out = *passed = 0;
	for (line = s ? strtok_r(s, "\n", &save) : NULL; line; line = strtok_r(NULL, "\n", &save)) {
		json_t *ev = json_loads(line, 0, NULL);

		if (!ev)
			continue; /* a line being written */
		if (strcmp(stu_str(ev, "event"), "jig") == 0 && strcmp(stu_str(ev, "jig"), uri) == 0) {
			(*notes)++;
			if (strstr(stu_str(ev, "message"), "taken out of the run"))
				(*out)++;
		}
		if (strcmp(stu_str(ev, "event"), "passed") == 0)
			(*passed)++;
		json_decref(ev);
	}
	free(s);
}

START_TEST(test_loops)
{
	const struct scenario *sc = &cases[_i];
	stu_ws *w = stu_ws_new(tu_pki);
	stu_sim *sim = NULL, *honest = NULL;
	char uri[300];
	unsigned notes = 0, out = 0, passed = 0, requests;
	double t0 = stu_now(), took;
	json_t *sum, *ev;
	size_t i;
	stu_run r;
	liar *l;

	if (sc->gone) {
		/* One device and no RMA return: after it the jig is empty and
		 * healthy until it goes away, so --count 2 cannot be reached. */
		jigsim_config c;

		jigsim_config_init(&c);
		c.devices = 1;
		sim = stu_sim_start(tu_pki, &c);
	} else {
		sim = rw_sim(tu_pki, 1, 0);
	}
	l = liar_start(tu_pki, sim->s, &sc->lies);
	snprintf(uri, sizeof(uri), "%s", l->uri);
	if (sc->honest) {
		jigsim_config c;
		const char *jigs[2];

		/* One device after another as long as the run goes, slowly enough
		 * that the shift quota does not end the run first. */
		stu_recipe_edit(w, "max_per_shift: 100", "max_per_shift: 100000");
		jigsim_config_init(&c);
		c.devices = 0;
		c.cmd_ms = 100;
		honest = stu_sim_start(tu_pki, &c);
		jigs[0] = uri;
		jigs[1] = honest->uri;
		stu_station_start_jigs(w, jigs, 2, 0, 1, &r);
	} else {
		stu_station_start(w, uri, sc->gone ? 2 : 1, 1, &r);
	}
	if (sc->gone) {
		/* One device through, then the jig is gone for good. */
		for (i = 0; i < 600 && passed == 0; i++) {
			stu_sleep_ms(100);
			scan_events(r.out_path, uri, &notes, &out, &passed);
		}
		ck_assert_msg(passed == 1, "%s: the first device did not pass", sc->name);
		liar_stop(l);
		l = NULL;
	}
	if (sc->honest) {
		unsigned before;

		for (i = 0; i < 900 && !out; i++) {
			stu_sleep_ms(100);
			scan_events(r.out_path, uri, &notes, &out, &passed);
		}
		ck_assert_msg(out == 1, "%s: the liar was not taken out of the run in 90 s (%u notes about it, %u requests, %u "
		    "connections)\n%s", sc->name, notes, l->requests, l->connections, stu_tail(r.out));
		/* The honest jig goes on without it. */
		before = passed;
		for (i = 0; i < 300 && passed < before + 2; i++) {
			stu_sleep_ms(100);
			scan_events(r.out_path, uri, &notes, &out, &passed);
		}
		ck_assert_msg(passed >= before + 2, "%s: the honest jig stood still after the liar was taken out", sc->name);
		kill(r.pid, SIGINT);
	}
	stu_station_wait(&r, 90);
	took = stu_now() - t0;
	requests = l ? l->requests : 0;
	scan_events(r.out_path, uri, &notes, &out, &passed);
	sum = stu_event(&r, "summary", NULL);
	ck_assert_ptr_nonnull(sum);
	if (sc->honest) {
		ck_assert_msg(r.status == 0 && strcmp(stu_str(sum, "end"), "interrupt") == 0,
		    "%s: exit %d, end %s (expected 0, interrupt: every device passed, Ctrl-C)\n%s", sc->name, r.status,
		    stu_str(sum, "end"), stu_tail(r.out));
	} else {
		ck_assert_msg(r.status == 3 && strcmp(stu_str(sum, "end"), "jig") == 0,
		    "%s: exit %d, end \"%s\" (expected 3, jig)\n%s\n%s", sc->name, r.status, stu_str(sum, "end"),
		    stu_tail(r.out), stu_tail(r.err));
		ck_assert_msg(strstr(stu_str(sum, "stopped"), "taken out of the run") &&
		                  strstr(stu_str(sum, "stopped"), sc->reason),
		    "%s: the summary does not say why: %s", sc->name, stu_str(sum, "stopped"));
		ck_assert_uint_eq(passed, sc->gone ? 1 : 0);
	}
	/* One note per condition, not a line per attempt; the taking out names
	 * the condition. */
	ck_assert_msg(out == 1, "%s: %u \"taken out\" notes", sc->name, out);
	ck_assert_msg(notes <= 5, "%s: %u notes about the liar's jig\n%s", sc->name, notes, stu_tail(r.out));
	json_array_foreach (r.events, i, ev)
		if (strcmp(stu_str(ev, "event"), "jig") == 0 && strstr(stu_str(ev, "message"), "taken out of the run"))
			ck_assert_msg(strstr(stu_str(ev, "message"), sc->reason), "%s: %s", sc->name, stu_str(ev, "message"));
	/* Bounded in time and in what it asked the jig: pauses between attempts,
	 * no spinning. */
	ck_assert_msg(took < 80, "%s: %.0f s", sc->name, took);
	ck_assert_msg(requests < 400, "%s: %u requests to the liar", sc->name, requests);
	liar_test_end(w, &r, l, honest, sim);
}
END_TEST

int
main(void)
{
	TCase *tc;
	Suite *s = liar_suite("hostile-loops", "loops", 200, &tc);

	tcase_add_loop_test(tc, test_loops, 0, (int)(sizeof(cases) / sizeof(cases[0])));
	return tu_run_suite(s);
}
