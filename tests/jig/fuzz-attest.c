/* Fuzz target: the attestation decoder; whatever decodes re-encodes exactly. */
#include <stdlib.h>
#include <string.h>

#include "jig-codec.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint8_t again[JIG_ATTEST_MAX];
	jig_attest a;
	size_t n;
	st_err err;

	if (jig_attest_decode(data, size, &a, &err) < 0)
		return 0;
	if (jig_attest_encode(&a, again, sizeof(again), &n, &err) < 0 || n != size || memcmp(again, data, n) != 0)
		abort();
	return 0;
}
