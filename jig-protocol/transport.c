/* Transport objects and jig URIs (libjig-wire); open.c dispatches a URI to its backend. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "transport-int.h"

jig_transport *
jig_transport_alloc(const struct jig_transport_ops *ops, const char *uri, void *priv)
{
	jig_transport *t = calloc(1, sizeof(*t));

	if (!t)
		return NULL;
	t->ops = ops;
	t->priv = priv;
	snprintf(t->uri, sizeof(t->uri), "%s", uri);
	return t;
}

void
jig_transport_free(jig_transport *t)
{
	if (!t)
		return;
	t->ops->close(t);
	free(t);
}

int
jig_errno_code(int errnum)
{
	switch (errnum) {
	case ENOENT:
		return ST_E_NOTFOUND;
	case EIO:
	case ENXIO:
	case ENODEV:
	case EPIPE:
	case ECONNRESET:
	case ECONNABORTED:
		return ST_E_DISCONNECTED;
	case ETIMEDOUT:
		return ST_E_TIMEOUT;
	case ENOMEM:
		return ST_E_NOMEM;
	default:
		return ST_E_IO;
	}
}

int
jig_ms_left(uint64_t deadline)
{
	uint64_t now = st_now_ms();

	return now >= deadline ? 0 : (int)(deadline - now);
}

/* Digits only, value <= max. */
static int
parse_uint(const char *s, unsigned long max, unsigned *v)
{
	unsigned long n = 0;

	if (!*s)
		return -1;
	for (; *s; s++) {
		if (*s < '0' || *s > '9')
			return -1;
		n = n * 10 + (unsigned long)(*s - '0');
		if (n > max)
			return -1;
	}
	*v = (unsigned)n;
	return 0;
}

/* 1..4 hex digits */
static int
parse_hex16(const char *s, size_t n, uint16_t *v)
{
	unsigned x = 0;
	size_t i;

	if (n < 1 || n > 4)
		return -1;
	for (i = 0; i < n; i++) {
		char c = s[i];

		x <<= 4;
		if (c >= '0' && c <= '9')
			x |= (unsigned)(c - '0');
		else if (c >= 'a' && c <= 'f')
			x |= (unsigned)(c - 'a' + 10);
		else if (c >= 'A' && c <= 'F')
			x |= (unsigned)(c - 'A' + 10);
		else
			return -1;
	}
	*v = (uint16_t)x;
	return 0;
}

static int
copy(char *dst, size_t cap, const char *src, size_t n)
{
	if (n >= cap)
		return -1;
	memcpy(dst, src, n);
	dst[n] = '\0';
	return 0;
}

static int
parse_tcp(const char *uri, const char *rest, jig_uri *u, st_err *err)
{
	const char *colon, *host = rest;
	size_t hlen;

	if (rest[0] == '[') {
		const char *end = strchr(rest, ']');

		if (!end || end[1] != ':')
			return st_err_set(err, ST_E_CONFIG, "jig URI \"%s\": expected tcp:[ADDRESS]:PORT", uri);
		host = rest + 1;
		hlen = (size_t)(end - host);
		colon = end + 1;
	} else {
		if (!(colon = strrchr(rest, ':')))
			return st_err_set(err, ST_E_CONFIG, "jig URI \"%s\": expected tcp:HOST:PORT", uri);
		hlen = (size_t)(colon - rest);
	}
	if (hlen == 0 || copy(u->host, sizeof(u->host), host, hlen) < 0)
		return st_err_set(err, ST_E_CONFIG, "jig URI \"%s\": missing or overlong host", uri);
	if (parse_uint(colon + 1, 65535, &u->port) < 0)
		return st_err_set(err, ST_E_CONFIG, "jig URI \"%s\": port \"%s\" is not a number 0..65535", uri, colon + 1);
	return 0;
}

/* Walk "k=v&k=v", calling set for each pair. */
static int
parse_query(const char *uri, const char *q, jig_uri *u,
    int (*set)(const char *uri, const char *k, const char *v, jig_uri *u, st_err *err), st_err *err)
{
	char buf[512], *save = NULL, *kv;

	if (copy(buf, sizeof(buf), q, strlen(q)) < 0)
		return st_err_set(err, ST_E_CONFIG, "jig URI \"%s\": options too long", uri);
	for (kv = strtok_r(buf, "&", &save); kv; kv = strtok_r(NULL, "&", &save)) {
		char *eq = strchr(kv, '=');

		if (!eq)
			return st_err_set(err, ST_E_CONFIG, "jig URI \"%s\": option \"%s\" has no value (expected KEY=VALUE)",
			    uri, kv);
		*eq = '\0';
		if (set(uri, kv, eq + 1, u, err) < 0)
			return -1;
	}
	return 0;
}

static int
set_serial_opt(const char *uri, const char *k, const char *v, jig_uri *u, st_err *err)
{
	if (strcmp(k, "baud") == 0) {
		if (parse_uint(v, 4000000, &u->baud) < 0 || u->baud == 0)
			return st_err_set(err, ST_E_CONFIG, "jig URI \"%s\": baud \"%s\" is not a baud rate (1..4000000)", uri, v);
	} else if (strcmp(k, "flow") == 0) {
		if (strcmp(v, "none") == 0)
			u->rtscts = 0;
		else if (strcmp(v, "rtscts") == 0)
			u->rtscts = 1;
		else
			return st_err_set(err, ST_E_CONFIG, "jig URI \"%s\": flow \"%s\": expected none or rtscts", uri, v);
	} else {
		return st_err_set(err, ST_E_CONFIG, "jig URI \"%s\": unknown option \"%s\" (serial takes baud, flow)", uri, k);
	}
	return 0;
}

static int
set_usb_opt(const char *uri, const char *k, const char *v, jig_uri *u, st_err *err)
{
	if (strcmp(k, "serial") != 0)
		return st_err_set(err, ST_E_CONFIG, "jig URI \"%s\": unknown option \"%s\" (usb takes serial)", uri, k);
	if (!*v || copy(u->serial, sizeof(u->serial), v, strlen(v)) < 0)
		return st_err_set(err, ST_E_CONFIG, "jig URI \"%s\": serial must be 1..%zu characters", uri,
		    sizeof(u->serial) - 1);
	return 0;
}

static int
parse_serial(const char *uri, const char *rest, jig_uri *u, st_err *err)
{
	const char *q = strchr(rest, '?');
	size_t n = q ? (size_t)(q - rest) : strlen(rest);

	u->baud = 115200;
	if (n == 0 || copy(u->path, sizeof(u->path), rest, n) < 0)
		return st_err_set(err, ST_E_CONFIG, "jig URI \"%s\": expected serial:PATH?baud=N[&flow=none|rtscts]", uri);
	return q ? parse_query(uri, q + 1, u, set_serial_opt, err) : 0;
}

static int
parse_usb(const char *uri, const char *rest, jig_uri *u, st_err *err)
{
	const char *colon = strchr(rest, ':'), *q = strchr(rest, '?');
	size_t pl;

	if (!colon || (q && q < colon))
		return st_err_set(err, ST_E_CONFIG, "jig URI \"%s\": expected usb:VID:PID[?serial=S] (hex)", uri);
	pl = q ? (size_t)(q - colon - 1) : strlen(colon + 1);
	if (parse_hex16(rest, (size_t)(colon - rest), &u->vid) < 0 || parse_hex16(colon + 1, pl, &u->pid) < 0)
		return st_err_set(err, ST_E_CONFIG, "jig URI \"%s\": VID and PID must be 1..4 hex digits, e.g. usb:1209:0001", uri);
	return q ? parse_query(uri, q + 1, u, set_usb_opt, err) : 0;
}

int
jig_uri_parse(const char *uri, jig_uri *u, st_err *err)
{
	static const struct {
		const char *scheme;
		int (*parse)(const char *uri, const char *rest, jig_uri *u, st_err *err);
	} schemes[] = { { "tcp", parse_tcp }, { "serial", parse_serial }, { "usb", parse_usb } };
	size_t i, n;

	memset(u, 0, sizeof(*u));
	for (i = 0; i < sizeof(schemes) / sizeof(schemes[0]); i++) {
		n = strlen(schemes[i].scheme);
		if (strncmp(uri, schemes[i].scheme, n) == 0 && uri[n] == ':') {
			snprintf(u->scheme, sizeof(u->scheme), "%s", schemes[i].scheme);
			return schemes[i].parse(uri, uri + n + 1, u, err);
		}
	}
	return st_err_set(err, ST_E_CONFIG,
	    "jig URI \"%s\": unknown kind; use tcp:HOST:PORT, serial:PATH?baud=N or usb:VID:PID[?serial=S]", uri);
}
