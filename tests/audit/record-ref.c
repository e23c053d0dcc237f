/* A second reading of journal records, for the tests only: the schema of
 * audit/FORMAT.md section 2 checked on jansson's tree of the whole line, as
 * libaudit read records before it took them apart itself.  The record
 * tests and the journal fuzz target hold audit_record_parse to it: the same
 * lines accepted, the same fields read. */
#include <stdio.h>
#include <string.h>

#include "record-ref.h"

static const char *const record_keys[] = {
	"v", "seq", "time", "station", "operator", "recipe", "jig", "device", "step", "result", "engineering",
	"details", "prev",
};

static int
is_hex(const char *s, size_t len)
{
	size_t i;

	for (i = 0; i < len; i++)
		if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
			return 0;
	return 1;
}

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
ref_record_parse(const char *line, size_t len, json_t **rootp, audit_record *rec, char *why, size_t why_len)
{
	json_error_t jerr;
	json_t *root = NULL, *v;
	const char *key = NULL;
	json_int_t iv;
	size_t i, known;
	int ret = -1;

	*rootp = NULL;
	memset(rec, 0, sizeof(*rec));
	/* RFC 8259 has no raw NUL byte; jansson 2.14 skips one after a number
	 * or a literal ("null\0,"), so the reference says so itself. */
	if (memchr(line, '\0', len)) {
		snprintf(why, why_len, "not JSON (a NUL byte)");
		goto out;
	}
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
	if (!json_is_integer(v) || json_integer_value(v) != 1) {
		snprintf(why, why_len, "\"v\" is not %d (format version)", 1);
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
	if (!json_is_string(v) || json_string_length(v) != 64 || !is_hex(json_string_value(v), 64)) {
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

