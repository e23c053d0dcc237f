/* Benchmark: `station run` on a journal of DEVICES provisioned devices
 * (default 100,000): peak RSS of the station process and its start-up time
 * (from spawn to its first device_started event: the journal read, the
 * history built, the HSM opened) and CPU time, median of RUNS runs of one
 * device each, beside the same on an empty journal; then `station device`
 * for one SE of the journal (wall and CPU time, peak RSS).  Target: peak
 * RSS of `station run` under 32 MB.
 *
 * The journal is written with libaudit as `station run` writes it: per
 * device identify, posture, auth, keygen, verify, issuing, issued (with a
 * certificate of a real leaf's size), install, locking, lock and done, in
 * batches of 100 devices (the demo recipe's batch_size raised from 10, so
 * 1,000 files rather than 10,000, and its quota.max_per_shift raised so the
 * journal's certificates do not use up the shift); a warm-up run seals them.
 * Peak RSS is VmHWM of the child, sampled until it exits (see bench-gang.c).
 *
 * usage: bench-journal [DEVICES [RUNS]]
 *
 * It is a Check suite without fork only so that the shared test helpers'
 * assertions report what failed. */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "audit.h"
#include "cms.h"
#include "stutil.h"

static unsigned n_devices = 100000, n_runs = 3;

static void
hex_of(unsigned i, unsigned salt, char out[65])
{
	uint8_t h[32];
	unsigned v[2] = { i, salt };

	st_sha256(v, sizeof(v), h);
	st_hex(h, 32, out);
}

static void
add(audit_journal *j, const char *jig, const char *dev, const char *step, const char *result, json_t *details,
    int lazy)
{
	audit_event ev = { .jig = jig, .device = dev, .step = step, .result = result, .details = details, .lazy = lazy };
	st_err err;

	ck_assert_msg(audit_append(j, &ev, NULL, &err) == 0, "append %s: %s", step, err.msg);
	json_decref(details);
}

/* DEVICES devices' records, as `station run` writes them. */
static void
make_journal(stu_ws *w, unsigned n)
{
	audit_config cfg = { "demo-station-1", "bench", "", 100, 0, NULL };
	const char *jig = "tcp:127.0.0.1:7700";
	char path[4200], dev[32], key[65], nonce[65], serial[65], csha[65], kid[ST_KEY_ID_HEX], *b64;
	audit_journal *j;
	uint8_t *der = NULL;
	X509 *x;
	FILE *f;
	st_err err;
	double t0 = stu_now();
	int len;
	unsigned i;

	/* A leaf-sized certificate: the test intermediate's. */
	snprintf(path, sizeof(path), "%s/intermediate.pem", w->pki);
	ck_assert_ptr_nonnull(f = fopen(path, "r"));
	ck_assert_ptr_nonnull(x = PEM_read_X509(f, NULL, NULL, NULL));
	fclose(f);
	ck_assert_int_gt(len = i2d_X509(x, &der), 0);
	ck_assert_int_eq(st_x509_ski_hex(x, kid), 0); /* "issuing" names the intermediate, as station run's do */
	X509_free(x);
	ck_assert_ptr_nonnull(b64 = malloc((size_t)(4 * ((len + 2) / 3) + 1)));
	EVP_EncodeBlock((unsigned char *)b64, der, len);
	st_sha256_hex(der, (size_t)len, csha);
	OPENSSL_free(der);

	ck_assert_msg((j = audit_open(w->audit, &cfg, &err)) != NULL, "audit_open: %s", err.msg);
	for (i = 0; i < n; i++) {
		snprintf(dev, sizeof(dev), "SEB%015X", i);
		hex_of(i, 1, key);
		hex_of(i, 2, nonce);
		hex_of(i, 3, serial);
		serial[0] = '4'; /* 20 bytes, positive */
		serial[40] = '\0';
		for (char *p = serial; *p; p++)
			*p = (char)(*p >= 'a' ? *p - 'a' + 'A' : *p);
		add(j, jig, dev, "identify", "ok", json_pack("{s:s,s:s,s:s}", "model", "SE050", "firmware", "7.2.0",
		    "lifecycle", "factory"), 1);
		add(j, jig, dev, "posture", "ok", NULL, 1);
		add(j, jig, dev, "auth", "ok", NULL, 1);
		add(j, jig, dev, "keygen", "ok", json_pack("{s:s,s:i,s:b}", "pubkey_sha256", key, "slot", 0, "kept", 0), 1);
		add(j, jig, dev, "verify", "ok", json_pack("{s:s}", "nonce", nonce), 1);
		add(j, jig, dev, "issuing", "ok", json_pack("{s:s,s:s,s:s}", "cert_serial", serial, "pubkey_sha256", key,
		    "issuer_key_id", kid), 1);
		add(j, jig, dev, "issued", "ok", json_pack("{s:s,s:s,s:s}", "cert_serial", serial, "cert_sha256", csha,
		    "cert", b64), 1);
		add(j, jig, dev, "install", "ok", json_pack("{s:s}", "cert_serial", serial), 1);
		add(j, jig, dev, "locking", "ok", NULL, 1);
		add(j, jig, dev, "lock", "ok", json_pack("{s:s}", "lifecycle", "provisioned"), 1);
		add(j, jig, dev, "done", "pass", json_pack("{s:s,s:b}", "cert_serial", serial, "resumed", 0), 0);
	}
	audit_close(j);
	free(b64);
	printf("  journal of %u devices written in %.1f s\n", n, stu_now() - t0);
	fflush(stdout);
}

static double
cpu_of(const struct rusage *ru)
{
	return ru->ru_utime.tv_sec + ru->ru_utime.tv_usec / 1e6 + ru->ru_stime.tv_sec + ru->ru_stime.tv_usec / 1e6;
}

/* One `station run --count 1`: start-up seconds, peak RSS in MB and the
 * whole process's CPU seconds (the journal read is most of it; unlike the
 * start-up time it does not grow with the machine's load). */
static void
run_once(stu_ws *w, stu_sim *sim, double *startup_s, double *rss_mb, double *cpu_s)
{
	stu_run r;
	long hwm = 0, kb;
	double started = -1;
	char buf[65536];
	ssize_t got;
	size_t have = 0;
	int fd;

	stu_station_start(w, sim->uri, 1, 1, &r);
	ck_assert_int_ge(fd = open(r.out_path, O_RDONLY), 0);
	while ((kb = tu_proc_hwm_kb(r.pid)) >= 0) {
		hwm = kb > hwm ? kb : hwm;
		if (started < 0 && have < sizeof(buf) - 1 && (got = read(fd, buf + have, sizeof(buf) - 1 - have)) > 0) {
			have += (size_t)got;
			buf[have] = '\0';
			if (strstr(buf, "\"device_started\""))
				started = stu_now() - r.start_s;
		}
		ck_assert_msg(stu_now() - r.start_s < 900, "station run still running after 900 s");
		stu_sleep_ms(2);
	}
	close(fd);
	stu_station_wait(&r, 900);
	ck_assert_msg(r.status == 0, "station run: exit %d\n%s", r.status, stu_tail(r.err));
	ck_assert_msg(started >= 0, "no device_started event\n%s", stu_tail(r.out));
	*startup_s = started;
	*rss_mb = hwm / 1024.0;
	*cpu_s = cpu_of(&r.ru);
	stu_run_clear(&r);
}

/* One `station device SERIAL` on the journal: wall seconds, CPU seconds, peak RSS in MB. */
static void
device_once(stu_ws *w, const char *serial, double *wall_s, double *cpu_s, double *rss_mb)
{
	char *argv[] = { (char *)tu_station_exe(), (char *)"device", (char *)"--recipe", w->recipe, (char *)serial, NULL };
	char out[4300];
	struct rusage ru;
	double t0 = stu_now();
	int rc;

	snprintf(out, sizeof(out), "%s/device.out", w->dir);
	rc = stu_wait(stu_spawn(argv, out, "/dev/null"), 900, &ru);
	ck_assert_msg(rc == 0, "station device %s: exit %d", serial, rc);
	*wall_s = stu_now() - t0;
	*cpu_s = cpu_of(&ru);
	*rss_mb = ru.ru_maxrss / 1024.0;
}

struct figures {
	double startup, rss, cpu;          /* station run, medians */
	double dev_wall, dev_cpu, dev_rss; /* station device, medians */
};

static void
measure(const char *pki, unsigned n, struct figures *f)
{
	stu_ws *w = stu_ws_new(pki);
	stu_sim *sim;
	jigsim_config c;
	double *s = calloc(n_runs, sizeof(*s)), *m = calloc(n_runs, sizeof(*m)), *u = calloc(n_runs, sizeof(*u));
	double *dw = calloc(n_runs, sizeof(*dw)), *du = calloc(n_runs, sizeof(*du)), *dm = calloc(n_runs, sizeof(*dm));
	double ws, wm, wu;
	char serial[32];
	unsigned i;

	ck_assert(s && m && u && dw && du && dm);
	stu_recipe_edit(w, "  batch_size: 10\n", "  batch_size: 100\n");
	/* The journal holds n issued certificates: the demo's shift quota (100)
	 * would stop the first run; the benchmark measures reading, not quota. */
	stu_recipe_edit(w, "  max_per_shift: 100\n", "  max_per_shift: 100000000\n");
	if (n)
		make_journal(w, n);
	jigsim_config_init(&c);
	c.devices = n_runs + 1;
	sim = stu_sim_start(pki, &c);
	run_once(w, sim, &ws, &wm, &wu); /* warm-up: seals the batches written above */
	printf("  %u devices, warm-up run: start-up %.2f s, peak RSS %.1f MB, CPU %.2f s\n", n, ws, wm, wu);
	for (i = 0; i < n_runs; i++) {
		run_once(w, sim, &s[i], &m[i], &u[i]);
		printf("  %u devices, run %u: start-up %.2f s, peak RSS %.1f MB, CPU %.2f s\n", n, i + 1, s[i], m[i], u[i]);
		fflush(stdout);
	}
	/* One device's story, from the middle of the journal. */
	snprintf(serial, sizeof(serial), "SEB%015X", n / 2);
	for (i = 0; n && i < n_runs; i++) {
		device_once(w, serial, &dw[i], &du[i], &dm[i]);
		printf("  %u devices, station device %s: %.2f s, CPU %.2f s, peak RSS %.1f MB\n", n, serial, dw[i], du[i],
		    dm[i]);
		fflush(stdout);
	}
	f->startup = tu_median(s, n_runs);
	f->rss = tu_median(m, n_runs);
	f->cpu = tu_median(u, n_runs);
	f->dev_wall = tu_median(dw, n_runs);
	f->dev_cpu = tu_median(du, n_runs);
	f->dev_rss = tu_median(dm, n_runs);
	free(s);
	free(m);
	free(u);
	free(dw);
	free(du);
	free(dm);
	stu_sim_stop(sim);
	stu_ws_free(w);
}

START_TEST(bench)
{
	char *pki = tu_make_pki();
	struct figures e, f;

	measure(pki, 0, &e);
	measure(pki, n_devices, &f);
	printf("\nstation run, median of %u runs:\n", n_runs);
	printf("  empty journal:            start-up %.2f s, peak RSS %.1f MB, CPU %.2f s\n", e.startup, e.rss, e.cpu);
	printf("  journal of %u devices: start-up %.2f s, peak RSS %.1f MB (target < 32 MB: %s), CPU %.2f s\n",
	    n_devices, f.startup, f.rss, f.rss < 32 ? "met" : "MISSED", f.cpu);
	printf("  memory per device in the journal: %.0f bytes\n", (f.rss - e.rss) * 1024 * 1024 / n_devices);
	printf("station device SERIAL on it: %.2f s, CPU %.2f s, peak RSS %.1f MB\n", f.dev_wall, f.dev_cpu, f.dev_rss);
	tu_rmtree(pki);
	free(pki);
}
END_TEST

int
main(int argc, char **argv)
{
	if (argc > 1)
		n_devices = tu_bench_arg("bench-journal", argv[1], 1, 10000000);
	if (argc > 2)
		n_runs = tu_bench_arg("bench-journal", argv[2], 1, 1000);
	return tu_run_bench("bench-journal", bench);
}
