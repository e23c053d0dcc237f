#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <openssl/err.h>

#include "st.h"

static const char *const code_names[] = {
	[ST_OK] = "ok",
	[ST_E_IO] = "i/o error",
	[ST_E_TIMEOUT] = "timeout",
	[ST_E_DISCONNECTED] = "disconnected",
	[ST_E_PROTO] = "protocol error",
	[ST_E_REMOTE] = "jig error",
	[ST_E_CONFIG] = "configuration error",
	[ST_E_CRYPTO] = "crypto error",
	[ST_E_VERIFY] = "verification failed",
	[ST_E_STATE] = "wrong state",
	[ST_E_NOTFOUND] = "not found",
	[ST_E_NOMEM] = "out of memory",
	[ST_E_QUOTA] = "quota exhausted",
	[ST_E_INTERNAL] = "internal error",
};

const char *
st_code_name(int code)
{
	if (code < 0 || (size_t)code >= sizeof(code_names) / sizeof(code_names[0]) || !code_names[code])
		return "unknown error";
	return code_names[code];
}

static void err_vset(st_err *err, int code, const char *fmt, va_list ap) ST_PRINTF(3, 0);

static void
err_vset(st_err *err, int code, const char *fmt, va_list ap)
{
	err->code = code;
	err->remote = 0;
	err->sys = 0;
	vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
}

int
st_err_set(st_err *err, int code, const char *fmt, ...)
{
	va_list ap;

	if (!err)
		return -1;
	va_start(ap, fmt);
	err_vset(err, code, fmt, ap);
	va_end(ap);
	return -1;
}

int
st_err_prefix(st_err *err, const char *fmt, ...)
{
	char prefix[ST_ERR_MSG_MAX];
	char old[ST_ERR_MSG_MAX];
	va_list ap;

	if (!err)
		return -1;
	va_start(ap, fmt);
	vsnprintf(prefix, sizeof(prefix), fmt, ap);
	va_end(ap);
	memcpy(old, err->msg, sizeof(old));
	/* Truncation is acceptable: a long context still keeps its start. */
	if (snprintf(err->msg, sizeof(err->msg), "%.*s: %s", (int)sizeof(prefix) / 2, prefix, old) < 0)
		err->msg[0] = '\0';
	if (err->code == ST_OK)
		err->code = ST_E_INTERNAL;
	return -1;
}

/* The one place the OpenSSL error queue is turned into text. */
int
st_err_openssl(st_err *err, int code, const char *fmt, ...)
{
	unsigned long e;
	const char *data = NULL;
	int flags = 0;
	size_t n;
	va_list ap;

	if (!err) {
		ERR_clear_error();
		return -1;
	}
	va_start(ap, fmt);
	err_vset(err, code, fmt, ap);
	va_end(ap);
	while ((e = ERR_get_error_all(NULL, NULL, NULL, &data, &flags)) != 0) {
		char buf[256];

		ERR_error_string_n(e, buf, sizeof(buf));
		n = strlen(err->msg);
		/* The data says why, e.g. CMS's "Verify error: certificate has expired". */
		if (n + 3 >= sizeof(err->msg))
			continue;
		if ((flags & ERR_TXT_STRING) && data && *data)
			snprintf(err->msg + n, sizeof(err->msg) - n, " (%s: %s)", buf, data);
		else
			snprintf(err->msg + n, sizeof(err->msg) - n, " (%s)", buf);
	}
	return -1;
}

/* The one place errno is turned into text. */
int
st_err_errno(st_err *err, int code, int errnum, const char *fmt, ...)
{
	size_t n;
	va_list ap;

	if (!err)
		return -1;
	va_start(ap, fmt);
	err_vset(err, code, fmt, ap);
	va_end(ap);
	n = strlen(err->msg);
	snprintf(err->msg + n, sizeof(err->msg) - n, ": %s", strerror(errnum));
	err->sys = errnum;
	return -1;
}

void
st_err_clear(st_err *err)
{
	if (!err)
		return;
	err->code = ST_OK;
	err->remote = 0;
	err->sys = 0;
	err->msg[0] = '\0';
}
