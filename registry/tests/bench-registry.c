/* Benchmark of station-registry on a real throw-away PostgreSQL cluster:
 * ingest throughput (records/s) of bundles from 20 simulated stations with
 * real seals, re-ingest of the same bundles (must change no row), `device
 * SERIAL` latency (p50/p99 of the whole command: exec, connect, queries),
 * and the database size per million records.
 *
 *   meson test -C build --benchmark --suite registry   (or run the program)
 *   bench-registry [DEVICES_PER_STATION]   (default 1000: 20 x 1000 x 5 = 100k records)
 *
 * The journals are written under /dev/shm when it exists (generating them
 * is not what is measured); the cluster runs with fsync=off like the tests,
 * so the ingest figure is the registry's and PostgreSQL's CPU cost, not a
 * disk's. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "pgtu.h"
#include "regtu.h"

#define STATIONS 20
#define DEVICE_SAMPLES 300
#define TARGET_INGEST 100000.0
#define TARGET_P99_MS 5.0

static unsigned per_station = 1000;

static double
now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int
cmp_d(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

static long
sql_num(const pgtu *pg, const char *sql)
{
	char *out = NULL;
	long v;

	ck_assert_int_eq(pgtu_psql(pg, sql, &out), 0);
	v = strtol(out, NULL, 10);
	free(out);
	return v;
}

START_TEST(bench)
{
	char *bundles[STATIONS], *cmd = NULL, *out = NULL, *args = NULL, *tmp;
	regtu_station st[STATIONS];
	double t0, t_gen, t_ingest, t_reingest, lat[DEVICE_SAMPLES];
	long records, size, rows_before, rows_after;
	unsigned s, d;
	pgtu pg;
	int rc;

	if (access("/dev/shm", W_OK) == 0)
		setenv("TMPDIR", "/dev/shm", 1);
	tu_pki_setup();
	atu_make_signer(tu_pki, "bench-seal", "root-ca");
	pgtu_start(&pg);
	ck_assert_int_ne(asprintf(&cmd, "'%s' --db '%s' init", getenv("STATION_REGISTRY_EXE"), pg.conninfo), -1);
	ck_assert_int_eq(tu_sh(cmd, NULL), 0);
	free(cmd);
	/* 20 stations, batches of 100 devices as a line would seal them. */
	regtu_batch_devices = 100;
	t0 = now_s();
	for (s = 0; s < STATIONS; s++) {
		char id[32], dev[48], serial[32];

		snprintf(id, sizeof(id), "bench-station-%02u", s);
		regtu_station_open(&st[s], id, "bench-seal");
		for (d = 0; d < per_station; d++) {
			snprintf(dev, sizeof(dev), "SE-%02u-%06u", s, d);
			snprintf(serial, sizeof(serial), "%02x%06x", s + 1, d);
			regtu_provision(&st[s], dev, serial, NULL, 0);
		}
		bundles[s] = regtu_export(&st[s]);
		tmp = NULL;
		ck_assert_int_ne(asprintf(&tmp, "%s '%s'", args ? args : "", bundles[s]), -1);
		free(args);
		args = tmp;
	}
	t_gen = now_s() - t0;
	ck_assert_int_ne(asprintf(&cmd, "'%s' --db '%s' ingest --ca '%s/root-ca.pem' %s", getenv("STATION_REGISTRY_EXE"),
	                     pg.conninfo, tu_pki, args),
	    -1);
	t0 = now_s();
	rc = tu_sh(cmd, &out);
	t_ingest = now_s() - t0;
	ck_assert_msg(rc == 0, "ingest: %s", out);
	free(out);
	records = sql_num(&pg, "SELECT count(*) FROM records");
	rows_before = sql_num(&pg, "SELECT (SELECT count(*) FROM records) + (SELECT count(*) FROM bundles) + (SELECT count(*) FROM certificates)");
	t0 = now_s();
	rc = tu_sh(cmd, &out);
	t_reingest = now_s() - t0;
	ck_assert_msg(rc == 0 && strstr(out, "already ingested: 0 new records") && !strstr(out, "loaded"), "re-ingest: %s", out);
	free(out);
	free(cmd);
	rows_after = sql_num(&pg, "SELECT (SELECT count(*) FROM records) + (SELECT count(*) FROM bundles) + (SELECT count(*) FROM certificates)");
	ck_assert_int_eq(rows_before, rows_after);
	pgtu_psql(&pg, "VACUUM ANALYZE", NULL);
	size = sql_num(&pg, "SELECT pg_database_size(current_database())");
	for (d = 0; d < DEVICE_SAMPLES; d++) {
		char dev[48];

		snprintf(dev, sizeof(dev), "SE-%02u-%06u", (unsigned)rand() % STATIONS, (unsigned)rand() % per_station);
		ck_assert_int_ne(asprintf(&cmd, "'%s' --db '%s' device %s", getenv("STATION_REGISTRY_EXE"), pg.conninfo, dev),
		    -1);
		t0 = now_s();
		rc = tu_sh(cmd, &out);
		lat[d] = (now_s() - t0) * 1000.0;
		ck_assert_msg(rc == 0, "device %s: %s", dev, out);
		free(out);
		free(cmd);
	}
	qsort(lat, DEVICE_SAMPLES, sizeof(lat[0]), cmp_d);
	printf("registry benchmark: %u stations x %u devices = %ld records (%ld devices), journals generated in %.1f s\n",
	    STATIONS, per_station, records, (long)STATIONS * per_station, t_gen);
	printf("ingest:    %.0f records/s (%.2f s for %ld records, verification included)   target >= %.0f: %s\n",
	    records / t_ingest, t_ingest, records, TARGET_INGEST, records / t_ingest >= TARGET_INGEST ? "met" : "NOT MET");
	printf("re-ingest: %.0f records/s (%.2f s), rows changed: %ld   (no slower: %s)\n", records / t_reingest, t_reingest,
	    rows_after - rows_before, t_reingest <= t_ingest * 1.1 ? "yes" : "NO");
	printf("device:    p50 %.1f ms, p99 %.1f ms over %u runs of the command (exec + connect + queries)   target p99 < %.0f ms at 1M devices: %s at %ld devices\n",
	    lat[DEVICE_SAMPLES / 2], lat[DEVICE_SAMPLES * 99 / 100], DEVICE_SAMPLES, TARGET_P99_MS,
	    lat[DEVICE_SAMPLES * 99 / 100] < TARGET_P99_MS ? "met" : "NOT MET", (long)STATIONS * per_station);
	printf("size:      %.1f MB database, %.0f MB per million records\n", size / 1e6, size / 1e6 / (records / 1e6));
	for (s = 0; s < STATIONS; s++) {
		regtu_station_close(&st[s]);
		tu_rmtree(bundles[s]);
		free(bundles[s]);
	}
	free(args);
	/* The statements that took longest (the server logs those over 250 ms). */
	ck_assert_int_ne(asprintf(&cmd, "grep -o 'duration: .*' '%s/server.log' | sort -t' ' -k2 -n -r | head -5 | cut -c1-200", pg.dir), -1);
	tu_sh(cmd, &out);
	printf("slowest statements:\n%s", out ? out : "");
	free(out);
	free(cmd);
	pgtu_stop(&pg);
	tu_pki_teardown();
}
END_TEST

int
main(int argc, char **argv)
{
	if (argc > 1)
		per_station = tu_bench_arg("bench-registry", argv[1], 10, 100000);
	return tu_run_bench("bench-registry", bench);
}
