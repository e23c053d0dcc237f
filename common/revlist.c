#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include "revlist.h"

int
revlist_serial_parse(const char *in, char out[ST_CERT_SERIAL_HEX_LEN + 1], st_err *err)
{
	char digits[ST_CERT_SERIAL_HEX_LEN + 1];
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
		if (n == ST_CERT_SERIAL_HEX_LEN && !(digits[0] == '0'))
			return st_err_set(err, ST_E_CONFIG, "certificate serial \"%.80s\": more than 20 bytes", in);
		if (n == ST_CERT_SERIAL_HEX_LEN)
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
revlist_canon(const char *in, char out[ST_CERT_SERIAL_HEX_LEN + 1])
{
	size_t n;

	if (revlist_serial_parse(in, out, NULL) == 0)
		return;
	/* Not a serial: kept (upper-cased), so that it matches nothing real. */
	for (n = 0; in[n] && n < ST_CERT_SERIAL_HEX_LEN; n++)
		out[n] = (char)toupper((unsigned char)in[n]);
	out[n] = '\0';
}

