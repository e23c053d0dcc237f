/* Frame codec and byte-stream reassembly (PROTOCOL.md section 1).  No I/O. */
#include <string.h>

#include "jig-codec.h"

/* CRC-32 (zlib's), four bits at a time: a 16-entry table needs no
 * run-time initialisation and is fast enough for 4 KiB frames. */
uint32_t
jig_crc32(const uint8_t *p, size_t len)
{
	static const uint32_t t[16] = {
		0x00000000, 0x1DB71064, 0x3B6E20C8, 0x26D930AC, 0x76DC4190, 0x6B6B51F4, 0x4DB26158, 0x5005713C,
		0xEDB88320, 0xF00F9344, 0xD6D6A3E8, 0xCB61B38C, 0x9B64C2B0, 0x86D3D2D4, 0xA00AE278, 0xBDBDF21C,
	};
	uint32_t crc = 0xFFFFFFFFu;
	size_t i;

	for (i = 0; i < len; i++) {
		crc ^= p[i];
		crc = (crc >> 4) ^ t[crc & 15];
		crc = (crc >> 4) ^ t[crc & 15];
	}
	return ~crc;
}

int
jig_frame_encode(const jig_frame *f, uint8_t *out, size_t cap, size_t *outlen, st_err *err)
{
	st_wr wr;

	if (f->len > JIG_MAX_PAYLOAD)
		return st_err_set(err, ST_E_INTERNAL, "frame payload of %u bytes, at most %d", f->len, JIG_MAX_PAYLOAD);
	st_wr_init(&wr, out, cap);
	st_wr_u8(&wr, JIG_SOF);
	st_wr_u8(&wr, f->version);
	st_wr_u8(&wr, f->type);
	st_wr_u8(&wr, f->seq);
	st_wr_u16(&wr, f->len);
	st_wr_bytes(&wr, f->payload, f->len);
	if (wr.bad)
		return st_err_set(err, ST_E_INTERNAL, "frame of %u payload bytes does not fit in %zu bytes", f->len, cap);
	st_wr_u32(&wr, jig_crc32(out + 1, wr.len - 1));
	if (wr.bad)
		return st_err_set(err, ST_E_INTERNAL, "frame of %u payload bytes does not fit in %zu bytes", f->len, cap);
	*outlen = wr.len;
	return 0;
}

/* Checks in the order PROTOCOL.md gives: SOF, version, length bound, CRC.
 * Each check runs as soon as its bytes are there, so an oversized length is
 * refused from the header alone, before any payload is waited for. */
static int
frame_decode(const uint8_t *buf, size_t len, jig_frame *f, size_t *consumed, int *bad_crc, st_err *err)
{
	const uint8_t *q;
	uint8_t sof, version, type, seq;
	uint16_t n;
	uint32_t crc, want;
	st_rd rd;

	*consumed = 0;
	*bad_crc = 0;
	st_rd_init(&rd, buf, len);
	if (st_rd_u8(&rd, &sof) < 0)
		return JIG_DECODE_NEED_MORE;
	if (sof != JIG_SOF) {
		st_err_set(err, ST_E_PROTO, "byte 0x%02x where a frame should start", sof);
		return JIG_DECODE_BAD;
	}
	if (st_rd_u8(&rd, &version) < 0)
		return JIG_DECODE_NEED_MORE;
	if (version < JIG_VERSION_MIN || version > JIG_VERSION_MAX) {
		st_err_set(err, ST_E_PROTO, "frame version %u, this station speaks %d..%d", version,
		    JIG_VERSION_MIN, JIG_VERSION_MAX);
		return JIG_DECODE_BAD;
	}
	if (st_rd_u8(&rd, &type) < 0 || st_rd_u8(&rd, &seq) < 0 || st_rd_u16(&rd, &n) < 0)
		return JIG_DECODE_NEED_MORE;
	if (n > JIG_MAX_PAYLOAD) {
		st_err_set(err, ST_E_PROTO, "frame length %u exceeds the maximum %d", n, JIG_MAX_PAYLOAD);
		return JIG_DECODE_BAD;
	}
	if (!(q = st_rd_take(&rd, n)) || st_rd_u32(&rd, &crc) < 0)
		return JIG_DECODE_NEED_MORE;
	want = jig_crc32(buf + 1, JIG_HEADER_LEN - 1 + n);
	if (crc != want) {
		*bad_crc = 1;
		st_err_set(err, ST_E_PROTO, "bad frame checksum (got %08x, computed %08x)", crc, want);
		return JIG_DECODE_BAD;
	}
	f->version = version;
	f->type = type;
	f->seq = seq;
	f->len = n;
	memcpy(f->payload, q, n);
	*consumed = rd.off;
	return JIG_DECODE_OK;
}

int
jig_frame_decode(const uint8_t *buf, size_t len, jig_frame *f, size_t *consumed, st_err *err)
{
	int bad_crc;

	return frame_decode(buf, len, f, consumed, &bad_crc, err);
}

void
jig_stream_init(jig_stream *s)
{
	s->len = 0;
	s->skipped = 0;
	s->bad_frames = 0;
	st_err_clear(&s->last_bad);
	s->foreign_version = 0;
}

int
jig_stream_feed(jig_stream *s, const uint8_t *p, size_t n)
{
	if (n > sizeof(s->buf) - s->len)
		return -1;
	memcpy(s->buf + s->len, p, n);
	s->len += n;
	return 0;
}

static void
stream_drop(jig_stream *s, size_t n)
{
	memmove(s->buf, s->buf + n, s->len - n);
	s->len -= n;
}

int
jig_stream_next(jig_stream *s, jig_frame *f)
{
	size_t used, i;
	int bad_crc;
	st_err e;

	while (s->len > 0) {
		if (s->buf[0] != JIG_SOF) {
			/* Garbage: skip straight to the next SOF. */
			for (i = 1; i < s->len && s->buf[i] != JIG_SOF; i++)
				;
			s->skipped += i;
			stream_drop(s, i);
			continue;
		}
		switch (frame_decode(s->buf, s->len, f, &used, &bad_crc, &e)) {
		case JIG_DECODE_OK:
			stream_drop(s, used);
			return 1;
		case JIG_DECODE_NEED_MORE:
			return 0;
		default:
			/* Discard exactly the SOF we started at and search again. */
			s->bad_frames += (uint64_t)bad_crc;
			s->last_bad = e;
			/* The first refused version is the jig's: the search that
			 * follows starts inside that frame's bytes and may take any
			 * payload byte after a SOF for a version. */
			if (!s->foreign_version && s->len >= 2 && (s->buf[1] < JIG_VERSION_MIN || s->buf[1] > JIG_VERSION_MAX))
				s->foreign_version = s->buf[1];
			s->skipped++;
			stream_drop(s, 1);
			break;
		}
	}
	return 0;
}

void
jig_stream_discard(jig_stream *s)
{
	s->skipped += s->len;
	s->len = 0;
}
