/* station-registry watch: ingest every bundle dropped in a spool folder.
 * Stations deliver by whatever file transfer the site uses; a bundle is a
 * folder, taken when its name does not start with '.' and does not end in
 * ".partial" (upload under such a name, then rename).  Each goes to done/
 * or, refused, to rejected/ with NAME.reason beside it.  A database error
 * leaves the bundle in place for the next round. */
#include <dirent.h>
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/x509.h>

#include "cms.h"
#include "registry.h"

static volatile sig_atomic_t stopping;

static void
on_signal(int sig)
{
	(void)sig;
	stopping = 1;
}

/* Move dir/name into dir/sub/, under name or name-2, name-3 ... when taken. */
static int
move_to(const char *dir, const char *sub, const char *name, char *dest, size_t cap, st_err *err)
{
	char from[4096];
	unsigned k;
	struct stat sb;

	snprintf(from, sizeof(from), "%s/%s", dir, name);
	for (k = 1; k < 1000; k++) {
		if (k == 1)
			snprintf(dest, cap, "%s/%s/%s", dir, sub, name);
		else
			snprintf(dest, cap, "%s/%s/%s-%u", dir, sub, name, k);
		if (lstat(dest, &sb) < 0 && errno == ENOENT)
			break;
	}
	if (rename(from, dest) < 0)
		return st_err_errno(err, ST_E_IO, errno, "rename %s to %s", from, dest);
	return 0;
}

static int
ready(const char *dir, const char *name)
{
	char path[4096];
	size_t n = strlen(name);
	struct stat sb;

	if (name[0] == '.' || strcmp(name, "done") == 0 || strcmp(name, "rejected") == 0 ||
	    (n >= 8 && strcmp(name + n - 8, ".partial") == 0))
		return 0;
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	return stat(path, &sb) == 0 && S_ISDIR(sb.st_mode);
}

static int
names_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* One pass over the spool: returns the number refused, -1 on a database error. */
static int
watch_round(struct reg *r, const char *dir, X509_STORE *trust, int *errors)
{
	char path[4096], dest[4200], rpath[4300], **names = NULL, **nn;
	size_t n = 0, cap = 0, i;
	struct dirent *de;
	int refused = 0;
	DIR *d;
	st_err err;

	if (!(d = opendir(dir))) {
		fprintf(stderr, "station-registry watch: %s: %s\n", dir, strerror(errno));
		(*errors)++;
		return -1;
	}
	while ((de = readdir(d))) {
		if (!ready(dir, de->d_name))
			continue;
		if (n == cap) {
			cap = cap ? cap * 2 : 16;
			if (!(nn = realloc(names, cap * sizeof(*names))))
				break;
			names = nn;
		}
		if (!(names[n] = strdup(de->d_name)))
			break;
		n++;
	}
	closedir(d);
	if (n)
		qsort(names, n, sizeof(*names), names_cmp); /* oldest export first when named by time */
	for (i = 0; i < n && !stopping; i++) {
		struct reg_outcome oc;

		memset(&oc, 0, sizeof(oc));
		oc.gaps = json_array();
		snprintf(path, sizeof(path), "%s/%s", dir, names[i]);
		if ((!r->conn || PQstatus(r->conn) != CONNECTION_OK) && (reg_disconnect(r), reg_connect(r, &err) < 0)) {
			fprintf(stderr, "station-registry watch: %s; %s stays in the spool\n", reg_safe(err.msg), reg_safe(names[i]));
			(*errors)++;
			json_decref(oc.gaps);
			break;
		}
		if (reg_ingest_bundle(r, path, trust, &oc, &err) < 0) {
			fprintf(stderr, "station-registry watch: %s: %s; it stays in the spool for the next round\n",
			    reg_safe(names[i]), reg_safe(err.msg));
			(*errors)++;
			json_decref(oc.gaps);
			break;
		}
		if (oc.refused) {
			FILE *f;

			refused++;
			if (move_to(dir, "rejected", names[i], dest, sizeof(dest), &err) < 0) {
				fprintf(stderr, "station-registry watch: %s\n", reg_safe(err.msg));
				(*errors)++;
			} else {
				snprintf(rpath, sizeof(rpath), "%s.reason", dest);
				if ((f = fopen(rpath, "w"))) {
					fprintf(f, "%s\n", reg_safe(oc.reason));
					fclose(f);
				}
				printf("%s: REFUSED, moved to %s: %s\n", reg_safe(names[i]), reg_safe(dest), reg_safe(oc.reason));
			}
		} else if (move_to(dir, "done", names[i], dest, sizeof(dest), &err) < 0) {
			fprintf(stderr, "station-registry watch: %s\n", reg_safe(err.msg));
			(*errors)++;
		} else {
			printf("%s: %s, %lld new records, %lld new alarms, %zu gaps; moved to %s\n", reg_safe(names[i]),
			    oc.new_records ? "loaded" : "already ingested", oc.new_records, oc.new_alarms, json_array_size(oc.gaps),
			    reg_safe(dest));
		}
		fflush(stdout);
		json_decref(oc.gaps);
	}
	for (i = 0; i < n; i++)
		free(names[i]);
	free(names);
	return refused;
}

#define WATCH_USAGE                                                                                  \
	"usage: station-registry [--db URI] watch --ca ROOT.pem [--interval S] [--once] [--enroll] DIR\n" \
	"\n"                                                                                             \
	"Ingest every bundle folder delivered to DIR (skipping names that start with '.' or end\n"      \
	"in '.partial': upload under such a name, then rename).  Each bundle moves to DIR/done/,\n"     \
	"or, refused, to DIR/rejected/ with NAME.reason.  After a database error the bundle stays\n"    \
	"and is retried.  Polls every --interval seconds (5) until SIGTERM; --once makes one pass.\n"   \
	"Exit: 0 (with --once: every bundle loaded), 1 a bundle was refused or the database\n"          \
	"failed (--once), 2 usage or configuration error.  --enroll: as ingest --enroll (an unknown\n"   \
	"station's bundle is refused without it).\n"

int
cmd_watch(struct reg *r, int argc, char **argv)
{
	enum { O_CA = 1, O_INTERVAL, O_ONCE, O_ENROLL, O_HELP };
	static const struct option opts[] = {
		{ "ca", required_argument, NULL, O_CA },
		{ "enroll", no_argument, NULL, O_ENROLL },
		{ "interval", required_argument, NULL, O_INTERVAL },
		{ "once", no_argument, NULL, O_ONCE },
		{ "help", no_argument, NULL, O_HELP },
		{ NULL, 0, NULL, 0 },
	};
	const char *ca = NULL, *dir;
	char sub[4200];
	X509_STORE *trust = NULL;
	long interval = 5;
	int c, once = 0, refused = 0, errors = 0, rc, ret = EXIT_USAGE;
	struct sigaction sa;
	char *end;
	st_err err;

	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case O_CA: ca = optarg; break;
		case O_INTERVAL:
			interval = strtol(optarg, &end, 10);
			if (*end || interval < 1 || interval > 3600) {
				fprintf(stderr, "station-registry watch: --interval: expected 1..3600 seconds, got \"%s\"\n", optarg);
				return EXIT_USAGE;
			}
			break;
		case O_ONCE: once = 1; break;
		case O_ENROLL: r->enroll = 1; break;
		case 'h':
		case O_HELP: printf("%s", WATCH_USAGE); return EXIT_OK;
		default: fprintf(stderr, "%s", WATCH_USAGE); return EXIT_USAGE;
		}
	}
	if (!ca || optind + 1 != argc) {
		fprintf(stderr, "%s", WATCH_USAGE);
		return EXIT_USAGE;
	}
	dir = argv[optind];
	if (!(trust = st_x509_store_load(ca, &err))) {
		fprintf(stderr, "station-registry watch: --ca: %s\n", err.msg);
		goto out;
	}
	snprintf(sub, sizeof(sub), "%s/done", dir);
	if (mkdir(sub, 0755) < 0 && errno != EEXIST) {
		fprintf(stderr, "station-registry watch: %s: %s\n", sub, strerror(errno));
		goto out;
	}
	snprintf(sub, sizeof(sub), "%s/rejected", dir);
	if (mkdir(sub, 0755) < 0 && errno != EEXIST) {
		fprintf(stderr, "station-registry watch: %s: %s\n", sub, strerror(errno));
		goto out;
	}
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	if (!once)
		printf("watching %s every %ld s\n", dir, interval);
	fflush(stdout);
	do {
		rc = watch_round(r, dir, trust, &errors);
		if (rc > 0)
			refused += rc;
		if (once || stopping)
			break;
		sleep((unsigned)interval);
	} while (!stopping);
	ret = once && (refused || errors) ? EXIT_FAIL : EXIT_OK;
out:
	X509_STORE_free(trust);
	return ret;
}
