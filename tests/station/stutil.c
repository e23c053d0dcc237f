#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <glob.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <openssl/bn.h>
#include <openssl/objects.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "audit.h"
#include "stutil.h"

extern char **environ;

double
stu_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

void
stu_sleep_ms(unsigned ms)
{
	struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };

	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

static void
write_file(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");

	ck_assert_msg(f != NULL, "cannot write %s: %s", path, strerror(errno));
	ck_assert_int_eq(fputs(text, f) >= 0, 1);
	ck_assert_int_eq(fclose(f), 0);
}

/* ---- workspace ----------------------------------------------------------- */

stu_ws *
stu_ws_new(const char *pki)
{
	stu_ws *w = calloc(1, sizeof(*w));
	char *src = tu_src("recipes/examples/demo.yaml"), *text = NULL, link[4200];

	ck_assert_ptr_nonnull(w);
	ck_assert_ptr_nonnull(w->dir = tu_tmpdir("station"));
	w->pki = pki;
	/* demo.yaml finds its files in "pki/" beside it. */
	snprintf(link, sizeof(link), "%s/pki", w->dir);
	ck_assert_msg(symlink(pki, link) == 0, "symlink %s: %s", link, strerror(errno));
	snprintf(w->recipe, sizeof(w->recipe), "%s/demo.yaml", w->dir);
	snprintf(w->audit, sizeof(w->audit), "%s/audit", w->dir);
	ck_assert_msg((text = tu_slurp(src, NULL)) != NULL, "cannot read %s", src);
	write_file(w->recipe, text);
	free(text);
	free(src);
	return w;
}

/* Every --json line the workspace's runs printed against the schema
 * (docs/events.schema.json, with python3-jsonschema); runs that were killed
 * need not end with a summary. */
static void
check_events(stu_ws *w)
{
	const char *src = getenv("STATION_SOURCE_ROOT");
	char *out = NULL, *argv[4 + 512];
	size_t n = 0, i;
	char *pat = NULL;
	glob_t g;
	int rc;

	ck_assert_int_ne(asprintf(&pat, "%s/*.jsonl", w->dir), -1);
	rc = glob(pat, 0, NULL, &g);
	free(pat);
	if (rc != 0)
		return; /* no --json run */
	ck_assert_msg(src != NULL, "STATION_SOURCE_ROOT is not set");
	ck_assert_int_ne(asprintf(&argv[n++], "%s/tests/lib/check-events.py", src), -1);
	ck_assert_int_ne(asprintf(&argv[n++], "%s/docs/events.schema.json", src), -1);
	for (i = 0; i < g.gl_pathc && n < sizeof(argv) / sizeof(argv[0]) - 1; i++)
		argv[n++] = strdup(g.gl_pathv[i]);
	argv[n] = NULL;
	rc = tu_run(argv, &out);
	ck_assert_msg(rc == 0, "--json events that do not match docs/events.schema.json:\n%s", stu_tail(out));
	free(out);
	for (i = 0; i < n; i++)
		free(argv[i]);
	globfree(&g);
}

void
stu_ws_free(stu_ws *w)
{
	if (!w)
		return;
	check_events(w);
	tu_rmtree(w->dir);
	free(w->dir);
	free(w);
}

void
stu_recipe_edit(stu_ws *w, const char *from, const char *to)
{
	char *text = tu_slurp(w->recipe, NULL), *at, *out = NULL;

	ck_assert_ptr_nonnull(text);
	at = strstr(text, from);
	ck_assert_msg(at && !strstr(at + 1, from), "recipe copy: \"%s\" is not there exactly once", from);
	ck_assert_int_ne(asprintf(&out, "%.*s%s%s", (int)(at - text), text, to, at + strlen(from)), -1);
	write_file(w->recipe, out);
	free(out);
	free(text);
}

/* ---- jigsim on a thread ---------------------------------------------------- */

static void *
sim_main(void *arg)
{
	stu_sim *sim = arg;
	st_err err;

	if (jigsim_run(sim->s, &err) < 0)
		fprintf(stderr, "jigsim: %s\n", err.msg);
	return NULL;
}

void
stu_config_line(jigsim_config *c, uint32_t fast, int baud_fail)
{
	c->baud = 115200;
	c->nrates = 2;
	c->rates[0] = 115200;
	c->rates[1] = fast;
	c->baud_fail = baud_fail;
}

stu_sim *
stu_sim_start(const char *pki, const jigsim_config *c)
{
	stu_sim *sim = calloc(1, sizeof(*sim));
	char ca[4200], key[4200], tool[4200];
	jigsim_config cc = *c;
	st_err err;

	ck_assert_ptr_nonnull(sim);
	snprintf(ca, sizeof(ca), "%s/se-vendor-ca.pem", pki);
	snprintf(key, sizeof(key), "%s/se-vendor-ca.key", pki);
	snprintf(tool, sizeof(tool), "%s/tool-pub.pem", pki);
	cc.vendor_ca_cert = ca;
	cc.vendor_ca_key = key;
	cc.tool_pub = tool;
	sim->s = jigsim_new(&cc, &err);
	ck_assert_msg(sim->s != NULL, "%s", err.msg);
	ck_assert_msg(jigsim_listen(sim->s, "tcp:127.0.0.1:0", sim->uri, sizeof(sim->uri), &err) == 0, "%s", err.msg);
	ck_assert_int_eq(pthread_create(&sim->thread, NULL, sim_main, sim), 0);
	return sim;
}

void
stu_sim_stop(stu_sim *sim)
{
	if (!sim)
		return;
	jigsim_stop(sim->s);
	pthread_join(sim->thread, NULL);
	jigsim_free(sim->s);
	free(sim);
}

/* ---- child processes --------------------------------------------------------- */

pid_t
stu_spawn(char *const argv[], const char *out_path, const char *err_path)
{
	posix_spawn_file_actions_t fa;
	pid_t pid = -1;
	int rc;

	/* posix_spawn: the test process has threads (jigsim), so nothing but
	 * exec may happen between fork and exec. */
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
	posix_spawn_file_actions_addopen(&fa, 1, out_path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	posix_spawn_file_actions_addopen(&fa, 2, err_path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	rc = posix_spawn(&pid, argv[0], &fa, NULL, argv, environ);
	posix_spawn_file_actions_destroy(&fa);
	ck_assert_msg(rc == 0, "cannot run %s: %s", argv[0], strerror(rc));
	return pid;
}

int
stu_wait(pid_t pid, int timeout_s, struct rusage *ru)
{
	double deadline = stu_now() + timeout_s;
	struct rusage dummy;
	int status = 0;
	pid_t r;

	if (!ru)
		ru = &dummy;
	for (;;) {
		r = wait4(pid, &status, timeout_s > 0 ? WNOHANG : 0, ru);
		if (r == pid)
			break;
		ck_assert_msg(r == 0 || errno == EINTR, "wait4: %s", strerror(errno));
		if (timeout_s > 0 && stu_now() > deadline) {
			kill(pid, SIGKILL);
			wait4(pid, &status, 0, ru);
			ck_abort_msg("process %d still running after %d s: killed", (int)pid, timeout_s);
		}
		if (r == 0)
			stu_sleep_ms(5);
	}
	return WIFSIGNALED(status) ? 128 + WTERMSIG(status) : WEXITSTATUS(status);
}

void
stu_station_start_jigs(stu_ws *w, const char *const *jigs, size_t njigs, unsigned count, int json, stu_run *r)
{
	char countbuf[32];
	size_t n = 0, i, nextra = 0;
	char **argv;

	while (w->extra && w->extra[nextra])
		nextra++;
	argv = calloc(2 * njigs + nextra + 16, sizeof(*argv));
	ck_assert_ptr_nonnull(argv);
	memset(r, 0, sizeof(*r));
	w->runs++;
	snprintf(r->out_path, sizeof(r->out_path), "%s/run-%u.out", w->dir, w->runs);
	snprintf(r->err_path, sizeof(r->err_path), "%s/run-%u.err", w->dir, w->runs);
	snprintf(countbuf, sizeof(countbuf), "%u", count);
	argv[n++] = (char *)tu_station_exe();
	argv[n++] = (char *)"run";
	argv[n++] = (char *)"--recipe";
	argv[n++] = w->recipe;
	for (i = 0; i < njigs; i++) {
		argv[n++] = (char *)"--jig";
		argv[n++] = (char *)jigs[i];
	}
	if (count) {
		argv[n++] = (char *)"--count";
		argv[n++] = countbuf;
	}
	argv[n++] = (char *)"--operator";
	argv[n++] = (char *)"stu";
	if (json)
		argv[n++] = (char *)"--json";
	for (i = 0; i < nextra; i++)
		argv[n++] = (char *)w->extra[i];
	argv[n] = NULL;
	r->json = json;
	r->start_s = stu_now();
	r->pid = stu_spawn(argv, r->out_path, r->err_path);
	free(argv);
}

void
stu_station_start(stu_ws *w, const char *jig, unsigned count, int json, stu_run *r)
{
	stu_station_start_jigs(w, &jig, 1, count, json, r);
}

void
stu_station_wait(stu_run *r, int timeout_s)
{
	char *line, *save = NULL, *copy;
	unsigned no = 0;

	r->status = stu_wait(r->pid, timeout_s, &r->ru);
	r->wall_s = stu_now() - r->start_s;
	r->out = tu_slurp(r->out_path, NULL);
	r->err = tu_slurp(r->err_path, NULL);
	if (!r->out)
		r->out = strdup("");
	if (!r->err)
		r->err = strdup("");
	if (!r->json)
		return;
	/* For check_events (when the workspace is freed). */
	{
		char path[4300];
		FILE *f;

		snprintf(path, sizeof(path), "%s.%s", r->out_path, r->status >= 128 ? "killed.jsonl" : "jsonl");
		ck_assert_ptr_nonnull(f = fopen(path, "w"));
		fputs(r->out, f);
		ck_assert_int_eq(fclose(f), 0);
	}
	r->events = json_array();
	copy = strdup(r->out);
	for (line = strtok_r(copy, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		json_error_t je;
		json_t *ev = json_loads(line, 0, &je);

		no++;
		ck_assert_msg(ev && json_is_object(ev), "station --json: line %u is not a JSON object (%s): %s", no,
		    je.text, line);
		ck_assert_msg(json_is_string(json_object_get(ev, "event")) && json_is_string(json_object_get(ev, "time")),
		    "station --json: line %u has no event or time: %s", no, line);
		json_array_append_new(r->events, ev);
	}
	free(copy);
}

void
stu_station_run(stu_ws *w, const char *jig, unsigned count, int json, stu_run *r)
{
	stu_station_start(w, jig, count, json, r);
	stu_station_wait(r, 60);
}

void
stu_run_clear(stu_run *r)
{
	free(r->out);
	free(r->err);
	json_decref(r->events);
	memset(r, 0, sizeof(*r));
}

const char *
stu_tail(const char *s)
{
	size_t n = s ? strlen(s) : 0;

	return !s ? "" : n > 1200 ? s + n - 1200 : s;
}

/* ---- --json events -------------------------------------------------------------- */

const char *
stu_str(json_t *obj, const char *key)
{
	json_t *v = json_object_get(obj, key);

	return json_is_string(v) ? json_string_value(v) : "";
}

json_t *
stu_event(const stu_run *r, const char *event, const char *device)
{
	size_t i;
	json_t *ev;

	json_array_foreach(r->events, i, ev)
		if (strcmp(stu_str(ev, "event"), event) == 0 && (!device || strcmp(stu_str(ev, "device"), device) == 0))
			return ev;
	return NULL;
}

unsigned
stu_event_count(const stu_run *r, const char *event)
{
	unsigned n = 0;
	size_t i;
	json_t *ev;

	json_array_foreach(r->events, i, ev)
		n += strcmp(stu_str(ev, "event"), event) == 0;
	return n;
}

/* ---- the journal ------------------------------------------------------------------- */

stu_ledger *
stu_journal_dev(stu_journal *j, const char *serial)
{
	size_t i;

	for (i = 0; i < j->n; i++)
		if (strcmp(j->dev[i].serial, serial) == 0)
			return &j->dev[i];
	return NULL;
}

static int
on_record(const audit_record *rec, void *ctx)
{
	stu_journal *j = ctx;
	stu_ledger *l;
	const char *cs = stu_str(rec->details, "cert_serial");

	j->records++;
	if (!rec->device)
		return 0;
	if (!(l = stu_journal_dev(j, rec->device))) {
		stu_ledger *n = realloc(j->dev, (j->n + 1) * sizeof(*n));

		ck_assert_ptr_nonnull(n);
		j->dev = n;
		l = &j->dev[j->n++];
		memset(l, 0, sizeof(*l));
		snprintf(l->serial, sizeof(l->serial), "%s", rec->device);
	}
	if (strcmp(rec->step, "issued") == 0) {
		ck_assert_msg(l->issued < STU_MAX_CERTS, "SE %s: more than %d certificates issued", l->serial, STU_MAX_CERTS);
		snprintf(l->issued_serial[l->issued++], 41, "%s", cs);
	} else if (strcmp(rec->step, "revoke") == 0) {
		ck_assert_msg(l->revoked < STU_MAX_CERTS, "SE %s: more than %d revocations", l->serial, STU_MAX_CERTS);
		snprintf(l->revoked_serial[l->revoked++], 41, "%s", cs);
	}
	/* Took up a certificate issued before: reinstalled it, or found the SE
	 * locked with it. */
	if (strcmp(rec->step, "resume") == 0 ||
	    (strcmp(rec->step, "lock") == 0 && json_is_true(json_object_get(rec->details, "resumed"))))
		l->resumes++;
	if (strcmp(rec->step, AUDIT_STEP_DONE) == 0 && strcmp(rec->result, "pass") == 0) {
		l->passes++;
		snprintf(l->done_serial, sizeof(l->done_serial), "%s", cs);
	}
	if (strcmp(rec->result, AUDIT_RESULT_FAIL) == 0) {
		l->fails++;
		snprintf(l->fail_step, sizeof(l->fail_step), "%s", rec->step);
	}
	if (strcmp(rec->result, AUDIT_RESULT_ABANDONED) == 0)
		l->abandons++;
	return 0;
}

void
stu_journal_load(const char *dir, stu_journal *j)
{
	st_err err;

	memset(j, 0, sizeof(*j));
	ck_assert_msg(audit_scan(dir, on_record, j, &err) == 0, "journal %s: %s", dir, err.msg);
}

void
stu_journal_clear(stu_journal *j)
{
	free(j->dev);
	memset(j, 0, sizeof(*j));
}

static int
revoked(const stu_ledger *l, const char *cert_serial)
{
	unsigned i;

	for (i = 0; i < l->revoked; i++)
		if (strcasecmp(l->revoked_serial[i], cert_serial) == 0)
			return 1;
	return 0;
}

unsigned
stu_live(const stu_ledger *l)
{
	unsigned i, n = 0;

	for (i = 0; i < l->issued; i++)
		n += !revoked(l, l->issued_serial[i]);
	return n;
}

void
stu_journal_check_live(stu_journal *j)
{
	size_t i;
	unsigned k;

	for (i = 0; i < j->n; i++) {
		const stu_ledger *l = &j->dev[i];
		int found = 0;

		ck_assert_msg(stu_live(l) <= 1, "SE %s has %u live certificates (%u issued, %u revoked)", l->serial,
		    stu_live(l), l->issued, l->revoked);
		if (!l->passes)
			continue;
		for (k = 0; k < l->issued; k++)
			found |= strcasecmp(l->issued_serial[k], l->done_serial) == 0;
		ck_assert_msg(found && !revoked(l, l->done_serial),
		    "SE %s passed with certificate %s, which is not its live certificate", l->serial, l->done_serial);
	}
}

/* ---- audit/FORMAT.md, read as the journals' contract ---------------------- */

/* The backticked words of a table cell into list (NUL-separated, "" ends). */
static void
cell_names(const char *cell, size_t len, char *list, size_t cap, size_t *used)
{
	const char *p = cell, *end = cell + len, *q;

	while (p < end && (p = memchr(p, '`', (size_t)(end - p))) && (q = memchr(p + 1, '`', (size_t)(end - p - 1)))) {
		size_t n = (size_t)(q - p - 1);

		ck_assert_msg(*used + n + 2 < cap, "audit/FORMAT.md: too many names");
		memcpy(list + *used, p + 1, n);
		*used += n;
		list[(*used)++] = '\0';
		list[*used] = '\0';
		p = q + 1;
	}
}

/* Cell col (0-based) of a table row "| a | b | c |": start and length. */
static int
row_cell(const char *line, size_t len, unsigned col, const char **cell, size_t *clen)
{
	const char *p = line, *end = line + len, *bar;
	unsigned c = 0;

	if (len < 2 || line[0] != '|')
		return -1;
	for (p = line + 1; p < end; p = bar + 1, c++) {
		if (!(bar = memchr(p, '|', (size_t)(end - p))))
			return -1;
		if (c == col) {
			while (p < bar && *p == ' ')
				p++;
			*cell = p;
			*clen = (size_t)(bar - p);
			while (*clen && p[*clen - 1] == ' ')
				(*clen)--;
			return 0;
		}
	}
	return -1;
}

int
stu_format_has(const char *list, const char *name)
{
	for (; *list; list += strlen(list) + 1)
		if (strcmp(list, name) == 0)
			return 1;
	return 0;
}

void
stu_format_load(stu_format *f)
{
	char *path = tu_src("audit/FORMAT.md"), *text = tu_slurp(path, NULL), *line, *nl;
	enum { NONE, STEPS, LIBSTEPS, RESULTS, DETAILS } table = NONE;
	size_t us = 0, ur = 0, ud = 0;

	free(path);
	ck_assert_msg(text != NULL, "cannot read audit/FORMAT.md");
	memset(f, 0, sizeof(*f));
	for (line = text; *line; line = nl + 1) {
		const char *cell;
		size_t len, clen;

		if (!(nl = strchr(line, '\n')))
			nl = line + strlen(line);
		len = (size_t)(nl - line);
		if (strncmp(line, "| step | operator sees |", 24) == 0)
			table = STEPS;
		else if (strncmp(line, "| step | result | details |", 27) == 0)
			table = LIBSTEPS;
		else if (strncmp(line, "| result |", 10) == 0)
			table = RESULTS;
		else if (strncmp(line, "| name | value |", 16) == 0)
			table = DETAILS;
		else if (line[0] != '|')
			table = NONE;
		else if (strncmp(line, "|--", 3) != 0 && table != NONE && row_cell(line, len, 0, &cell, &clen) == 0) {
			if (table == STEPS || table == LIBSTEPS) {
				size_t at = us;

				cell_names(cell, clen, f->steps, sizeof(f->steps), &us);
				if (table == STEPS && f->nsteps < STU_FORMAT_MAX && us > at) {
					const char *d, *l;
					size_t dl, ll;

					ck_assert_int_eq(row_cell(line, len, 1, &d, &dl), 0);
					ck_assert_int_eq(row_cell(line, len, 2, &l, &ll), 0);
					size_t name_len = strlen(f->steps + at);

					ck_assert_uint_lt(name_len, sizeof(f->step[0].name));
					memcpy(f->step[f->nsteps].name, f->steps + at, name_len + 1);
					snprintf(f->step[f->nsteps].display, sizeof(f->step[0].display), "%.*s", (int)dl, d);
					ck_assert_msg((ll == 4 && memcmp(l, "lazy", 4) == 0) || (ll == 7 && memcmp(l, "durable", 7) == 0),
					    "audit/FORMAT.md: step %s: record is \"%.*s\", expected lazy or durable", f->steps + at,
					    (int)ll, l);
					f->step[f->nsteps++].lazy = ll == 4;
				}
				if (table == LIBSTEPS && row_cell(line, len, 2, &cell, &clen) == 0)
					cell_names(cell, clen, f->details, sizeof(f->details), &ud);
				if (table == LIBSTEPS && row_cell(line, len, 1, &cell, &clen) == 0)
					cell_names(cell, clen, f->results, sizeof(f->results), &ur);
			} else if (table == RESULTS) {
				cell_names(cell, clen, f->results, sizeof(f->results), &ur);
			} else {
				cell_names(cell, clen, f->details, sizeof(f->details), &ud);
			}
		}
		if (!*nl)
			break;
	}
	free(text);
	ck_assert_msg(f->nsteps > 10 && *f->results && *f->details, "audit/FORMAT.md: the step, result or details table "
	    "is missing");
}

struct format_walk {
	const stu_format *f;
	const char *dir;
};

static int
on_format_record(const audit_record *rec, void *ctx)
{
	struct format_walk *fw = ctx;
	const char *key;
	json_t *v;

	ck_assert_msg(stu_format_has(fw->f->steps, rec->step), "%s/%s:%u: seq %llu: step \"%s\" is not in "
	    "audit/FORMAT.md section 3", fw->dir, rec->batch, rec->line, (unsigned long long)rec->seq, rec->step);
	ck_assert_msg(stu_format_has(fw->f->results, rec->result), "%s/%s:%u: seq %llu: result \"%s\" (step %s) is "
	    "not in audit/FORMAT.md section 3", fw->dir, rec->batch, rec->line, (unsigned long long)rec->seq, rec->result,
	    rec->step);
	ck_assert_msg(!rec->jig || (*rec->jig && strcmp(rec->jig, "-") != 0), "%s/%s:%u: seq %llu: jig \"%s\": a "
	    "station event has jig null", fw->dir, rec->batch, rec->line, (unsigned long long)rec->seq, rec->jig);
	json_object_foreach(rec->details, key, v)
		ck_assert_msg(stu_format_has(fw->f->details, key), "%s/%s:%u: seq %llu: details member \"%s\" (step %s) "
		    "is not in audit/FORMAT.md section 3", fw->dir, rec->batch, rec->line, (unsigned long long)rec->seq, key,
		    rec->step);
	return 0;
}

void
stu_format_check(const char *dir)
{
	static stu_format f;
	static int loaded;
	struct format_walk fw = { &f, dir };
	st_err err;

	if (!loaded) {
		stu_format_load(&f);
		loaded = 1;
	}
	ck_assert_msg(audit_scan(dir, on_format_record, &fw, &err) == 0, "journal %s: %s", dir, err.msg);
}

void
stu_expect(int rc, char *out, int want, const char *says, const char *what)
{
	ck_assert_msg(rc == want && strstr(out ? out : "", says), "%s: exit %d (expected %d), output does not say "
	    "\"%s\":\n%s", what, rc, want, says, stu_tail(out));
	free(out);
}

void
stu_audit_verify(stu_ws *w)
{
	char root[4200], *out = NULL;
	int rc;

	snprintf(root, sizeof(root), "%s/root-ca.pem", w->pki);
	rc = tu_station(&out, "audit", "verify", w->audit, "--ca", root, NULL);
	ck_assert_msg(rc == 0, "station audit verify %s: exit %d:\n%s", w->audit, rc, stu_tail(out));
	free(out);
	/* Every test journal holds to what FORMAT.md documents. */
	stu_format_check(w->audit);
}

/* ---- certificates ---------------------------------------------------------------------- */

char *
stu_cert_path(stu_ws *w, const char *se_serial)
{
	char *p = NULL, *pat = NULL;
	struct stat sb;
	time_t newest = 0;
	glob_t g;
	size_t i;

	ck_assert_int_ne(asprintf(&p, "%s/certs/%s.pem", w->audit, se_serial), -1);
	if (access(p, F_OK) == 0)
		return p;
	/* Revoked: moved aside as certs/revoked/SESERIAL-CERTSERIAL.pem. */
	ck_assert_int_ne(asprintf(&pat, "%s/certs/revoked/%s-*.pem", w->audit, se_serial), -1);
	if (glob(pat, 0, NULL, &g) == 0) {
		for (i = 0; i < g.gl_pathc; i++)
			if (stat(g.gl_pathv[i], &sb) == 0 && (newest == 0 || sb.st_mtime >= newest)) {
				newest = sb.st_mtime;
				free(p);
				p = strdup(g.gl_pathv[i]);
			}
		globfree(&g);
	}
	free(pat);
	return p;
}

uint8_t *
stu_cert_der(stu_ws *w, const char *se_serial, size_t *len)
{
	char *path = stu_cert_path(w, se_serial);
	FILE *f = path ? fopen(path, "r") : NULL;
	X509 *x = f ? PEM_read_X509(f, NULL, NULL, NULL) : NULL;
	uint8_t *der = NULL;
	int n;

	if (f)
		fclose(f);
	free(path);
	if (!x)
		return NULL;
	n = i2d_X509(x, &der);
	X509_free(x);
	*len = n > 0 ? (size_t)n : 0;
	return n > 0 ? der : NULL;
}

void
stu_check_device_cert(stu_ws *w, jigsim *s, unsigned index, char ***paths, size_t *npaths)
{
	jigsim_device_info info;
	uint8_t se_cert[JIG_BLOB_MAX], se_pub[JIG_BLOB_MAX], *der = NULL, *spki = NULL;
	size_t se_len = 0, pub_len = 0, len = 0;
	const unsigned char *p;
	X509 *x = NULL;
	X509_NAME *name;
	ASN1_STRING *v;
	int idx, spki_len;
	char **np;

	ck_assert_int_eq(jigsim_device_get(s, index, &info), 0);
	ck_assert_msg(info.lifecycle == JIG_LC_PROVISIONED, "SE %s (device %u) is %s, not locked", info.serial, index,
	    jig_lifecycle_name(info.lifecycle));
	ck_assert_int_eq(jigsim_device_cert(s, index, 0, se_cert, sizeof(se_cert), &se_len), 0);
	ck_assert_msg(se_len > 0, "SE %s holds no certificate", info.serial);
	ck_assert_msg((der = stu_cert_der(w, info.serial, &len)) != NULL, "no certificate for SE %s in %s/certs",
	    info.serial, w->audit);
	ck_assert_msg(len == se_len && memcmp(der, se_cert, len) == 0,
	    "SE %s holds another certificate (%zu bytes) than the station issued (%zu bytes)", info.serial, se_len, len);
	p = der;
	ck_assert_ptr_nonnull(x = d2i_X509(NULL, &p, (long)len));
	/* The subject names the SE serial in serialNumber, once. */
	name = X509_get_subject_name(x);
	idx = X509_NAME_get_index_by_NID(name, NID_serialNumber, -1);
	ck_assert_msg(idx >= 0, "certificate of SE %s has no subject serialNumber", info.serial);
	ck_assert_int_lt(X509_NAME_get_index_by_NID(name, NID_serialNumber, idx), 0);
	v = X509_NAME_ENTRY_get_data(X509_NAME_get_entry(name, idx));
	ck_assert_msg((size_t)ASN1_STRING_length(v) == strlen(info.serial) &&
	        memcmp(ASN1_STRING_get0_data(v), info.serial, strlen(info.serial)) == 0,
	    "certificate serialNumber is not the SE serial %s", info.serial);
	/* It certifies the key the SE generated in the slot. */
	ck_assert_int_eq(jigsim_device_pubkey(s, index, 0, se_pub, sizeof(se_pub), &pub_len), 0);
	spki_len = i2d_X509_PUBKEY(X509_get_X509_PUBKEY(x), &spki);
	ck_assert_msg(spki_len > 0 && (size_t)spki_len == pub_len && memcmp(spki, se_pub, pub_len) == 0,
	    "certificate of SE %s is not for the key in its slot", info.serial);
	OPENSSL_free(spki);
	OPENSSL_free(der);
	X509_free(x);
	ck_assert_ptr_nonnull(np = realloc(*paths, (*npaths + 1) * sizeof(*np)));
	*paths = np;
	(*paths)[(*npaths)++] = stu_cert_path(w, info.serial);
}

void
stu_openssl_verify(stu_ws *w, char **paths, size_t n)
{
	char root[4200], inter[4200], *out = NULL, *at;
	char **argv = calloc(n + 8, sizeof(*argv));
	size_t i, k = 0, oks = 0;
	int rc;

	ck_assert_ptr_nonnull(argv);
	snprintf(root, sizeof(root), "%s/root-ca.pem", w->pki);
	snprintf(inter, sizeof(inter), "%s/intermediate.pem", w->pki);
	argv[k++] = (char *)"openssl";
	argv[k++] = (char *)"verify";
	argv[k++] = (char *)"-x509_strict";
	argv[k++] = (char *)"-CAfile";
	argv[k++] = root;
	argv[k++] = (char *)"-untrusted";
	argv[k++] = inter;
	for (i = 0; i < n; i++)
		argv[k++] = paths[i];
	argv[k] = NULL;
	rc = tu_run(argv, &out);
	ck_assert_msg(rc == 0, "openssl verify: exit %d:\n%s", rc, stu_tail(out));
	for (at = out; (at = strstr(at, ": OK\n")); at++)
		oks++;
	ck_assert_msg(oks == n, "openssl verify said OK %zu times for %zu certificates:\n%s", oks, n, stu_tail(out));
	free(out);
	free(argv);
}


void
stu_sh_ok(const char *want, const char *fmt, ...)
{
	char *out = NULL;
	va_list ap;
	int rc;

	va_start(ap, fmt);
	rc = tu_vshf(&out, NULL, fmt, ap);
	va_end(ap);
	ck_assert_msg(rc == 0 && (!want || (out && strstr(out, want))), "%s (exit %d): %s", fmt, rc, stu_tail(out ? out : ""));
	free(out);
}

void
stu_cmd_ok(const char *what, const char *want, int rc, char *text)
{
	const char *t = text ? text : "";

	ck_assert_msg(rc == 0 && (!want || strstr(t, want)), "%s: exit %d:\n%s", what, rc, stu_tail(t));
	free(text);
}
