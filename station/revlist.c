#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include "audit.h"
#include "revlist.h"

int
revlist_serial_parse(const char *in, char out[41], st_err *err)
{
	char digits[41];
	const char *p = in;
	size_t n = 0, lead;

	if ((p[0] == '0') && (p[1] == 'x' || p[1] == 'X'))
		p += 2;
	for (; *p; p++) {
		if (*p == ':' && n > 0 && p[1] && p[1] != ':')
			continue;
		if (!isxdigit((unsigned char)*p))
			return st_err_set(err, ST_E_CONFIG, "certificate serial \"%.80s\": '%c' at offset %zu: expected hex "
			    "digits, as in 0C5F4E73, 0c5f4e73, 0x0c5f4e73 or 0c:5f:4e:73", in,
			    isprint((unsigned char)*p) ? *p : '?', (size_t)(p - in));
		if (n == 40 && !(digits[0] == '0'))
			return st_err_set(err, ST_E_CONFIG, "certificate serial \"%.80s\": more than 20 bytes", in);
		if (n == 40)
			memmove(digits, digits + 1, --n);
		digits[n++] = (char)toupper((unsigned char)*p);
	}
	if (n == 0)
		return st_err_set(err, ST_E_CONFIG, "certificate serial \"%.80s\": no hex digits", in);
	for (lead = 0; lead + 1 < n && digits[lead] == '0'; lead++)
		;
	n -= lead;
	/* OpenSSL's spelling (openssl x509 -serial, BN_bn2hex): whole bytes. */
	if (n % 2)
		*out++ = '0';
	memcpy(out, digits + lead, n);
	out[n] = '\0';
	return 0;
}

void
revlist_canon(const char *in, char out[41])
{
	size_t n;

	if (revlist_serial_parse(in, out, NULL) == 0)
		return;
	/* Not a serial: kept (upper-cased), so that it matches nothing real. */
	for (n = 0; in[n] && n < 40; n++)
		out[n] = (char)toupper((unsigned char)in[n]);
	out[n] = '\0';
}

rev_cert *
revlist_find(revlist *rl, const char *serial)
{
	char c[41];
	size_t i;

	revlist_canon(serial, c);
	for (i = 0; i < rl->n; i++)
		if (strcmp(rl->certs[i].serial, c) == 0)
			return &rl->certs[i];
	return NULL;
}

static time_t
parse_time(const char *s)
{
	struct tm tm;

	memset(&tm, 0, sizeof(tm));
	if (!s || !strptime(s, "%Y-%m-%dT%H:%M:%S", &tm))
		return time(NULL);
	return timegm(&tm);
}

static rev_cert *
add(revlist *rl, const char *serial, const char *device)
{
	rev_cert *c;

	if (rl->n == rl->cap) {
		size_t cap = rl->cap ? rl->cap * 2 : 64;

		if (!(c = realloc(rl->certs, cap * sizeof(*c))))
			return NULL;
		rl->certs = c;
		rl->cap = cap;
	}
	c = &rl->certs[rl->n++];
	memset(c, 0, sizeof(*c));
	revlist_canon(serial, c->serial);
	snprintf(c->device, sizeof(c->device), "%s", device ? device : "");
	return c;
}

static int
on_record(const audit_record *rec, void *ctx)
{
	revlist *rl = ctx;
	json_t *v = json_object_get(rec->details, "cert_serial");
	const char *serial = json_is_string(v) ? json_string_value(v) : NULL;
	rev_cert *c;

	if (strcmp(rec->step, "crl") == 0) {
		v = json_object_get(rec->details, "crl_number");
		if (json_is_integer(v) && (uint64_t)json_integer_value(v) > rl->last_crl_number)
			rl->last_crl_number = (uint64_t)json_integer_value(v);
		return 0;
	}
	if (!serial || strcmp(rec->result, "ok") != 0)
		return 0;
	if (strcmp(rec->step, "issued") == 0) {
		if (!revlist_find(rl, serial) && !add(rl, serial, rec->device))
			return -1;
	} else if (strcmp(rec->step, "revoke") == 0) {
		if (!(c = revlist_find(rl, serial)) && !(c = add(rl, serial, rec->device)))
			return -1;
		if (!c->revoked) { /* the first revocation counts */
			c->revoked = 1;
			c->revoked_at = parse_time(rec->time);
			v = json_object_get(rec->details, "reason");
			snprintf(c->reason, sizeof(c->reason), "%s", json_is_string(v) ? json_string_value(v) : "unspecified");
		}
	}
	return 0;
}

int
revlist_load(const char *journal_dir, revlist *rl, st_err *err)
{
	int rc;

	memset(rl, 0, sizeof(*rl));
	rc = audit_scan(journal_dir, on_record, rl, err);
	if (rc > 0 || rc < -1)
		return st_err_set(err, ST_E_NOMEM, "out of memory reading the journal");
	return rc;
}

void
revlist_free(revlist *rl)
{
	free(rl->certs);
	memset(rl, 0, sizeof(*rl));
}
