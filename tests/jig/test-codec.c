/* Frame, stream, command and attestation codecs (no I/O). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/x509.h>

#include "jig.h"
#include "testutil.h"

static void
fill(uint8_t *p, size_t n, uint8_t seed)
{
	size_t i;

	for (i = 0; i < n; i++)
		p[i] = (uint8_t)(seed + i * 7);
}

static void
blob(jig_blob *b, size_t n, uint8_t seed)
{
	b->len = n;
	fill(b->data, n, seed);
}

/* A message of every type of protocol `version` with every field set to
 * something non-trivial. */
static void
sample_v(uint8_t type, uint8_t version, jig_msg *m)
{
	int v11 = version >= JIG_VERSION_1_1, v12 = version >= JIG_VERSION_1_2;

	memset(m, 0, sizeof(*m));
	m->type = type;
	m->version = version;
	switch (type) {
	case JIG_CMD_HELLO:
		m->u.hello_req.min_version = 1;
		m->u.hello_req.max_version = 3;
		break;
	case JIG_CMD_HELLO | JIG_RESPONSE:
		m->u.hello.version = 1;
		strcpy(m->u.hello.jig_id, "jig-7");
		strcpy(m->u.hello.firmware, "2.0.1");
		m->u.hello.capabilities = JIG_CAP_DUT_DETECT | JIG_CAP_REWORK;
		m->u.hello.max_payload = JIG_MAX_PAYLOAD;
		if (v11) {
			m->u.hello.version = JIG_VERSION_1_1;
			m->u.hello.nrates = 3;
			m->u.hello.rates[0] = 115200;
			m->u.hello.rates[1] = 921600;
			m->u.hello.rates[2] = 1000000;
		}
		break;
	case JIG_CMD_DUT_POWER:
		m->u.power_req.action = JIG_POWER_RELEASE;
		break;
	case JIG_CMD_DUT_STATUS | JIG_RESPONSE:
	case JIG_CMD_DUT_POWER | JIG_RESPONSE:
		m->u.dut.present = 1;
		m->u.dut.powered = 1;
		break;
	case JIG_CMD_SE_INFO | JIG_RESPONSE:
		strcpy(m->u.se_info.serial, "SE0123456789ABCDEF");
		strcpy(m->u.se_info.model, "TSE-100");
		m->u.se_info.firmware = 1u << 24 | 4u << 16 | 2;
		m->u.se_info.lifecycle = JIG_LC_FACTORY;
		fill(m->u.se_info.challenge, JIG_NONCE_LEN, 9);
		m->u.se_info.ncerts = 2;
		blob(&m->u.se_info.certs[0], 500, 1);
		blob(&m->u.se_info.certs[1], 420, 2);
		if (v11) {
			m->u.se_info.ncerts = 1;
			memset(&m->u.se_info.certs[1], 0, sizeof(m->u.se_info.certs[1]));
			m->u.se_info.chain_by_digest = 1;
			fill(m->u.se_info.chain_sha256, JIG_SHA256_LEN, 13);
		}
		if (v12) { /* the certificate as a delta, rebuilt later */
			memset(&m->u.se_info.certs[0], 0, sizeof(m->u.se_info.certs[0]));
			m->u.se_info.cert_by_delta = 1;
			blob(&m->u.se_info.attest_delta, 230, 21);
		}
		break;
	case JIG_CMD_VENDOR_CHAIN | JIG_RESPONSE:
		m->u.chain.n = 2;
		blob(&m->u.chain.certs[0], 420, 2);
		blob(&m->u.chain.certs[1], 380, 3);
		if (v12)
			blob(&m->u.chain.tmpl, 350, 22);
		break;
	case JIG_CMD_SET_BAUD:
		m->u.baud_req.baud = 921600;
		m->u.baud_req.confirm_ms = 500;
		break;
	case JIG_CMD_LOCK:
		if (v11) {
			m->u.lock_req.slot = 5;
			fill(m->u.lock_req.nonce, JIG_NONCE_LEN, 14);
		}
		break;
	case JIG_CMD_AUTH_CHALLENGE | JIG_RESPONSE:
		fill(m->u.challenge.challenge, JIG_NONCE_LEN, 3);
		break;
	case JIG_CMD_AUTH_RESPONSE:
	case JIG_CMD_REWORK_CHALLENGE | JIG_RESPONSE:
		blob(&m->u.signature, 71, 4);
		break;
	case JIG_CMD_KEYGEN:
		m->u.keygen_req.slot = 3;
		m->u.keygen_req.algorithm = JIG_ALG_P384;
		m->u.keygen_req.flags = JIG_KEYGEN_KEEP;
		break;
	case JIG_CMD_KEYGEN | JIG_RESPONSE:
		blob(&m->u.pubkey, 91, 5);
		break;
	case JIG_CMD_GET_CSR:
		m->u.csr_req.slot = 15;
		fill(m->u.csr_req.nonce, JIG_NONCE_LEN, 6);
		break;
	case JIG_CMD_GET_CSR | JIG_RESPONSE:
		if (v12) { /* the signatures alone */
			blob(&m->u.csr.csr_signature, 70, 23);
			blob(&m->u.csr.signature, 72, 9);
			break;
		}
		blob(&m->u.csr.csr, 300, 7);
		blob(&m->u.csr.attestation, 200, 8);
		blob(&m->u.csr.signature, 72, 9);
		break;
	case JIG_CMD_INSTALL_CERT:
		m->u.install_req.slot = 2;
		if (v12) {
			fill(m->u.install_req.template_sha256, JIG_SHA256_LEN, 24);
			blob(&m->u.install_req.delta, 180, 25);
			break;
		}
		blob(&m->u.install_req.cert, JIG_BLOB_MAX, 10);
		break;
	case JIG_CMD_CERT_TEMPLATE:
		blob(&m->u.cert, 540, 26);
		break;
	case JIG_CMD_READ_CERT:
	case JIG_CMD_RETIRE:
		m->u.slot_req.slot = 1;
		if (v11 && type == JIG_CMD_READ_CERT)
			m->u.slot_req.form = JIG_CERT_SHA256;
		break;
	case JIG_CMD_READ_CERT | JIG_RESPONSE:
		blob(&m->u.cert, 0, 0); /* "empty when none" */
		break;
	case JIG_CMD_LOCK | JIG_RESPONSE:
		m->u.lock.lifecycle = JIG_LC_PROVISIONED;
		if (v11)
			blob(&m->u.lock.signature, 71, 15);
		break;
	case JIG_CMD_REWORK_CHALLENGE:
		m->u.rework_req.slot = 4;
		fill(m->u.rework_req.challenge, JIG_NONCE_LEN, 11);
		break;
	/* TPM devices (PROTOCOL.md section 11; tests/tpm/test-tpm-msg.c has the rest) */
	case JIG_CMD_TPM_INFO | JIG_RESPONSE:
		m->u.tpm_info.manufacturer = 0x49424d00;
		strcpy(m->u.tpm_info.vendor, "SW   TPM");
		blob(&m->u.tpm_info.ek_public, 316, 12);
		m->u.tpm_info.n_ekcerts = 1;
		blob(&m->u.tpm_info.ek_certs[0], 1016, 13);
		break;
	case JIG_CMD_TPM_NV_WRITE:
		m->u.tpm_nv_write_req.which = JIG_TPM_NV_IAK;
		blob(&m->u.tpm_nv_write_req.data, 600, 14);
		break;
	case JIG_CMD_TPM_NV_READ:
		m->u.tpm_nv_req.which = JIG_TPM_NV_IDEVID;
		break;
	case JIG_CMD_TPM_REWORK_SIGN | JIG_RESPONSE:
		blob(&m->u.tpm_signature, 72, 16);
		break;
	case JIG_T_ERROR:
		m->u.error.command = JIG_CMD_KEYGEN;
		m->u.error.code = JIG_E_NOT_AUTHENTICATED;
		strcpy(m->u.error.message, "tool authentication required first");
		break;
	}
}

static void
sample(uint8_t type, jig_msg *m)
{
	sample_v(type, JIG_VERSION_1_0, m);
}

static size_t
encode(const jig_msg *m, uint8_t *buf)
{
	size_t n = 0;
	st_err err;

	ck_assert_msg(jig_msg_encode(m, buf, JIG_MAX_PAYLOAD, &n, &err) == 0, "encode 0x%02x: %s", m->type, err.msg);
	return n;
}

/* JIG_WRITE_CORPUS=DIR makes the round-trip tests write the fuzz seed corpora
 * (tests/jig/corpus-*) from real encoded frames. */
static void
corpus_write(const char *kind, const char *name, const uint8_t *p, size_t n)
{
	const char *dir = getenv("JIG_WRITE_CORPUS");
	char path[1024];
	st_err err;

	if (!dir)
		return;
	snprintf(path, sizeof(path), "%s/corpus-jig-%s/%s", dir, kind, name);
	ck_assert_msg(st_file_write_atomic(path, p, n, 0644, &err) == 0, "%s", err.msg);
}

/* Decoding p must fail with code and a message containing want. */
static void
assert_bad(uint8_t type, const uint8_t *p, size_t n, int code, const char *want)
{
	jig_msg m;
	st_err err;

	st_err_clear(&err);
	ck_assert_int_eq(jig_msg_decode(type, p, n, &m, &err), -1);
	ck_assert_int_eq(err.code, code);
	ck_assert_msg(strstr(err.msg, want), "\"%s\" not in \"%s\"", want, err.msg);
}

START_TEST(test_crc32)
{
	ck_assert_uint_eq(jig_crc32((const uint8_t *)"123456789", 9), 0xCBF43926u);
	ck_assert_uint_eq(jig_crc32(NULL, 0), 0);
}
END_TEST

/* _i: 0 protocol 1.0, 1 protocol 1.1 */
START_TEST(test_roundtrip_every_message)
{
	static uint8_t buf[JIG_MAX_PAYLOAD], frame_buf[JIG_MAX_FRAME + 1];
	static jig_msg m, got;
	static jig_frame f, g;
	uint8_t v = (uint8_t)(JIG_VERSION_1_0 + _i);
	static const char *const prefix[] = { "", "v11-", "v12-" };
	unsigned t, n = 0;
	size_t len, flen, used;
	st_err err;

	for (t = 0; t < 256; t++) {
		if (!jig_type_known((uint8_t)t) || (t != JIG_T_ERROR && !jig_cmd_in_version(t & 0x7f, v)))
			continue;
		n++;
		sample_v((uint8_t)t, v, &m);
		len = encode(&m, buf);
		ck_assert_msg(jig_msg_decode_v(v, (uint8_t)t, buf, len, &got, &err) == 0, "%s", err.msg);
		ck_assert_msg(memcmp(&m, &got, sizeof(m)) == 0, "type 0x%02x differs after a round trip", t);
		/* and inside a frame */
		memset(&f, 0, sizeof(f));
		f.version = v;
		f.type = (uint8_t)t;
		f.seq = (uint8_t)(t * 3);
		f.len = (uint16_t)len;
		memcpy(f.payload, buf, len);
		ck_assert_int_eq(jig_frame_encode(&f, frame_buf, sizeof(frame_buf), &flen, &err), 0);
		ck_assert_uint_eq(flen, len + JIG_HEADER_LEN + JIG_CRC_LEN);
		ck_assert_int_eq(jig_frame_decode(frame_buf, flen, &g, &used, &err), JIG_DECODE_OK);
		ck_assert_uint_eq(used, flen);
		ck_assert_uint_eq(g.type, t);
		ck_assert_uint_eq(g.seq, f.seq);
		ck_assert_uint_eq(g.len, len);
		ck_assert_int_eq(memcmp(g.payload, buf, len), 0);
		{
			char name[32];

			snprintf(name, sizeof(name), "%s%02x", prefix[_i], t);
			/* the first byte of the file picks the fuzzer's chunk size */
			memmove(frame_buf + 1, frame_buf, flen);
			frame_buf[0] = (uint8_t)(t % 64);
			corpus_write("frame", name, frame_buf, flen + 1);
		}
	}
	/* every request, every response, ERROR */
	ck_assert_uint_eq(n, 2 * (v == 1 ? JIG_CMD_LAST_1_0 : JIG_CMD_LAST) + 2 * (JIG_CMD_TPM_LAST - JIG_CMD_TPM_FIRST + 1) + 1 +
	    2 * (v >= JIG_VERSION_1_2)); /* 1.2: CERT_TEMPLATE */
}
END_TEST

START_TEST(test_names)
{
	char fw[JIG_FW_TEXT_MAX];

	jig_fw_format(0x01020003, fw);
	ck_assert_str_eq(fw, "1.2.3");
	jig_fw_format(0xffffffff, fw);
	ck_assert_str_eq(fw, "255.255.65535");
	ck_assert_str_eq(jig_cmd_name(JIG_CMD_KEYGEN), "KEYGEN");
	ck_assert_str_eq(jig_cmd_name(JIG_CMD_RETIRE), "RETIRE");
	ck_assert_str_eq(jig_cmd_name(0x42), "0x42");
	ck_assert_str_eq(jig_cmd_name(JIG_T_ERROR), "ERROR");
	ck_assert_str_eq(jig_error_name(JIG_E_NO_DUT), "NO_DUT");
	ck_assert_str_eq(jig_error_name(JIG_E_BUSY), "BUSY");
	ck_assert_str_eq(jig_error_name(99), "error 99");
	ck_assert_str_eq(jig_lifecycle_name(JIG_LC_FACTORY), "factory");
	ck_assert_str_eq(jig_lifecycle_name(JIG_LC_REWORK), "rework");
	ck_assert_str_eq(jig_lifecycle_name(0), "invalid");
}
END_TEST

static size_t
make_frame(uint8_t version, uint8_t type, uint8_t seq, const void *payload, uint16_t n, uint8_t *out)
{
	static jig_frame f;
	size_t len;
	st_err err;

	f.version = version;
	f.type = type;
	f.seq = seq;
	f.len = n;
	if (n)
		memcpy(f.payload, payload, n);
	ck_assert_int_eq(jig_frame_encode(&f, out, JIG_MAX_FRAME, &len, &err), 0);
	return len;
}

START_TEST(test_frame_rejects)
{
	static uint8_t buf[JIG_MAX_FRAME];
	static jig_frame f;
	size_t n, used, i;
	st_err err;

	n = make_frame(1, JIG_CMD_LOCK, 7, NULL, 0, buf);
	ck_assert_uint_eq(n, 10);
	/* truncated: every proper prefix asks for more, never a frame */
	for (i = 0; i < n; i++)
		ck_assert_int_eq(jig_frame_decode(buf, i, &f, &used, &err), JIG_DECODE_NEED_MORE);
	/* bad checksum */
	buf[n - 1] ^= 1;
	ck_assert_int_eq(jig_frame_decode(buf, n, &f, &used, &err), JIG_DECODE_BAD);
	ck_assert_ptr_nonnull(strstr(err.msg, "checksum"));
	buf[n - 1] ^= 1;
	/* a flipped payload/header byte breaks the CRC too */
	buf[3] ^= 0x10;
	ck_assert_int_eq(jig_frame_decode(buf, n, &f, &used, &err), JIG_DECODE_BAD);
	buf[3] ^= 0x10;
	ck_assert_int_eq(jig_frame_decode(buf, n, &f, &used, &err), JIG_DECODE_OK);
	/* wrong version: refused from the second byte on */
	n = make_frame(JIG_VERSION_MAX + 1, JIG_CMD_LOCK, 7, NULL, 0, buf);
	ck_assert_int_eq(jig_frame_decode(buf, 2, &f, &used, &err), JIG_DECODE_BAD);
	ck_assert_ptr_nonnull(strstr(err.msg, "version 4"));
	n = make_frame(0, JIG_CMD_LOCK, 7, NULL, 0, buf);
	ck_assert_int_eq(jig_frame_decode(buf, n, &f, &used, &err), JIG_DECODE_BAD);
	/* not a SOF */
	buf[0] = 0x5A;
	ck_assert_int_eq(jig_frame_decode(buf, 1, &f, &used, &err), JIG_DECODE_BAD);
	/* oversized length: refused from the 6-byte header, no payload needed */
	{
		const uint8_t hdr[6] = { JIG_SOF, 1, JIG_CMD_LOCK, 0, 0x10, 0x01 }; /* 4097 */
		const uint8_t ok[6] = { JIG_SOF, 1, JIG_CMD_LOCK, 0, 0x10, 0x00 };  /* 4096 */

		ck_assert_int_eq(jig_frame_decode(hdr, 5, &f, &used, &err), JIG_DECODE_NEED_MORE);
		ck_assert_int_eq(jig_frame_decode(hdr, 6, &f, &used, &err), JIG_DECODE_BAD);
		ck_assert_ptr_nonnull(strstr(err.msg, "4097"));
		ck_assert_int_eq(jig_frame_decode(ok, 6, &f, &used, &err), JIG_DECODE_NEED_MORE);
	}
	/* the encoder refuses to build one either */
	f.len = JIG_MAX_PAYLOAD + 1;
	ck_assert_int_eq(jig_frame_encode(&f, buf, sizeof(buf), &n, &err), -1);
	f.len = 100;
	ck_assert_int_eq(jig_frame_encode(&f, buf, 50, &n, &err), -1);
}
END_TEST

START_TEST(test_frame_max_size)
{
	static uint8_t buf[JIG_MAX_FRAME], payload[JIG_MAX_PAYLOAD];
	static jig_frame f;
	size_t n, used;
	st_err err;

	fill(payload, sizeof(payload), 1);
	n = make_frame(1, JIG_CMD_INSTALL_CERT, 1, payload, JIG_MAX_PAYLOAD, buf);
	ck_assert_uint_eq(n, JIG_MAX_FRAME);
	ck_assert_int_eq(jig_frame_decode(buf, n, &f, &used, &err), JIG_DECODE_OK);
	ck_assert_int_eq(memcmp(f.payload, payload, JIG_MAX_PAYLOAD), 0);
}
END_TEST

START_TEST(test_stream_resync)
{
	static uint8_t wire[3 * JIG_MAX_FRAME];
	static uint8_t fr[JIG_MAX_FRAME];
	static jig_stream s;
	static jig_frame f;
	/* fake SOFs: one with a bad version, one whose plausible 5-byte length is
	 * completed by the corrupted frame's bytes and then fails its CRC */
	const uint8_t garbage[] = { 0x00, 0xff, 0x13, JIG_SOF, 0x07, JIG_SOF, 0x01, 0x02, 0x00, 0x00, 0x05 };
	size_t len = 0, n, i, fed;
	int got = 0;

	/* garbage, frame 1, garbage (incl. fake SOFs), a frame with a bad CRC, frame 2 */
	memcpy(wire + len, garbage, 3);
	len += 3;
	len += make_frame(1, JIG_CMD_KEYGEN | JIG_RESPONSE, 1, "abc", 3, wire + len);
	memcpy(wire + len, garbage, sizeof(garbage));
	len += sizeof(garbage);
	n = make_frame(1, JIG_CMD_LOCK | JIG_RESPONSE, 9, "\x02", 1, wire + len);
	wire[len + 6] ^= 0x40; /* corrupt its payload */
	len += n;
	len += make_frame(1, JIG_CMD_LOCK | JIG_RESPONSE, 2, "\x02", 1, wire + len);

	/* Fed one byte at a time, then all at once: same result. */
	for (i = 0; i < 2; i++) {
		jig_stream_init(&s);
		got = 0;
		for (fed = 0; fed < len;) {
			size_t step = i == 0 ? 1 : len;

			ck_assert_int_eq(jig_stream_feed(&s, wire + fed, step), 0);
			fed += step;
			while (jig_stream_next(&s, &f)) {
				got++;
				ck_assert_uint_eq(f.seq, got == 1 ? 1 : 2);
			}
		}
		ck_assert_int_eq(got, 2);
		corpus_write("frame", "resync", wire, len);
		ck_assert_uint_eq(s.len, 0);
		/* 3 + 8 garbage bytes, plus the 11-byte corrupted frame skipped byte by byte */
		ck_assert_uint_eq(s.skipped, 3 + sizeof(garbage) + n);
		ck_assert_uint_eq(s.bad_frames, 2); /* the fake header and the corrupted frame */
	}

	/* A truncated frame waits, then is abandoned. */
	jig_stream_init(&s);
	n = make_frame(1, JIG_CMD_LOCK, 3, NULL, 0, fr);
	ck_assert_int_eq(jig_stream_feed(&s, fr, n - 1), 0);
	ck_assert_int_eq(jig_stream_next(&s, &f), 0);
	ck_assert_uint_eq(s.len, n - 1);
	jig_stream_discard(&s);
	ck_assert_uint_eq(s.skipped, n - 1);
	ck_assert_int_eq(jig_stream_feed(&s, fr, n), 0);
	ck_assert_int_eq(jig_stream_next(&s, &f), 1);
	/* an oversized header is skipped without waiting for 64 KiB */
	{
		const uint8_t big[6] = { JIG_SOF, 1, 1, 0, 0xff, 0xff };

		jig_stream_init(&s);
		jig_stream_feed(&s, big, sizeof(big));
		jig_stream_feed(&s, fr, n);
		ck_assert_int_eq(jig_stream_next(&s, &f), 1);
		ck_assert_uint_eq(s.skipped, 6);
		ck_assert_ptr_nonnull(strstr(s.last_bad.msg, "65535"));
	}
	/* overfeeding is refused */
	jig_stream_init(&s);
	ck_assert_int_eq(jig_stream_feed(&s, wire, sizeof(s.buf)), 0);
	ck_assert_int_eq(jig_stream_feed(&s, wire, 1), -1);
}
END_TEST

/* Decoding p as protocol 1.1 must fail with code and a message containing want. */
static void
assert_bad11(uint8_t type, const uint8_t *p, size_t n, int code, const char *want)
{
	jig_msg m;
	st_err err;

	st_err_clear(&err);
	ck_assert_int_eq(jig_msg_decode_v(JIG_VERSION_1_1, type, p, n, &m, &err), -1);
	ck_assert_int_eq(err.code, code);
	ck_assert_msg(strstr(err.msg, want), "\"%s\" not in \"%s\"", want, err.msg);
}

/* Every field protocol 1.1 adds is checked where it is decoded. */
START_TEST(test_v11_malformed)
{
	static uint8_t buf[JIG_MAX_PAYLOAD + 16];
	static jig_msg m;
	size_t n;
	st_err err;

	/* SE_INFO: the chain digest is exactly 32 bytes; the attestation certificate comes alone */
	sample_v(JIG_CMD_SE_INFO | JIG_RESPONSE, JIG_VERSION_1_1, &m);
	n = encode(&m, buf);
	buf[n - 33] = 31; /* the digest's length field */
	assert_bad11(JIG_CMD_SE_INFO | JIG_RESPONSE, buf, n - 1, ST_E_PROTO, "vendor chain digest: 31 bytes, must be 32");
	sample_v(JIG_CMD_SE_INFO | JIG_RESPONSE, JIG_VERSION_1_1, &m);
	m.u.se_info.ncerts = 2;
	ck_assert_int_eq(jig_msg_encode(&m, buf, sizeof(buf), &n, &err), -1);
	ck_assert_ptr_nonnull(strstr(err.msg, "attestation certificate alone"));
	/* a 1.0 SE_INFO payload is not a 1.1 one */
	sample(JIG_CMD_SE_INFO | JIG_RESPONSE, &m);
	n = encode(&m, buf);
	ck_assert_int_eq(jig_msg_decode_v(JIG_VERSION_1_1, JIG_CMD_SE_INFO | JIG_RESPONSE, buf, n, &m, &err), -1);
	/* VENDOR_CHAIN: 1..3 certificates, none empty */
	{
		const uint8_t none[] = { 0 }, four[] = { 4 }, empty[] = { 1, 0, 0 }, short_[] = { 1, 0, 9, 1, 2 };

		assert_bad11(JIG_CMD_VENDOR_CHAIN | JIG_RESPONSE, none, 1, ST_E_PROTO, "certificate count: 0, must be 1..3");
		assert_bad11(JIG_CMD_VENDOR_CHAIN | JIG_RESPONSE, four, 1, ST_E_PROTO, "certificate count: 4");
		assert_bad11(JIG_CMD_VENDOR_CHAIN | JIG_RESPONSE, empty, 3, ST_E_PROTO, "certificate 1: empty");
		assert_bad11(JIG_CMD_VENDOR_CHAIN | JIG_RESPONSE, short_, 5, ST_E_PROTO, "certificate: truncated");
	}
	/* READ_CERT: form 0 or 1; LOCK: slot and a 32-byte nonce, a signature of 8..139 bytes */
	{
		const uint8_t form2[] = { 0, 2 }, slot16[] = { 16, 0, 32 }, nonce31[] = { 0, 0, 31 };
		const uint8_t sig3[] = { 2, 0, 3, 1, 2, 3 }, nosig[] = { 2 };

		assert_bad11(JIG_CMD_READ_CERT, form2, 2, ST_E_PROTO, "form: 2 is not 0 (certificate) or 1 (SHA-256)");
		assert_bad11(JIG_CMD_READ_CERT, form2, 1, ST_E_PROTO, "form: truncated");
		assert_bad11(JIG_CMD_LOCK, slot16, 3, ST_E_PROTO, "nonce: truncated");
		assert_bad11(JIG_CMD_LOCK, nonce31, 3, ST_E_PROTO, "nonce: truncated");
		assert_bad11(JIG_CMD_LOCK | JIG_RESPONSE, sig3, 6, ST_E_PROTO, "receipt signature: 3 bytes, must be 8..139");
		assert_bad11(JIG_CMD_LOCK | JIG_RESPONSE, nosig, 1, ST_E_PROTO, "receipt signature: truncated");
		/* the same LOCK request is fine in 1.0, where it has no payload */
		ck_assert_int_eq(jig_msg_decode(JIG_CMD_LOCK, slot16, 0, &m, &err), 0);
		sample_v(JIG_CMD_LOCK, JIG_VERSION_1_1, &m);
		m.u.lock_req.slot = 16;
		ck_assert_int_eq(jig_msg_encode(&m, buf, sizeof(buf), &n, &err), -1);
	}
	/* HELLO 1.1: at most 8 standard rates, ascending */
	sample_v(JIG_CMD_HELLO | JIG_RESPONSE, JIG_VERSION_1_1, &m);
	n = encode(&m, buf);
	buf[n - 1] = 0x41; /* 1000000 -> 1000001 */
	assert_bad11(JIG_CMD_HELLO | JIG_RESPONSE, buf, n, ST_E_PROTO, "rate 3: 1000001 baud is not a standard rate");
	sample_v(JIG_CMD_HELLO | JIG_RESPONSE, JIG_VERSION_1_1, &m);
	m.u.hello.rates[2] = 115200;
	ck_assert_int_eq(jig_msg_encode(&m, buf, sizeof(buf), &n, &err), -1);
	ck_assert_ptr_nonnull(strstr(err.msg, "must ascend"));
	sample_v(JIG_CMD_HELLO | JIG_RESPONSE, JIG_VERSION_1_1, &m);
	n = encode(&m, buf);
	buf[n - 13] = 9; /* the rate count */
	assert_bad11(JIG_CMD_HELLO | JIG_RESPONSE, buf, n, ST_E_PROTO, "rate count: 9, at most 8");
	/* a version-1 HELLO answer carries no rates: extra bytes are trailing */
	sample(JIG_CMD_HELLO | JIG_RESPONSE, &m);
	n = encode(&m, buf);
	buf[n] = 0;
	assert_bad11(JIG_CMD_HELLO | JIG_RESPONSE, buf, n + 1, ST_E_PROTO, "1 trailing bytes");
	/* SET_BAUD: a standard rate and a confirmation window of 50..5000 ms */
	{
		const uint8_t odd[] = { 0, 0, 0x30, 0x39, 0, 100 }, fast[] = { 0, 0x0e, 0x10, 0, 0, 10 };

		assert_bad11(JIG_CMD_SET_BAUD, odd, 6, ST_E_PROTO, "12345 baud is not a standard rate");
		assert_bad11(JIG_CMD_SET_BAUD, fast, 6, ST_E_PROTO, "confirm_ms: 10, must be 50..5000");
		ck_assert_int_eq(jig_msg_decode(JIG_CMD_SET_BAUD, fast, 6, &m, &err), -1); /* not in 1.0 */
		ck_assert_int_eq(err.code, ST_E_NOTFOUND);
	}
}
END_TEST

/* The chain digest covers the count and every length: no two chains share one. */
START_TEST(test_chain_digest)
{
	static jig_blob c[3];
	uint8_t a[32], b[32];

	blob(&c[0], 10, 1);
	blob(&c[1], 10, 2);
	jig_chain_digest(c, 2, NULL, a);
	jig_chain_digest(c, 1, NULL, b);
	ck_assert_int_ne(memcmp(a, b, 32), 0);
	c[0].len = 9; /* moving a byte from one certificate to the next */
	c[1].len = 11;
	jig_chain_digest(c, 2, NULL, b);
	ck_assert_int_ne(memcmp(a, b, 32), 0);
	/* and it is the SHA-256 of the VENDOR_CHAIN payload */
	{
		static jig_msg m;
		static uint8_t buf[JIG_MAX_PAYLOAD];
		size_t n;

		memset(&m, 0, sizeof(m));
		m.type = JIG_CMD_VENDOR_CHAIN | JIG_RESPONSE;
		m.version = JIG_VERSION_1_1;
		m.u.chain.n = 2;
		m.u.chain.certs[0] = c[0];
		m.u.chain.certs[1] = c[1];
		n = encode(&m, buf);
		st_sha256(buf, n, a);
		ck_assert_int_eq(memcmp(a, b, 32), 0);
	}
}
END_TEST

START_TEST(test_unknown_type)
{
	jig_msg m;
	st_err err;

	ck_assert_int_eq(jig_type_known(0x00), 0);
	ck_assert_int_eq(jig_type_known(JIG_CMD_CERT_TEMPLATE + 1), 0);
	ck_assert_int_eq(jig_type_known((JIG_CMD_CERT_TEMPLATE + 1) | JIG_RESPONSE), 0);
	ck_assert_int_eq(jig_type_known(0x80), 0);
	ck_assert_int_eq(jig_type_known(0x7F), 0);
	ck_assert_int_eq(jig_msg_decode(0x42, NULL, 0, &m, &err), -1);
	ck_assert_int_eq(err.code, ST_E_NOTFOUND);
	ck_assert_ptr_nonnull(strstr(err.msg, "0x42"));
	m.type = JIG_CMD_TPM_LAST + 1;
	ck_assert_int_eq(jig_msg_encode(&m, (uint8_t[8]){ 0 }, 8, &(size_t){ 0 }, &err), -1);
	/* a 1.1 command in a 1.0 frame is no command at all */
	ck_assert_int_eq(jig_msg_decode(JIG_CMD_VENDOR_CHAIN, NULL, 0, &m, &err), -1);
	ck_assert_int_eq(err.code, ST_E_NOTFOUND);
	ck_assert_ptr_nonnull(strstr(err.msg, "does not exist in protocol 1.0"));
	memset(&m, 0, sizeof(m));
	m.type = JIG_CMD_VENDOR_CHAIN;
	ck_assert_int_eq(jig_msg_encode(&m, (uint8_t[8]){ 0 }, 8, &(size_t){ 0 }, &err), -1);
	m.version = JIG_VERSION_1_1;
	ck_assert_int_eq(jig_msg_encode(&m, (uint8_t[8]){ 0 }, 8, &(size_t){ 0 }, &err), 0);
}
END_TEST

START_TEST(test_malformed_payloads)
{
	static uint8_t buf[JIG_MAX_PAYLOAD + 16];
	static jig_msg m;
	uint8_t v;
	unsigned t;
	size_t n, i;
	st_err err;

	/* For every type of both versions: each truncation and one trailing byte are refused. */
	for (v = JIG_VERSION_1_0; v <= JIG_VERSION_1_1; v++)
		for (t = 0; t < 256; t++) {
			if (!jig_type_known((uint8_t)t) || (t != JIG_T_ERROR && !jig_cmd_in_version(t & 0x7f, v)))
				continue;
			sample_v((uint8_t)t, v, &m);
			n = encode(&m, buf);
			buf[n] = 0;
			ck_assert_int_eq(jig_msg_decode_v(v, (uint8_t)t, buf, n + 1, &m, &err), -1);
			ck_assert_msg(err.code == ST_E_PROTO && strstr(err.msg, "1 trailing bytes"), "0x%02x v%u: %s", t, v, err.msg);
			for (i = 0; i < n; i++) {
				ck_assert_int_eq(jig_msg_decode_v(v, (uint8_t)t, buf, i, &m, &err), -1);
				ck_assert_int_eq(err.code, ST_E_PROTO);
			}
		}
	/* bad lifecycle in SE_INFO and LOCK */
	sample(JIG_CMD_LOCK | JIG_RESPONSE, &m);
	n = encode(&m, buf);
	buf[0] = 4;
	assert_bad(JIG_CMD_LOCK | JIG_RESPONSE, buf, n, ST_E_PROTO, "lifecycle");
	buf[0] = 0;
	assert_bad(JIG_CMD_LOCK | JIG_RESPONSE, buf, n, ST_E_PROTO, "LOCK response: lifecycle");
	sample(JIG_CMD_SE_INFO | JIG_RESPONSE, &m);
	m.u.se_info.lifecycle = 9;
	ck_assert_int_eq(jig_msg_encode(&m, buf, sizeof(buf), &n, &err), -1); /* never sent */
	/* an oversized string in HELLO: 65 bytes of jig id */
	{
		uint8_t p[128] = { 1, 0, 65 };

		memset(p + 3, 'a', 65);
		assert_bad(JIG_CMD_HELLO | JIG_RESPONSE, p, 3 + 65 + 2 + 4 + 2, ST_E_PROTO, "jig id: 65 bytes, at most 64");
		/* a short string: length says 10, 3 bytes follow */
		p[1] = 0;
		p[2] = 10;
		assert_bad(JIG_CMD_HELLO | JIG_RESPONSE, p, 6, ST_E_PROTO, "jig id: truncated");
		/* a NUL inside text */
		p[2] = 2;
		p[3] = 'a';
		p[4] = 0;
		assert_bad(JIG_CMD_HELLO | JIG_RESPONSE, p, 5 + 2 + 4 + 2, ST_E_PROTO, "NUL");
	}
	/* an ERROR message may hold 200 bytes, not 201 */
	sample(JIG_T_ERROR, &m);
	memset(m.u.error.message, 'x', JIG_ERRMSG_MAX);
	n = encode(&m, buf);
	ck_assert_int_eq(jig_msg_decode(JIG_T_ERROR, buf, n, &m, &err), 0);
	buf[3] = 0;
	buf[4] = 201;
	memset(buf + 5, 'x', 201);
	assert_bad(JIG_T_ERROR, buf, 5 + 201, ST_E_PROTO, "message: 201 bytes");
	/* ranges: slot, algorithm, flags, power action, present, nonce length, cert count */
	{
		const uint8_t slot16[] = { 16, 1, 0 }, alg3[] = { 0, 3, 0 }, flags2[] = { 0, 1, 2 };
		const uint8_t act3[] = { 3 }, present2[] = { 2, 0 }, nonce31[] = { 0, 0, 31 };
		const uint8_t hello_rev[] = { 2, 1 };

		assert_bad(JIG_CMD_KEYGEN, slot16, 3, ST_E_PROTO, "slot: 16, at most 15");
		assert_bad(JIG_CMD_KEYGEN, alg3, 3, ST_E_PROTO, "algorithm");
		assert_bad(JIG_CMD_KEYGEN, flags2, 3, ST_E_PROTO, "flags");
		assert_bad(JIG_CMD_DUT_POWER, act3, 1, ST_E_PROTO, "power action");
		assert_bad(JIG_CMD_DUT_STATUS | JIG_RESPONSE, present2, 2, ST_E_PROTO, "present");
		assert_bad(JIG_CMD_GET_CSR, nonce31, 3, ST_E_PROTO, "nonce: truncated");
		assert_bad(JIG_CMD_HELLO, hello_rev, 2, ST_E_PROTO, "empty");
	}
	sample(JIG_CMD_GET_CSR, &m);
	n = encode(&m, buf);
	buf[2] = 31; /* nonce length 31 with 32 bytes following: wrong length, then trailing */
	assert_bad(JIG_CMD_GET_CSR, buf, n, ST_E_PROTO, "nonce: 31 bytes, must be 32");
	sample(JIG_CMD_SE_INFO | JIG_RESPONSE, &m);
	m.u.se_info.ncerts = 0;
	n = encode(&m, buf);
	buf[n - 1] = JIG_MAX_CERTS + 1;
	assert_bad(JIG_CMD_SE_INFO | JIG_RESPONSE, buf, n, ST_E_PROTO, "certificate count: 5");
	/* a blob longer than 2048 is refused, both ways */
	{
		static uint8_t p[2 + JIG_BLOB_MAX + 1];

		p[0] = (JIG_BLOB_MAX + 1) >> 8;
		p[1] = (JIG_BLOB_MAX + 1) & 0xff;
		assert_bad(JIG_CMD_KEYGEN | JIG_RESPONSE, p, sizeof(p), ST_E_PROTO, "public key: 2049 bytes");
		sample(JIG_CMD_KEYGEN | JIG_RESPONSE, &m);
		m.u.pubkey.len = JIG_BLOB_MAX + 1;
		ck_assert_int_eq(jig_msg_encode(&m, buf, sizeof(buf), &n, &err), -1);
	}
	/* an encoding that does not fit the caller's buffer */
	sample(JIG_CMD_INSTALL_CERT, &m);
	ck_assert_int_eq(jig_msg_encode(&m, buf, 100, &n, &err), -1);
	ck_assert_ptr_nonnull(strstr(err.msg, "does not fit"));
}
END_TEST

static void
sample_attest(jig_attest *a)
{
	memset(a, 0, sizeof(*a));
	fill(a->nonce, sizeof(a->nonce), 1);
	strcpy(a->serial, "SE00AABBCC");
	strcpy(a->model, "TSE-100");
	a->firmware = 0x01040002;
	a->lifecycle = JIG_LC_FACTORY;
	a->slot = 2;
	fill(a->csr_sha256, 32, 2);
	fill(a->pubkey_sha256, 32, 3);
}

START_TEST(test_attest)
{
	uint8_t buf[JIG_ATTEST_MAX + 8];
	jig_attest a, b;
	size_t n, i;
	st_err err;

	sample_attest(&a);
	ck_assert_int_eq(jig_attest_encode(&a, buf, sizeof(buf), &n, &err), 0);
	ck_assert_uint_eq(n, 17 + 1 + 32 + 1 + 10 + 1 + 7 + 4 + 1 + 1 + 32 + 32);
	/* byte layout of the fixed fields (PROTOCOL.md section 6) */
	ck_assert_int_eq(memcmp(buf, "station-attest-v1", 17), 0);
	ck_assert_uint_eq(buf[17], 32);
	ck_assert_uint_eq(buf[50], 10);
	ck_assert_int_eq(memcmp(buf + 51, "SE00AABBCC", 10), 0);
	ck_assert_uint_eq(buf[61], 7);
	ck_assert_int_eq(memcmp(buf + 69, "\x01\x04\x00\x02\x01\x02", 6), 0);
	ck_assert_int_eq(jig_attest_decode(buf, n, &b, &err), 0);
	ck_assert_int_eq(memcmp(&a, &b, sizeof(a)), 0);
	corpus_write("attest", "sample", buf, n);
	/* maximum size fits JIG_ATTEST_MAX */
	memset(a.serial, 'S', JIG_STR_MAX);
	memset(a.model, 'M', JIG_STR_MAX);
	ck_assert_int_eq(jig_attest_encode(&a, buf, JIG_ATTEST_MAX, &n, &err), 0);
	ck_assert_uint_eq(n, JIG_ATTEST_MAX);
	corpus_write("attest", "max", buf, n);
	sample_attest(&a);
	jig_attest_encode(&a, buf, sizeof(buf), &n, &err);
	/* every truncation, a trailing byte, the tag, a bad lifecycle, slot, nonce length */
	for (i = 0; i < n; i++)
		ck_assert_int_eq(jig_attest_decode(buf, i, &b, &err), -1);
	buf[n] = 0;
	ck_assert_int_eq(jig_attest_decode(buf, n + 1, &b, &err), -1);
	ck_assert_ptr_nonnull(strstr(err.msg, "trailing"));
	buf[0] = 'S';
	ck_assert_int_eq(jig_attest_decode(buf, n, &b, &err), -1);
	ck_assert_ptr_nonnull(strstr(err.msg, "tag"));
	buf[0] = 's';
	buf[73] = 4;
	ck_assert_int_eq(jig_attest_decode(buf, n, &b, &err), -1);
	ck_assert_ptr_nonnull(strstr(err.msg, "lifecycle"));
	buf[73] = 1;
	buf[74] = 16;
	ck_assert_int_eq(jig_attest_decode(buf, n, &b, &err), -1);
	ck_assert_ptr_nonnull(strstr(err.msg, "slot"));
	buf[74] = 2;
	buf[17] = 31;
	ck_assert_int_eq(jig_attest_decode(buf, n, &b, &err), -1);
	ck_assert_ptr_nonnull(strstr(err.msg, "nonce"));
	buf[17] = 32;
	buf[50] = 0; /* empty serial */
	ck_assert_int_eq(jig_attest_decode(buf, n, &b, &err), -1);
	buf[50] = 10;
	ck_assert_int_eq(jig_attest_decode(buf, n, &b, &err), 0);
	/* the encoder refuses what the decoder would */
	a.serial[0] = '\0';
	ck_assert_int_eq(jig_attest_encode(&a, buf, sizeof(buf), &n, &err), -1);
	sample_attest(&a);
	a.lifecycle = 0;
	ck_assert_int_eq(jig_attest_encode(&a, buf, sizeof(buf), &n, &err), -1);
	sample_attest(&a);
	ck_assert_int_eq(jig_attest_encode(&a, buf, 100, &n, &err), -1);
}
END_TEST

START_TEST(test_challenge_message)
{
	uint8_t ch[JIG_NONCE_LEN], buf[JIG_CHALLENGE_MSG_MAX];
	char serial[JIG_STR_MAX + 2];
	size_t n;
	st_err err;

	fill(ch, sizeof(ch), 5);
	ck_assert_int_eq(jig_challenge_message(JIG_TAG_TOOL_AUTH, "SE01", ch, buf, sizeof(buf), &n, &err), 0);
	ck_assert_uint_eq(n, 20 + 1 + 4 + 32);
	ck_assert_int_eq(memcmp(buf, "station-tool-auth-v1\x04SE01", 25), 0);
	ck_assert_int_eq(memcmp(buf + 25, ch, 32), 0);
	ck_assert_int_eq(jig_challenge_message(JIG_TAG_REWORK, "SE01", ch, buf, sizeof(buf), &n, &err), 0);
	ck_assert_uint_eq(n, 17 + 1 + 4 + 32);
	ck_assert_int_eq(memcmp(buf, "station-rework-v1\x04SE01", 22), 0);
	memset(serial, 'x', JIG_STR_MAX);
	serial[JIG_STR_MAX] = '\0';
	ck_assert_int_eq(jig_challenge_message(JIG_TAG_TOOL_AUTH, serial, ch, buf, sizeof(buf), &n, &err), 0);
	ck_assert_uint_eq(n, JIG_CHALLENGE_MSG_MAX);
	serial[JIG_STR_MAX] = 'x';
	serial[JIG_STR_MAX + 1] = '\0';
	ck_assert_int_eq(jig_challenge_message(JIG_TAG_TOOL_AUTH, serial, ch, buf, sizeof(buf), &n, &err), -1);
	ck_assert_int_eq(jig_challenge_message(JIG_TAG_TOOL_AUTH, "", ch, buf, sizeof(buf), &n, &err), -1);
	ck_assert_int_eq(jig_challenge_message("other-tag", "SE01", ch, buf, sizeof(buf), &n, &err), -1);
	ck_assert_int_eq(jig_challenge_message(JIG_TAG_TOOL_AUTH, "SE01", ch, buf, 30, &n, &err), -1);
}
END_TEST

/* 1.2 payloads: what 1.1 accepts is not 1.2's, and 1.2's own bounds. */
START_TEST(test_v12_malformed)
{
	static uint8_t buf[JIG_MAX_PAYLOAD];
	static jig_msg m, got;
	size_t len;
	st_err err;

	/* a 1.1 GET_CSR answer (CSR, attestation, signature) is not a 1.2 one */
	sample_v(JIG_CMD_GET_CSR | JIG_RESPONSE, JIG_VERSION_1_1, &m);
	len = encode(&m, buf);
	ck_assert_int_eq(jig_msg_decode_v(JIG_VERSION_1_2, JIG_CMD_GET_CSR | JIG_RESPONSE, buf, len, &got, &err), -1);
	ck_assert_int_eq(err.code, ST_E_PROTO);
	/* signatures of 1.2's GET_CSR: 8..139 bytes */
	sample_v(JIG_CMD_GET_CSR | JIG_RESPONSE, JIG_VERSION_1_2, &m);
	m.u.csr.csr_signature.len = 7;
	ck_assert_int_eq(jig_msg_encode(&m, buf, sizeof(buf), &len, &err), -1);
	ck_assert_ptr_nonnull(strstr(err.msg, "CSR signature: 7 bytes, must be 8..139"));
	/* an empty delta is no certificate */
	sample_v(JIG_CMD_SE_INFO | JIG_RESPONSE, JIG_VERSION_1_2, &m);
	m.u.se_info.attest_delta.len = 0;
	ck_assert_int_eq(jig_msg_encode(&m, buf, sizeof(buf), &len, &err), -1);
	ck_assert_ptr_nonnull(strstr(err.msg, "attestation certificate delta: 0 bytes"));
	sample_v(JIG_CMD_INSTALL_CERT, JIG_VERSION_1_2, &m);
	m.u.install_req.delta.len = 0;
	ck_assert_int_eq(jig_msg_encode(&m, buf, sizeof(buf), &len, &err), -1);
	ck_assert_ptr_nonnull(strstr(err.msg, "certificate delta: 0 bytes"));
	/* the template digest is 32 bytes */
	sample_v(JIG_CMD_INSTALL_CERT, JIG_VERSION_1_2, &m);
	len = encode(&m, buf);
	buf[2] = 31;
	ck_assert_int_eq(jig_msg_decode_v(JIG_VERSION_1_2, JIG_CMD_INSTALL_CERT, buf, len, &got, &err), -1);
	ck_assert_ptr_nonnull(strstr(err.msg, "template digest"));
	/* CERT_TEMPLATE is 1.2's: unknown to 1.1, and never empty */
	ck_assert_int_eq(jig_msg_decode_v(JIG_VERSION_1_1, JIG_CMD_CERT_TEMPLATE, buf, 2, &got, &err), -1);
	ck_assert_int_eq(err.code, ST_E_NOTFOUND);
	memset(buf, 0, 2);
	ck_assert_int_eq(jig_msg_decode_v(JIG_VERSION_1_2, JIG_CMD_CERT_TEMPLATE, buf, 2, &got, &err), -1);
	ck_assert_ptr_nonnull(strstr(err.msg, "template: 0 bytes"));
	ck_assert_str_eq(jig_cmd_name(JIG_CMD_CERT_TEMPLATE), "CERT_TEMPLATE");
	ck_assert_str_eq(jig_error_name(JIG_E_NO_TEMPLATE), "NO_TEMPLATE");
	ck_assert_str_eq(jig_version_name(JIG_VERSION_1_2), "1.2");
}
END_TEST

static void
check_delta(const uint8_t *src, size_t slen, const uint8_t *t, size_t tlen, size_t max_delta)
{
	static uint8_t d[4 * JIG_BLOB_MAX], back[JIG_BLOB_MAX];
	size_t dl, bl;
	st_err err;

	ck_assert_msg(jig_delta_make(src, slen, t, tlen, d, sizeof(d), &dl, &err) == 0, "%s", err.msg);
	ck_assert_msg(dl <= max_delta, "a delta of %zu bytes, at most %zu expected", dl, max_delta);
	ck_assert_msg(jig_delta_apply(src, slen, d, dl, back, sizeof(back), &bl, &err) == 0, "%s", err.msg);
	ck_assert_uint_eq(bl, tlen);
	ck_assert_int_eq(memcmp(back, t, tlen), 0);
}

START_TEST(test_delta_round_trip)
{
	static uint8_t src[1200], t[JIG_BLOB_MAX];
	size_t i, k;

	for (i = 0; i < sizeof(src); i++)
		src[i] = (uint8_t)(rand() >> 3);
	/* the source itself: copies of at most 131 bytes, 3 bytes each */
	check_delta(src, sizeof(src), src, sizeof(src), 3 * (sizeof(src) / 131 + 1));
	/* a few bytes changed: a literal and a copy more per change */
	for (k = 0; k < 100; k++) {
		memcpy(t, src, 600);
		for (i = 0; i < 10; i++)
			t[(size_t)rand() % 600] ^= (uint8_t)(1 + rand() % 255);
		check_delta(src, sizeof(src), t, 600, 3 * 5 + 10 * (3 + 2 + 3));
	}
	/* nothing in common: literal runs of at most 128 bytes */
	for (i = 0; i < sizeof(t); i++)
		t[i] = (uint8_t)(rand() >> 5);
	check_delta(src, 0, t, sizeof(t), sizeof(t) + sizeof(t) / 128 + 1);
	check_delta(src, 3, t, sizeof(t), sizeof(t) + sizeof(t) / 128 + 1);
	/* pieces of the source out of order, and the empty target */
	memcpy(t, src + 900, 200);
	memcpy(t + 200, src, 300);
	memcpy(t + 500, src + 450, 5);
	check_delta(src, sizeof(src), t, 505, 3 * 7);
	check_delta(src, sizeof(src), t, 0, 0);
}
END_TEST

START_TEST(test_delta_rejects)
{
	static const uint8_t src[8] = { 1, 2, 3, 4, 5, 6, 7, 8 };
	uint8_t out[16];
	size_t len;
	st_err err;

	/* a literal run longer than the delta */
	ck_assert_int_eq(jig_delta_apply(src, 8, (const uint8_t *)"\x05" "ab", 3, out, sizeof(out), &len, &err), -1);
	ck_assert_str_eq(err.msg, "delta: op 1 at byte 0: a literal run of 6 bytes, 2 left");
	/* a copy without its offset, after a good copy */
	ck_assert_int_eq(jig_delta_apply(src, 8, (const uint8_t *)"\x80\x00\x00\x80\x00", 5, out, sizeof(out), &len,
	    &err), -1);
	ck_assert_str_eq(err.msg, "delta: op 2 at byte 3: a copy without its offset");
	/* a copy past the end of the source, and far past it */
	ck_assert_int_eq(jig_delta_apply(src, 8, (const uint8_t *)"\x81\x00\x04", 3, out, sizeof(out), &len, &err), -1);
	ck_assert_str_eq(err.msg, "delta: op 1 at byte 0: copies 5 bytes at offset 4 of a 8-byte source");
	ck_assert_int_eq(jig_delta_apply(src, 8, (const uint8_t *)"\x80\xff\xff", 3, out, sizeof(out), &len, &err), -1);
	ck_assert_ptr_nonnull(strstr(err.msg, "offset 65535"));
	/* more than the caller's buffer */
	ck_assert_int_eq(jig_delta_apply(src, 8, (const uint8_t *)"\x84\x00\x00\x84\x00\x00", 6, out, 10, &len, &err),
	    -1);
	ck_assert_ptr_nonnull(strstr(err.msg, "op 2 at byte 3: rebuilds more than 10 bytes"));
	/* and what is well formed rebuilds exactly */
	ck_assert_int_eq(jig_delta_apply(src, 8, (const uint8_t *)"\x01xy\x80\x00\x04", 6, out, sizeof(out), &len, &err),
	    0);
	ck_assert_uint_eq(len, 6);
	ck_assert_int_eq(memcmp(out, "xy\x05\x06\x07\x08", 6), 0);
	ck_assert_int_eq(jig_delta_apply(src, 8, NULL, 0, out, sizeof(out), &len, &err), 0);
	ck_assert_uint_eq(len, 0);
}
END_TEST

/* The 1.2 CSR (PROTOCOL.md section 6) is a PKCS#10 request OpenSSL reads
 * back byte for byte, whose self-signature verifies. */
START_TEST(test_csr_v12)
{
	EVP_PKEY *key = EVP_EC_gen("P-256");
	unsigned char *spki = NULL, *again = NULL;
	uint8_t info[JIG_CSR_MAX], csr[JIG_CSR_MAX], sig[JIG_SIG_MAX];
	size_t ilen, clen, slen = sizeof(sig);
	const unsigned char *p;
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	X509_REQ *req;
	char cn[80];
	int n;
	st_err err;

	ck_assert_ptr_nonnull(key);
	ck_assert_int_gt(n = i2d_PUBKEY(key, &spki), 0);
	ck_assert_int_eq(jig_csr_info("SE0123456789ABCDEF", spki, (size_t)n, info, sizeof(info), &ilen, &err), 0);
	ck_assert_int_eq(EVP_DigestSignInit(md, NULL, EVP_sha256(), NULL, key), 1);
	ck_assert_int_eq(EVP_DigestSign(md, sig, &slen, info, ilen), 1);
	ck_assert_int_eq(jig_csr_assemble(info, ilen, sig, slen, csr, sizeof(csr), &clen, &err), 0);
	p = csr;
	ck_assert_ptr_nonnull(req = d2i_X509_REQ(NULL, &p, (long)clen));
	ck_assert_ptr_eq(p, csr + clen);
	ck_assert_int_eq(X509_REQ_verify(req, key), 1);
	ck_assert_int_gt(X509_NAME_get_text_by_NID(X509_REQ_get_subject_name(req), NID_commonName, cn, sizeof(cn)), 0);
	ck_assert_str_eq(cn, "SE0123456789ABCDEF");
	ck_assert_int_eq(i2d_X509_REQ(req, &again), (int)clen);
	ck_assert_int_eq(memcmp(again, csr, clen), 0);
	X509_REQ_free(req);
	/* a signature over other bytes does not verify */
	sig[slen - 1] ^= 1;
	ck_assert_int_eq(jig_csr_assemble(info, ilen, sig, slen, csr, sizeof(csr), &clen, &err), 0);
	p = csr;
	req = d2i_X509_REQ(NULL, &p, (long)clen);
	ck_assert(!req || X509_REQ_verify(req, key) != 1);
	X509_REQ_free(req);
	/* what cannot be one */
	ck_assert_int_eq(jig_csr_info("", spki, (size_t)n, info, sizeof(info), &ilen, &err), -1);
	ck_assert_int_eq(jig_csr_info("SE1", (const uint8_t *)"\x04\x01", 2, info, sizeof(info), &ilen, &err), -1);
	ck_assert_ptr_nonnull(strstr(err.msg, "not a DER SEQUENCE"));
	ck_assert_int_eq(jig_csr_assemble(info, ilen, sig, 7, csr, sizeof(csr), &clen, &err), -1);
	ERR_clear_error();
	OPENSSL_free(spki);
	OPENSSL_free(again);
	EVP_MD_CTX_free(md);
	EVP_PKEY_free(key);
}
END_TEST

/* SE_INFO 1.2's certificate rebuilt against the chain payload, its
 * template and the serial; never against a 1.1 chain (no template). */
START_TEST(test_attest_rebuild)
{
	static jig_se_info info;
	static uint8_t src[JIG_CHAIN_PAYLOAD_MAX], target[700];
	size_t slen, i;
	st_err err;

	memset(&info, 0, sizeof(info));
	strcpy(info.serial, "SE0123456789ABCDEF");
	info.ncerts = 2;
	blob(&info.certs[1], 400, 31);
	blob(&info.chain_tmpl, 500, 32);
	info.chain_has_tmpl = 1;
	info.cert_by_delta = 1;
	ck_assert_int_eq(jig_chain_payload(&info.certs[1], 1, &info.chain_tmpl, src, sizeof(src), &slen), 0);
	memcpy(src + slen, info.serial, strlen(info.serial));
	/* a target made of the template, the serial and bytes of its own */
	memcpy(target, info.chain_tmpl.data + 20, 300);
	memcpy(target + 300, info.serial, 18);
	for (i = 318; i < sizeof(target); i++)
		target[i] = (uint8_t)(rand() >> 4);
	ck_assert_int_eq(jig_delta_make(src, slen + 18, target, sizeof(target), info.attest_delta.data,
	    sizeof(info.attest_delta.data), &info.attest_delta.len, &err), 0);
	ck_assert_uint_lt(info.attest_delta.len, sizeof(target) - 300);
	ck_assert_msg(jig_attest_cert_rebuild(&info, &err) == 0, "%s", err.msg);
	ck_assert_uint_eq(info.certs[0].len, sizeof(target));
	ck_assert_int_eq(memcmp(info.certs[0].data, target, sizeof(target)), 0);
	ck_assert_int_eq(info.cert_by_delta, 0);
	/* the digest names a 1.1 chain the station has cached: refused */
	info.chain_has_tmpl = 0;
	info.cert_by_delta = 1;
	ck_assert_int_eq(jig_attest_cert_rebuild(&info, &err), -1);
	ck_assert_int_eq(err.code, ST_E_VERIFY);
	ck_assert_ptr_nonnull(strstr(err.msg, "protocol 1.1 chain"));
	/* a delta that reaches past its source names the op */
	info.chain_has_tmpl = 1;
	memcpy(info.attest_delta.data, "\x80\xff\x00", 3);
	info.attest_delta.len = 3;
	ck_assert_int_eq(jig_attest_cert_rebuild(&info, &err), -1);
	ck_assert_ptr_nonnull(strstr(err.msg, "SE_INFO: attestation certificate: delta: op 1 at byte 0"));
}
END_TEST

int
main(void)
{
	Suite *s = suite_create("jig-codec");
	TCase *tc = tcase_create("codec");

	tcase_add_test(tc, test_crc32);
	tcase_add_loop_test(tc, test_roundtrip_every_message, 0, 3);
	tcase_add_test(tc, test_v12_malformed);
	tcase_add_test(tc, test_delta_round_trip);
	tcase_add_test(tc, test_delta_rejects);
	tcase_add_test(tc, test_csr_v12);
	tcase_add_test(tc, test_attest_rebuild);
	tcase_add_test(tc, test_v11_malformed);
	tcase_add_test(tc, test_chain_digest);
	tcase_add_test(tc, test_names);
	tcase_add_test(tc, test_frame_rejects);
	tcase_add_test(tc, test_frame_max_size);
	tcase_add_test(tc, test_stream_resync);
	tcase_add_test(tc, test_unknown_type);
	tcase_add_test(tc, test_malformed_payloads);
	tcase_add_test(tc, test_attest);
	tcase_add_test(tc, test_challenge_message);
	suite_add_tcase(s, tc);
	return tu_run_suite(s);
}
