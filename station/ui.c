#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "jig-codec.h"
#include "st.h"
#include "step.h"
#include "ui.h"

/* With many jigs a redraw on every step of every jig floods the terminal
 * (16 jigs: about 20 KB per device); the main thread's tick redraws the
 * block four times a second anyway. */
#define TTY_REDRAW_MS 100
/* Distinct failing steps counted per jig for the end summary. */
#define UI_MAX_FAIL_STEPS 16
/* A permanent line (revocation, the end summary), before it is cut to the terminal. */
#define UI_LINE_MAX 2048

struct jig_line {
	char name[128];
	char serial[JIG_STR_MAX + 1];
	char step[32];
	char last[96];
	char retry[160];   /* the last retry of the device in progress ("" = none) */
	unsigned retries;  /* of the device in progress */
	uint64_t started_ms;
	int busy;
	unsigned passed, failed;
	struct {
		char step[32];
		unsigned n;
	} fails[UI_MAX_FAIL_STEPS];
	size_t nfails;
};

struct ui {
	ui_mode mode;
	FILE *out;
	int color;         /* NO_COLOR unset or empty */
	int cols, rows;    /* the terminal's size (TTY) */
	char title[16];    /* the last line's first word: RUN, REWORK */
	char header[1400]; /* the block's first line ("" until ui_start) */
	char run_id[72];
	unsigned count;    /* --count (0 = none) */
	pthread_mutex_t lock;
	size_t njigs;
	struct jig_line *jigs;
	unsigned passed, failed, revoked;
	uint64_t start_ms;
	/* the status block on screen: how many lines, and each one's width
	 * (a narrower terminal may have rewrapped them) */
	int drawn;
	size_t *drawn_cols;
	uint64_t drawn_ms; /* when it was drawn: steps redraw at most every TTY_REDRAW_MS */
};

ui_mode
ui_mode_for(FILE *out, int json)
{
	const char *term = getenv("TERM");

	if (json)
		return UI_JSON;
	if (!isatty(fileno(out)) || (term && strcmp(term, "dumb") == 0))
		return UI_PLAIN;
	return UI_TTY;
}

static void
term_size(ui *u)
{
	struct winsize ws;
	const char *c = getenv("COLUMNS");

	u->cols = 80;
	u->rows = 24;
	if (ioctl(fileno(u->out), TIOCGWINSZ, &ws) == 0 && ws.ws_col > 0) {
		u->cols = ws.ws_col;
		u->rows = ws.ws_row > 0 ? ws.ws_row : 24;
	} else if (c && atoi(c) > 0) {
		u->cols = atoi(c);
	}
	if (u->cols < 20)
		u->cols = 20;
	if (u->rows < 4)
		u->rows = 4;
}

ui *
ui_new(ui_mode mode, FILE *out, size_t njigs, const char *const *jig_names)
{
	ui *u = calloc(1, sizeof(*u));
	const char *nc = getenv("NO_COLOR");
	size_t i;

	if (!u || !(u->jigs = calloc(njigs ? njigs : 1, sizeof(*u->jigs))) ||
	    !(u->drawn_cols = calloc(njigs + 4, sizeof(*u->drawn_cols)))) {
		if (u)
			free(u->jigs);
		free(u);
		return NULL;
	}
	u->mode = mode;
	u->out = out;
	u->color = mode == UI_TTY && !(nc && *nc); /* https://no-color.org */
	u->njigs = njigs;
	u->start_ms = st_now_ms();
	snprintf(u->title, sizeof(u->title), "RUN");
	if (mode == UI_TTY)
		term_size(u);
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
	free(u->drawn_cols);
	free(u->jigs);
	free(u);
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
	/* event, time, run and jig first: easy to read and to grep. */
	ev = json_pack("{s:s,s:s}", "event", event, "time", now);
	if (ev && u->run_id[0])
		json_object_set_new(ev, "run_id", json_string(u->run_id));
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

/* ---- widths ------------------------------------------------------------------
 * Text here is clean UTF-8 (see clean()).  Columns per code point: 0 for
 * combining marks, 2 for the East Asian wide and emoji blocks, else 1 — what
 * wcwidth() says for them, without depending on the locale. */

static unsigned
cp_cols(unsigned long cp)
{
	if ((cp >= 0x300 && cp <= 0x36f) || (cp >= 0x200b && cp <= 0x200f) || (cp >= 0xfe00 && cp <= 0xfe0f))
		return 0;
	if ((cp >= 0x1100 && cp <= 0x115f) || (cp >= 0x2e80 && cp <= 0xa4cf) || (cp >= 0xac00 && cp <= 0xd7a3) ||
	    (cp >= 0xf900 && cp <= 0xfaff) || (cp >= 0xfe30 && cp <= 0xfe4f) || (cp >= 0xff00 && cp <= 0xff60) ||
	    (cp >= 0xffe0 && cp <= 0xffe6) || (cp >= 0x1f300 && cp <= 0x1f64f) || (cp >= 0x1f900 && cp <= 0x1f9ff) ||
	    (cp >= 0x20000 && cp <= 0x3fffd))
		return 2;
	return 1;
}

/* The code point at s (its length in *n). */
static unsigned long
cp_at(const char *s, size_t *n)
{
	const unsigned char *p = (const unsigned char *)s;
	unsigned long cp;
	size_t k;

	if (p[0] < 0x80 || p[0] < 0xc0) {
		*n = 1;
		return p[0];
	}
	*n = p[0] < 0xe0 ? 2 : p[0] < 0xf0 ? 3 : 4;
	cp = p[0] & (0x3f >> (*n - 1));
	for (k = 1; k < *n; k++) {
		if ((p[k] & 0xc0) != 0x80) {
			*n = k;
			return 0xfffd;
		}
		cp = cp << 6 | (p[k] & 0x3f);
	}
	return cp;
}

static size_t
text_cols(const char *s)
{
	size_t cols = 0, n;

	while (*s) {
		cols += cp_cols(cp_at(s, &n));
		s += n;
	}
	return cols;
}

/* The bytes of the longest prefix of s that fits in cols columns. */
static size_t
fit_bytes(const char *s, size_t cols)
{
	size_t used = 0, off = 0, n;
	unsigned w;

	while (s[off]) {
		w = cp_cols(cp_at(s + off, &n));
		if (used + w > cols)
			break;
		used += w;
		off += n;
	}
	return off;
}

/* The widest a line may be: one column short of the terminal, so that no
 * terminal wraps it (some wrap a line that fills the last column). */
static size_t
line_cols(const ui *u)
{
	return (size_t)u->cols - 1;
}

/* ---- permanent lines ----------------------------------------------------------- */

/* Print text as one line (plain output: a log keeps whole lines) or, on a
 * terminal, wrapped at spaces to its width with the continuation lines
 * indented by indent columns.  The first occurrence of word, when given, is
 * shown in color (sgr: its SGR parameters). */
static void
put_line(ui *u, const char *text, size_t indent, const char *word, const char *sgr)
{
	const char *p = text, *hl = word ? strstr(text, word) : NULL;
	size_t width = u->mode == UI_TTY ? line_cols(u) : (size_t)-1, first = 1;

	if (indent > width / 2)
		indent = width / 2;
	for (;;) {
		size_t room = first ? width : width - indent, take, k;

		if (!first)
			fprintf(u->out, "%*s", (int)indent, "");
		take = text_cols(p) <= room ? strlen(p) : fit_bytes(p, room);
		if (p[take]) {
			/* break at the last space that fits, if there is one */
			for (k = take; k > 0 && p[k] != ' '; k--)
				;
			if (k > 0)
				take = k;
		}
		for (k = 0; k < take; k++) {
			if (u->color && hl && p + k == hl && k + strlen(word) <= take) {
				fprintf(u->out, "\033[%sm%s\033[0m", sgr, word);
				k += strlen(word) - 1;
				continue;
			}
			fputc(p[k], u->out);
		}
		fputc('\n', u->out);
		p += take;
		while (*p == ' ')
			p++;
		if (!*p)
			break;
		first = 0;
	}
}

/* ---- the status block (terminal) --------------------------------------------------- */

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

static void
elapsed_text(const ui *u, char *buf, size_t len)
{
	unsigned long s = (unsigned long)((st_now_ms() - u->start_ms) / 1000);

	if (s >= 3600)
		snprintf(buf, len, "%lu:%02lu:%02lu", s / 3600, s / 60 % 60, s % 60);
	else
		snprintf(buf, len, "%lu:%02lu", s / 60, s % 60);
}

/* A resize arrived (SIGWINCH, taken in ui_tick). */
static int
winch_pending(void)
{
	sigset_t set;
	struct timespec zero = { 0, 0 };
	int got = 0;

	sigemptyset(&set);
	sigaddset(&set, SIGWINCH);
	while (sigtimedwait(&set, NULL, &zero) == SIGWINCH)
		got = 1;
	return got;
}

void
ui_block_winch(void)
{
	sigset_t set;

	sigemptyset(&set);
	sigaddset(&set, SIGWINCH);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
}

/* Terminal: erase the status block, so a permanent line can be printed
 * above it.  After a resize a line of the block wider than the terminal
 * now takes several rows (terminals rewrap): go up by all of them. */
static void
tty_erase(ui *u)
{
	size_t rows = 0, w = (size_t)u->cols;
	int i;

	if (u->mode != UI_TTY || !u->drawn)
		return;
	/* The size now, not at the last SIGWINCH: a worker may print before
	 * the main thread's tick has seen the resize. */
	term_size(u);
	w = (size_t)u->cols;
	for (i = 0; i < u->drawn; i++)
		rows += u->drawn_cols[i] > w ? (u->drawn_cols[i] + w - 1) / w : 1;
	/* Row by row, not "erase below": tmux (scroll-on-clear) copies a
	 * whole screen erased at once into its history. */
	while (rows--)
		fputs("\033[1A\033[2K", u->out);
	u->drawn = 0;
}

/* One line of the block, cut to the terminal's width. */
static void
block_line(ui *u, const char *text)
{
	size_t take = fit_bytes(text, line_cols(u));

	fprintf(u->out, "\033[2K%.*s\n", (int)take, text);
	u->drawn_cols[u->drawn++] = text_cols(text) < line_cols(u) ? text_cols(text) : line_cols(u);
}

static size_t
name_cols(const ui *u)
{
	size_t i, w = 4;

	for (i = 0; i < u->njigs; i++)
		if (text_cols(u->jigs[i].name) > w)
			w = text_cols(u->jigs[i].name);
	return w > 28 ? 28 : w;
}

static void
tty_draw(ui *u)
{
	uint64_t now = st_now_ms();
	char line[1024], rates[96], el[32], prog[48];
	size_t i, shown = u->njigs, nw = name_cols(u);

	if (u->mode != UI_TTY)
		return;
	tty_erase(u);
	/* A block taller than the terminal cannot be redrawn in place: show
	 * the jigs that fit and say how many more there are. */
	if (u->njigs + 3 > (size_t)u->rows - 1)
		shown = (size_t)u->rows > 5 ? (size_t)u->rows - 5 : 1;
	if (u->header[0])
		block_line(u, u->header);
	for (i = 0; i < shown && i < u->njigs; i++) {
		struct jig_line *j = &u->jigs[i];
		char name[160], t[16] = "";
		size_t nb = fit_bytes(j->name, nw);

		size_t nc;

		snprintf(name, sizeof(name), "%.*s", (int)nb, j->name);
		nc = text_cols(name);
		snprintf(name + nb, sizeof(name) - nb, "%*s", (int)(nw > nc ? nw - nc : 0), "");
		if (j->busy)
			snprintf(t, sizeof(t), "%5.1fs", (double)(now - j->started_ms) / 1000.0);
		snprintf(line, sizeof(line), "  %s  %-18s  %-9s %6s%s%s  %s", name, j->busy ? j->serial : "-", j->step, t,
		    j->busy && j->retry[0] ? "  " : "", j->busy ? j->retry : "", j->last);
		block_line(u, line);
	}
	if (shown < u->njigs) {
		snprintf(line, sizeof(line), "  ... and %zu more jigs (a taller terminal shows them)", u->njigs - shown);
		block_line(u, line);
	}
	rates_text(u, "  ", rates, sizeof(rates));
	elapsed_text(u, el, sizeof(el));
	prog[0] = '\0';
	if (u->count)
		snprintf(prog, sizeof(prog), "  %u/%u", u->passed + u->failed, u->count);
	snprintf(line, sizeof(line), "%s  passed %u  failed %u%s  elapsed %s", prog, u->passed, u->failed, rates, el);
	block_line(u, line);
	u->drawn_ms = now;
	fflush(u->out);
}

/* ---- events ------------------------------------------------------------------------- */

void
ui_start(ui *u, const ui_run_info *in)
{
	char a[8][260];
	const char *cmd = in->command ? in->command : "run";
	size_t i;

	pthread_mutex_lock(&u->lock);
	for (i = 0; cmd[i] && i + 1 < sizeof(u->title); i++)
		u->title[i] = (char)(cmd[i] >= 'a' && cmd[i] <= 'z' ? cmd[i] - 'a' + 'A' : cmd[i]);
	u->title[i] = '\0';
	u->count = in->count;
	clean(in->run_id, u->run_id, sizeof(u->run_id));
	clean(in->recipe_name, a[0], sizeof(a[0]));
	clean(in->recipe_version, a[1], sizeof(a[1]));
	clean(in->recipe_digest, a[2], sizeof(a[2]));
	clean(in->product, a[3], sizeof(a[3]));
	clean(in->station_id, a[4], sizeof(a[4]));
	clean(in->operator_name, a[5], sizeof(a[5]));
	/* The recipe first (what runs), a short digest to tell two versions
	 * apart, then where and who. */
	snprintf(u->header, sizeof(u->header), "  %s %s [%.8s]  %s  station %s  operator %s", a[0], a[1], a[2], a[3],
	    a[4][0] ? a[4] : "-", a[5]);
	if (u->mode == UI_JSON) {
		json_t *jigs = json_array(), *o;

		for (i = 0; i < u->njigs; i++)
			json_array_append_new(jigs, json_string(u->jigs[i].name));
		o = json_pack("{s:i,s:s,s:s*,s:s*,s:{s:s*,s:s*,s:s*},s:s*,s:o}", "schema_version", UI_SCHEMA_VERSION,
		    "command", cmd, "station_id", in->station_id, "operator", in->operator_name, "recipe", "name",
		    in->recipe_name, "version", in->recipe_version, "digest", in->recipe_digest, "product", in->product,
		    "jigs", jigs);
		if (o && in->count)
			json_object_set_new(o, "count", json_integer(in->count));
		emit_json(u, "run_started", (size_t)-1, o);
	} else if (u->mode == UI_PLAIN) {
		fprintf(u->out, "station %s: recipe %s %s (sha256 %s), %s, station %s, operator %s, %zu jig%s", cmd, a[0],
		    a[1], a[2], a[3], a[4][0] ? a[4] : "-", a[5], u->njigs, u->njigs == 1 ? "" : "s");
		if (in->count)
			fprintf(u->out, ", --count %u", in->count);
		fputc('\n', u->out);
		fflush(u->out);
	} else {
		tty_draw(u);
	}
	pthread_mutex_unlock(&u->lock);
}

void
ui_device_start(ui *u, size_t jig, const char *serial)
{
	struct jig_line *j = &u->jigs[jig];
	char cs[4 * 64 + 1];

	pthread_mutex_lock(&u->lock);
	snprintf(j->serial, sizeof(j->serial), "%s", clean(serial, cs, sizeof(cs)));
	snprintf(j->step, sizeof(j->step), "%s", step_display(STEP_IDENTIFY));
	j->started_ms = st_now_ms();
	j->busy = 1;
	j->retries = 0;
	j->retry[0] = '\0';
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
	snprintf(j->step, sizeof(j->step), "%s", step_display(step)); /* --json: the journal's name */
	if (u->mode == UI_JSON)
		emit_json(u, "step", jig, json_pack("{s:s,s:s}", "device", j->serial, "step", step));
	else if (u->mode == UI_TTY && st_now_ms() - u->drawn_ms >= TTY_REDRAW_MS)
		tty_draw(u);
	pthread_mutex_unlock(&u->lock);
}

void
ui_retry(ui *u, size_t jig, const char *what, unsigned attempt, unsigned of, const char *why)
{
	struct jig_line *j = &u->jigs[jig];
	char cw[4 * 256 + 1], cy[4 * 512 + 1];

	what = clean(what, cw, sizeof(cw));
	why = clean(why, cy, sizeof(cy));
	pthread_mutex_lock(&u->lock);
	if (j->busy) {
		j->retries++;
		if (of)
			snprintf(j->retry, sizeof(j->retry), "try %u/%u %s: %s", attempt, of, what, why);
		else
			snprintf(j->retry, sizeof(j->retry), "try %u %s: %s", attempt, what, why);
	}
	if (u->mode == UI_JSON) {
		json_t *o = json_pack("{s:s,s:i,s:s}", "what", what, "attempt", attempt, "why", why);

		if (o && j->busy)
			json_object_set_new(o, "device", json_string(j->serial));
		if (o && of)
			json_object_set_new(o, "of", json_integer(of));
		emit_json(u, "retry", jig, o);
	} else if (u->mode == UI_PLAIN) {
		char of_text[24] = "";

		if (of)
			snprintf(of_text, sizeof(of_text), " of %u", of);
		fprintf(u->out, "%s: %s%s%s: try %u%s: %s\n", j->name, j->busy ? j->serial : "", j->busy ? ": " : "", what,
		    attempt, of_text, why);
		fflush(u->out);
	} else {
		tty_draw(u);
	}
	pthread_mutex_unlock(&u->lock);
}

void
ui_pass(ui *u, size_t jig, const char *serial, const char *cert_serial, int resumed)
{
	struct jig_line *j = &u->jigs[jig];
	double secs = (double)(st_now_ms() - j->started_ms) / 1000.0;
	char cs[4 * 64 + 1], line[1024], tries[32] = "";

	serial = clean(serial, cs, sizeof(cs));
	pthread_mutex_lock(&u->lock);
	u->passed++;
	j->passed++;
	j->busy = 0;
	snprintf(j->step, sizeof(j->step), "waiting");
	snprintf(j->last, sizeof(j->last), "last: PASS %s", serial);
	if (j->retries)
		snprintf(tries, sizeof(tries), " (%u retr%s)", j->retries, j->retries == 1 ? "y" : "ies");
	if (u->mode == UI_JSON) {
		emit_json(u, "passed", jig, json_pack("{s:s,s:s,s:b,s:f,s:i}", "device", serial, "certificate_serial",
		    cert_serial ? cert_serial : "", "resumed", resumed, "seconds", secs, "retries", j->retries));
	} else {
		tty_erase(u);
		const char *cert = cert_serial ? cert_serial : "-";
		size_t room, head;

		head = (size_t)snprintf(line, sizeof(line), "%s  PASS  %s  %.1fs%s%s  cert ", j->name, serial, secs,
		    resumed ? " (resumed)" : "", tries);
		/* One row per device on a narrow terminal: the certificate serial
		 * is cut (the plain output and --json have it whole). */
		room = u->mode == UI_TTY && text_cols(line) < line_cols(u) ? line_cols(u) - text_cols(line) : 0;
		if (u->mode == UI_TTY && strlen(cert) > room && room >= 10)
			snprintf(line + head, sizeof(line) - head, "%.*s..", (int)(room - 2), cert);
		else
			snprintf(line + head, sizeof(line) - head, "%s", cert);
		put_line(u, line, 4, "PASS", "1;32");
		tty_draw(u);
		fflush(u->out);
	}
	pthread_mutex_unlock(&u->lock);
}

static void
count_fail(struct jig_line *j, const char *step)
{
	size_t i;

	j->failed++;
	for (i = 0; i < j->nfails; i++)
		if (strcmp(j->fails[i].step, step) == 0)
			break;
	if (i == j->nfails) {
		if (j->nfails == UI_MAX_FAIL_STEPS)
			i = UI_MAX_FAIL_STEPS - 1; /* the rest counted with the last */
		else
			snprintf(j->fails[j->nfails++].step, sizeof(j->fails[0].step), "%s", step);
	}
	j->fails[i].n++;
}

void
ui_failed(ui *u, size_t jig, const ui_failure *f)
{
	struct jig_line *j = &u->jigs[jig];
	double secs = (double)(st_now_ms() - j->started_ms) / 1000.0;
	char cs[4 * 64 + 1], cr[4 * 1024 + 1], line[8192];
	const char *serial = f->serial ? clean(f->serial, cs, sizeof(cs)) : NULL;
	const char *reason = clean(f->reason, cr, sizeof(cr));

	pthread_mutex_lock(&u->lock);
	u->failed++;
	count_fail(j, f->step);
	j->busy = 0;
	snprintf(j->step, sizeof(j->step), "waiting");
	snprintf(j->last, sizeof(j->last), "last: FAIL %s at %s", serial && *serial ? serial : "?",
	    step_display(f->step));
	if (u->mode == UI_JSON) {
		json_t *o = json_pack("{s:s,s:s,s:s,s:s*,s:s,s:s,s:s,s:f,s:i}", "device", serial ? serial : "", "step", f->step,
		    "code", f->code ? f->code : "unknown", "jig_error", f->jig_error, "disposition",
		    f->disposition ? f->disposition : "engineering", "reason", reason, "advice", f->advice, "seconds", secs,
		    "retries", j->retries);

		if (o && f->cert_serial && *f->cert_serial)
			json_object_set_new(o, "certificate_serial", json_string(f->cert_serial));
		emit_json(u, "failed", jig, o);
	} else {
		tty_erase(u);
		snprintf(line, sizeof(line), "%s  FAIL  %s  at %s: %s", j->name, serial && *serial ? serial : "(unknown)",
		    step_display(f->step), reason);
		put_line(u, line, 4, "FAIL", "1;31");
		if (f->cert_serial && *f->cert_serial) {
			snprintf(line, sizeof(line), "%*s  certificate %s was issued to it", (int)strlen(j->name), "", f->cert_serial);
			put_line(u, line, 4, NULL, NULL);
		}
		snprintf(line, sizeof(line), "%*s  -> %s", (int)strlen(j->name), "", f->advice);
		put_line(u, line, strlen(j->name) + 5, NULL, NULL);
		tty_draw(u);
		fflush(u->out);
	}
	pthread_mutex_unlock(&u->lock);
}

void
ui_fail(ui *u, size_t jig, const char *serial, const char *step, const char *reason, const char *advice)
{
	ui_failure f = { .serial = serial, .step = step, .reason = reason, .advice = advice };

	ui_failed(u, jig, &f);
}

void
ui_revoked(ui *u, const char *device, const char *cert_serial, const char *reason, const char *why)
{
	char cd[4 * 64 + 1], line[UI_LINE_MAX];

	device = clean(device, cd, sizeof(cd));
	pthread_mutex_lock(&u->lock);
	u->revoked++;
	if (u->mode == UI_JSON) {
		emit_json(u, "revoked", (size_t)-1, json_pack("{s:s,s:s,s:s,s:s}", "device", device, "certificate_serial",
		    cert_serial, "reason", reason, "why", why));
	} else {
		tty_erase(u);
		snprintf(line, sizeof(line), "REVOKED  certificate %s of %s (%s): %s", cert_serial, device, reason, why);
		put_line(u, line, 4, "REVOKED", "1;33");
		tty_draw(u);
		fflush(u->out);
	}
	pthread_mutex_unlock(&u->lock);
}

void
ui_halt(ui *u, size_t jig, const char *reason, const char *message)
{
	char cm[4 * 1024 + 1], line[8192];

	message = clean(message, cm, sizeof(cm));
	pthread_mutex_lock(&u->lock);
	if (u->mode == UI_JSON) {
		emit_json(u, "halt", jig, json_pack("{s:s,s:s}", "reason", reason, "message", message));
	} else if (jig != (size_t)-1) {
		/* The run's own halt is the command's error message (stderr) and
		 * its last line: printed once.  A jig's is only here. */
		tty_erase(u);
		snprintf(line, sizeof(line), "%s  STOPPED  %s", u->jigs[jig].name, message);
		put_line(u, line, 4, "STOPPED", "1;31");
		tty_draw(u);
		fflush(u->out);
	}
	pthread_mutex_unlock(&u->lock);
}

void
ui_jig_note(ui *u, size_t jig, const char *what)
{
	char cw[4 * 1024 + 1], line[8192];

	what = clean(what, cw, sizeof(cw));
	pthread_mutex_lock(&u->lock);
	if (u->mode == UI_JSON) {
		emit_json(u, "jig", jig, json_pack("{s:s}", "message", what));
	} else {
		tty_erase(u);
		snprintf(line, sizeof(line), "%s: %s", u->jigs[jig].name, what);
		put_line(u, line, 4, NULL, NULL);
		tty_draw(u);
		fflush(u->out);
	}
	pthread_mutex_unlock(&u->lock);
}

void
ui_tick(ui *u)
{
	pthread_mutex_lock(&u->lock);
	if (u->mode == UI_TTY && winch_pending()) {
		/* Erase with the new width (the old lines may have rewrapped),
		 * then draw to it. */
		term_size(u);
		tty_erase(u);
	}
	tty_draw(u);
	pthread_mutex_unlock(&u->lock);
}

/* "VERIFY 3, LOCK 1" */
static void
fails_text(const struct jig_line *j, char *buf, size_t len)
{
	size_t i;
	int w = 0;

	buf[0] = '\0';
	for (i = 0; i < j->nfails && w >= 0 && (size_t)w < len; i++)
		w += snprintf(buf + w, len - (size_t)w, "%s%s %u", i ? ", " : "", step_display(j->fails[i].step),
		    j->fails[i].n);
}

void
ui_summary(ui *u, const char *end, const char *how, const char *stopped)
{
	int completed = strcmp(end, "completed") == 0, run = strcmp(u->title, "RUN") == 0;
	char rates[96], line[UI_LINE_MAX], fails[1024];
	size_t i;

	pthread_mutex_lock(&u->lock);
	if (u->mode == UI_JSON) {
		json_t *o = json_pack("{s:s,s:s,s:s,s:i,s:i,s:i,s:f}", "status", completed ? "completed" : "stopped", "reason",
		    end, "end", end, "passed", u->passed, "failed", u->failed, "revoked", u->revoked, "elapsed_seconds",
		    (double)(st_now_ms() - u->start_ms) / 1000.0);
		json_t *jigs = json_array();

		/* Only figures that mean something (see rates_text). */
		if (o && u->passed + u->failed && run)
			json_object_set_new(o, "yield_percent", json_real(yield_pct(u)));
		if (o && u->passed + u->failed >= 2)
			json_object_set_new(o, "devices_per_hour", json_real(per_hour(u)));
		if (o && stopped)
			json_object_set_new(o, "stopped", json_string(stopped));
		for (i = 0; jigs && i < u->njigs; i++) {
			const struct jig_line *j = &u->jigs[i];
			json_t *by = json_object();
			size_t k;

			for (k = 0; by && k < j->nfails; k++)
				json_object_set_new(by, j->fails[k].step, json_integer(j->fails[k].n));
			json_array_append_new(jigs, json_pack("{s:s,s:i,s:i,s:o}", "jig", j->name, "passed", j->passed, "failed",
			    j->failed, "failures_by_step", by ? by : json_object()));
		}
		if (o)
			json_object_set_new(o, "jigs", jigs ? jigs : json_array());
		emit_json(u, "summary", (size_t)-1, o);
	} else {
		/* The reason that stopped the run is the command's error message
		 * (stderr): on the screen once, not here as well. */
		tty_erase(u);
		fputc('\n', u->out);
		/* Per jig: five failures all from one jig show here. */
		for (i = 0; run && i < u->njigs; i++) {
			const struct jig_line *j = &u->jigs[i];

			fails_text(j, fails, sizeof(fails));
			snprintf(line, sizeof(line), "  %s  passed %u, failed %u%s%s", j->name, j->passed, j->failed,
			    j->nfails ? ": " : "", fails);
			put_line(u, line, 6, NULL, NULL);
		}
		if (u->revoked) {
			snprintf(line, sizeof(line), "  revoked %u certificate%s (see the REVOKED lines)", u->revoked,
			    u->revoked == 1 ? "" : "s");
			put_line(u, line, 6, NULL, NULL);
		}
		rates[0] = '\0';
		if (run) /* a rework is one device: no yield */
			rates_text(u, ", ", rates, sizeof(rates));
		if (!completed || u->passed + u->failed)
			snprintf(line, sizeof(line), "%s %s", u->title, !completed ? "STOPPED" : !u->failed ? "PASSED"
			    : run ? "FINISHED WITH FAILURES" : "FAILED");
		else
			snprintf(line, sizeof(line), "NO DEVICE PROVISIONED");
		snprintf(line + strlen(line), sizeof(line) - strlen(line), "  passed %u, failed %u%s; %s", u->passed,
		    u->failed, rates, how);
		put_line(u, line, 4, NULL, NULL);
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

const char *
ui_text_clean(const char *s, char *buf, size_t cap)
{
	return clean(s, buf, cap);
}
