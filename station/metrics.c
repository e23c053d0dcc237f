/* The run's metrics (metrics.h): counters and histograms in memory, the
 * whole file rendered and replaced after every device.  A few kilobytes
 * and one fsync per device: cheap next to a device's cycle.  Prometheus
 * text exposition format 0.0.4, not OpenMetrics (promtool check metrics
 * and node_exporter's textfile collector read 0.0.4): counters are named
 * with _total on their TYPE line too, no "# EOF", no timestamps (the
 * collector refuses them). */
#include <errno.h>
#include <inttypes.h>
#include <libgen.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "metrics.h"
#include "recipe.h"
#include "station.h"

#define MET_MAX_BUCKETS 16

/* Upper bounds of the buckets, in seconds.  A device takes seconds on real
 * parts (an SE keygen alone ~75-650 ms), a fraction of one on jigsim; an
 * HSM signature milliseconds on SoftHSM, tens to hundreds on a network HSM. */
static const double cycle_le[] = { 0.25, 0.5, 1, 2, 3, 5, 8, 13, 20, 30, 60, 120 };
static const double hsm_le[] = { 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5 };

static const char *const key_names[METRICS_KEY_COUNT] = {
	[METRICS_KEY_TOOL] = "tool",
	[METRICS_KEY_INTERMEDIATE] = "intermediate",
};

struct hist {
	const double *le;
	size_t n;
	uint64_t in[MET_MAX_BUCKETS + 1]; /* observations per bucket, not cumulative; [n] above the last bound */
	uint64_t count;
	double sum;
};

struct jig {
	const char *uri;
	int hello; /* the fields below are set */
	char id[256], firmware[256], protocol[16];
	uint64_t passed, failed;
	struct hist cycle;
};

struct failure {
	size_t jig;
	char step[32], reason[32];
	uint64_t n;
};

struct metrics {
	char *path;
	pthread_mutex_t lock;       /* the counts */
	pthread_mutex_t write_lock; /* one writer at a time, newest counts last */
	double start_time;          /* of the run, Unix time */
	struct jig *jigs;
	size_t njigs;
	struct failure *fails;
	size_t nfails, capfails;
	struct hist hsm[METRICS_KEY_COUNT];
};

static void
hist_init(struct hist *h, const double *le, size_t n)
{
	memset(h, 0, sizeof(*h));
	h->le = le;
	h->n = n;
}

static void
hist_observe(struct hist *h, double v)
{
	size_t i = 0;

	while (i < h->n && v > h->le[i])
		i++;
	h->in[i]++;
	h->count++;
	h->sum += v;
}

double
metrics_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

metrics *
metrics_new(const char *path, size_t njigs, const char *const *jigs, st_err *err)
{
	metrics *m = NULL;
	char *copy = NULL;
	struct stat sb;
	struct timespec now;
	size_t i, k;

	if (recipe_metrics_file_check(path, err) < 0)
		return NULL;
	if (!(copy = strdup(path))) {
		st_err_set(err, ST_E_NOMEM, "out of memory");
		return NULL;
	}
	if (stat(dirname(copy), &sb) < 0 || !S_ISDIR(sb.st_mode)) {
		st_err_set(err, ST_E_CONFIG, "%s: its folder %s does not exist (create it, or name a file in "
		    "node_exporter's textfile folder)", path, copy);
		free(copy);
		return NULL;
	}
	free(copy);
	if (!(m = calloc(1, sizeof(*m))) || !(m->path = strdup(path)) || !(m->jigs = calloc(njigs ? njigs : 1,
	    sizeof(*m->jigs)))) {
		metrics_free(m);
		st_err_set(err, ST_E_NOMEM, "out of memory");
		return NULL;
	}
	pthread_mutex_init(&m->lock, NULL);
	pthread_mutex_init(&m->write_lock, NULL);
	clock_gettime(CLOCK_REALTIME, &now);
	m->start_time = (double)now.tv_sec + (double)(now.tv_nsec / 1000000) / 1e3;
	m->njigs = njigs;
	for (i = 0; i < njigs; i++) {
		m->jigs[i].uri = jigs[i];
		hist_init(&m->jigs[i].cycle, cycle_le, sizeof(cycle_le) / sizeof(cycle_le[0]));
	}
	for (k = 0; k < METRICS_KEY_COUNT; k++)
		hist_init(&m->hsm[k], hsm_le, sizeof(hsm_le) / sizeof(hsm_le[0]));
	return m;
}

void
metrics_free(metrics *m)
{
	if (!m)
		return;
	if (m->jigs) { /* the mutexes were initialised */
		pthread_mutex_destroy(&m->lock);
		pthread_mutex_destroy(&m->write_lock);
	}
	free(m->jigs);
	free(m->fails);
	free(m->path);
	free(m);
}

const char *
metrics_path(const metrics *m)
{
	return m ? m->path : NULL;
}

void
metrics_jig(metrics *m, size_t jig, const char *jig_id, const char *firmware, const char *protocol)
{
	struct jig *j;

	if (!m || jig >= m->njigs)
		return;
	pthread_mutex_lock(&m->lock);
	j = &m->jigs[jig];
	snprintf(j->id, sizeof(j->id), "%s", jig_id ? jig_id : "");
	snprintf(j->firmware, sizeof(j->firmware), "%s", firmware ? firmware : "");
	snprintf(j->protocol, sizeof(j->protocol), "%s", protocol ? protocol : "");
	j->hello = 1;
	pthread_mutex_unlock(&m->lock);
}

/* The row of (jig, step, reason); NULL when out of memory. */
static struct failure *
failure_row(metrics *m, size_t jig, const char *step, const char *reason)
{
	struct failure *f;
	size_t i;

	for (i = 0; i < m->nfails; i++) {
		f = &m->fails[i];
		if (f->jig == jig && strcmp(f->step, step) == 0 && strcmp(f->reason, reason) == 0)
			return f;
	}
	if (m->nfails == m->capfails) {
		size_t cap = m->capfails ? 2 * m->capfails : 16;

		if (!(f = realloc(m->fails, cap * sizeof(*f))))
			return NULL;
		m->fails = f;
		m->capfails = cap;
	}
	f = &m->fails[m->nfails++];
	memset(f, 0, sizeof(*f));
	f->jig = jig;
	snprintf(f->step, sizeof(f->step), "%s", step);
	snprintf(f->reason, sizeof(f->reason), "%s", reason);
	return f;
}

void
metrics_device(metrics *m, size_t jig, int passed, const char *step, const char *reason, double seconds)
{
	struct jig *j;
	struct failure *f;

	if (!m || jig >= m->njigs)
		return;
	pthread_mutex_lock(&m->lock);
	j = &m->jigs[jig];
	hist_observe(&j->cycle, seconds);
	if (passed) {
		j->passed++;
	} else {
		j->failed++;
		if ((f = failure_row(m, jig, step ? step : "unknown", reason ? reason : "unknown")))
			f->n++;
	}
	pthread_mutex_unlock(&m->lock);
}

void
metrics_hsm_sign(metrics *m, enum metrics_key key, double seconds)
{
	if (!m || key >= METRICS_KEY_COUNT)
		return;
	pthread_mutex_lock(&m->lock);
	hist_observe(&m->hsm[key], seconds);
	pthread_mutex_unlock(&m->lock);
}

void
metrics_label(FILE *f, const char *s)
{
	static const char hex[] = "0123456789abcdef";
	const unsigned char *p;

	for (p = (const unsigned char *)s; *p; p++) {
		if (*p == '\\')
			fputs("\\\\", f);
		else if (*p == '"')
			fputs("\\\"", f);
		else if (*p == '\n')
			fputs("\\n", f);
		else if (*p >= 0x20 && *p <= 0x7e)
			fputc(*p, f);
		else
			fprintf(f, "\\\\x%c%c", hex[*p >> 4], hex[*p & 15]);
	}
}

static void
head(FILE *f, const char *name, const char *type, const char *help)
{
	fprintf(f, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* One label pair, ",name=\"value\"" (first: no comma). */
static void
label(FILE *f, int first, const char *name, const char *value)
{
	fprintf(f, "%s%s=\"", first ? "" : ",", name);
	metrics_label(f, value);
	fputc('"', f);
}

/* The histogram's series; lname/lvalue its one label. */
static void
hist_write(FILE *f, const char *name, const char *lname, const char *lvalue, const struct hist *h)
{
	uint64_t cum = 0;
	size_t i;

	for (i = 0; i <= h->n; i++) {
		char le[32];

		cum += h->in[i];
		if (i < h->n)
			snprintf(le, sizeof(le), "%g", h->le[i]);
		else
			snprintf(le, sizeof(le), "+Inf");
		fprintf(f, "%s_bucket{", name);
		label(f, 1, lname, lvalue);
		label(f, 0, "le", le);
		fprintf(f, "} %" PRIu64 "\n", cum);
	}
	fprintf(f, "%s_sum{", name);
	label(f, 1, lname, lvalue);
	fprintf(f, "} %.9g\n%s_count{", h->sum, name);
	label(f, 1, lname, lvalue);
	fprintf(f, "} %" PRIu64 "\n", h->count);
}

static void
gauge_u(FILE *f, const char *name, const char *help, unsigned long v)
{
	head(f, name, "gauge", help);
	fprintf(f, "%s %lu\n", name, v);
}

/* Everything but the quotas, under m->lock. */
static void
render_counts(FILE *f, const metrics *m, int in_progress)
{
	uint64_t passed = 0, failed = 0;
	size_t i, k;

	gauge_u(f, "station_run_in_progress", "1 while station run provisions devices, 0 once the run has ended.",
	    in_progress ? 1 : 0);
	head(f, "station_run_start_time_seconds", "gauge", "When this station run started, in seconds since the Unix epoch.");
	fprintf(f, "station_run_start_time_seconds %.3f\n", m->start_time);

	head(f, "station_jig_info", "gauge", "The jigs of this run: the URI it was opened with, the jig id and firmware its "
	     "HELLO reported and the protocol version spoken.");
	for (i = 0; i < m->njigs; i++) {
		const struct jig *j = &m->jigs[i];

		if (!j->hello)
			continue;
		fputs("station_jig_info{", f);
		label(f, 1, "jig", j->uri);
		label(f, 0, "jig_id", j->id);
		label(f, 0, "firmware", j->firmware);
		label(f, 0, "protocol", j->protocol);
		fputs("} 1\n", f);
	}

	head(f, "station_devices_total", "counter", "Devices this run finished, by jig and result (pass or fail).");
	for (i = 0; i < m->njigs; i++) {
		const struct jig *j = &m->jigs[i];

		fputs("station_devices_total{", f);
		label(f, 1, "jig", j->uri);
		fprintf(f, ",result=\"pass\"} %" PRIu64 "\nstation_devices_total{", j->passed);
		label(f, 1, "jig", j->uri);
		fprintf(f, ",result=\"fail\"} %" PRIu64 "\n", j->failed);
		passed += j->passed;
		failed += j->failed;
	}

	head(f, "station_device_failures_total", "counter", "Failed devices by jig, the step they failed at and the "
	     "kind of failure (the code of the --json failed event).");
	for (k = 0; k < m->nfails; k++) {
		const struct failure *x = &m->fails[k];

		fputs("station_device_failures_total{", f);
		label(f, 1, "jig", m->jigs[x->jig].uri);
		label(f, 0, "step", x->step);
		label(f, 0, "reason", x->reason);
		fprintf(f, "} %" PRIu64 "\n", x->n);
	}

	head(f, "station_yield_ratio", "gauge", "Devices passed over devices finished in this run (no sample before the "
	     "first device).");
	if (passed + failed)
		fprintf(f, "station_yield_ratio %.6g\n", (double)passed / (double)(passed + failed));

	head(f, "station_device_cycle_seconds", "histogram", "Time from a device found in the jig to its pass or fail, "
	     "by jig.");
	for (i = 0; i < m->njigs; i++)
		hist_write(f, "station_device_cycle_seconds", "jig", m->jigs[i].uri, &m->jigs[i].cycle);

	head(f, "station_hsm_sign_seconds", "histogram", "Time of one signature in the HSM, by key: tool (an SE's "
	     "authentication challenge) or intermediate (a device certificate).");
	for (k = 0; k < METRICS_KEY_COUNT; k++)
		hist_write(f, "station_hsm_sign_seconds", "key", key_names[k], &m->hsm[k]);
}

static void
render_quota(FILE *f, station *st)
{
	unsigned shift_max, shift_issued, run_max, run_issued;

	pthread_mutex_lock(&st->quota_lock);
	shift_max = st->quota_shift;
	shift_issued = st->shift_issued;
	run_max = st->quota_run;
	run_issued = st->issued_run;
	pthread_mutex_unlock(&st->quota_lock);
	/* 0 is no limit, which a recipe cannot say today: then no sample. */
	head(f, "station_quota_shift_remaining", "gauge", "Certificates the shift quota (quota.max_per_shift) still allows "
	     "before a signed release (station quota release).");
	if (shift_max)
		fprintf(f, "station_quota_shift_remaining %u\n", shift_issued < shift_max ? shift_max - shift_issued : 0);
	head(f, "station_quota_shift_max", "gauge", "The recipe's quota.max_per_shift.");
	if (shift_max)
		fprintf(f, "station_quota_shift_max %u\n", shift_max);
	head(f, "station_quota_run_remaining", "gauge", "Certificates this run may still sign (quota.max_per_run).");
	if (run_max)
		fprintf(f, "station_quota_run_remaining %u\n", run_issued < run_max ? run_max - run_issued : 0);
}

int
metrics_update(metrics *m, station *st, int in_progress, st_err *err)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *f;
	struct stat sb;
	int ret = -1;

	if (!m)
		return 0;
	pthread_mutex_lock(&m->write_lock);
	if (!(f = open_memstream(&buf, &len))) {
		st_err_errno(err, ST_E_NOMEM, errno, "metrics: out of memory");
		goto out;
	}
	pthread_mutex_lock(&m->lock);
	render_counts(f, m, in_progress);
	pthread_mutex_unlock(&m->lock);
	if (st)
		render_quota(f, st);
	if (fclose(f) != 0 || !buf) {
		st_err_errno(err, ST_E_NOMEM, errno, "metrics: out of memory");
		goto out;
	}
	/* Checked when the run started; a device put there since is not
	 * replaced by rename either. */
	if (stat(m->path, &sb) == 0 && !S_ISREG(sb.st_mode)) {
		st_err_set(err, ST_E_CONFIG, "metrics file %s is no longer a regular file: not written", m->path);
		goto out;
	}
	if (st_file_write_atomic(m->path, buf, len, 0644, err) < 0) {
		st_err_prefix(err, "metrics file");
		goto out;
	}
	ret = 0;
out:
	pthread_mutex_unlock(&m->write_lock);
	free(buf);
	return ret;
}
