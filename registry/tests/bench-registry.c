/* Benchmark of station-registry on a real throw-away PostgreSQL cluster:
 * ingest throughput (records/s) of bundles from 20 simulated stations with
 * real seals, re-ingest of the same bundles (must change no row), `device
 * SERIAL` latency (p50/p99 of the whole command: exec, connect, queries),
 * and the database size per million records.
 *
 *   meson test -C build --benchmark --suite registry   (or run the program)
 *   bench-registry [DEVICES_PER_STATION [DEVICES]]
 *
 * DEVICES_PER_STATION (default 1000: 20 x 1000 x 5 = 100k records) sets the
 * journals ingested.  DEVICES (default: those) tops the registry up to that
 * many devices with rows made in SQL (five records and a certificate each,
 * as ingest would store them) before the lookups are timed: ingesting a
 * million devices' sealed journals takes longer than a benchmark should.
 * `device` is timed twice: the whole command (exec, connect, queries), and
 * its three statements over one open connection, as a dashboard runs them.
 *
 * The journals are written under /dev/shm when it exists (generating them
 * is not what is measured); the cluster runs with fsync=off like the tests,
 * so the ingest figure is the registry's and PostgreSQL's CPU cost, not a
 * disk's. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include <libpq-fe.h>

#include "pgtu.h"
#include "queries.h"
#include "regtu.h"

#define STATIONS 20
#define DEVICE_SAMPLES 300
#define QUERY_SAMPLES 2000
#define TARGET_INGEST 100000.0
#define TARGET_P99_MS 5.0

static unsigned per_station = 1000;
static long total_devices;

static double
now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* CPU seconds (user + system) of the children waited for so far: the
 * ingest command's own cost, whatever else the machine runs. */
static double
children_cpu_s(void)
{
	struct rusage ru;

	getrusage(RUSAGE_CHILDREN, &ru);
	return (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) + (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

/* The server's CPU once the backends of a finished command are gone: an
 * exited backend counts only once the postmaster has reaped it, so read
 * until two readings 100 ms apart agree (at most 3 s). */
static double
server_cpu_settled(const pgtu *pg)
{
	double a = pgtu_server_cpu_s(pg), b;
	int i;

	for (i = 0; i < 30; i++) {
		usleep(100000);
		b = pgtu_server_cpu_s(pg);
		if (b == a)
			break;
		a = b;
	}
	return a;
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

/* A device that exists: one of the journals' or, when topped up, any. */
static void
random_device(char *dev, size_t n)
{
	long i = (long)((unsigned long)rand() % (unsigned long)total_devices);

	if (i < (long)STATIONS * per_station)
		snprintf(dev, n, "SE-%02ld-%06ld", i / per_station, i % per_station);
	else
		snprintf(dev, n, "SE-X-%08ld", i);
}

/* Devices made in SQL: five records (identify, keygen, issued with a
 * certificate-sized details, done) and a certificate row each, at a station
 * of their own, spread over the last year. */
static void
top_up(const pgtu *pg, long n)
{
	char *sql = NULL;
	double t0 = now_s();

	ck_assert_int_ne(asprintf(&sql,
	                     "INSERT INTO stations VALUES ('bench-synthetic', 'CN=bench') ON CONFLICT DO NOTHING;"
	                     "INSERT INTO bundles (station, first_seq, last_seq, records, new_records, signer, manifest_sha256)"
	                     " VALUES ('bench-synthetic', 1, %ld, %ld, %ld, 'CN=bench', '');"
	                     "INSERT INTO records SELECT 'bench-synthetic', d * 5 + k, md5((d * 5 + k)::text) || md5(d::text),"
	                     " now() - (d %% 525600) * interval '1 minute', 'op', 'r', 'tcp:127.0.0.1:7700',"
	                     " 'SE-X-' || lpad((d + %ld)::text, 8, '0'),"
	                     " (ARRAY['identify','keygen','issuing','issued','done'])[k + 1], CASE WHEN k = 4 THEN 'pass' ELSE 'ok' END,"
	                     " false, CASE WHEN k = 3 THEN jsonb_build_object('cert', repeat('A', 700), 'cert_serial', to_hex(d))"
	                     "  WHEN k = 1 THEN jsonb_build_object('pubkey_sha256', md5(d::text) || md5(d::text)) ELSE '{}' END, 1"
	                     " FROM generate_series(0, %ld) d, generate_series(0, 4) k;"
	                     "INSERT INTO certificates SELECT 'bench-synthetic', d * 5 + 3, 'SE-X-' || lpad((d + %ld)::text, 8, '0'),"
	                     " 'CN=bench', to_hex(d + 268435456), 'CN=SE-X', now(), now() + interval '1 year', md5(d::text),"
	                     " md5(d::text) || md5(d::text), now() FROM generate_series(0, %ld) d",
	                     n * 5, n * 5, n * 5, (long)STATIONS * per_station, n - 1, (long)STATIONS * per_station, n - 1),
	    -1);
	ck_assert_int_eq(pgtu_psql(pg, sql, NULL), 0);
	free(sql);
	printf("topped up to %ld devices with rows made in SQL in %.0f s\n", total_devices, now_s() - t0);
}

/* The three statements of `device SERIAL`, on one connection. */
static void
conn_lookups(const pgtu *pg, double *lat)
{
	static const char *const sql[] = { DEVICE_RECORDS_SQL, DEVICE_CERTS_SQL, DEVICE_ALARMS_SQL };
	PGconn *c = PQconnectdb(pg->conninfo);
	unsigned i, q;

	ck_assert_msg(PQstatus(c) == CONNECTION_OK, "%s", PQerrorMessage(c));
	for (i = 0; i < QUERY_SAMPLES; i++) {
		char dev[48];
		const char *p[1] = { dev };
		double t0;
		int rows = 0;

		random_device(dev, sizeof(dev));
		t0 = now_s();
		for (q = 0; q < 3; q++) {
			PGresult *res = PQexecParams(c, sql[q], 1, NULL, p, NULL, NULL, 0);

			ck_assert_msg(PQresultStatus(res) == PGRES_TUPLES_OK, "%s", PQerrorMessage(c));
			if (q == 0)
				rows = PQntuples(res);
			PQclear(res);
		}
		lat[i] = (now_s() - t0) * 1000.0;
		ck_assert_msg(rows > 0, "device %s: no records", dev);
	}
	PQfinish(c);
	qsort(lat, QUERY_SAMPLES, sizeof(lat[0]), cmp_d);
}

START_TEST(bench)
{
	char *bundles[STATIONS], *cmd = NULL, *out = NULL, *args = NULL, *tmp;
	regtu_station st[STATIONS];
	double t0, c0, s0, t_gen, t_ingest, t_reingest, cpu_ingest, cpu_reingest, srv_ingest, srv_reingest, lat[DEVICE_SAMPLES], qlat[QUERY_SAMPLES];
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
	ck_assert_int_ne(asprintf(&cmd, "'%s' --db '%s' ingest --enroll --ca '%s/root-ca.pem' %s", getenv("STATION_REGISTRY_EXE"),
	                     pg.conninfo, tu_pki, args),
	    -1);
	t0 = now_s();
	c0 = children_cpu_s();
	s0 = server_cpu_settled(&pg);
	t0 = now_s();
	rc = tu_sh(cmd, &out);
	t_ingest = now_s() - t0;
	cpu_ingest = children_cpu_s() - c0;
	srv_ingest = server_cpu_settled(&pg) - s0;
	ck_assert_msg(rc == 0, "ingest: %s", out);
	free(out);
	records = sql_num(&pg, "SELECT count(*) FROM records");
	rows_before = sql_num(&pg, "SELECT (SELECT count(*) FROM records) + (SELECT count(*) FROM bundles) + (SELECT count(*) FROM certificates)");
	t0 = now_s();
	c0 = children_cpu_s();
	s0 = server_cpu_settled(&pg);
	t0 = now_s();
	rc = tu_sh(cmd, &out);
	t_reingest = now_s() - t0;
	cpu_reingest = children_cpu_s() - c0;
	srv_reingest = server_cpu_settled(&pg) - s0;
	ck_assert_msg(rc == 0 && strstr(out, "already ingested: 0 new records") && !strstr(out, "loaded"), "re-ingest: %s", out);
	free(out);
	free(cmd);
	rows_after = sql_num(&pg, "SELECT (SELECT count(*) FROM records) + (SELECT count(*) FROM bundles) + (SELECT count(*) FROM certificates)");
	ck_assert_int_eq(rows_before, rows_after);
	size = sql_num(&pg, "SELECT pg_database_size(current_database())");
	if (total_devices > (long)STATIONS * per_station)
		top_up(&pg, total_devices - (long)STATIONS * per_station);
	else
		total_devices = (long)STATIONS * per_station;
	pgtu_psql(&pg, "VACUUM ANALYZE", NULL);
	for (d = 0; d < DEVICE_SAMPLES; d++) {
		char dev[48];

		random_device(dev, sizeof(dev));
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
	conn_lookups(&pg, qlat);
	printf("registry benchmark: %u stations x %u devices = %ld records (%ld devices), journals generated in %.1f s\n",
	    STATIONS, per_station, records, (long)STATIONS * per_station, t_gen);
	printf("ingest:    %.0f records/s (%.2f s for %ld records, verification included)   target >= %.0f: %s\n",
	    records / t_ingest, t_ingest, records, TARGET_INGEST, records / t_ingest >= TARGET_INGEST ? "met" : "NOT MET");
	printf("           CPU: the ingest command %.1f us/record, the PostgreSQL server %.1f us/record: %.1f us, or %.0f "
	       "records/s per core; %.0f records/s takes %.1f cores (this machine has %ld)\n",
	    cpu_ingest * 1e6 / records, srv_ingest * 1e6 / records, (cpu_ingest + srv_ingest) * 1e6 / records,
	    records / (cpu_ingest + srv_ingest), TARGET_INGEST, TARGET_INGEST * (cpu_ingest + srv_ingest) / records,
	    sysconf(_SC_NPROCESSORS_ONLN));
	printf("re-ingest: %.0f records/s (%.2f s), rows changed: %ld   (no slower: %s); CPU: command %.1f, server %.1f "
	       "us/record\n",
	    records / t_reingest, t_reingest, rows_after - rows_before, t_reingest <= t_ingest * 1.1 ? "yes" : "NO",
	    cpu_reingest * 1e6 / records, srv_reingest * 1e6 / records);
	printf("device:    p50 %.1f ms, p99 %.1f ms over %u runs of the command (exec + connect + queries) at %ld devices\n",
	    lat[DEVICE_SAMPLES / 2], lat[DEVICE_SAMPLES * 99 / 100], DEVICE_SAMPLES, total_devices);
	printf("device queries: p50 %.2f ms, p99 %.2f ms over %u lookups on one connection   target p99 < %.0f ms at 1M "
	       "devices: %s at %ld devices\n",
	    qlat[QUERY_SAMPLES / 2], qlat[QUERY_SAMPLES * 99 / 100], QUERY_SAMPLES, TARGET_P99_MS,
	    qlat[QUERY_SAMPLES * 99 / 100] < TARGET_P99_MS ? "met" : "NOT MET", total_devices);
	printf("size:      %.1f MB database, %.0f MB per million records\n", size / 1e6, size / 1e6 / (records / 1e6));
	for (s = 0; s < STATIONS; s++) {
		regtu_station_close(&st[s]);
		if (getenv("BENCH_REGISTRY_KEEP")) /* to profile ingest on its own */
			printf("kept bundle %s\n", bundles[s]);
		else
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
	if (getenv("BENCH_REGISTRY_KEEP"))
		printf("kept test PKI %s\n", tu_pki);
	else
		tu_pki_teardown();
}
END_TEST

int
main(int argc, char **argv)
{
	if (argc > 1)
		per_station = tu_bench_arg("bench-registry", argv[1], 10, 100000);
	if (argc > 2)
		total_devices = tu_bench_arg("bench-registry", argv[2], 10, 100000000);
	return tu_run_bench("bench-registry", bench);
}
