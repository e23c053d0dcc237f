/* Benchmark: the cycle time of a TPM 2.0 device on swtpm, and how much of
 * it the TPM takes.  N software TPMs (EK certificates from a throw-away
 * vendor CA) behind one tpmdut --timing, `station run --json` with the
 * test PKI and SoftHSM.  Per device:
 *   - cycle: from its device_started event to its passed event (the
 *     station's own time stamps);
 *   - TPM: the time tpmdut spent executing the device's TPM commands
 *     (tpmdut --timing: ESAPI calls and the TPM, no network, no station);
 * and the medians.  The rest of a cycle is the station (checks, journal,
 * HSM signatures) and the wire.
 *
 * usage: bench-tpm [DEVICES]   (default 5)
 *
 * A Check suite without fork only so the shared helpers' assertions say
 * what failed. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "stutil.h"
#include "tpmtest.h"

#define MAX_DEV 32

static unsigned n_dev = 5;

/* "2026-12-02T01:47:29.163Z" -> seconds */
static double
ev_time(json_t *ev)
{
	struct tm tm;
	int ms = 0;
	const char *s = stu_str(ev, "time");

	memset(&tm, 0, sizeof(tm));
	ck_assert_int_eq(sscanf(s, "%d-%d-%dT%d:%d:%d.%dZ", &tm.tm_year, &tm.tm_mon, &tm.tm_mday, &tm.tm_hour, &tm.tm_min,
	    &tm.tm_sec, &ms), 7);
	tm.tm_year -= 1900;
	tm.tm_mon -= 1;
	return (double)timegm(&tm) + ms / 1000.0;
}

START_TEST(bench)
{
	char *dir = tu_tmpdir("bench-tpm"), state[700], uri[300], log[700], bundle[700], to[900], *text, *line;
	const char *args[2 * MAX_DEV + 2];
	double cycle[MAX_DEV], tpm_ms[MAX_DEV] = { 0 }, share[MAX_DEV], c_med, t_med;
	tu_swtpm tpm[MAX_DEV];
	tu_tpm_ca ca;
	stu_ws *w;
	stu_run r;
	pid_t dut;
	size_t i, k = 0, nd = 0;

	ck_assert_ptr_nonnull(dir);
	tu_pki_setup();
	ck_assert_int_eq(tu_tpm_ca_init(&ca, dir), 0);
	for (i = 0; i < n_dev; i++) {
		snprintf(state, sizeof(state), "%s/tpm%zu", dir, i);
		ck_assert_int_eq(tu_tpm_manufacture(&ca, state, NULL), 0);
		ck_assert_int_eq(tu_swtpm_start(&tpm[i], state), 0);
		args[k++] = "--tcti";
		args[k++] = tpm[i].tcti;
	}
	args[k++] = "--timing";
	args[k] = NULL;
	snprintf(bundle, sizeof(bundle), "%s/vendor.pem", dir);
	ck_assert_int_eq(tu_shf(NULL, "cat '%s' '%s' > '%s'", ca.root_pem, ca.issuer_pem, bundle), 0);
	ck_assert_int_gt(dut = tu_tpmdut_start(dir, uri, sizeof(uri), args, log, sizeof(log)), 0);
	w = stu_ws_new(tu_pki);
	stu_recipe_edit(w, "  models: [TSE-100]            # jigsim's simulated SE\n  min_firmware: 1.4.0\n  key_slot: 0\n",
	    "  family: tpm2\n  manufacturers: [IBM]\n  min_firmware: 8217.0\n");
	stu_recipe_edit(w, "  attestation_model:\n    subject: CN=${se.model} attestation\n", "");
	snprintf(to, sizeof(to), "  vendor_root: %s", bundle);
	stu_recipe_edit(w, "  vendor_root: pki/se-vendor-root.pem", to);
	stu_station_run(w, uri, n_dev, 1, &r);
	ck_assert_msg(r.status == 0, "station run: exit %d\n%s", r.status, stu_tail(r.out));
	/* Cycle times, in the order the devices came. */
	for (i = 0; i < json_array_size(r.events) && nd < n_dev; i++) {
		json_t *ev = json_array_get(r.events, i), *end;

		if (strcmp(stu_str(ev, "event"), "device_started") != 0)
			continue;
		ck_assert_ptr_nonnull(end = stu_event(&r, "passed", stu_str(ev, "device")));
		cycle[nd++] = (ev_time(end) - ev_time(ev)) * 1000.0;
	}
	ck_assert_uint_eq(nd, n_dev);
	/* TPM time per device: tpmdut's "timing DEVICE COMMAND MS" lines. */
	tu_tpmdut_stop(dut);
	ck_assert_ptr_nonnull(text = tu_slurp(log, NULL));
	for (line = strtok(text, "\n"); line; line = strtok(NULL, "\n")) {
		unsigned dev;
		char cmd[32];
		double ms;

		if (sscanf(line, "timing %u %31s %lf", &dev, cmd, &ms) == 3 && dev >= 1 && dev <= n_dev)
			tpm_ms[dev - 1] += ms;
	}
	free(text);
	printf("TPM devices on swtpm, one jig, %u devices (ms):\n  device  cycle   TPM   TPM share\n", n_dev);
	for (i = 0; i < n_dev; i++) {
		share[i] = 100.0 * tpm_ms[i] / cycle[i];
		printf("  %6zu  %6.1f  %6.1f  %5.1f %%\n", i + 1, cycle[i], tpm_ms[i], share[i]);
	}
	c_med = tu_median(cycle, n_dev);
	t_med = tu_median(tpm_ms, n_dev);
	printf("  median  %6.1f  %6.1f  %5.1f %%  (%.0f devices/h on one jig)\n", c_med, t_med, 100.0 * t_med / c_med,
	    3600e3 / c_med);
	stu_run_clear(&r);
	stu_ws_free(w);
	for (i = 0; i < n_dev; i++)
		tu_swtpm_stop(&tpm[i]);
	tu_rmtree(dir);
	free(dir);
	tu_pki_teardown();
}
END_TEST

int
main(int argc, char **argv)
{
	if (argc > 1)
		n_dev = tu_bench_arg("bench-tpm", argv[1], 1, MAX_DEV);
	return tu_run_bench("bench-tpm", bench);
}
