/* Benchmark: leaf certificates issued per second through libhsm on a
 * SoftHSM P-256 intermediate, with 1 and 2 threads, against the same
 * issuance code signing with an in-memory P-256 key in the same run.
 * Each figure is the median of ROUNDS rounds.  Targets: >= 3,000 leaves/s
 * on one thread through the token, and token/in-memory >= 0.7. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/x509v3.h>

#include "cms.h"
#include "hsm-int.h"
#include "testutil.h"

#define ROUNDS 7
#define NCSR 64

static int per_round = 3000;

struct signer {
	hsm_key *key;      /* token path, or */
	EVP_PKEY *pkey;    /* in-memory path */
	X509 *ca;
};

struct job {
	const struct signer *s;
	X509_REQ **csrs;
	int count;
	int failed;
};

static double
now_s(clockid_t clock)
{
	struct timespec ts;

	clock_gettime(clock, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void *
issue_loop(void *arg)
{
	static const char *const san[] = { "URI:urn:dev:bench:SE0001" };
	struct job *j = arg;
	hsm_leaf_profile p;
	st_err err;
	int i;

	memset(&p, 0, sizeof(p));
	p.serial_number = "SE0001";
	p.organization = "Station Bench";
	p.common_name = "Widget";
	p.san = san;
	p.n_san = 1;
	p.validity_days = 3650;
	for (i = 0; i < j->count; i++) {
		X509 *leaf = NULL;
		int rc = j->s->key ? hsm_issue_leaf(j->s->key, j->s->ca, j->csrs[i % NCSR], &p, &leaf, &err)
				   : hsm_leaf_build(j->s->pkey, EVP_sha256(), j->s->ca, j->csrs[i % NCSR], &p, &leaf, &err);

		if (rc < 0) {
			if (!j->failed++)
				fprintf(stderr, "bench: %s\n", err.msg);
		}
		X509_free(leaf);
	}
	return NULL;
}

/* Leaves per second (wall clock) with nthreads threads issuing per_round
 * in total; *cpu_rate gets leaves per second of process CPU time, which a
 * machine shared with other work disturbs less. */
static double
measure(const struct signer *s, X509_REQ **csrs, int nthreads, double *cpu_rate)
{
	pthread_t th[8];
	struct job jobs[8];
	double t0, t1, c0, c1;
	int i, failed = 0;

	c0 = now_s(CLOCK_PROCESS_CPUTIME_ID);
	t0 = now_s(CLOCK_MONOTONIC);
	for (i = 0; i < nthreads; i++) {
		jobs[i] = (struct job){ s, csrs, per_round / nthreads, 0 };
		pthread_create(&th[i], NULL, issue_loop, &jobs[i]);
	}
	for (i = 0; i < nthreads; i++) {
		pthread_join(th[i], NULL);
		failed += jobs[i].failed;
	}
	t1 = now_s(CLOCK_MONOTONIC);
	c1 = now_s(CLOCK_PROCESS_CPUTIME_ID);
	if (cpu_rate)
		*cpu_rate = (double)(per_round / nthreads * nthreads) / (c1 - c0);
	if (failed) {
		fprintf(stderr, "bench: %d issuances failed\n", failed);
		exit(1);
	}
	return (double)(per_round / nthreads * nthreads) / (t1 - t0);
}

/* An in-memory P-256 CA shaped like the test intermediate. */
static X509 *
memory_ca(EVP_PKEY *key)
{
	X509 *x = X509_new();
	X509_NAME *n = X509_NAME_new();
	X509V3_CTX v3;
	X509_EXTENSION *e;

	X509_set_version(x, X509_VERSION_3);
	ASN1_INTEGER_set(X509_get_serialNumber(x), 1);
	X509_NAME_add_entry_by_txt(n, "O", MBSTRING_ASC, (const unsigned char *)"Station Bench", -1, -1, 0);
	X509_NAME_add_entry_by_txt(n, "CN", MBSTRING_ASC, (const unsigned char *)"Bench CA", -1, -1, 0);
	X509_set_subject_name(x, n);
	X509_set_issuer_name(x, n);
	X509_gmtime_adj(X509_getm_notBefore(x), 0);
	X509_gmtime_adj(X509_getm_notAfter(x), 86400L * 365);
	X509_set_pubkey(x, key);
	X509V3_set_ctx(&v3, x, x, NULL, NULL, 0);
	e = X509V3_EXT_conf_nid(NULL, &v3, NID_basic_constraints, "critical,CA:TRUE");
	X509_add_ext(x, e, -1);
	X509_EXTENSION_free(e);
	e = X509V3_EXT_conf_nid(NULL, &v3, NID_subject_key_identifier, "hash");
	X509_add_ext(x, e, -1);
	X509_EXTENSION_free(e);
	X509_sign(x, key, EVP_sha256());
	X509_NAME_free(n);
	return x;
}

int
main(int argc, char **argv)
{
	char *dir = tu_tmpdir("hsm-bench");
	const char *script = getenv("MAKE_TEST_PKI");
	char *cmd = NULL, *conf = NULL, *path = NULL, *out = NULL;
	X509_REQ *csrs[NCSR];
	double hsm1[ROUNDS], hsm2[ROUNDS], mem1[ROUNDS], mem2[ROUNDS], hcpu[ROUNDS], mcpu[ROUNDS];
	struct signer token = { 0 }, memory = { 0 };
	hsm_ctx *ctx = NULL;
	EVP_PKEY *leafkeys[NCSR];
	double m_h1, m_h2, m_m1, m_m2, m_hc, m_mc;
	st_err err;
	int i;

	if (argc > 1)
		per_round = atoi(argv[1]);
	if (!dir || asprintf(&cmd, "'%s' '%s'", script ? script : "fixtures/make-test-pki", dir) < 0 ||
	    tu_sh(cmd, &out) != 0) {
		fprintf(stderr, "bench: make-test-pki failed: %s\n", out ? out : "");
		return 1;
	}
	if (asprintf(&conf, "%s/softhsm2.conf", dir) < 0 || asprintf(&path, "%s/intermediate.pem", dir) < 0)
		return 1;
	setenv("SOFTHSM2_CONF", conf, 1);
	setenv("STATION_HSM_PIN", "123456", 1); /* TEST PIN, see fixtures/make-test-pki */
	if (!(ctx = hsm_open(NULL, "station-test", NULL, &err)) || !(token.key = hsm_key_find(ctx, "intermediate", &err)) ||
	    !(token.ca = st_x509_load(path, &err))) {
		fprintf(stderr, "bench: %s\n", err.msg);
		return 1;
	}
	memory.pkey = EVP_EC_gen("P-256");
	memory.ca = memory_ca(memory.pkey);
	for (i = 0; i < NCSR; i++) {
		leafkeys[i] = EVP_EC_gen("P-256");
		csrs[i] = X509_REQ_new();
		X509_REQ_set_pubkey(csrs[i], leafkeys[i]);
		X509_REQ_sign(csrs[i], leafkeys[i], EVP_sha256());
	}
	/* Warm up both paths (and the key/certificate match check). */
	per_round /= 10;
	measure(&token, csrs, 1, NULL);
	measure(&memory, csrs, 1, NULL);
	per_round *= 10;
	for (i = 0; i < ROUNDS; i++) {
		hsm1[i] = measure(&token, csrs, 1, &hcpu[i]);
		mem1[i] = measure(&memory, csrs, 1, &mcpu[i]);
		hsm2[i] = measure(&token, csrs, 2, NULL);
		mem2[i] = measure(&memory, csrs, 2, NULL);
	}
	m_h1 = tu_median(hsm1, ROUNDS);
	m_h2 = tu_median(hsm2, ROUNDS);
	m_m1 = tu_median(mem1, ROUNDS);
	m_m2 = tu_median(mem2, ROUNDS);
	m_hc = tu_median(hcpu, ROUNDS);
	m_mc = tu_median(mcpu, ROUNDS);
	printf("leaf issuance (P-256 leaf, P-256 intermediate), %d leaves per round, median of %d rounds\n", per_round,
	    ROUNDS);
	printf("  %-34s %10s %10s\n", "", "1 thread", "2 threads");
	printf("  %-34s %10.0f %10.0f  leaves/s\n", "libhsm + SoftHSM (token key)", m_h1, m_h2);
	printf("  %-34s %10.0f %10.0f  leaves/s\n", "same code, in-memory OpenSSL key", m_m1, m_m2);
	printf("  %-34s %10.2f %10.2f\n", "ratio token / in-memory", m_h1 / m_m1, m_h2 / m_m2);
	printf("per second of CPU time, 1 thread: token %.0f, in-memory %.0f, ratio %.2f\n", m_hc, m_mc, m_hc / m_mc);
	printf("targets: >= 3000 leaves/s on one thread: %s; ratio >= 0.70 on one thread: wall clock %.2f %s, CPU time %.2f %s\n",
	    m_h1 >= 3000 ? "met" : "MISSED", m_h1 / m_m1, m_h1 / m_m1 >= 0.7 ? "met" : "MISSED", m_hc / m_mc,
	    m_hc / m_mc >= 0.7 ? "met" : "MISSED");

	for (i = 0; i < NCSR; i++) {
		X509_REQ_free(csrs[i]);
		EVP_PKEY_free(leafkeys[i]);
	}
	X509_free(memory.ca);
	EVP_PKEY_free(memory.pkey);
	X509_free(token.ca);
	hsm_key_free(token.key);
	hsm_close(ctx);
	tu_rmtree(dir);
	free(dir);
	free(cmd);
	free(conf);
	free(path);
	free(out);
	return 0;
}
