/* One journal record: encoding (jansson, never hand-made JSON), parsing
 * with a strict schema, and walking the records of one batch file. */
#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/evp.h>

#include "audit-int.h"

static const char *const record_keys[] = {
	"v", "seq", "time", "station", "operator", "recipe", "jig", "device", "step", "result", "engineering",
	"details", "prev",
};

int
audit_is_terminal(const char *device, const char *step, const char *result)
{
	if (!device || !step || !result)
		return 0;
	return strcmp(step, AUDIT_STEP_DONE) == 0 || strcmp(result, AUDIT_RESULT_FAIL) == 0 ||
	    strcmp(result, AUDIT_RESULT_ABANDONED) == 0;
}

void
audit_chain_start(struct audit_chain *c)
{
	c->anchored = 1;
	c->next_seq = 1;
	memset(c->prev, 0, sizeof(c->prev));
}

void
audit_time_now(char out[32])
{
	struct timespec ts;
	struct tm tm;

	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	/* The modulos only bound the values for the compiler; gmtime_r gives
	 * them in range up to the year 9999. */
	snprintf(out, 32, "%04u-%02u-%02uT%02u:%02u:%02u.%03uZ", (unsigned)(tm.tm_year + 1900) % 10000u,
	    (unsigned)(tm.tm_mon + 1) % 100u, (unsigned)tm.tm_mday % 100u, (unsigned)tm.tm_hour % 100u,
	    (unsigned)tm.tm_min % 100u, (unsigned)tm.tm_sec % 100u, (unsigned)(ts.tv_nsec / 1000000L) % 1000u);
}

void
audit_batch_name(unsigned n, char out[AUDIT_NAME_MAX])
{
	snprintf(out, AUDIT_NAME_MAX, "batch-%06u.jsonl", n);
}

unsigned
audit_batch_number(const char *name)
{
	const char *p = name + 6;
	unsigned long v = 0;
	size_t digits = 0;

	if (strncmp(name, "batch-", 6) != 0)
		return 0;
	while (*p >= '0' && *p <= '9') {
		v = v * 10 + (unsigned long)(*p - '0');
		if (v > 99999999ul)
			return 0;
		p++;
		digits++;
	}
	if (digits < 6 || strcmp(p, ".jsonl") != 0 || v == 0)
		return 0;
	/* Only the canonical spelling: batch-000001.jsonl, not batch-0000001.jsonl. */
	if (digits > 6 && name[6] == '0')
		return 0;
	return (unsigned)v;
}

static int
cmp_unsigned(const void *a, const void *b)
{
	unsigned x = *(const unsigned *)a, y = *(const unsigned *)b;

	return x < y ? -1 : x > y;
}

int
audit_batch_list(const char *dir, unsigned **nums, size_t *n, st_err *err)
{
	DIR *d = NULL;
	struct dirent *de;
	unsigned *v = NULL;
	size_t len = 0, cap = 0;
	int ret = -1;

	*nums = NULL;
	*n = 0;
	if (!(d = opendir(dir))) {
		st_err_errno(err, errno == ENOENT ? ST_E_NOTFOUND : ST_E_IO, errno, "%s", dir);
		goto out;
	}
	while ((de = readdir(d))) {
		unsigned num = audit_batch_number(de->d_name);

		if (!num)
			continue;
		if (len == cap) {
			unsigned *nv = realloc(v, (cap ? cap * 2 : 16) * sizeof(*v));

			if (!nv) {
				st_err_set(err, ST_E_NOMEM, "%s: out of memory", dir);
				goto out;
			}
			v = nv;
			cap = cap ? cap * 2 : 16;
		}
		v[len++] = num;
	}
	if (len)
		qsort(v, len, sizeof(*v), cmp_unsigned);
	*nums = v;
	*n = len;
	v = NULL;
	ret = 0;
out:
	if (d)
		closedir(d);
	free(v);
	return ret;
}

char *
audit_path(const char *dir, const char *name)
{
	char *p = NULL;

	if (asprintf(&p, "%s/%s", dir, name) < 0)
		return NULL;
	return p;
}

int
audit_is_hex(const char *s, size_t len)
{
	size_t i;

	for (i = 0; i < len; i++)
		if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
			return 0;
	return 1;
}

/* ---- encoding ----------------------------------------------------------- */

static json_t *
str_or_null(const char *s)
{
	return s ? json_string(s) : json_null();
}

/* json_object_set_new that fails on a NULL value (jansson returns NULL for
 * a string that is not UTF-8). */
static int
put(json_t *o, const char *key, json_t *v, st_err *err)
{
	if (!v)
		return st_err_set(err, ST_E_INTERNAL, "audit record: field \"%s\" is not valid UTF-8", key);
	if (json_object_set_new(o, key, v) < 0)
		return st_err_set(err, ST_E_NOMEM, "audit record: out of memory");
	return 0;
}

int
audit_record_encode(const struct audit_head *h, uint64_t seq, const uint8_t prev[32], const audit_event *ev,
    char **line, size_t *len, st_err *err)
{
	json_t *o = NULL;
	char when[32], prev_hex[ST_SHA256_HEX_LEN + 1], *text = NULL;
	size_t n;
	int ret = -1;

	*line = NULL;
	*len = 0;
	if (!ev->step || !*ev->step || !ev->result || !*ev->result)
		return st_err_set(err, ST_E_INTERNAL, "audit record: step and result are required");
	if (ev->details && !json_is_object(ev->details))
		return st_err_set(err, ST_E_INTERNAL, "audit record: details must be a JSON object");
	if (seq > (uint64_t)INT64_MAX)
		return st_err_set(err, ST_E_INTERNAL, "audit record: sequence number overflow");
	audit_time_now(when);
	st_hex(prev, 32, prev_hex);
	if (!(o = json_object()))
		return st_err_set(err, ST_E_NOMEM, "audit record: out of memory");
	/* Keys in this order (jansson keeps insertion order), FORMAT.md's order. */
	if (put(o, "v", json_integer(AUDIT_FORMAT_VERSION), err) < 0 || put(o, "seq", json_integer((json_int_t)seq), err) < 0 ||
	    put(o, "time", json_string(when), err) < 0 || put(o, "station", json_string(h->station ? h->station : ""), err) < 0 ||
	    put(o, "operator", json_string(h->operator_name ? h->operator_name : ""), err) < 0 ||
	    put(o, "recipe", json_string(h->recipe ? h->recipe : ""), err) < 0 || put(o, "jig", str_or_null(ev->jig), err) < 0 ||
	    put(o, "device", str_or_null(ev->device), err) < 0 || put(o, "step", json_string(ev->step), err) < 0 ||
	    put(o, "result", json_string(ev->result), err) < 0)
		goto out;
	if (h->engineering && put(o, "engineering", json_true(), err) < 0)
		goto out;
	if (put(o, "details", ev->details ? json_incref(ev->details) : json_object(), err) < 0 ||
	    put(o, "prev", json_string(prev_hex), err) < 0)
		goto out;
	if (!(text = json_dumps(o, JSON_COMPACT))) {
		st_err_set(err, ST_E_INTERNAL, "audit record: cannot encode (a non-finite number in details?)");
		goto out;
	}
	n = strlen(text);
	if (n + 1 > AUDIT_RECORD_MAX) {
		st_err_set(err, ST_E_INTERNAL, "audit record: %zu bytes, more than the %d allowed", n + 1, AUDIT_RECORD_MAX);
		goto out;
	}
	text[n] = '\n'; /* json_dumps leaves room: replace the NUL, keep length n + 1 */
	*line = text;
	*len = n + 1;
	text = NULL;
	ret = 0;
out:
	free(text);
	json_decref(o);
	return ret;
}

/* ---- parsing ------------------------------------------------------------ */

static int
is_time(const char *s)
{
	/* YYYY-MM-DDTHH:MM:SS.mmmZ */
	static const char shape[] = "dddd-dd-ddTdd:dd:dd.dddZ";
	size_t i;

	if (strlen(s) != sizeof(shape) - 1)
		return 0;
	for (i = 0; i < sizeof(shape) - 1; i++) {
		if (shape[i] == 'd' ? !(s[i] >= '0' && s[i] <= '9') : s[i] != shape[i])
			return 0;
	}
	return 1;
}

/* The end of the JSON string that starts at s[i] (a quote): the index
 * after its closing quote, n + 1 when it is not closed.  Only finds the
 * end: the reader checks the string's contents (scan_string), jansson
 * those inside details. */
static size_t
skip_string(const char *s, size_t i, size_t n)
{
	const char *q, *open = s + i;
	size_t k;

	for (i++; i < n; i = (size_t)(q - s) + 1) {
		if (!(q = memchr(s + i, '"', n - i)))
			break;
		/* Closing, unless an odd run of backslashes escapes it. */
		for (k = 0; q - k - 1 > open && q[-(ptrdiff_t)k - 1] == '\\'; k++)
			;
		if (k % 2 == 0)
			return (size_t)(q - s) + 1;
	}
	return n + 1;
}

static size_t
skip_ws(const char *s, size_t i, size_t n)
{
	while (i < n && (s[i] == ' ' || s[i] == '\t' || s[i] == '\n' || s[i] == '\r'))
		i++;
	return i;
}

/* The end of the value that starts at s[i] (past n when it is not
 * closed); jansson checks what it spans. */
static size_t
skip_value(const char *s, size_t i, size_t n)
{
	unsigned depth = 0;

	do {
		if (s[i] == '"') {
			i = skip_string(s, i, n);
			continue;
		}
		if (s[i] == '{' || s[i] == '[') {
			depth++;
		} else if (s[i] == '}' || s[i] == ']') {
			if (!depth)
				break; /* the end of a scalar that closes its object */
			depth--;
		} else if (!depth && (s[i] == ',' || s[i] == ' ' || s[i] == '\t' || s[i] == '\n' || s[i] == '\r')) {
			break;
		}
		i++;
	} while (i < n && depth);
	/* A scalar runs to the next delimiter. */
	while (!depth && i < n && !strchr(",}] \t\n\r", s[i]))
		i++;
	return i;
}

/* The record's members are strings, integers, true and null, and details,
 * an object: the reader below takes them apart itself (jansson, which
 * builds a tree of the whole line, cost more than all else a reader of a
 * million records does) and hands details, only, to jansson.  It is as
 * strict as RFC 8259 and jansson's JSON_REJECT_DUPLICATES: UTF-8 checked,
 * escapes decoded, no control characters, no duplicated member, nothing
 * after the object but whitespace.  The test suite holds it to a jansson
 * reading of the same lines (tests/audit/record-ref.c). */
struct scan {
	const char *s;
	size_t n, i;
	char *why;
	size_t why_len;
};

static int ST_PRINTF(2, 3)
scan_fail(struct scan *sc, const char *fmt, ...)
{
	char what[256];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(what, sizeof(what), fmt, ap);
	va_end(ap);
	snprintf(sc->why, sc->why_len, "not JSON (%s at column %zu)", what, sc->i + 1);
	return -1;
}

static void
scan_ws(struct scan *sc)
{
	sc->i = skip_ws(sc->s, sc->i, sc->n);
}

static int
hex4(const char *s, unsigned *v)
{
	unsigned k, d;

	for (*v = 0, k = 0; k < 4; k++) {
		if (s[k] >= '0' && s[k] <= '9')
			d = (unsigned)(s[k] - '0');
		else if (s[k] >= 'a' && s[k] <= 'f')
			d = (unsigned)(s[k] - 'a' + 10);
		else if (s[k] >= 'A' && s[k] <= 'F')
			d = (unsigned)(s[k] - 'A' + 10);
		else
			return -1;
		*v = *v << 4 | d;
	}
	return 0;
}

/* The length of the UTF-8 sequence at p (at most n bytes), 0 if invalid
 * (overlong, a surrogate, past U+10FFFF, cut short). */
static size_t
utf8_len(const unsigned char *p, size_t n)
{
	unsigned char c = p[0], lo = 0x80, hi = 0xbf;
	size_t len, k;

	if (c >= 0xc2 && c <= 0xdf)
		len = 2;
	else if (c >= 0xe0 && c <= 0xef)
		len = 3;
	else if (c >= 0xf0 && c <= 0xf4)
		len = 4;
	else
		return 0;
	if (c == 0xe0)
		lo = 0xa0;
	else if (c == 0xed)
		hi = 0x9f;
	else if (c == 0xf0)
		lo = 0x90;
	else if (c == 0xf4)
		hi = 0x8f;
	if (n < len || p[1] < lo || p[1] > hi)
		return 0;
	for (k = 2; k < len; k++)
		if (p[k] < 0x80 || p[k] > 0xbf)
			return 0;
	return len;
}

static char *
put_utf8(char *o, unsigned cp)
{
	if (cp < 0x80) {
		*o++ = (char)cp;
	} else if (cp < 0x800) {
		*o++ = (char)(0xc0 | cp >> 6);
		*o++ = (char)(0x80 | (cp & 0x3f));
	} else if (cp < 0x10000) {
		*o++ = (char)(0xe0 | cp >> 12);
		*o++ = (char)(0x80 | (cp >> 6 & 0x3f));
		*o++ = (char)(0x80 | (cp & 0x3f));
	} else {
		*o++ = (char)(0xf0 | cp >> 18);
		*o++ = (char)(0x80 | (cp >> 12 & 0x3f));
		*o++ = (char)(0x80 | (cp >> 6 & 0x3f));
		*o++ = (char)(0x80 | (cp & 0x3f));
	}
	return o;
}

/* The string at sc->i, decoded into *out (which advances, NUL-terminated;
 * the decoded text is never longer than the quoted one). */
static int
scan_string(struct scan *sc, char **out)
{
	const unsigned char *s = (const unsigned char *)sc->s;
	char *o = *out;
	unsigned cp, lo;
	size_t u;

	if (sc->i >= sc->n || s[sc->i] != '"')
		return scan_fail(sc, "a string expected");
	for (sc->i++;; sc->i++) {
		if (sc->i >= sc->n)
			return scan_fail(sc, "unterminated string");
		if (s[sc->i] == '"')
			break;
		if (s[sc->i] < 0x20)
			return scan_fail(sc, "control character 0x%x in a string", s[sc->i]);
		if (s[sc->i] >= 0x80) {
			if (!(u = utf8_len(s + sc->i, sc->n - sc->i)))
				return scan_fail(sc, "invalid UTF-8");
			memcpy(o, s + sc->i, u);
			o += u;
			sc->i += u - 1;
			continue;
		}
		if (s[sc->i] != '\\') {
			*o++ = (char)s[sc->i];
			continue;
		}
		if (++sc->i >= sc->n)
			return scan_fail(sc, "unterminated string");
		switch (s[sc->i]) {
		case '"': *o++ = '"'; continue;
		case '\\': *o++ = '\\'; continue;
		case '/': *o++ = '/'; continue;
		case 'b': *o++ = '\b'; continue;
		case 'f': *o++ = '\f'; continue;
		case 'n': *o++ = '\n'; continue;
		case 'r': *o++ = '\r'; continue;
		case 't': *o++ = '\t'; continue;
		case 'u': break;
		default: return scan_fail(sc, "invalid escape");
		}
		if (sc->n - sc->i < 5 || hex4(sc->s + sc->i + 1, &cp) < 0)
			return scan_fail(sc, "invalid \\u escape");
		sc->i += 4;
		if (cp >= 0xdc00 && cp <= 0xdfff)
			return scan_fail(sc, "invalid Unicode escape (a lone low surrogate)");
		if (cp >= 0xd800 && cp <= 0xdbff) {
			if (sc->n - sc->i < 7 || s[sc->i + 1] != '\\' || s[sc->i + 2] != 'u' || hex4(sc->s + sc->i + 3, &lo) < 0 ||
			    lo < 0xdc00 || lo > 0xdfff)
				return scan_fail(sc, "invalid Unicode escape (a high surrogate without its low one)");
			sc->i += 6;
			cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
		}
		if (!cp)
			return scan_fail(sc, "\\u0000 in a string");
		o = put_utf8(o, cp);
	}
	sc->i++;
	*o++ = 0;
	*out = o;
	return 0;
}

/* A JSON number at sc->i: 1 and *v if it is an integer that fits, 0 if it
 * is a number that is not, -1 if it is not a number. */
static int
scan_number(struct scan *sc, json_int_t *v)
{
	const char *s = sc->s;
	size_t start = sc->i, i = sc->i;
	int neg = 0, integer = 1, big = 0;
	uint64_t acc = 0;

	if (i < sc->n && s[i] == '-') {
		neg = 1;
		i++;
	}
	if (i >= sc->n || s[i] < '0' || s[i] > '9')
		return scan_fail(sc, "invalid token");
	if (s[i] == '0') {
		i++;
	} else {
		for (; i < sc->n && s[i] >= '0' && s[i] <= '9'; i++) {
			if (acc > ((uint64_t)INT64_MAX + 1 - (uint64_t)(s[i] - '0')) / 10)
				big = 1;
			acc = acc * 10 + (uint64_t)(s[i] - '0');
		}
	}
	if (i < sc->n && s[i] == '.') {
		integer = 0;
		if (++i >= sc->n || s[i] < '0' || s[i] > '9')
			return scan_fail(sc, "invalid number");
		while (i < sc->n && s[i] >= '0' && s[i] <= '9')
			i++;
	}
	if (i < sc->n && (s[i] == 'e' || s[i] == 'E')) {
		integer = 0;
		if (++i < sc->n && (s[i] == '+' || s[i] == '-'))
			i++;
		if (i >= sc->n || s[i] < '0' || s[i] > '9')
			return scan_fail(sc, "invalid number");
		while (i < sc->n && s[i] >= '0' && s[i] <= '9')
			i++;
	}
	sc->i = i;
	if (integer && (big || acc > (uint64_t)INT64_MAX + (uint64_t)neg)) {
		sc->i = start;
		return scan_fail(sc, "too big integer");
	}
	if (!integer)
		return 0;
	*v = neg ? (json_int_t)(0 - acc) : (json_int_t)acc;
	return 1;
}

/* A literal (true, false, null) at sc->i: its first letter, or -1. */
static int
scan_literal(struct scan *sc)
{
	static const char *const words[] = { "true", "false", "null" };
	size_t k, len;

	for (k = 0; k < 3; k++) {
		len = strlen(words[k]);
		if (sc->n - sc->i >= len && memcmp(sc->s + sc->i, words[k], len) == 0) {
			sc->i += len;
			return words[k][0];
		}
	}
	return scan_fail(sc, "invalid token");
}

void
audit_parsed_clear(struct audit_parsed *ps)
{
	json_decref(ps->details);
	free(ps->buf);
	memset(ps, 0, sizeof(*ps));
}

int
audit_record_parse(const char *line, size_t len, struct audit_parsed *ps, audit_record *rec, char *why, size_t why_len)
{
	enum { N_KEYS = sizeof(record_keys) / sizeof(record_keys[0]) };
	struct scan sc = { line, len, 0, why, why_len };
	const char *str[N_KEYS], *nul;
	char *o, *key, *np;
	unsigned seen = 0, k;
	json_int_t iv = 0, ver = 0;
	json_error_t jerr;
	int null[N_KEYS], num;
	size_t dstart;

	memset(rec, 0, sizeof(*rec));
	memset(str, 0, sizeof(str));
	memset(null, 0, sizeof(null));
	json_decref(ps->details);
	ps->details = NULL;
	/* No NUL byte anywhere: JSON has none outside strings (and escapes
	 * them inside), and jansson 2.14, which reads details, skips one that
	 * follows a number or a literal. */
	if ((nul = memchr(line, '\0', len))) {
		snprintf(why, why_len, "not JSON (a NUL byte at column %zu)", (size_t)(nul - line) + 1);
		return -1;
	}
	if (ps->cap < len + 1) {
		if (!(np = realloc(ps->buf, len + 1))) {
			snprintf(why, why_len, "out of memory");
			return -1;
		}
		ps->buf = np;
		ps->cap = len + 1;
	}
	o = ps->buf;
	scan_ws(&sc);
	if (sc.i >= len || line[sc.i] != '{') {
		snprintf(why, why_len, "not a JSON object");
		return -1;
	}
	sc.i++;
	scan_ws(&sc);
	if (sc.i < len && line[sc.i] == '}')
		sc.i++; /* {}: every member is missing, said below */
	else
		for (;;) {
			key = o;
			if (scan_string(&sc, &o) < 0)
				return -1;
			for (k = 0; k < N_KEYS && strcmp(key, record_keys[k]) != 0; k++)
				;
			if (k == N_KEYS) {
				snprintf(why, why_len, "unknown field \"%.64s\"", key);
				return -1;
			}
			if (seen & 1u << k)
				return scan_fail(&sc, "duplicate object key \"%s\"", key);
			seen |= 1u << k;
			o = key; /* the key's bytes are not kept */
			scan_ws(&sc);
			if (sc.i >= len || line[sc.i] != ':')
				return scan_fail(&sc, "':' expected");
			sc.i++;
			scan_ws(&sc);
			if (sc.i >= len)
				return scan_fail(&sc, "unexpected end of input");
			if (line[sc.i] == '"') {
				str[k] = o;
				if (scan_string(&sc, &o) < 0)
					return -1;
			} else if (line[sc.i] == '{' && strcmp(record_keys[k], "details") == 0) {
				dstart = sc.i;
				sc.i = skip_value(line, sc.i, len);
				if (sc.i > len) {
					sc.i = dstart;
					return scan_fail(&sc, "details: unterminated");
				}
				if (!(ps->details = json_loadb(line + dstart, sc.i - dstart, JSON_REJECT_DUPLICATES, &jerr))) {
					sc.i = dstart;
					return scan_fail(&sc, "details: %s", jerr.text);
				}
				rec->details_text = line + dstart;
				rec->details_len = sc.i - dstart;
			} else if (line[sc.i] == '{' || line[sc.i] == '[') {
				snprintf(why, why_len, "\"%s\" is an %s, not what FORMAT.md has there", record_keys[k],
				    line[sc.i] == '{' ? "object" : "array");
				return -1;
			} else if (line[sc.i] == '-' || (line[sc.i] >= '0' && line[sc.i] <= '9')) {
				if ((num = scan_number(&sc, &iv)) < 0)
					return -1;
				if (strcmp(record_keys[k], "v") == 0)
					ver = num ? iv : -1;
				else if (strcmp(record_keys[k], "seq") == 0)
					rec->seq = num && iv >= 1 ? (uint64_t)iv : 0;
				else
					null[k] = -1; /* a number where something else belongs */
			} else if ((num = scan_literal(&sc)) < 0) {
				return -1;
			} else {
				null[k] = num == 'n' ? 1 : num == 't' ? 2 : -1;
			}
			scan_ws(&sc);
			if (sc.i < len && line[sc.i] == ',') {
				sc.i++;
				scan_ws(&sc);
				continue;
			}
			if (sc.i < len && line[sc.i] == '}') {
				sc.i++;
				break;
			}
			return scan_fail(&sc, "',' or '}' expected");
		}
	scan_ws(&sc);
	if (sc.i < len)
		return scan_fail(&sc, "end of file expected");
	/* The schema, in FORMAT.md's order of members. */
	for (k = 0; k < N_KEYS; k++)
		if (!(seen & 1u << k) && strcmp(record_keys[k], "engineering") != 0) {
			snprintf(why, why_len, "no \"%s\" field", record_keys[k]);
			return -1;
		}
	if (ver != AUDIT_FORMAT_VERSION) {
		snprintf(why, why_len, "\"v\" is not %d (format version)", AUDIT_FORMAT_VERSION);
		return -1;
	}
	if (!rec->seq) {
		snprintf(why, why_len, "\"seq\" is not a positive integer");
		return -1;
	}
	for (k = 0; k < N_KEYS; k++) {
		const char *name = record_keys[k];
		int nullable = strcmp(name, "jig") == 0 || strcmp(name, "device") == 0;
		int nonempty = strcmp(name, "time") == 0 || strcmp(name, "step") == 0 || strcmp(name, "result") == 0;

		if (strcmp(name, "v") == 0 || strcmp(name, "seq") == 0 || strcmp(name, "details") == 0 ||
		    strcmp(name, "engineering") == 0)
			continue;
		if (nullable && null[k] == 1)
			continue;
		if (!str[k] || (nonempty && !*str[k])) {
			snprintf(why, why_len, "\"%s\" is not a%s string", name, nonempty ? " non-empty" : "");
			return -1;
		}
	}
	rec->time = str[2];
	if (!is_time(rec->time)) {
		snprintf(why, why_len, "\"time\" is not UTC RFC 3339 with milliseconds");
		return -1;
	}
	rec->station = str[3];
	rec->operator_name = str[4];
	rec->recipe = str[5];
	rec->jig = str[6];
	rec->device = str[7];
	rec->step = str[8];
	rec->result = str[9];
	if (seen & 1u << 10) {
		if (null[10] != 2) {
			snprintf(why, why_len, "\"engineering\" is present but not true");
			return -1;
		}
		rec->engineering = 1;
	}
	if (!ps->details) {
		snprintf(why, why_len, "\"details\" is not a JSON object");
		return -1;
	}
	rec->details = ps->details;
	if (!str[12] || strlen(str[12]) != 64 || !audit_is_hex(str[12], 64)) {
		snprintf(why, why_len, "\"prev\" is not 64 lower-case hex digits");
		return -1;
	}
	ps->prev = str[12];
	return 0;
}

static int
unhex32(const char *s, uint8_t out[32])
{
	size_t i;

	for (i = 0; i < 32; i++) {
		int hi = s[2 * i] <= '9' ? s[2 * i] - '0' : s[2 * i] - 'a' + 10;
		int lo = s[2 * i + 1] <= '9' ? s[2 * i + 1] - '0' : s[2 * i + 1] - 'a' + 10;

		out[i] = (uint8_t)(hi << 4 | lo);
	}
	return 0;
}

int
audit_record_details_span(const audit_record *rec, const char **p, size_t *n)
{
	const char *s = rec->text;
	size_t len = rec->text_len, i, k, v;

	if (rec->details_text) { /* found as the record was parsed */
		*p = rec->details_text;
		*n = rec->details_len;
		return 0;
	}
	if (!s)
		return -1;
	i = skip_ws(s, 0, len);
	if (i >= len || s[i] != '{')
		return -1;
	for (i++;;) {
		i = skip_ws(s, i, len);
		if (i >= len || s[i] != '"')
			return -1;
		k = i;
		i = skip_ws(s, skip_string(s, i, len), len);
		if (i >= len || s[i] != ':')
			return -1;
		v = skip_ws(s, i + 1, len);
		if (v >= len)
			return -1;
		i = skip_value(s, v, len);
		if (i - v >= 2 && s[v] == '{' && len - k >= 9 && memcmp(s + k, "\"details\"", 9) == 0) {
			*p = s + v;
			*n = i - v;
			return 0;
		}
		i = skip_ws(s, i, len);
		if (i >= len || s[i] != ',')
			return -1;
		i++;
	}
}

/* ---- walking a batch ---------------------------------------------------- */

void
audit_walk_clear(struct audit_walk *w)
{
	json_decref(w->last);
	memset(w, 0, sizeof(*w));
}

/* The batch-close record must describe the batch it closes. */
static int
check_close(const char *name, const audit_record *rec, const struct audit_walk *w, char *why, size_t why_len)
{
	json_t *b = json_object_get(rec->details, "batch");
	json_t *r = json_object_get(rec->details, "records");
	json_t *d = json_object_get(rec->details, "devices");

	if (!json_is_string(b) || strcmp(json_string_value(b), name) != 0) {
		snprintf(why, why_len, "batch-close record names another batch (%.80s)",
		    json_is_string(b) ? json_string_value(b) : "none");
		return -1;
	}
	if (!json_is_integer(r) || json_integer_value(r) != (json_int_t)rec->line) {
		snprintf(why, why_len, "batch-close record counts %" JSON_INTEGER_FORMAT " records, the batch has %u",
		    json_is_integer(r) ? json_integer_value(r) : 0, rec->line);
		return -1;
	}
	if (!json_is_integer(d) || json_integer_value(d) != (json_int_t)w->devices) {
		snprintf(why, why_len, "batch-close record counts %" JSON_INTEGER_FORMAT " devices, the batch has %u",
		    json_is_integer(d) ? json_integer_value(d) : 0, w->devices);
		return -1;
	}
	return 0;
}

/* w->last: the last good record's line as a JSON object (the reader keeps
 * no tree of the others). */
static void
walk_keep_last(struct audit_walk *w, const uint8_t *buf, uint64_t off, size_t len)
{
	json_decref(w->last);
	w->last = len ? json_loadb((const char *)buf + off, len, 0, NULL) : NULL;
}

int
audit_walk_batch(const char *name, const uint8_t *buf, size_t len, struct audit_chain *c, struct audit_walk *w,
    audit_walk_cb cb, void *ctx)
{
	struct audit_parsed ps;
	uint64_t off = 0, last_off = 0;
	size_t last_len = 0;
	unsigned line = 0;
	int rc = 0;

	memset(w, 0, sizeof(*w));
	memset(&ps, 0, sizeof(ps));
	while (off < len) {
		const uint8_t *p = buf + off, *nl;
		size_t rest = len - off, l;
		audit_record rec;
		uint8_t hash[32], prev[32];
		char why[512], hash_hex[ST_SHA256_HEX_LEN + 1], where[96];

		line++;
		if (c->anchored)
			snprintf(where, sizeof(where), "%s:%u: expected seq %" PRIu64, name, line, c->next_seq);
		else
			snprintf(where, sizeof(where), "%s:%u", name, line);
		nl = memchr(p, '\n', rest < AUDIT_RECORD_MAX ? rest : AUDIT_RECORD_MAX);
		if (!nl) {
			if (rest >= AUDIT_RECORD_MAX)
				snprintf(w->msg, sizeof(w->msg), "%s: record longer than %d bytes at byte offset %" PRIu64, where,
				    AUDIT_RECORD_MAX, off);
			else
				snprintf(w->msg, sizeof(w->msg),
				    "%s: partial record at byte offset %" PRIu64 " (%zu bytes, no newline): torn or truncated",
				    where, off, rest);
			goto bad;
		}
		l = (size_t)(nl - p) + 1;
		if (audit_record_parse((const char *)p, l - 1, &ps, &rec, why, sizeof(why)) < 0) {
			snprintf(w->msg, sizeof(w->msg), "%s: not a valid record: %s", where, why);
			goto bad;
		}
		rec.batch = name;
		rec.line = line;
		rec.offset = off;
		rec.text = (const char *)p;
		rec.text_len = l - 1;
		unhex32(ps.prev, prev);
		if (c->anchored && rec.seq != c->next_seq) {
			snprintf(w->msg, sizeof(w->msg),
			    "%s:%u: seq %" PRIu64 ": expected seq %" PRIu64 ": a record is missing, duplicated or out of order",
			    name, line, rec.seq, c->next_seq);
			goto bad;
		}
		/* The record that no longer matches is the previous one (or this
		 * record's link was edited): name the previous one, where an edit
		 * is most likely, and both possibilities. */
		if (c->anchored && memcmp(prev, c->prev, 32) != 0) {
			if (line > 1)
				snprintf(w->msg, sizeof(w->msg),
				    "%s:%u: seq %" PRIu64 ": does not match the hash line %u chains to: line %u was changed, "
				    "or line %u's prev link is wrong", name, line - 1, rec.seq - 1, line, line - 1, line);
			else
				snprintf(w->msg, sizeof(w->msg),
				    "%s:1: seq %" PRIu64 ": prev hash does not match the previous batch's last record (seq %" PRIu64
				    "): that record was changed, or line 1's prev link is wrong", name, rec.seq, rec.seq - 1);
			goto bad;
		}
		if (w->closed) {
			snprintf(w->msg, sizeof(w->msg), "%s:%u: seq %" PRIu64 ": record after the batch-close record", name, line,
			    rec.seq);
			goto bad;
		}
		if (strcmp(rec.step, AUDIT_STEP_BATCH_CLOSE) == 0) {
			if (check_close(name, &rec, w, why, sizeof(why)) < 0) {
				snprintf(w->msg, sizeof(w->msg), "%s:%u: seq %" PRIu64 ": %s", name, line, rec.seq, why);
				goto bad;
			}
			w->closed = 1;
		}
		st_sha256(p, l, hash);
		st_hex(hash, 32, hash_hex);
		rec.hash = hash_hex;
		memcpy(c->prev, hash, 32);
		c->next_seq = rec.seq + 1;
		c->anchored = 1;
		if (!w->records)
			w->first_seq = rec.seq;
		w->last_seq = rec.seq;
		w->records++;
		if (audit_is_terminal(rec.device, rec.step, rec.result))
			w->devices++;
		last_off = off;
		last_len = l - 1;
		off += l;
		w->good_end = off;
		if (cb && (rc = cb(&rec, ctx)) != 0)
			goto out;
		continue;
	bad:
		w->bad = 1;
		w->bad_line = line;
		w->bad_offset = off;
		break;
	}
out:
	walk_keep_last(w, buf, last_off, last_len);
	audit_parsed_clear(&ps);
	return rc;
}

int
audit_good_record_after(const uint8_t *buf, size_t len, uint64_t off)
{
	const uint8_t *nl;
	int first = 1;

	while (off < len) {
		struct audit_parsed ps;
		audit_record rec;
		char why[256];
		size_t l;
		int ok;

		if (!(nl = memchr(buf + off, '\n', len - off)))
			return 0;
		l = (size_t)(nl - (buf + off));
		memset(&ps, 0, sizeof(ps));
		ok = !first && l < AUDIT_RECORD_MAX && audit_record_parse((const char *)buf + off, l, &ps, &rec, why, sizeof(why)) == 0;
		audit_parsed_clear(&ps);
		if (ok)
			return 1;
		first = 0;
		off += l + 1;
	}
	return 0;
}
