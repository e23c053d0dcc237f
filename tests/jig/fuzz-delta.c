/* Fuzz target: the certificate delta decoder (protocol 1.2).  The first
 * byte splits the input into a source and a delta; whatever rebuilds fits
 * the buffer, and a delta made from the source for what it rebuilt
 * rebuilds the same bytes. */
#include <stdlib.h>
#include <string.h>

#include "jig-codec.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static uint8_t out[JIG_BLOB_MAX], again[JIG_BLOB_MAX], delta[2 * JIG_BLOB_MAX];
	size_t slen, len, dlen, alen;
	st_err err;

	if (size < 1)
		return 0;
	slen = (size_t)data[0] * 8;
	if (slen > size - 1)
		slen = size - 1;
	if (jig_delta_apply(data + 1, slen, data + 1 + slen, size - 1 - slen, out, sizeof(out), &len, &err) < 0)
		return 0;
	if (len > sizeof(out))
		abort();
	if (jig_delta_make(data + 1, slen, out, len, delta, sizeof(delta), &dlen, &err) < 0 ||
	    jig_delta_apply(data + 1, slen, delta, dlen, again, sizeof(again), &alen, &err) < 0 || alen != len ||
	    memcmp(again, out, len) != 0)
		abort();
	return 0;
}
