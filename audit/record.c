/* One journal record: encoding (jansson, never hand-made JSON), parsing
 * with a strict schema, and walking the records of one batch file. */
#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
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

static const char *
get_str(json_t *root, const char *key, int nullable, int nonempty, char *why, size_t why_len)
{
	json_t *v = json_object_get(root, key);

	if (!v) {
		snprintf(why, why_len, "no \"%s\" field", key);
		return NULL;
	}
	if (nullable && json_is_null(v))
		return "";
	if (!json_is_string(v) || (nonempty && json_string_length(v) == 0) || strlen(json_string_value(v)) != json_string_length(v)) {
		snprintf(why, why_len, "\"%s\" is not a%s string", key, nonempty ? " non-empty" : "");
		return NULL;
	}
	return json_string_value(v);
}

int
audit_record_parse(const char *line, size_t len, json_t **rootp, audit_record *rec, char *why, size_t why_len)
{
	json_error_t jerr;
	json_t *root = NULL, *v;
	const char *key = NULL;
	json_int_t iv;
	size_t i, known;
	int ret = -1;

	*rootp = NULL;
	memset(rec, 0, sizeof(*rec));
	if (!(root = json_loadb(line, len, JSON_REJECT_DUPLICATES, &jerr))) {
		snprintf(why, why_len, "not JSON (%s at column %d)", jerr.text, jerr.column);
		goto out;
	}
	if (!json_is_object(root)) {
		snprintf(why, why_len, "not a JSON object");
		goto out;
	}
	/* Unknown fields: more members than the known ones present. */
	for (i = 0, known = 0; i < sizeof(record_keys) / sizeof(record_keys[0]); i++)
		known += json_object_get(root, record_keys[i]) != NULL;
	if (json_object_size(root) != known) {
		json_object_foreach(root, key, v) {
			for (i = 0; i < sizeof(record_keys) / sizeof(record_keys[0]); i++)
				if (strcmp(key, record_keys[i]) == 0)
					break;
			if (i == sizeof(record_keys) / sizeof(record_keys[0]))
				break;
		}
		snprintf(why, why_len, "unknown field \"%.64s\"", key ? key : "?");
		goto out;
	}
	v = json_object_get(root, "v");
	if (!json_is_integer(v) || json_integer_value(v) != AUDIT_FORMAT_VERSION) {
		snprintf(why, why_len, "\"v\" is not %d (format version)", AUDIT_FORMAT_VERSION);
		goto out;
	}
	v = json_object_get(root, "seq");
	if (!json_is_integer(v) || (iv = json_integer_value(v)) < 1) {
		snprintf(why, why_len, "\"seq\" is not a positive integer");
		goto out;
	}
	rec->seq = (uint64_t)iv;
	if (!(rec->time = get_str(root, "time", 0, 1, why, why_len)))
		goto out;
	if (!is_time(rec->time)) {
		snprintf(why, why_len, "\"time\" is not UTC RFC 3339 with milliseconds");
		goto out;
	}
	if (!(rec->station = get_str(root, "station", 0, 0, why, why_len)) ||
	    !(rec->operator_name = get_str(root, "operator", 0, 0, why, why_len)) ||
	    !(rec->recipe = get_str(root, "recipe", 0, 0, why, why_len)) ||
	    !(rec->jig = get_str(root, "jig", 1, 0, why, why_len)) ||
	    !(rec->device = get_str(root, "device", 1, 0, why, why_len)) ||
	    !(rec->step = get_str(root, "step", 0, 1, why, why_len)) ||
	    !(rec->result = get_str(root, "result", 0, 1, why, why_len)))
		goto out;
	if (json_is_null(json_object_get(root, "jig")))
		rec->jig = NULL;
	if (json_is_null(json_object_get(root, "device")))
		rec->device = NULL;
	if ((v = json_object_get(root, "engineering"))) {
		if (!json_is_true(v)) {
			snprintf(why, why_len, "\"engineering\" is present but not true");
			goto out;
		}
		rec->engineering = 1;
	}
	rec->details = json_object_get(root, "details");
	if (!json_is_object(rec->details)) {
		snprintf(why, why_len, "\"details\" is not a JSON object");
		goto out;
	}
	v = json_object_get(root, "prev");
	if (!json_is_string(v) || json_string_length(v) != 64 || !audit_is_hex(json_string_value(v), 64)) {
		snprintf(why, why_len, "\"prev\" is not 64 lower-case hex digits");
		goto out;
	}
	*rootp = root;
	root = NULL;
	ret = 0;
out:
	json_decref(root);
	return ret;
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

int
audit_walk_batch(const char *name, const uint8_t *buf, size_t len, struct audit_chain *c, struct audit_walk *w,
    audit_walk_cb cb, void *ctx)
{
	uint64_t off = 0;
	unsigned line = 0;
	int rc = 0;

	memset(w, 0, sizeof(*w));
	while (off < len) {
		const uint8_t *p = buf + off, *nl;
		size_t rest = len - off, l;
		json_t *root = NULL;
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
		if (audit_record_parse((const char *)p, l - 1, &root, &rec, why, sizeof(why)) < 0) {
			snprintf(w->msg, sizeof(w->msg), "%s: not a valid record: %s", where, why);
			goto bad;
		}
		rec.batch = name;
		rec.line = line;
		rec.offset = off;
		unhex32(json_string_value(json_object_get(root, "prev")), prev);
		if (c->anchored && rec.seq != c->next_seq) {
			snprintf(w->msg, sizeof(w->msg),
			    "%s:%u: seq %" PRIu64 ": expected seq %" PRIu64 ": a record is missing, duplicated or out of order",
			    name, line, rec.seq, c->next_seq);
			json_decref(root);
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
			json_decref(root);
			goto bad;
		}
		if (w->closed) {
			snprintf(w->msg, sizeof(w->msg), "%s:%u: seq %" PRIu64 ": record after the batch-close record", name, line,
			    rec.seq);
			json_decref(root);
			goto bad;
		}
		if (strcmp(rec.step, AUDIT_STEP_BATCH_CLOSE) == 0) {
			if (check_close(name, &rec, w, why, sizeof(why)) < 0) {
				snprintf(w->msg, sizeof(w->msg), "%s:%u: seq %" PRIu64 ": %s", name, line, rec.seq, why);
				json_decref(root);
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
		off += l;
		w->good_end = off;
		json_decref(w->last);
		w->last = root;
		if (cb && (rc = cb(&rec, ctx)) != 0)
			return rc;
		continue;
	bad:
		w->bad = 1;
		w->bad_line = line;
		w->bad_offset = off;
		return 0;
	}
	return 0;
}

int
audit_good_record_after(const uint8_t *buf, size_t len, uint64_t off)
{
	const uint8_t *nl;
	int first = 1;

	while (off < len) {
		json_t *root = NULL;
		audit_record rec;
		char why[256];
		size_t l;

		if (!(nl = memchr(buf + off, '\n', len - off)))
			return 0;
		l = (size_t)(nl - (buf + off));
		if (!first && l < AUDIT_RECORD_MAX && audit_record_parse((const char *)buf + off, l, &root, &rec, why, sizeof(why)) == 0) {
			json_decref(root);
			return 1;
		}
		first = 0;
		off += l + 1;
	}
	return 0;
}
