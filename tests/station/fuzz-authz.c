/* Fuzz target 'authz': arbitrary bytes as the signed body of an
 * authorization token (what authz_load parses once the CMS verifies).
 * Nothing may crash; a refusal says why; what is accepted holds the rules
 * the station relies on (printable text, a serial list in bounds, expiry
 * after issue, a halt exactly on a resume). */
#include <stdlib.h>
#include <string.h>

#include "authz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int
printable(const char *s, size_t max)
{
	size_t n = strlen(s), i;

	for (i = 0; i < n; i++)
		if ((unsigned char)s[i] < 0x20 || (unsigned char)s[i] > 0x7e)
			return 0;
	return n >= 1 && n <= max;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	authz *a = calloc(1, sizeof(*a));
	st_err err;
	size_t i;

	if (!a)
		return 0;
	err.msg[0] = '\0';
	if (authz_parse_body("token", data, size, a, &err) < 0) {
		if (!err.msg[0])
			abort(); /* every refusal says why */
	} else {
		if (!printable(a->type, sizeof(a->type) - 1) || !printable(a->reason, sizeof(a->reason) - 1) ||
		    strlen(a->id) != AUTHZ_ID_HEX || a->expires <= a->issued || a->n_serials > AUTHZ_MAX_SERIALS ||
		    (strcmp(a->type, "resume") == 0) != (a->halt_seq >= 1 && strlen(a->halt_id) == AUTHZ_ID_HEX))
			abort();
		for (i = 0; i < a->n_serials; i++)
			if (!a->serials[i] || !printable(a->serials[i], 64) || !authz_names(a, a->serials[i]))
				abort();
	}
	authz_free(a);
	return 0;
}
