/* The metrics file of `station run` for the line's dashboard (issue 19
 * item 3): written to the recipe's metrics.file or --metrics, it passes
 * `promtool check metrics` (the Prometheus text format 0.0.4 that
 * node_exporter's textfile collector reads), its counts are the run's
 * (devices by result, failures by step and reason, yield, cycle times, HSM
 * signatures, the shift quota left going down from run to run), it is
 * rewritten after every device while the run goes on, and a path that is
 * not a regular file is refused before anything is written. */
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "stutil.h"

/* The value of the sample `series` (name and labels exactly as written),
 * or -1 when the file has no such line. */
static double
sample(const char *text, const char *series)
{
	size_t n = strlen(series);
	const char *p = text;

	while (p && *p) {
		if (strncmp(p, series, n) == 0 && p[n] == ' ')
			return strtod(p + n + 1, NULL);
		p = strchr(p, '\n');
		if (p)
			p++;
	}
	return -1;
}

/* sample() of NAME{jig="URI"<rest>}; rest may be "". */
static double
jig_sample(const char *text, const char *name, const char *uri, const char *rest)
{
	char series[1024];

	snprintf(series, sizeof(series), "%s{jig=\"%s\"%s}", name, uri, rest);
	return sample(text, series);
}

static char *
read_metrics(const char *path)
{
	char *text = tu_slurp(path, NULL);

	ck_assert_msg(text != NULL, "no metrics file %s", path);
	return text;
}

#define ASSERT_SAMPLE(text, got, want) \
	ck_assert_msg((got) == (want), "%s: %g, expected %g\n%s", #got, (double)(got), (double)(want), text)

/* Four devices, every second one with a bad attestation signature: two
 * pass, two fail at verify; then a second run on the same journal with
 * --metrics, which overrides the recipe's file. */
START_TEST(test_counts)
{
	stu_ws *w = stu_ws_new(tu_pki);
	jigsim_config c;
	stu_sim *sim;
	stu_run r;
	char file[4200], second[4200], *text = NULL, *text2 = NULL, *before = NULL;
	const char *extra[] = { "--metrics", second, NULL };

	snprintf(file, sizeof(file), "%s/textfile/station.prom", w->dir);
	snprintf(second, sizeof(second), "%s/textfile/second.prom", w->dir);
	ck_assert_int_eq(tu_shf(NULL, "mkdir '%s/textfile'", w->dir), 0);
	stu_recipe_edit(w, "  station_id: demo-station-1\n",
	    "  station_id: demo-station-1\nmetrics:\n  file: textfile/station.prom\n");
	jigsim_config_init(&c);
	c.devices = 6;
	c.faults = jigsim_fault_parse("bad-attestation-signature");
	c.fault_every = 2;
	sim = stu_sim_start(tu_pki, &c);

	stu_station_run(w, sim->uri, 4, 1, &r);
	ck_assert_msg(r.status == 1, "station run: exit %d\n%s\n%s", r.status, stu_tail(r.out), stu_tail(r.err));
	ck_assert_uint_eq(stu_event_count(&r, "passed"), 2);
	ck_assert_uint_eq(stu_event_count(&r, "failed"), 2);
	stu_run_clear(&r);
	tu_promtool_check(file);
	text = read_metrics(file);
	ASSERT_SAMPLE(text, jig_sample(text, "station_devices_total", sim->uri, ",result=\"pass\""), 2);
	ASSERT_SAMPLE(text, jig_sample(text, "station_devices_total", sim->uri, ",result=\"fail\""), 2);
	ASSERT_SAMPLE(text, jig_sample(text, "station_device_failures_total", sim->uri,
	    ",step=\"verify\",reason=\"verification\""), 2);
	ck_assert_msg(strstr(strstr(text, "\nstation_device_failures_total{") + 1, "\nstation_device_failures_total{") ==
	        NULL, "more than one kind of failure:\n%s", text);
	ASSERT_SAMPLE(text, sample(text, "station_yield_ratio"), 0.5);
	ASSERT_SAMPLE(text, jig_sample(text, "station_device_cycle_seconds_count", sim->uri, ""), 4);
	ASSERT_SAMPLE(text, jig_sample(text, "station_device_cycle_seconds_bucket", sim->uri, ",le=\"+Inf\""), 4);
	ck_assert_msg(jig_sample(text, "station_device_cycle_seconds_sum", sim->uri, "") > 0, "no cycle time:\n%s", text);
	/* Each device authenticated (tool key); two were certified. */
	ASSERT_SAMPLE(text, sample(text, "station_hsm_sign_seconds_count{key=\"tool\"}"), 4);
	ASSERT_SAMPLE(text, sample(text, "station_hsm_sign_seconds_count{key=\"intermediate\"}"), 2);
	ASSERT_SAMPLE(text, sample(text, "station_hsm_sign_seconds_bucket{key=\"intermediate\",le=\"+Inf\"}"), 2);
	ASSERT_SAMPLE(text, sample(text, "station_quota_shift_max"), 100);
	ASSERT_SAMPLE(text, sample(text, "station_quota_shift_remaining"), 98);
	ASSERT_SAMPLE(text, sample(text, "station_quota_run_remaining"), 998);
	ASSERT_SAMPLE(text, sample(text, "station_run_in_progress"), 0);
	ck_assert_msg(sample(text, "station_run_start_time_seconds") > 1.7e9, "no start time:\n%s", text);
	{
		char info[1024];

		snprintf(info, sizeof(info), "station_jig_info{jig=\"%s\",jig_id=\"jigsim-", sim->uri);
		ck_assert_msg(strstr(text, info) != NULL, "no %s...\n%s", info, text);
	}
	/* No temporary file left beside it. */
	ck_assert_int_eq(tu_shf(NULL, "test \"$(ls '%s/textfile')\" = 'station.prom'", w->dir), 0);

	/* The next run: --metrics wins over metrics.file, which stays as it was;
	 * the shift quota left goes on from the journal. */
	before = read_metrics(file);
	w->extra = extra;
	stu_station_run(w, sim->uri, 2, 1, &r);
	ck_assert_msg(r.status == 1, "station run 2: exit %d\n%s\n%s", r.status, stu_tail(r.out), stu_tail(r.err));
	stu_run_clear(&r);
	tu_promtool_check(second);
	text2 = read_metrics(second);
	ASSERT_SAMPLE(text2, jig_sample(text2, "station_devices_total", sim->uri, ",result=\"pass\""), 1);
	ASSERT_SAMPLE(text2, jig_sample(text2, "station_devices_total", sim->uri, ",result=\"fail\""), 1);
	ASSERT_SAMPLE(text2, sample(text2, "station_yield_ratio"), 0.5);
	ASSERT_SAMPLE(text2, sample(text2, "station_quota_shift_remaining"), 97);
	ASSERT_SAMPLE(text2, sample(text2, "station_quota_run_remaining"), 999);
	free(text);
	ck_assert_str_eq(text = read_metrics(file), before);

	free(text);
	free(text2);
	free(before);
	stu_sim_stop(sim);
	stu_ws_free(w);
}
END_TEST

/* The file follows the run: after each device, while the run still goes
 * on (no --count: it waits for a third device that never comes), and once
 * it has ended. */
START_TEST(test_updated_per_device)
{
	stu_ws *w = stu_ws_new(tu_pki);
	jigsim_config c;
	stu_sim *sim;
	stu_run r;
	char file[4200], *text = NULL;
	const char *extra[] = { "--metrics", file, NULL };
	double done = 0;
	int i;

	snprintf(file, sizeof(file), "%s/live.prom", w->dir);
	w->extra = extra;
	jigsim_config_init(&c);
	c.devices = 2;
	sim = stu_sim_start(tu_pki, &c);
	stu_station_start(w, sim->uri, 0, 1, &r);
	for (i = 0; i < 600 && done < 2; i++) {
		stu_sleep_ms(100);
		free(text);
		if ((text = tu_slurp(file, NULL)))
			done = jig_sample(text, "station_devices_total", sim->uri, ",result=\"pass\"");
	}
	ck_assert_msg(done == 2, "the metrics file never showed 2 devices passed:\n%s", text ? text : "(none)");
	ASSERT_SAMPLE(text, sample(text, "station_run_in_progress"), 1);
	tu_promtool_check(file);
	kill(r.pid, SIGINT);
	stu_station_wait(&r, 60);
	ck_assert_msg(r.status == 0, "station run: exit %d\n%s\n%s", r.status, stu_tail(r.out), stu_tail(r.err));
	stu_run_clear(&r);
	free(text);
	text = read_metrics(file);
	ASSERT_SAMPLE(text, sample(text, "station_run_in_progress"), 0);
	ASSERT_SAMPLE(text, jig_sample(text, "station_devices_total", sim->uri, ",result=\"pass\""), 2);
	ASSERT_SAMPLE(text, sample(text, "station_yield_ratio"), 1);
	tu_promtool_check(file);
	free(text);
	stu_sim_stop(sim);
	stu_ws_free(w);
}
END_TEST

/* A path that is not a regular file, not *.prom or in no folder: exit 2
 * with the reason, before any device, and the path is left as it was.  A
 * FIFO and a folder stand for every special file (a device such as
 * /dev/null is the same check, and no test should risk /dev/null). */
START_TEST(test_refused)
{
	static const struct {
		const char *name, *says;
	} cases[] = {
		{ "fifo.prom", "is a FIFO: the metrics file is replaced by rename" },
		{ "folder.prom", "is a folder" },
		{ "station.txt", "must end in .prom" },
		{ "no-such-folder/station.prom", "does not exist" },
	};
	stu_ws *w = stu_ws_new(tu_pki);
	jigsim_config c;
	stu_sim *sim;
	char path[4200];
	const char *extra[] = { "--metrics", path, NULL };
	struct stat sb;
	size_t i;

	ck_assert_int_eq(tu_shf(NULL, "mkfifo '%s/fifo.prom' && mkdir '%s/folder.prom'", w->dir, w->dir), 0);
	jigsim_config_init(&c);
	c.devices = 1;
	sim = stu_sim_start(tu_pki, &c);
	w->extra = extra;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		stu_run r;

		snprintf(path, sizeof(path), "%s/%s", w->dir, cases[i].name);
		stu_station_run(w, sim->uri, 1, 1, &r);
		ck_assert_msg(r.status == 2 && strstr(r.err, cases[i].says), "--metrics %s: exit %d, expected 2 saying "
		    "\"%s\"\n%s", cases[i].name, r.status, cases[i].says, stu_tail(r.err));
		ck_assert_uint_eq(stu_event_count(&r, "device_started"), 0);
		stu_run_clear(&r);
	}
	ck_assert_int_eq(stat(w->dir, &sb), 0);
	snprintf(path, sizeof(path), "%s/fifo.prom", w->dir);
	ck_assert_msg(stat(path, &sb) == 0 && S_ISFIFO(sb.st_mode), "the FIFO was replaced");
	snprintf(path, sizeof(path), "%s/folder.prom", w->dir);
	ck_assert_msg(stat(path, &sb) == 0 && S_ISDIR(sb.st_mode), "the folder was replaced");
	ck_assert_uint_eq(jigsim_released(sim->s), 0);
	stu_sim_stop(sim);
	stu_ws_free(w);
}
END_TEST

int
main(void)
{
	TCase *tc;
	Suite *s = tu_pki_suite("station-metrics", "metrics", 240, &tc);

	signal(SIGPIPE, SIG_IGN);
	tcase_add_test(tc, test_counts);
	tcase_add_test(tc, test_updated_per_device);
	tcase_add_test(tc, test_refused);
	return tu_run_suite(s);
}
