/* The TPM commands' codec (PROTOCOL.md section 11) on its own: every
 * message round-trips byte for byte, and malformed payloads are refused
 * with where and why.  JIG_WRITE_CORPUS=DIR writes each encoded frame as a
 * seed of the jig-frame fuzz corpus (DIR/corpus-jig-frame/tpm-*). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jig-codec.h"
#include "testutil.h"

static jig_msg m, back;

static void
roundtrip(const char *name)
{
	static uint8_t payload[JIG_MAX_PAYLOAD], again[JIG_MAX_PAYLOAD], frame[JIG_MAX_FRAME];
	static jig_frame f;
	const char *dir = getenv("JIG_WRITE_CORPUS");
	size_t n, n2, flen;
	st_err err;

	ck_assert_msg(jig_msg_encode(&m, payload, sizeof(payload), &n, &err) == 0, "%s: %s", name, err.msg);
	ck_assert_msg(jig_msg_decode(m.type, payload, n, &back, &err) == 0, "%s: %s", name, err.msg);
	ck_assert_int_eq(jig_msg_encode(&back, again, sizeof(again), &n2, &err), 0);
	ck_assert_uint_eq(n, n2);
	ck_assert_mem_eq(payload, again, n);
	if (dir) {
		char path[1024];

		f.version = 1;
		f.type = m.type;
		f.seq = 7;
		f.len = (uint16_t)n;
		memcpy(f.payload, payload, n);
		ck_assert_int_eq(jig_frame_encode(&f, frame, sizeof(frame), &flen, &err), 0);
		snprintf(path, sizeof(path), "%s/corpus-jig-frame/tpm-%s", dir, name);
		ck_assert_msg(st_file_write_atomic(path, frame, flen, 0644, &err) == 0, "%s", err.msg);
	}
}

static void
blob(jig_blob *b, size_t n, uint8_t fill)
{
	memset(b->data, fill, n);
	b->len = n;
}

static void
assert_bad(uint8_t type, const uint8_t *p, size_t n, const char *want)
{
	st_err err;

	st_err_clear(&err);
	ck_assert_int_eq(jig_msg_decode(type, p, n, &back, &err), -1);
	ck_assert_int_eq(err.code, ST_E_PROTO);
	ck_assert_msg(strstr(err.msg, want), "\"%s\" not in \"%s\"", want, err.msg);
}

START_TEST(every_tpm_message_round_trips)
{
	memset(&m, 0, sizeof(m));
	m.type = JIG_CMD_TPM_INFO;
	roundtrip("info-req");
	m.type = JIG_CMD_TPM_INFO | JIG_RESPONSE;
	m.u.tpm_info.manufacturer = 0x49424d00;
	snprintf(m.u.tpm_info.vendor, sizeof(m.u.tpm_info.vendor), "SW   TPM");
	m.u.tpm_info.fw1 = 0x20191023;
	m.u.tpm_info.fw2 = 0x163636;
	m.u.tpm_info.nv_attrs[1] = 0x2000000;
	blob(&m.u.tpm_info.ek_public, 316, 0x11);
	m.u.tpm_info.n_ekcerts = 2;
	blob(&m.u.tpm_info.ek_certs[0], 1016, 0x30);
	blob(&m.u.tpm_info.ek_certs[1], 842, 0x31);
	roundtrip("info");
	ck_assert_str_eq(back.u.tpm_info.vendor, "SW   TPM");
	ck_assert_uint_eq(back.u.tpm_info.n_ekcerts, 2);
	ck_assert_uint_eq(back.u.tpm_info.ek_certs[1].len, 842);

	memset(&m, 0, sizeof(m));
	m.type = JIG_CMD_TPM_KEYGEN;
	m.u.tpm_keygen_req.flags = JIG_KEYGEN_KEEP;
	roundtrip("keygen-req");
	m.type = JIG_CMD_TPM_KEYGEN | JIG_RESPONSE;
	blob(&m.u.tpm_keys.iak, 90, 1);
	blob(&m.u.tpm_keys.idevid, 90, 2);
	roundtrip("keygen");
	m.type = JIG_CMD_TPM_ACTIVATE;
	blob(&m.u.tpm_activate_req.credential, 70, 3);
	blob(&m.u.tpm_activate_req.secret, 258, 4);
	roundtrip("activate-req");
	m.type = JIG_CMD_TPM_ACTIVATE | JIG_RESPONSE;
	blob(&m.u.tpm_secret, 34, 5);
	roundtrip("activate");
	m.type = JIG_CMD_TPM_CERTIFY;
	memset(m.u.tpm_certify_req.nonce, 6, JIG_NONCE_LEN);
	roundtrip("certify-req");
	m.type = JIG_CMD_TPM_CERTIFY | JIG_RESPONSE;
	blob(&m.u.tpm_certify.attest, 160, 7);
	blob(&m.u.tpm_certify.signature, 72, 8);
	blob(&m.u.tpm_certify.csr, 300, 9);
	roundtrip("certify");
	m.type = JIG_CMD_TPM_NV_WRITE;
	m.u.tpm_nv_write_req.which = JIG_TPM_NV_IDEVID;
	blob(&m.u.tpm_nv_write_req.data, 600, 10);
	roundtrip("nv-write-req");
	m.type = JIG_CMD_TPM_NV_WRITE | JIG_RESPONSE;
	roundtrip("nv-write");
	m.type = JIG_CMD_TPM_NV_READ;
	m.u.tpm_nv_req.which = JIG_TPM_NV_IAK;
	roundtrip("nv-read-req");
	m.type = JIG_CMD_TPM_NV_READ | JIG_RESPONSE;
	m.u.tpm_nv.attrs = 0x2008002;
	blob(&m.u.tpm_nv.data, 600, 11);
	roundtrip("nv-read");
	m.type = JIG_CMD_TPM_LOCK;
	roundtrip("lock-req");
	m.type = JIG_CMD_TPM_LOCK | JIG_RESPONSE;
	m.u.tpm_lock.attrs[0] = m.u.tpm_lock.attrs[1] = 0x2000000;
	roundtrip("lock");
	m.type = JIG_CMD_TPM_REWORK_SIGN;
	memset(m.u.tpm_rework_req.challenge, 12, JIG_NONCE_LEN);
	roundtrip("rework-sign-req");
	ck_assert_mem_eq(back.u.tpm_rework_req.challenge, m.u.tpm_rework_req.challenge, JIG_NONCE_LEN);
	m.type = JIG_CMD_TPM_REWORK_SIGN | JIG_RESPONSE;
	blob(&m.u.tpm_signature, 72, 13);
	roundtrip("rework-sign");
	ck_assert_uint_eq(back.u.tpm_signature.len, 72);
	m.type = JIG_CMD_TPM_RETIRE;
	roundtrip("retire-req");
	m.type = JIG_CMD_TPM_RETIRE | JIG_RESPONSE;
	m.u.tpm_lock.attrs[0] = m.u.tpm_lock.attrs[1] = 0;
	roundtrip("retire");
	ck_assert_str_eq(jig_cmd_name(JIG_CMD_TPM_REWORK_SIGN), "TPM_REWORK_SIGN");
	ck_assert_str_eq(jig_cmd_name(JIG_CMD_TPM_RETIRE), "TPM_RETIRE");
	ck_assert_str_eq(jig_cmd_name(JIG_CMD_TPM_CERTIFY), "TPM_CERTIFY");
	ck_assert(jig_type_known(JIG_CMD_TPM_LOCK | JIG_RESPONSE));
	ck_assert(!jig_type_known(JIG_CMD_CERT_TEMPLATE + 1));
}
END_TEST

START_TEST(malformed_tpm_payloads_are_refused_with_where_and_why)
{
	/* TPM_INFO: manufacturer, vendor "A\x01", ... */
	static const uint8_t ctrl_vendor[] = { 0, 0, 0, 1, 0, 2, 'A', 0x01, 0, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0,
		0, 1, 0xAA, 0 };
	static const uint8_t info_head[] = { 0, 0, 0, 1, 0, 1, 'A', 0, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0 };
	uint8_t p[64];
	size_t n;

	assert_bad(JIG_CMD_TPM_INFO | JIG_RESPONSE, ctrl_vendor, sizeof(ctrl_vendor), "vendor: byte 2 is 0x01");
	/* no EK public */
	memcpy(p, info_head, sizeof(info_head));
	n = sizeof(info_head);
	p[n++] = 0;
	p[n++] = 0; /* EK public: empty */
	p[n++] = 0; /* no certificates */
	assert_bad(JIG_CMD_TPM_INFO | JIG_RESPONSE, p, n, "EK public: empty");
	/* four EK certificates */
	n = sizeof(info_head);
	p[n++] = 0;
	p[n++] = 1;
	p[n++] = 0xAA;
	p[n++] = 4;
	assert_bad(JIG_CMD_TPM_INFO | JIG_RESPONSE, p, n, "EK certificate count: 4, at most 3");
	/* truncated */
	assert_bad(JIG_CMD_TPM_INFO | JIG_RESPONSE, info_head, 10, "firmware 1: truncated");
	/* KEYGEN flags */
	p[0] = 0x82;
	assert_bad(JIG_CMD_TPM_KEYGEN, p, 1, "flags: unknown bits 0x82");
	/* CERTIFY: a nonce of 31 bytes */
	p[0] = 0;
	p[1] = 31;
	memset(p + 2, 0, 31);
	assert_bad(JIG_CMD_TPM_CERTIFY, p, 33, "nonce: 31 bytes, must be 32");
	/* NV_WRITE: index 3, then empty data */
	p[0] = 3;
	p[1] = 0;
	p[2] = 1;
	p[3] = 0x30;
	assert_bad(JIG_CMD_TPM_NV_WRITE, p, 4, "index: 3 is not 1 (IAK certificate) or 2 (IDevID certificate)");
	p[0] = 2;
	p[2] = 0;
	assert_bad(JIG_CMD_TPM_NV_WRITE, p, 3, "data: empty");
	/* trailing bytes after a LOCK response */
	memset(p, 0, 9);
	assert_bad(JIG_CMD_TPM_LOCK | JIG_RESPONSE, p, 9, "1 trailing bytes");
	/* a blob longer than the protocol allows */
	p[0] = 0x08;
	p[1] = 0x01;
	assert_bad(JIG_CMD_TPM_ACTIVATE | JIG_RESPONSE, p, 2, "certInfo: truncated");
	/* REWORK_SIGN: a challenge of 33 bytes, none at all, one trailing byte */
	p[0] = 0;
	p[1] = 33;
	memset(p + 2, 0, 34);
	assert_bad(JIG_CMD_TPM_REWORK_SIGN, p, 35, "challenge: 33 bytes, must be 32");
	assert_bad(JIG_CMD_TPM_REWORK_SIGN, p, 0, "challenge: truncated");
	p[1] = 32;
	assert_bad(JIG_CMD_TPM_REWORK_SIGN, p, 35, "1 trailing bytes");
	/* ... its answer: an empty signature, a signature cut short */
	p[0] = 0;
	p[1] = 0;
	assert_bad(JIG_CMD_TPM_REWORK_SIGN | JIG_RESPONSE, p, 2, "signature: empty");
	p[1] = 72;
	assert_bad(JIG_CMD_TPM_REWORK_SIGN | JIG_RESPONSE, p, 40, "signature: truncated");
	/* RETIRE: the request is empty, the answer two u32 */
	assert_bad(JIG_CMD_TPM_RETIRE, p, 1, "1 trailing bytes");
	assert_bad(JIG_CMD_TPM_RETIRE | JIG_RESPONSE, p, 6, "IDevID certificate index attributes: truncated");
}
END_TEST

/* The TPM device's serial both ends compute, and the message its IDevID
 * signs for rework. */
START_TEST(tpm_serial_and_rework_message)
{
	static const uint8_t ek[] = { 0x00, 0x03, 'a', 'b', 'c' };
	uint8_t ch[JIG_NONCE_LEN], msg[128];
	char serial[20];
	size_t len;
	st_err err;

	jig_tpm_serial(ek, sizeof(ek), serial);
	/* SHA-256(00 03 61 62 63) = 757f0dea9aa0c1f8... (sha256sum of those bytes) */
	ck_assert_str_eq(serial, "TPM757F0DEA9AA0C1F8");
	memset(ch, 0x5a, sizeof(ch));
	ck_assert_int_eq(jig_challenge_message(JIG_TAG_TPM_REWORK, serial, ch, msg, sizeof(msg), &len, &err), 0);
	ck_assert_uint_eq(len, 21 + 1 + 19 + 32);
	ck_assert_mem_eq(msg, "station-tpm-rework-v1", 21);
	ck_assert_uint_eq(msg[21], 19);
	ck_assert_mem_eq(msg + 22, serial, 19);
	ck_assert_mem_eq(msg + 41, ch, 32);
}
END_TEST

int
main(void)
{
	Suite *s = suite_create("tpm-msg");
	TCase *tc = tcase_create("tpm-msg");

	tcase_add_test(tc, every_tpm_message_round_trips);
	tcase_add_test(tc, malformed_tpm_payloads_are_refused_with_where_and_why);
	tcase_add_test(tc, tpm_serial_and_rework_message);
	suite_add_tcase(s, tc);
	return tu_run_suite(s);
}
