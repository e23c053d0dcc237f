/* Benchmark: `station run` over 1,000 devices on one jigsim with zero
 * latency — station CPU time per device (the whole station process,
 * user + sys from wait4, divided by the devices, and each part on its own)
 * and devices per second, median of RUNS runs — beside a scripted baseline in the same run: CSRs of
 * the same kind verified and signed by the openssl command line with the
 * libp11 engine and the same token key, one process chain per device.
 * Targets: station <= 1.5 ms CPU per device and >= 30x the baseline.
 *
 * usage: bench-station [DEVICES [RUNS [BASELINE_DEVICES]]]
 *
 * It is a Check suite without fork only so that the shared test helpers'
 * assertions report what failed. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "station-config.h"
#include "stutil.h"

static unsigned n_devices = 1000, n_runs = 3, n_baseline = 50;

static double
cpu_s(const struct rusage *ru)
{
	return (double)ru->ru_utime.tv_sec + ru->ru_utime.tv_usec / 1e6 + (double)ru->ru_stime.tv_sec +
	    ru->ru_stime.tv_usec / 1e6;
}

/* One station run over n devices; CPU seconds per device, the system part
 * of them, and devices/s. */
static void
station_once(const char *pki, unsigned n, double *cpu_per_dev, double *sys_per_dev, double *dev_per_s)
{
	stu_ws *w = stu_ws_new(pki);
	stu_sim *sim = NULL;
	jigsim_config c;
	stu_run r;

	stu_recipe_edit(w, "  max_per_run: 1000\n", "  max_per_run: 10000000\n");
	stu_recipe_edit(w, "  max_per_shift: 100\n", "  max_per_shift: 100000000\n");
	jigsim_config_init(&c);
	c.devices = n;
	sim = stu_sim_start(pki, &c);
	stu_station_start(w, sim->uri, n, 0, &r);
	stu_station_wait(&r, 3600);
	ck_assert_msg(r.status == 0, "station run: exit %d\n%s", r.status, stu_tail(r.err));
	ck_assert_uint_eq(jigsim_released(sim->s), n);
	*cpu_per_dev = cpu_s(&r.ru) / n;
	*sys_per_dev = ((double)r.ru.ru_stime.tv_sec + r.ru.ru_stime.tv_usec / 1e6) / n;
	*dev_per_s = n / r.wall_s;
	printf("  station run %u devices: %.1f s, user %.2f s + sys %.2f s = %.3f ms CPU/device, %.0f devices/s\n", n,
	    r.wall_s, (double)r.ru.ru_utime.tv_sec + r.ru.ru_utime.tv_usec / 1e6,
	    (double)r.ru.ru_stime.tv_sec + r.ru.ru_stime.tv_usec / 1e6, *cpu_per_dev * 1e3, *dev_per_s);
	fflush(stdout);
	stu_run_clear(&r);
	stu_sim_stop(sim);
	stu_ws_free(w);
}

/* A CSR like an SE's: a fresh P-256 key, subject CN = the SE serial. */
static void
write_csr(const char *path, const char *serial)
{
	EVP_PKEY *key = EVP_EC_gen("P-256");
	X509_REQ *req = X509_REQ_new();
	FILE *f = fopen(path, "w");

	ck_assert(key && req && f);
	ck_assert(X509_NAME_add_entry_by_txt(X509_REQ_get_subject_name(req), "CN", MBSTRING_ASC,
	    (const unsigned char *)serial, -1, -1, 0));
	ck_assert(X509_REQ_set_pubkey(req, key) && X509_REQ_sign(req, key, EVP_sha256()) > 0);
	ck_assert(PEM_write_X509_REQ(f, req));
	fclose(f);
	X509_REQ_free(req);
	EVP_PKEY_free(key);
}

static void
write_text(const char *path, const char *text, unsigned mode)
{
	FILE *f = fopen(path, "w");

	ck_assert_ptr_nonnull(f);
	ck_assert_int_ge(fputs(text, f), 0);
	ck_assert_int_eq(fclose(f), 0);
	ck_assert_int_eq(chmod(path, mode), 0);
}

/* The scripted baseline: per device one shell running `openssl req -verify`
 * and `openssl x509 -req` signing with the intermediate key in the token
 * through the libp11 engine, with the leaf profile of demo.yaml.  CPU
 * seconds per device (the shell and both openssl processes) and devices/s. */
static void
baseline_once(const char *pki, unsigned n, double *cpu_per_dev, double *dev_per_s)
{
	static const char script[] =
	    "openssl req -in \"$1\" -verify -noout 2>/dev/null &&\n"
	    "SE_SERIAL=$3 openssl x509 -req -in \"$1\" -engine pkcs11 -CAkeyform engine \\\n"
	    "  -CAkey 'pkcs11:token=station-test;object=intermediate;type=private' -CA \"$5/intermediate.pem\" \\\n"
	    "  -set_serial 0x$2 -days 3650 -sha256 -subj \"/serialNumber=$3/O=Station Demo/OU=Demo Line/CN=Demo Sensor $3\" \\\n"
	    "  -extfile \"$4/leaf.cnf\" -extensions leaf -out \"$4/$3.pem\" 2>/dev/null\n";
	char *dir = tu_tmpdir("bench-baseline"), path[4200], conf[4200], text[2048], serial[32], cert_serial[40];
	char **paths = calloc(n, sizeof(*paths));
	double cpu = 0, t0, wall;
	unsigned i;

	ck_assert(dir && paths);
	/* The engine, its module and the TEST PIN in a 0600 config file: no PIN in argv. */
	snprintf(conf, sizeof(conf), "%s/engine.cnf", dir);
	snprintf(text, sizeof(text),
	    "openssl_conf = openssl_init\n[openssl_init]\nengines = engine_section\n"
	    "[engine_section]\npkcs11 = pkcs11_section\n[pkcs11_section]\nengine_id = pkcs11\n"
	    "MODULE_PATH = %s\nPIN = 123456\ninit = 0\n", STATION_DEFAULT_PKCS11_MODULE); /* TEST PIN */
	write_text(conf, text, 0600);
	snprintf(path, sizeof(path), "%s/leaf.cnf", dir);
	write_text(path,
	    "[leaf]\nbasicConstraints = critical, CA:FALSE\nkeyUsage = critical, digitalSignature\n"
	    "extendedKeyUsage = clientAuth\nsubjectKeyIdentifier = hash\nauthorityKeyIdentifier = keyid:always\n"
	    "subjectAltName = URI:urn:station-demo:device:$ENV::SE_SERIAL\n",
	    0644);
	for (i = 0; i < n; i++) {
		snprintf(serial, sizeof(serial), "SE%016X", 0xB000u + i);
		snprintf(path, sizeof(path), "%s/%s.csr", dir, serial);
		write_csr(path, serial);
	}
	setenv("OPENSSL_CONF", conf, 1);
	t0 = stu_now();
	for (i = 0; i < n; i++) {
		char csr[4200];
		struct rusage ru;
		pid_t pid;
		int rc;
		char *argv[] = { (char *)"/bin/sh", (char *)"-c", (char *)script, (char *)"sh", csr, cert_serial, serial, dir,
			(char *)pki, NULL };

		snprintf(serial, sizeof(serial), "SE%016X", 0xB000u + i);
		snprintf(cert_serial, sizeof(cert_serial), "4%031X", 0x5EED0000u + i);
		snprintf(csr, sizeof(csr), "%s/%s.csr", dir, serial);
		pid = stu_spawn(argv, "/dev/null", "/dev/null");
		rc = stu_wait(pid, 0, &ru);
		ck_assert_msg(rc == 0, "baseline device %u: exit %d", i, rc);
		cpu += cpu_s(&ru);
		ck_assert_int_ne(asprintf(&paths[i], "%s/%s.pem", dir, serial), -1);
	}
	wall = stu_now() - t0;
	unsetenv("OPENSSL_CONF");
	*cpu_per_dev = cpu / n;
	*dev_per_s = n / wall;
	printf("  openssl CLI %u devices: %.1f s, %.3f ms CPU/device, %.0f devices/s\n", n, wall, *cpu_per_dev * 1e3,
	    *dev_per_s);
	fflush(stdout);
	/* The baseline really signed with the token key: every leaf verifies. */
	{
		stu_ws w = { .dir = dir, .pki = pki };

		stu_openssl_verify(&w, paths, n);
	}
	for (i = 0; i < n; i++)
		free(paths[i]);
	free(paths);
	tu_rmtree(dir);
	free(dir);
}

START_TEST(bench)
{
	char *pki = tu_make_pki();
	double *s_cpu = calloc(n_runs, sizeof(double)), *s_rate = calloc(n_runs, sizeof(double));
	double *b_cpu = calloc(n_runs, sizeof(double)), *b_rate = calloc(n_runs, sizeof(double));
	double *s_sys = calloc(n_runs, sizeof(double)), *s_usr = calloc(n_runs, sizeof(double));
	double sc, sr, bc, br, ss, su;
	unsigned i;

	ck_assert(s_cpu && s_rate && b_cpu && b_rate && s_sys && s_usr);
	printf("station run: %u devices, one jigsim with zero latency; baseline: %u devices; %u runs each\n", n_devices,
	    n_baseline, n_runs);
	for (i = 0; i < n_runs; i++) {
		station_once(pki, n_devices, &s_cpu[i], &s_sys[i], &s_rate[i]);
		s_usr[i] = s_cpu[i] - s_sys[i];
		baseline_once(pki, n_baseline, &b_cpu[i], &b_rate[i]);
	}
	sc = tu_median(s_cpu, n_runs);
	ss = tu_median(s_sys, n_runs);
	su = tu_median(s_usr, n_runs);
	sr = tu_median(s_rate, n_runs);
	bc = tu_median(b_cpu, n_runs);
	br = tu_median(b_rate, n_runs);
	printf("medians:\n");
	printf("  %-48s %8.3f ms CPU/device %8.0f devices/s\n", "station run (whole process)", sc * 1e3, sr);
	printf("  %-48s %8.3f ms user + %.3f ms system\n", "station run, user and system time", su * 1e3, ss * 1e3);
	printf("  %-48s %8.3f ms CPU/device %8.0f devices/s\n", "openssl CLI + libp11 engine, process per device",
	    bc * 1e3, br);
	printf("  %-48s %8.1fx CPU          %8.1fx devices/s\n", "station vs baseline", bc / sc, sr / br);
	printf("targets: station <= 1.5 ms CPU/device: %s; >= 30x the baseline (CPU per device): %s\n",
	    sc <= 1.5e-3 ? "met" : "MISSED", bc / sc >= 30 ? "met" : "MISSED");
	printf("target (issue 17): station <= 1.0 ms CPU/device: %.3f ms, ratio %.2f: %s\n", sc * 1e3, sc / 1.0e-3,
	    sc <= 1.0e-3 ? "met" : "MISSED");
	free(s_cpu);
	free(s_sys);
	free(s_usr);
	free(s_rate);
	free(b_cpu);
	free(b_rate);
	tu_rmtree(pki);
	free(pki);
}
END_TEST

int
main(int argc, char **argv)
{
	if (argc > 1)
		n_devices = tu_bench_arg("bench-station", argv[1], 1, 1000000);
	if (argc > 2)
		n_runs = tu_bench_arg("bench-station", argv[2], 1, 1000000);
	if (argc > 3)
		n_baseline = tu_bench_arg("bench-station", argv[3], 1, 1000000);
	return tu_run_bench("bench-station", bench);
}
