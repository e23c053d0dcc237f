#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "st.h"
#include "ui.h"

/* With many jigs a redraw on every step of every jig floods the terminal
 * (16 jigs: about 20 KB per device); the main thread's tick redraws the
 * block four times a second anyway. */
#define TTY_REDRAW_MS 100

struct jig_line {
	char name[128];
	char serial[65];
	char step[32];
	char last[96];
	uint64_t started_ms;
	int busy;
};

struct ui {
	ui_mode mode;
	FILE *out;
	char title[16]; /* the last line's first word: RUN, REWORK */
	pthread_mutex_t lock;
	size_t njigs;
	struct jig_line *jigs;
	unsigned passed, failed;
	uint64_t start_ms;
	int drawn; /* lines of the status block currently on screen */
	uint64_t drawn_ms; /* when it was drawn: steps redraw at most every TTY_REDRAW_MS */
};

ui *
ui_new(ui_mode mode, FILE *out, size_t njigs, const char *const *jig_names)
{
	ui *u = calloc(1, sizeof(*u));
	size_t i;

	if (!u || !(u->jigs = calloc(njigs ? njigs : 1, sizeof(*u->jigs)))) {
		free(u);
		return NULL;
	}
	u->mode = mode;
	u->out = out;
	u->njigs = njigs;
	u->start_ms = st_now_ms();
	snprintf(u->title, sizeof(u->title), "RUN");
	pthread_mutex_init(&u->lock, NULL);
	for (i = 0; i < njigs; i++) {
		snprintf(u->jigs[i].name, sizeof(u->jigs[i].name), "%s", jig_names[i]);
		snprintf(u->jigs[i].step, sizeof(u->jigs[i].step), "waiting");
	}
	return u;
}

void
ui_free(ui *u)
{
	if (!u)
		return;
	pthread_mutex_destroy(&u->lock);
	free(u->jigs);
	free(u);
}

void
ui_set_title(ui *u, const char *title)
{
	snprintf(u->title, sizeof(u->title), "%s", title);
}

static void
utc_now(char *buf, size_t len)
{
	struct timespec ts;
	struct tm tm;

	char day[24];

	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	strftime(day, sizeof(day), "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(buf, len, "%s.%03dZ", day, (int)(ts.tv_nsec / 1000000));
}

/* One JSON event per line; jansson does the escaping. */
static void
emit_json(ui *u, const char *event, size_t jig, json_t *fields)
{
	char now[32];
	char *line;

	json_t *ev;

	utc_now(now, sizeof(now));
	/* event, time and jig first: easy to read and to grep. */
	ev = json_pack("{s:s,s:s}", "event", event, "time", now);
	if (ev && jig != (size_t)-1)
		json_object_set_new(ev, "jig", json_string(u->jigs[jig].name));
	if (ev && fields)
		json_object_update(ev, fields);
	if (ev && (line = json_dumps(ev, JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(6)))) {
		fprintf(u->out, "%s\n", line);
		free(line);
	}
	json_decref(ev);
	json_decref(fields);
	fflush(u->out);
}

static double
yield_pct(const ui *u)
{
	unsigned n = u->passed + u->failed;

	return n ? 100.0 * u->passed / n : 0.0;
}

static double
per_hour(const ui *u)
{
	uint64_t ms = st_now_ms() - u->start_ms;

	return ms ? (u->passed + u->failed) * 3600000.0 / (double)ms : 0.0;
}

/* "<sep>yield 87.5%<sep>9486 devices/h", each part only when it means
 * something: no yield of zero devices, no rate from a single device. */
static void
rates_text(const ui *u, const char *sep, char *buf, size_t len)
{
	unsigned n = u->passed + u->failed;
	int w = 0;

	buf[0] = '\0';
	if (n)
		w = snprintf(buf, len, "%syield %.1f%%", sep, yield_pct(u));
	if (n >= 2 && w >= 0 && (size_t)w < len)
		snprintf(buf + w, len - (size_t)w, "%s%.0f devices/h", sep, per_hour(u));
}

/* Terminal: erase the status block, so a permanent line can be printed above it. */
static void
tty_erase(ui *u)
{
	if (u->mode != UI_TTY || !u->drawn)
		return;
	fprintf(u->out, "\033[%dA\033[J", u->drawn);
	u->drawn = 0;
}

static void
tty_draw(ui *u)
{
	uint64_t now = st_now_ms();
	char rates[96];
	size_t i;

	if (u->mode != UI_TTY)
		return;
	tty_erase(u);
	for (i = 0; i < u->njigs; i++) {
		struct jig_line *j = &u->jigs[i];

		if (j->busy)
			fprintf(u->out, "\033[2K  %-28.28s %-20.20s %-10s %5.1fs  %s\n", j->name, j->serial, j->step,
			    (double)(now - j->started_ms) / 1000.0, j->last);
		else
			fprintf(u->out, "\033[2K  %-28.28s %-20.20s %-10s %6s  %s\n", j->name, "-", j->step, "", j->last);
	}
	rates_text(u, "  ", rates, sizeof(rates));
	fprintf(u->out, "\033[2K  passed %u  failed %u%s\n", u->passed, u->failed, rates);
	u->drawn = (int)u->njigs + 1;
	u->drawn_ms = now;
	fflush(u->out);
}

/* Bytes that reach the operator's screen, the plain output or --json are
 * text: control bytes (C0, DEL, C1) and invalid UTF-8 become \xNN.  The
 * codec admits no such byte from a jig (PROTOCOL.md section 4, "Strings"); this is the
 * last line for anything else that carries jig bytes into a message. */
static const char *
clean(const char *s, char *buf, size_t cap)
{
	static const char hex[] = "0123456789abcdef";
	const unsigned char *p = (const unsigned char *)(s ? s : "");
	size_t o = 0, k, n;

	while (*p && o + 5 < cap) {
		n = *p < 0x80 ? 1 : *p >= 0xc2 && *p <= 0xdf ? 2 : *p >= 0xe0 && *p <= 0xef ? 3 : *p >= 0xf0 && *p <= 0xf4 ? 4 : 0;
		for (k = 1; k < n; k++)
			if ((p[k] & 0xc0) != 0x80)
				n = 0;
		if (n == 2 && p[0] == 0xc2 && p[1] < 0xa0)
			n = 0; /* C1 controls (CSI is U+009B) */
		if (n == 1 && (*p < 0x20 || *p == 0x7f))
			n = 0;
		if (!n) {
			buf[o++] = '\\';
			buf[o++] = 'x';
			buf[o++] = hex[*p >> 4];
			buf[o++] = hex[*p & 15];
			p++;
			continue;
		}
		if (o + n + 1 > cap)
			break;
		memcpy(buf + o, p, n);
		o += n;
		p += n;
	}
	buf[o] = '\0';
	return buf;
}

void
ui_device_start(ui *u, size_t jig, const char *serial)
{
	struct jig_line *j = &u->jigs[jig];
	char cs[4 * 64 + 1];

	pthread_mutex_lock(&u->lock);
	snprintf(j->serial, sizeof(j->serial), "%s", clean(serial, cs, sizeof(cs)));
	snprintf(j->step, sizeof(j->step), "IDENTIFY");
	j->started_ms = st_now_ms();
	j->busy = 1;
	if (u->mode == UI_JSON) {
		emit_json(u, "device_started", jig, json_pack("{s:s}", "device", j->serial));
	} else if (u->mode == UI_PLAIN) {
		fprintf(u->out, "%s: device %s: started\n", j->name, j->serial);
		fflush(u->out);
	} else if (st_now_ms() - u->drawn_ms >= TTY_REDRAW_MS) {
		tty_draw(u);
	}
	pthread_mutex_unlock(&u->lock);
}

void
ui_step(ui *u, size_t jig, const char *step)
{
	struct jig_line *j = &u->jigs[jig];

	pthread_mutex_lock(&u->lock);
	snprintf(j->step, sizeof(j->step), "%s", step);
	if (u->mode == UI_JSON)
		emit_json(u, "step", jig, json_pack("{s:s,s:s}", "device", j->serial, "step", step));
	else if (u->mode == UI_TTY && st_now_ms() - u->drawn_ms >= TTY_REDRAW_MS)
		tty_draw(u);
	pthread_mutex_unlock(&u->lock);
}

void
ui_pass(ui *u, size_t jig, const char *serial, const char *cert_serial, int resumed)
{
	struct jig_line *j = &u->jigs[jig];
	double secs = (double)(st_now_ms() - j->started_ms) / 1000.0;
	char cs[4 * 64 + 1];

	serial = clean(serial, cs, sizeof(cs));
	pthread_mutex_lock(&u->lock);
	u->passed++;
	j->busy = 0;
	snprintf(j->step, sizeof(j->step), "waiting");
	snprintf(j->last, sizeof(j->last), "last: PASS %s", serial);
	if (u->mode == UI_JSON) {
		emit_json(u, "passed", jig, json_pack("{s:s,s:s,s:b,s:f}", "device", serial, "certificate_serial",
		    cert_serial ? cert_serial : "", "resumed", resumed, "seconds", secs));
	} else {
		tty_erase(u);
		fprintf(u->out, "%s  %s  %s  %.1fs%s  cert %s\n", j->name, u->mode == UI_TTY ? "\033[1;32mPASS\033[0m" : "PASS",
		    serial, secs, resumed ? " (resumed)" : "", cert_serial ? cert_serial : "-");
		tty_draw(u);
		fflush(u->out);
	}
	pthread_mutex_unlock(&u->lock);
}

void
ui_fail(ui *u, size_t jig, const char *serial, const char *step, const char *reason, const char *advice)
{
	struct jig_line *j = &u->jigs[jig];
	char cs[4 * 64 + 1], cr[4 * 1024 + 1];

	serial = serial ? clean(serial, cs, sizeof(cs)) : NULL;
	reason = clean(reason, cr, sizeof(cr));
	pthread_mutex_lock(&u->lock);
	u->failed++;
	j->busy = 0;
	snprintf(j->step, sizeof(j->step), "waiting");
	snprintf(j->last, sizeof(j->last), "last: FAIL %s at %s", serial && *serial ? serial : "?", step);
	if (u->mode == UI_JSON) {
		emit_json(u, "failed", jig, json_pack("{s:s,s:s,s:s,s:s}", "device", serial ? serial : "", "step", step,
		    "reason", reason, "advice", advice));
	} else {
		tty_erase(u);
		fprintf(u->out, "%s  %s  %s  at %s: %s\n%*s  -> %s\n", j->name,
		    u->mode == UI_TTY ? "\033[1;31mFAIL\033[0m" : "FAIL", serial && *serial ? serial : "(unknown)", step,
		    reason, (int)strlen(j->name), "", advice);
		tty_draw(u);
		fflush(u->out);
	}
	pthread_mutex_unlock(&u->lock);
}

void
ui_jig_note(ui *u, size_t jig, const char *what)
{
	char cw[4 * 1024 + 1];

	what = clean(what, cw, sizeof(cw));
	pthread_mutex_lock(&u->lock);
	if (u->mode == UI_JSON) {
		emit_json(u, "jig", jig, json_pack("{s:s}", "message", what));
	} else {
		tty_erase(u);
		fprintf(u->out, "%s: %s\n", u->jigs[jig].name, what);
		tty_draw(u);
		fflush(u->out);
	}
	pthread_mutex_unlock(&u->lock);
}

void
ui_tick(ui *u)
{
	pthread_mutex_lock(&u->lock);
	tty_draw(u);
	pthread_mutex_unlock(&u->lock);
}

void
ui_summary(ui *u, const char *end, const char *how, const char *stopped)
{
	int completed = strcmp(end, "completed") == 0;
	char rates[96];

	pthread_mutex_lock(&u->lock);
	if (u->mode == UI_JSON) {
		json_t *o = json_pack("{s:i,s:i,s:s}", "passed", u->passed, "failed", u->failed, "end", end);

		/* Only figures that mean something (see rates_text). */
		if (o && u->passed + u->failed && strcmp(u->title, "RUN") == 0)
			json_object_set_new(o, "yield_percent", json_real(yield_pct(u)));
		if (o && u->passed + u->failed >= 2)
			json_object_set_new(o, "devices_per_hour", json_real(per_hour(u)));
		if (o && stopped)
			json_object_set_new(o, "stopped", json_string(stopped));
		emit_json(u, "summary", (size_t)-1, o);
	} else {
		/* The reason that stopped the run is the command's error message
		 * (stderr): on the screen once, not here as well. */
		tty_erase(u);
		rates[0] = '\0';
		if (strcmp(u->title, "RUN") == 0) /* a rework is one device: no yield */
			rates_text(u, ", ", rates, sizeof(rates));
		if (!completed || u->passed + u->failed)
			fprintf(u->out, "\n%s %s", u->title, !completed ? "STOPPED" : !u->failed ? "PASSED"
			    : strcmp(u->title, "RUN") == 0 ? "FINISHED WITH FAILURES" : "FAILED");
		else
			fprintf(u->out, "\nNO DEVICE PROVISIONED");
		fprintf(u->out, "  passed %u, failed %u%s; %s\n", u->passed, u->failed, rates, how);
		fflush(u->out);
	}
	pthread_mutex_unlock(&u->lock);
}

void
ui_counts(ui *u, unsigned *passed, unsigned *failed)
{
	pthread_mutex_lock(&u->lock);
	*passed = u->passed;
	*failed = u->failed;
	pthread_mutex_unlock(&u->lock);
}
