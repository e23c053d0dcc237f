/* Benchmark: durable appends per second with 1 and 8 writer threads (group
 * commit), and verification speed in records per second.  Each figure is
 * measured REPEAT times; the median is printed beside its target.
 *
 *   meson test -C build --benchmark --suite audit   (or run the program)
 *   bench-audit [--records N] [--repeat N] [--dir TMPDIR] [--keep]
 *
 * Appends go to a fresh journal in TMPDIR (default $TMPDIR or /tmp: use a
 * real disk, fdatasync is the cost being measured), in batches of 100
 * devices (12 records each) sealed with a throw-away file key, as a line
 * would.  Verification reads a journal of REPEAT times as many records,
 * seals included. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "audit.h"
#include "cms.h"
#include "testutil.h"

#define MAX_REPEAT 15
#define TARGET_APPENDS_8 5000.0
#define TARGET_VERIFY 100000.0

static unsigned records = 4000;
static unsigned repeat = 5;
static int keep;

static double
clock_s(clockid_t id)
{
	struct timespec ts;

	clock_gettime(id, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static double
now_s(void)
{
	return clock_s(CLOCK_MONOTONIC);
}

static void
die(const char *what, const st_err *err)
{
	fprintf(stderr, "bench-audit: %s: %s\n", what, err ? err->msg : "failed");
	exit(1);
}

/* A throw-away self-signed P-256 key and certificate for sealing. */
static void
make_signer(audit_signer *s)
{
	EVP_PKEY *key = EVP_EC_gen("P-256");
	X509 *cert = X509_new();
	X509_NAME *name = X509_NAME_new();

	if (!key || !cert || !name)
		die("signer", NULL);
	X509_set_version(cert, 2);
	ASN1_INTEGER_set(X509_get_serialNumber(cert), 1);
	X509_gmtime_adj(X509_getm_notBefore(cert), -60);
	X509_gmtime_adj(X509_getm_notAfter(cert), 86400);
	X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)"bench audit seal", -1, -1, 0);
	X509_set_subject_name(cert, name);
	X509_set_issuer_name(cert, name);
	X509_set_pubkey(cert, key);
	{
		/* The audit seal role (docs/ARCHITECTURE.md): journals refuse a key without it. */
		X509V3_CTX ctx;
		X509_EXTENSION *ext;

		X509V3_set_ctx(&ctx, cert, cert, NULL, NULL, 0);
		if (!(ext = X509V3_EXT_conf_nid(NULL, &ctx, NID_ext_key_usage, "emailProtection," ST_OID_ARC ".1.1")) ||
		    !X509_add_ext(cert, ext, -1))
			die("signer: extendedKeyUsage", NULL);
		X509_EXTENSION_free(ext);
	}
	if (!X509_sign(cert, key, EVP_sha256()))
		die("signer: sign", NULL);
	X509_NAME_free(name);
	s->key = key;
	s->cert = cert;
	s->chain = NULL;
}

struct writer {
	audit_journal *j;
	unsigned n, t;
};

static void *
writer_main(void *arg)
{
	struct writer *w = arg;
	unsigned i;

	for (i = 0; i < w->n; i++) {
		char dev[32];
		json_t *d = json_pack("{s:s, s:s, s:i}", "cert_serial", "5f3a9c1e0b7d2468ace013579bdf2468",
		    "cert_sha256", "9c56cc51b374c3ba189210d5b6d4bf57790d351c96c47c02190ecf1e430635ab", "i", (int)i);
		/* A device every 12 records, as a provisioning run journals. */
		audit_event ev = { "tcp:127.0.0.1:7000", dev, i % 12 == 11 ? "done" : "issued", "ok", d, 0 };
		st_err err;

		snprintf(dev, sizeof(dev), "SE-%02u-%06u", w->t, i / 12);
		if (audit_append(w->j, &ev, NULL, &err) < 0)
			die("append", &err);
		json_decref(d);
	}
	return NULL;
}

/* One timed run: `threads` writers append `records` records in total. */
static double
append_run(const char *dir, unsigned threads, unsigned n, const audit_signer *signer, double *syncs_per_record)
{
	audit_config cfg = { "bench-station", "bench", "00", 100, 0, signer };
	pthread_t th[8];
	struct writer w[8];
	audit_status st;
	audit_journal *j;
	double t0, t1;
	unsigned t;
	st_err err;

	if (!(j = audit_open(dir, &cfg, &err)))
		die("open", &err);
	t0 = now_s();
	for (t = 0; t < threads; t++) {
		w[t] = (struct writer){ j, n / threads, t };
		pthread_create(&th[t], NULL, writer_main, &w[t]);
	}
	for (t = 0; t < threads; t++)
		pthread_join(th[t], NULL);
	t1 = now_s();
	audit_get_status(j, &st);
	audit_close(j);
	*syncs_per_record = (double)st.syncs / (double)st.appends;
	return (double)(n / threads * threads) / (t1 - t0);
}

int
main(int argc, char **argv)
{
	const char *base = getenv("TMPDIR");
	char root[4096], dir[4200], cmd[8500];
	double r1[MAX_REPEAT], r8[MAX_REPEAT], rv[MAX_REPEAT], rc[MAX_REPEAT], spr1 = 0, spr8 = 0, m1, m8, mv, mc;
	audit_signer signer;
	X509_STORE *trust;
	audit_report *rep = NULL;
	unsigned i;
	st_err err;

	for (i = 1; i < (unsigned)argc; i++) {
		if (strcmp(argv[i], "--records") == 0 && i + 1 < (unsigned)argc)
			records = (unsigned)strtoul(argv[++i], NULL, 10);
		else if (strcmp(argv[i], "--repeat") == 0 && i + 1 < (unsigned)argc)
			repeat = (unsigned)strtoul(argv[++i], NULL, 10);
		else if (strcmp(argv[i], "--dir") == 0 && i + 1 < (unsigned)argc)
			base = argv[++i];
		else if (strcmp(argv[i], "--keep") == 0)
			keep = 1;
		else {
			fprintf(stderr, "usage: bench-audit [--records N] [--repeat N] [--dir TMPDIR] [--keep]\n");
			return 2;
		}
	}
	if (repeat < 1 || repeat > MAX_REPEAT || records < 8) {
		fprintf(stderr, "bench-audit: --repeat 1..%d, --records >= 8\n", MAX_REPEAT);
		return 2;
	}
	snprintf(root, sizeof(root), "%s/station-bench-audit-XXXXXX", base && *base ? base : "/tmp");
	if (!mkdtemp(root))
		die("mkdtemp", NULL);
	make_signer(&signer);
	trust = X509_STORE_new();
	X509_STORE_add_cert(trust, signer.cert);

	printf("audit journal benchmark: %u records per run, %u runs, in %s\n", records, repeat, root);
	for (i = 0; i < repeat; i++) {
		snprintf(dir, sizeof(dir), "%s/one-%u", root, i);
		r1[i] = append_run(dir, 1, records, &signer, &spr1);
		snprintf(dir, sizeof(dir), "%s/eight-%u", root, i);
		r8[i] = append_run(dir, 8, records, &signer, &spr8);
		printf("  run %u: 1 writer %8.0f records/s (%.2f fdatasync/record), 8 writers %8.0f records/s "
		       "(%.2f fdatasync/record)\n",
		    i + 1, r1[i], spr1, r8[i], spr8);
	}
	/* Verification: a journal of `repeat` times as many records, sealed. */
	snprintf(dir, sizeof(dir), "%s/verify", root);
	{
		audit_config cfg = { "bench-station", "bench", "00", 100, 0, &signer };
		audit_journal *j;
		double spr;

		append_run(dir, 8, records * repeat, &signer, &spr);
		if (!(j = audit_open(dir, &cfg, &err)) || audit_seal_now(j, &err) < 0)
			die("seal", &err);
		audit_close(j);
	}
	for (i = 0; i < repeat; i++) {
		double t0 = now_s(), c0 = clock_s(CLOCK_PROCESS_CPUTIME_ID), t1, c1;

		if (audit_verify(dir, trust, &rep, &err) < 0)
			die("verify", &err);
		t1 = now_s();
		c1 = clock_s(CLOCK_PROCESS_CPUTIME_ID);
		rv[i] = (double)rep->records / (t1 - t0);
		rc[i] = (double)rep->records / (c1 - c0);
		printf("  verify run %u: %llu records, %u seals: %8.0f records/s, %8.0f records per CPU-second\n", i + 1,
		    (unsigned long long)rep->records, rep->sealed, rv[i], rc[i]);
		audit_report_free(rep);
		rep = NULL;
	}
	m1 = tu_median(r1, repeat);
	m8 = tu_median(r8, repeat);
	mv = tu_median(rv, repeat);
	mc = tu_median(rc, repeat);
	printf("\nmedian durable appends, 1 writer:  %8.0f records/s\n", m1);
	printf("median durable appends, 8 writers: %8.0f records/s (%.1fx one writer; target >= %.0f: %s, %.2fx)\n", m8,
	    m8 / m1, TARGET_APPENDS_8, m8 >= TARGET_APPENDS_8 ? "met" : "MISSED", m8 / TARGET_APPENDS_8);
	printf("median verification:               %8.0f records/s (target >= %.0f: %s, %.2fx), %.0f records per "
	       "CPU-second (one thread)\n",
	    mv, TARGET_VERIFY, mv >= TARGET_VERIFY ? "met" : "MISSED", mv / TARGET_VERIFY, mc);

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", root);
	if (keep)
		printf("kept %s\n", root);
	else if (system(cmd) != 0)
		fprintf(stderr, "bench-audit: could not remove %s\n", root);
	X509_STORE_free(trust);
	EVP_PKEY_free(signer.key);
	X509_free(signer.cert);
	return 0;
}
