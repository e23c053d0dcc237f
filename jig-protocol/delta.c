/* Certificate deltas (protocol 1.2, PROTOCOL.md section 4): a target byte
 * string rebuilt from a source both ends hold, as literal runs and copies
 * out of the source.  No crypto: what a delta rebuilds is verified by its
 * consumer (a signature, or a digest read back), never trusted for being
 * rebuilt. */
#include <stdlib.h>
#include <string.h>

#include "jig-codec.h"

#define HASH_BITS 10

int
jig_delta_apply(const uint8_t *src, size_t slen, const uint8_t *delta, size_t dlen, uint8_t *out, size_t cap,
    size_t *len, st_err *err)
{
	size_t i = 0, n = 0, run, op = 0;

	*len = 0;
	while (i < dlen) {
		uint8_t b = delta[i];

		op++;
		if (b < 0x80) {
			run = (size_t)b + 1;
			if (dlen - i - 1 < run)
				return st_err_set(err, ST_E_PROTO, "delta: op %zu at byte %zu: a literal run of %zu bytes, %zu left",
				    op, i, run, dlen - i - 1);
			if (cap - n < run)
				return st_err_set(err, ST_E_PROTO, "delta: op %zu at byte %zu: rebuilds more than %zu bytes", op, i,
				    cap);
			memcpy(out + n, delta + i + 1, run);
			i += 1 + run;
		} else {
			size_t off;

			if (dlen - i < 3)
				return st_err_set(err, ST_E_PROTO, "delta: op %zu at byte %zu: a copy without its offset", op, i);
			off = (size_t)delta[i + 1] << 8 | delta[i + 2];
			run = (size_t)(b & 0x7F) + JIG_DELTA_MIN_COPY;
			if (off > slen || slen - off < run)
				return st_err_set(err, ST_E_PROTO, "delta: op %zu at byte %zu: copies %zu bytes at offset %zu of a "
				    "%zu-byte source", op, i, run, off, slen);
			if (cap - n < run)
				return st_err_set(err, ST_E_PROTO, "delta: op %zu at byte %zu: rebuilds more than %zu bytes", op, i,
				    cap);
			memcpy(out + n, src + off, run);
			i += 3;
		}
		n += run;
	}
	*len = n;
	return 0;
}

static unsigned
hash4(const uint8_t *p)
{
	uint32_t v = (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];

	return (v * 2654435761u) >> (32 - HASH_BITS);
}

static int
flush_literal(st_wr *wr, const uint8_t *p, size_t n)
{
	while (n > 0) {
		size_t run = n > JIG_DELTA_MAX_LITERAL ? JIG_DELTA_MAX_LITERAL : n;

		st_wr_u8(wr, (uint8_t)(run - 1));
		st_wr_bytes(wr, p, run);
		p += run;
		n -= run;
	}
	return wr->bad ? -1 : 0;
}

/* Greedy: at each target position the longest copy the source offers (of
 * at least JIG_DELTA_MIN_COPY bytes), else one more literal byte.  The
 * source is indexed by its 4-byte sequences; offsets past 0xFFFF are not
 * used. */
int
jig_delta_make(const uint8_t *src, size_t slen, const uint8_t *target, size_t tlen, uint8_t *out, size_t cap,
    size_t *len, st_err *err)
{
	int head[1 << HASH_BITS], *next = NULL;
	size_t i = 0, lit = 0, j;
	st_wr wr;

	*len = 0;
	if (slen > 0xFFFF + (size_t)JIG_DELTA_MIN_COPY)
		slen = 0xFFFF + (size_t)JIG_DELTA_MIN_COPY;
	memset(head, 0xFF, sizeof(head));
	if (slen >= JIG_DELTA_MIN_COPY) {
		if (!(next = malloc((slen - JIG_DELTA_MIN_COPY + 1) * sizeof(*next))))
			return st_err_set(err, ST_E_NOMEM, "delta: out of memory");
		for (j = slen - JIG_DELTA_MIN_COPY + 1; j-- > 0;) {
			unsigned h = hash4(src + j);

			next[j] = head[h];
			head[h] = (int)j;
		}
	}
	st_wr_init(&wr, out, cap);
	while (i < tlen) {
		size_t best = 0, best_off = 0;

		if (next && tlen - i >= JIG_DELTA_MIN_COPY) {
			for (int c = head[hash4(target + i)]; c >= 0; c = next[c]) {
				size_t m = 0, max = slen - (size_t)c;

				if (max > JIG_DELTA_MAX_COPY)
					max = JIG_DELTA_MAX_COPY;
				if (max > tlen - i)
					max = tlen - i;
				while (m < max && src[(size_t)c + m] == target[i + m])
					m++;
				if (m > best) {
					best = m;
					best_off = (size_t)c;
				}
			}
		}
		if (best < JIG_DELTA_MIN_COPY) {
			lit++;
			i++;
			continue;
		}
		flush_literal(&wr, target + i - lit, lit);
		lit = 0;
		st_wr_u8(&wr, (uint8_t)(0x80 | (best - JIG_DELTA_MIN_COPY)));
		st_wr_u16(&wr, (uint16_t)best_off);
		i += best;
	}
	flush_literal(&wr, target + i - lit, lit);
	free(next);
	if (wr.bad)
		return st_err_set(err, ST_E_PROTO, "delta: more than %zu bytes", cap);
	*len = wr.len;
	return 0;
}
