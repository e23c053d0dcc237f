/* Fuzz target: arbitrary bytes through the stream reassembler and every
 * frame's payload through the command decoder; whatever decodes must
 * re-encode to the same bytes. */
#include <stdlib.h>
#include <string.h>

#include "jig-codec.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static jig_stream s;
	static jig_frame f;
	static jig_msg m;
	static uint8_t again[JIG_MAX_PAYLOAD];
	size_t off = 0, step, n;
	st_err err;

	jig_stream_init(&s);
	/* The first byte picks the chunk size, so splits across reads get fuzzed too. */
	step = size ? (size_t)data[0] % 64 + 1 : 1;
	while (off < size) {
		size_t k = size - off < step ? size - off : step;

		if (jig_stream_feed(&s, data + off, k) < 0)
			abort(); /* next() drains to less than one frame: must always fit */
		off += k;
		while (jig_stream_next(&s, &f)) {
			if (jig_msg_decode_v(f.version, f.type, f.payload, f.len, &m, &err) < 0)
				continue;
			if (jig_msg_encode(&m, again, sizeof(again), &n, &err) < 0 || n != f.len ||
			    memcmp(again, f.payload, n) != 0)
				abort();
		}
	}
	return 0;
}
