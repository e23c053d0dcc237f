/* The metrics of a `station run` for the line's dashboard (issue 19 item
 * 3): what the workers count after each device and around each HSM
 * signature, written as one file in the Prometheus text exposition format
 * 0.0.4, which node_exporter's textfile collector reads.  Every function
 * takes a NULL metrics (no metrics file) and then does nothing.
 * Thread-safe: the workers report concurrently. */
#ifndef STATION_METRICS_H
#define STATION_METRICS_H

#include <stddef.h>
#include <stdio.h>

#include "st.h"

struct station;

typedef struct metrics metrics;

/* The HSM keys whose signatures are timed. */
enum metrics_key {
	METRICS_KEY_TOOL,         /* the SE's authentication challenge */
	METRICS_KEY_INTERMEDIATE, /* a device certificate */
	METRICS_KEY_COUNT,
};

/* Metrics for a run on these jigs (their URIs, kept by pointer), written
 * to path: recipe_metrics_file_check() must accept it and its folder must
 * exist (ST_E_CONFIG saying which, NULL returned). */
metrics *metrics_new(const char *path, size_t njigs, const char *const *jigs, st_err *err);
void metrics_free(metrics *m);
const char *metrics_path(const metrics *m);

/* What jig's HELLO said (strings from the jig; escaped when written). */
void metrics_jig(metrics *m, size_t jig, const char *jig_id, const char *firmware, const char *protocol);
/* A device finished on jig after seconds: passed, or failed at step with
 * reason (a stable name: the --json "code"). */
void metrics_device(metrics *m, size_t jig, int passed, const char *step, const char *reason, double seconds);
/* One HSM signature with key took seconds. */
void metrics_hsm_sign(metrics *m, enum metrics_key key, double seconds);
/* A monotonic clock in seconds, for the durations above. */
double metrics_now(void);

/* Write the file now (temporary file beside it, fsync, rename): the counts,
 * the quotas left (st's, read under its quota lock) and whether the run is
 * still in progress.  Writers are serialised; -1 and err when the file
 * cannot be written, or path is no longer a regular file (then nothing is
 * written). */
int metrics_update(metrics *m, struct station *st, int in_progress, st_err *err);

/* s as a label value between the quotes: backslash, double quote and line
 * feed escaped as the format defines (\\, \", \n); any other byte that is
 * not printable ASCII as the four characters \xNN (written \\xNN), so no
 * raw byte from a jig reaches the file. */
void metrics_label(FILE *f, const char *s);

#endif
