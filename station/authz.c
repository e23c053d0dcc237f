/* Signed authorizations (authz.h). */
#include <errno.h>
#include <stdio.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <openssl/rand.h>

#include "authz.h"
#include "cms.h"

#define AUTHZ_FORMAT "station-authorization"
#define AUTHZ_FILE_MAX (256u << 10)

int
authz_duration_parse(const char *text, long *seconds, st_err *err)
{
	char *end = NULL;
	long n, unit;

	errno = 0;
	n = strtol(text, &end, 10);
	if (errno || end == text || n <= 0 || !end[0] || end[1])
		goto bad;
	switch (end[0]) {
	case 's': unit = 1; break;
	case 'm': unit = 60; break;
	case 'h': unit = 3600; break;
	case 'd': unit = 86400; break;
	default: goto bad;
	}
	if (n > AUTHZ_MAX_SECONDS / unit)
		return st_err_set(err, ST_E_CONFIG, "duration \"%.40s\" is longer than %ld days", text,
		    AUTHZ_MAX_SECONDS / 86400);
	*seconds = n * unit;
	return 0;
bad:
	return st_err_set(err, ST_E_CONFIG, "duration \"%.40s\": expected a number and s, m, h or d (\"8h\")", text);
}

static void
time_text(time_t t, char buf[32])
{
	struct tm tm;

	gmtime_r(&t, &tm);
	strftime(buf, 32, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

static int
time_parse(const char *text, time_t *t)
{
	struct tm tm;
	const char *end;

	memset(&tm, 0, sizeof(tm));
	if (!text || strlen(text) != 20 || !(end = strptime(text, "%Y-%m-%dT%H:%M:%SZ", &tm)) || *end)
		return -1;
	*t = timegm(&tm);
	return 0;
}

/* Serials and reasons are shown to operators and written to the journal:
 * printable ASCII only. */
static int
printable(const char *s, size_t min, size_t max, int spaces)
{
	size_t n = s ? strlen(s) : 0, i;

	if (!s || n < min || n > max)
		return 0;
	for (i = 0; i < n; i++)
		if ((unsigned char)s[i] < (spaces ? 0x20 : 0x21) || (unsigned char)s[i] > 0x7e)
			return 0;
	return 1;
}

static int
is_id(const char *s)
{
	return s && strlen(s) == AUTHZ_ID_HEX && strspn(s, "0123456789abcdef") == AUTHZ_ID_HEX;
}

int
authz_create(const char *type, const char *const *serials, size_t n_serials, uint64_t halt_seq,
    const char *halt_id, const char *reason, long seconds, EVP_PKEY *key, X509 *cert, uint8_t **der, size_t *der_len,
    st_err *err)
{
	uint8_t rnd[AUTHZ_ID_HEX / 2];
	char id[AUTHZ_ID_HEX + 1], issued[32], expires[32], subject[512];
	json_t *body = NULL, *list = NULL;
	char *text = NULL;
	time_t now = time(NULL);
	size_t i;
	int ret = -1;

	*der = NULL;
	if (n_serials > AUTHZ_MAX_SERIALS)
		return st_err_set(err, ST_E_CONFIG, "at most %d SEs in one authorization", AUTHZ_MAX_SERIALS);
	if (!printable(reason, 1, 255, 1))
		return st_err_set(err, ST_E_CONFIG, "the reason must be 1..255 printable ASCII characters");
	for (i = 0; i < n_serials; i++)
		if (!printable(serials[i], 1, 64, 0))
			return st_err_set(err, ST_E_CONFIG, "SE serial \"%.64s\": expected 1..64 printable ASCII characters",
			    serials[i]);
	if (strcmp(type, "resume") == 0 ? !halt_seq || !is_id(halt_id) : halt_seq || halt_id)
		return st_err_set(err, ST_E_CONFIG, "a resume, and only a resume, names a halt: its seq and %d-digit id",
		    AUTHZ_ID_HEX);
	if (st_x509_check_role(cert, ST_ROLE_AUTHORIZE, err) < 0)
		return -1;
	if (RAND_bytes(rnd, sizeof(rnd)) != 1)
		return st_err_openssl(err, ST_E_CRYPTO, "random id");
	st_hex(rnd, sizeof(rnd), id);
	time_text(now, issued);
	time_text(now + seconds, expires);
	st_x509_subject(cert, subject, sizeof(subject));
	if (!(list = json_array()))
		goto nomem;
	for (i = 0; i < n_serials; i++)
		if (json_array_append_new(list, json_string(serials[i])) < 0)
			goto nomem;
	if (!(body = json_pack("{s:s,s:i,s:s,s:s,s:o,s:s,s:s,s:s,s:s}", "format", AUTHZ_FORMAT, "version", 1, "id", id,
	          "type", type, "serials", list, "reason", reason, "issued", issued, "expires", expires, "signer",
	          subject)))
		goto nomem;
	list = NULL;
	if (halt_seq && json_object_set_new(body, "halt", json_pack("{s:I,s:s}", "seq", (json_int_t)halt_seq, "id",
	        halt_id)) < 0)
		goto nomem;
	if (!(text = json_dumps(body, JSON_SORT_KEYS | JSON_COMPACT)))
		goto nomem;
	ret = st_cms_sign_attached(key, cert, NULL, text, strlen(text), der, der_len, err);
	goto out;
nomem:
	st_err_set(err, ST_E_NOMEM, "out of memory");
out:
	free(text);
	json_decref(list);
	json_decref(body);
	return ret;
}

static const char *
str(json_t *o, const char *key)
{
	return json_string_value(json_object_get(o, key));
}

int
authz_parse_body(const char *path, const uint8_t *text, size_t len, authz *a, st_err *err)
{
	static const char *const keys[] = { "format", "version", "id", "type", "serials", "reason", "issued", "expires",
		"signer", "halt", NULL };
	json_error_t jerr;
	json_t *o = json_loadb((const char *)text, len, JSON_REJECT_DUPLICATES, &jerr), *v, *list, *halt;
	const char *key;
	size_t i, k;
	int ret = -1;

	if (!o || !json_is_object(o)) {
		st_err_set(err, ST_E_VERIFY, "%s: the signed content is not a JSON object%s%s", path, o ? "" : ": ",
		    o ? "" : jerr.text);
		goto out;
	}
	json_object_foreach(o, key, v) {
		for (k = 0; keys[k] && strcmp(keys[k], key) != 0; k++)
			;
		if (!keys[k]) {
			st_err_set(err, ST_E_VERIFY, "%s: unknown key \"%.40s\" (a newer format?)", path,
			    printable(key, 1, SIZE_MAX, 0) ? key : "(not printable ASCII)");
			goto out;
		}
	}
	if (!str(o, "format") || strcmp(str(o, "format"), AUTHZ_FORMAT) != 0 ||
	    !json_is_integer(json_object_get(o, "version")) || json_integer_value(json_object_get(o, "version")) != 1) {
		st_err_set(err, ST_E_VERIFY, "%s: not a version 1 %s token", path, AUTHZ_FORMAT);
		goto out;
	}
	if (!is_id(str(o, "id"))) {
		st_err_set(err, ST_E_VERIFY, "%s: id: expected %d lower-case hex digits", path, AUTHZ_ID_HEX);
		goto out;
	}
	if (!printable(str(o, "type"), 1, sizeof(a->type) - 1, 0) || !printable(str(o, "reason"), 1, 255, 1) ||
	    !printable(str(o, "signer"), 1, sizeof(a->signer) - 1, 1)) {
		st_err_set(err, ST_E_VERIFY, "%s: type, reason and signer must be printable text", path);
		goto out;
	}
	if (time_parse(str(o, "issued"), &a->issued) < 0 || time_parse(str(o, "expires"), &a->expires) < 0 ||
	    a->expires <= a->issued) {
		st_err_set(err, ST_E_VERIFY, "%s: issued and expires must be times like 2026-12-02T08:00:00Z, expires later",
		    path);
		goto out;
	}
	list = json_object_get(o, "serials");
	if (!json_is_array(list) || json_array_size(list) > AUTHZ_MAX_SERIALS ||
	    !(a->serials = calloc(json_array_size(list) + 1, sizeof(char *)))) {
		st_err_set(err, ST_E_VERIFY, "%s: serials: expected a list of at most %d SE serials", path, AUTHZ_MAX_SERIALS);
		goto out;
	}
	json_array_foreach(list, i, v) {
		if (!printable(json_string_value(v), 1, 64, 0)) {
			st_err_set(err, ST_E_VERIFY, "%s: serials[%zu]: expected 1..64 printable ASCII characters", path, i);
			goto out;
		}
		if (!(a->serials[a->n_serials++] = strdup(json_string_value(v)))) {
			st_err_set(err, ST_E_NOMEM, "out of memory");
			goto out;
		}
	}
	/* A resume names the halt it lifts; nothing else names one. */
	halt = json_object_get(o, "halt");
	if (halt && (!json_is_object(halt) || json_object_size(halt) != 2 ||
	                !json_is_integer(json_object_get(halt, "seq")) || json_integer_value(json_object_get(halt, "seq")) < 1 ||
	                !is_id(str(halt, "id")))) {
		st_err_set(err, ST_E_VERIFY, "%s: halt: expected {\"seq\": N, \"id\": %d hex digits}", path, AUTHZ_ID_HEX);
		goto out;
	}
	if (!halt != (strcmp(str(o, "type"), "resume") != 0)) {
		st_err_set(err, ST_E_VERIFY, "%s: a resume, and only a resume, names the halt it lifts", path);
		goto out;
	}
	if (halt) {
		a->halt_seq = (uint64_t)json_integer_value(json_object_get(halt, "seq"));
		snprintf(a->halt_id, sizeof(a->halt_id), "%s", str(halt, "id"));
	}
	snprintf(a->id, sizeof(a->id), "%s", str(o, "id"));
	snprintf(a->type, sizeof(a->type), "%s", str(o, "type"));
	snprintf(a->reason, sizeof(a->reason), "%s", str(o, "reason"));
	ret = 0;
out:
	json_decref(o);
	return ret;
}

int
authz_load(const char *path, const char *want_type, const char *trust_pem, time_t now, authz **out, st_err *err)
{
	uint8_t *der = NULL, *text = NULL;
	size_t der_len = 0, len = 0;
	X509_STORE *trust = NULL;
	X509 *signer = NULL;
	authz *a = NULL;
	char when[32];
	int ret = -1;

	*out = NULL;
	if (!(a = calloc(1, sizeof(*a))))
		return st_err_set(err, ST_E_NOMEM, "out of memory");
	if (st_file_read(path, AUTHZ_FILE_MAX, &der, &der_len, err) < 0) {
		err->code = ST_E_CONFIG;
		st_err_prefix(err, "authorization");
		goto out;
	}
	if (!(trust = st_x509_store_load(trust_pem, err))) {
		st_err_prefix(err, "rework.authorizers");
		goto out;
	}
	/* The trust file may pin the authorizers' own certificates. */
	X509_STORE_set_flags(trust, X509_V_FLAG_PARTIAL_CHAIN);
	if (st_cms_verify_attached(der, der_len, trust, &text, &len, &signer, err) < 0) {
		err->code = ST_E_VERIFY;
		st_err_prefix(err, "authorization %s (not signed by an authorizer the recipe trusts, or damaged)", path);
		goto out;
	}
	if (st_x509_check_role(signer, ST_ROLE_AUTHORIZE, err) < 0) {
		st_err_prefix(err, "authorization %s", path);
		goto out;
	}
	if (authz_parse_body(path, text, len, a, err) < 0)
		goto out;
	/* Who signed is the certificate's word, not the body's. */
	st_x509_subject(signer, a->signer, sizeof(a->signer));
	if (strcmp(a->type, want_type) != 0) {
		st_err_set(err, ST_E_VERIFY, "authorization %s is for %s, not %s", path, a->type, want_type);
		goto out;
	}
	if (now < a->issued - 300) {
		time_text(a->issued, when);
		st_err_set(err, ST_E_VERIFY, "authorization %s is issued in the future (%s): check this PC's clock", path,
		    when);
		goto out;
	}
	if (now >= a->expires) {
		time_text(a->expires, when);
		st_err_set(err, ST_E_VERIFY, "authorization %s expired at %s: ask for a new one (station authorize %s)",
		    path, when, want_type);
		goto out;
	}
	*out = a;
	a = NULL;
	ret = 0;
out:
	authz_free(a);
	X509_free(signer);
	X509_STORE_free(trust);
	free(text);
	free(der);
	return ret;
}

int
authz_names(const authz *a, const char *serial)
{
	size_t i;

	for (i = 0; a && serial && i < a->n_serials; i++)
		if (strcmp(a->serials[i], serial) == 0)
			return 1;
	return 0;
}

void
authz_free(authz *a)
{
	size_t i;

	if (!a)
		return;
	for (i = 0; i < a->n_serials; i++)
		free(a->serials[i]);
	free(a->serials);
	free(a);
}
