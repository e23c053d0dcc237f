/* jigsim in-process, one frame at a time through jigsim_handle: the SE
 * model, the command preconditions, retransmission and every fault as the
 * station would see it. */
#include <stdlib.h>
#include <string.h>

#include <openssl/core_names.h>
#include <openssl/x509v3.h>

#include "cms.h"
#include "jigsim-int.h" /* only to find the keys the SE must never reveal */
#include "jsutil.h"

static jigsim *
sim_new(unsigned faults, unsigned every, unsigned devices)
{
	jigsim_config c;
	jigsim *s;
	st_err e;

	js_config(&c, js_test_pki);
	c.faults = faults;
	c.fault_every = every;
	c.devices = devices;
	s = jigsim_new(&c, &e);
	ck_assert_msg(s != NULL, "%s", e.msg);
	return s;
}

/* A call that must succeed. */
static void
ok(js_direct *d, const jig_msg *req, jig_msg *resp)
{
	st_err e;
	int rc = js_direct_call(d, req, resp, &e);

	ck_assert_msg(rc == 0, "%s: %s", jig_cmd_name(req->type),
	    rc > 0 ? resp->u.error.message : e.msg);
}

/* A call that must fail with the jig error `code`. */
static void
fails(js_direct *d, const jig_msg *req, int code)
{
	jig_msg resp;
	st_err e;
	int rc = js_direct_call(d, req, &resp, &e);

	ck_assert_msg(rc == code, "%s: expected %s, got %d (%s)", jig_cmd_name(req->type), jig_error_name((uint16_t)code),
	    rc, rc > 0 ? resp.u.error.message : "");
	ck_assert_uint_eq(resp.u.error.command, req->type);
}

static void
se_info(js_direct *d, jig_se_info *info)
{
	jig_msg req, resp;

	js_req(&req, JIG_CMD_SE_INFO);
	ok(d, &req, &resp);
	*info = resp.u.se_info;
}

static void
authenticate(js_direct *d, jig_se_info *info)
{
	jig_msg req, resp;

	se_info(d, info);
	js_req(&req, JIG_CMD_AUTH_RESPONSE);
	js_sign(js_test_pki->tool, JIG_TAG_TOOL_AUTH, info->serial, info->challenge, &req.u.signature);
	ok(d, &req, &resp);
}

static void
keygen(js_direct *d, uint8_t slot, uint8_t flags, jig_blob *pub)
{
	jig_msg req, resp;

	js_req(&req, JIG_CMD_KEYGEN);
	req.u.keygen_req.slot = slot;
	req.u.keygen_req.algorithm = JIG_ALG_P256;
	req.u.keygen_req.flags = flags;
	ok(d, &req, &resp);
	*pub = resp.u.pubkey;
}

static void
power(js_direct *d, uint8_t action, int present, int powered)
{
	jig_msg req, resp;

	js_req(&req, JIG_CMD_DUT_POWER);
	req.u.power_req.action = action;
	ok(d, &req, &resp);
	ck_assert_int_eq(resp.u.dut.present, present);
	ck_assert_int_eq(resp.u.dut.powered, powered);
}

/* A request with a hand-made payload; returns the jig's error code or 0. */
static int
raw_call(jigsim *s, uint8_t type, const uint8_t *payload, size_t len)
{
	static uint8_t in[JIG_MAX_FRAME], out[JIG_MAX_FRAME];
	static jig_frame f;
	jig_msg resp;
	size_t n, got;
	st_err e;

	f.version = 1;
	f.type = type;
	f.seq++;
	f.len = (uint16_t)len;
	memcpy(f.payload, payload, len);
	ck_assert_int_eq(jig_frame_encode(&f, in, sizeof(in), &n, &e), 0);
	ck_assert_int_eq(jigsim_handle(s, in, n, out, sizeof(out), &got, &e), JIGSIM_REPLY);
	ck_assert_int_eq(js_unframe(out, got, &resp), 0);
	return resp.type == JIG_T_ERROR ? resp.u.error.code : 0;
}

/* _i 0: protocol 1.0, 1: 1.1, 2: 1.2 (the station offers 1..1 + _i, the jig picks the highest) */
START_TEST(test_factory_conversation)
{
	jigsim *s = sim_new(0, 0, 3);
	js_direct d = { .s = s };
	js_device *dev = calloc(1, sizeof(*dev));
	char first[JIG_STR_MAX + 1];
	jigsim_device_info di;
	uint8_t der[JIG_BLOB_MAX];
	size_t len;
	jig_msg req, resp;
	int i;

	js_req(&req, JIG_CMD_HELLO);
	req.u.hello_req.min_version = 1;
	req.u.hello_req.max_version = (uint8_t)(1 + _i);
	ok(&d, &req, &resp);
	ck_assert_uint_eq(resp.u.hello.version, 1 + _i);
	ck_assert_str_eq(resp.u.hello.jig_id, "jigsim-1");
	ck_assert_uint_eq(resp.u.hello.capabilities, JIG_CAP_DUT_DETECT | JIG_CAP_DUT_POWER | JIG_CAP_REWORK);
	ck_assert_uint_eq(resp.u.hello.max_payload, JIG_MAX_PAYLOAD);

	for (i = 1; i <= 3; i++) {
		js_provision(js_direct_call, &d, js_test_pki, dev);
		ck_assert_msg(dev->failed_at == 0, "device %d failed at %s (%d, %s)", i, jig_cmd_name(dev->failed_at),
		    dev->code, js_verdict_name(dev->verdict));
		/* A fresh SE each time: "SE" + 16 hex digits, the defaults, factory state. */
		ck_assert_uint_eq(strlen(dev->info.serial), 18);
		ck_assert_int_eq(strncmp(dev->info.serial, "SE", 2), 0);
		ck_assert_uint_eq(strspn(dev->info.serial + 2, "0123456789ABCDEF"), 16);
		ck_assert_str_eq(dev->info.model, "TSE-100");
		ck_assert_uint_eq(dev->info.firmware, 0x01040002); /* 1.4.2 */
		ck_assert_uint_eq(dev->info.lifecycle, JIG_LC_FACTORY);
		ck_assert_uint_eq(dev->info.ncerts, 2);
		ck_assert_int_eq(dev->info.chain_by_digest, _i > 0);
		if (_i) /* the chain once, by digest after */
			ck_assert_int_eq(dev->chain_fetched, i == 1);
		if (i == 1)
			strcpy(first, dev->info.serial);
		else
			ck_assert_str_ne(first, dev->info.serial);

		ck_assert_int_eq(jigsim_device_get(s, (unsigned)i, &di), 0);
		ck_assert_str_eq(di.serial, dev->info.serial);
		ck_assert_uint_eq(di.lifecycle, JIG_LC_PROVISIONED);
		ck_assert_uint_eq(di.keygens, 1);
		ck_assert_int_eq(di.present, 0);
		ck_assert_int_eq(jigsim_device_cert(s, (unsigned)i, 0, der, sizeof(der), &len), 0);
		ck_assert_uint_eq(len, dev->cert.len);
		ck_assert_mem_eq(der, dev->cert.data, len);
		ck_assert_uint_eq(jigsim_released(s), (unsigned)i);
	}
	/* The panel of three is done. */
	ck_assert_uint_eq(jigsim_device_count(s), 3);
	ck_assert_int_eq(jigsim_device_get(s, 0, &di), -1);
	js_req(&req, JIG_CMD_SE_INFO);
	fails(&d, &req, JIG_E_NO_DUT);
	js_req(&req, JIG_CMD_DUT_STATUS);
	ok(&d, &req, &resp);
	ck_assert_int_eq(resp.u.dut.present, 0);
	free(dev);
	jigsim_free(s);
}
END_TEST

static void fix_crc(uint8_t *f, size_t n);

/* Version negotiation (PROTOCOL.md section 3): HELLO in version 1 picks
 * the version; every frame after it is in that version; a jig with 1.0
 * firmware (--protocol 1.0) has no 1.1 command. */
START_TEST(test_versions)
{
	jigsim_config c;
	jigsim *s;
	js_direct d;
	jig_msg req, resp;
	uint8_t in[JIG_MAX_FRAME], out[JIG_MAX_FRAME];
	size_t n, got;
	st_err e;

	js_config(&c, js_test_pki);
	s = jigsim_new(&c, &e);
	ck_assert_ptr_nonnull(s);
	d = (js_direct){ .s = s };
	/* before HELLO: version-1 frames only */
	js_req(&req, JIG_CMD_DUT_STATUS);
	ok(&d, &req, &resp);
	js_req(&req, JIG_CMD_HELLO);
	req.u.hello_req.min_version = 1;
	req.u.hello_req.max_version = 2;
	ok(&d, &req, &resp);
	ck_assert_uint_eq(resp.u.hello.version, JIG_VERSION_1_1);
	ck_assert_uint_eq(resp.u.hello.nrates, 0);
	/* 1.1 negotiated: a version-1 frame is refused, naming both versions */
	js_req(&req, JIG_CMD_SE_INFO);
	req.version = 1;
	n = js_frame(40, &req, in);
	ck_assert_int_eq(jigsim_handle(s, in, n, out, sizeof(out), &got, &e), JIGSIM_REPLY);
	ck_assert_int_eq(js_unframe(out, got, &resp), 0);
	ck_assert_uint_eq(resp.u.error.code, JIG_E_UNSUPPORTED_VERSION);
	ck_assert_msg(strstr(resp.u.error.message, "protocol 1.1 was negotiated, not 1.0"), "%s", resp.u.error.message);
	/* HELLO itself in a version-2 frame is refused */
	js_req(&req, JIG_CMD_HELLO);
	req.u.hello_req.min_version = 1;
	req.u.hello_req.max_version = 2;
	req.version = 2;
	n = js_frame(41, &req, in);
	ck_assert_int_eq(jigsim_handle(s, in, n, out, sizeof(out), &got, &e), JIGSIM_REPLY);
	ck_assert_int_eq(js_unframe(out, got, &resp), 0);
	ck_assert_uint_eq(resp.u.error.code, JIG_E_UNSUPPORTED_VERSION);
	/* VENDOR_CHAIN answers in 1.1, and hashes to SE_INFO's digest */
	{
		jig_se_info info;
		uint8_t h[32];

		js_req(&req, JIG_CMD_SE_INFO);
		ok(&d, &req, &resp);
		info = resp.u.se_info;
		ck_assert_int_eq(info.chain_by_digest, 1);
		ck_assert_uint_eq(info.ncerts, 1);
		js_req(&req, JIG_CMD_VENDOR_CHAIN);
		ok(&d, &req, &resp);
		jig_chain_digest(resp.u.chain.certs, resp.u.chain.n, NULL, h);
		ck_assert_mem_eq(h, info.chain_sha256, 32);
		/* SET_BAUD: this jig has no serial line */
		js_req(&req, JIG_CMD_SET_BAUD);
		req.u.baud_req.baud = 921600;
		req.u.baud_req.confirm_ms = 500;
		fails(&d, &req, JIG_E_BAD_REQUEST);
	}
	/* a new connection forgets the version: 1.0 again, where VENDOR_CHAIN is no command */
	jigsim_connection_reset(s);
	d.version = 0;
	js_req(&req, JIG_CMD_DUT_STATUS); /* no encoder writes it: patched in */
	n = js_frame(42, &req, in);
	in[2] = JIG_CMD_VENDOR_CHAIN;
	fix_crc(in, n);
	ck_assert_int_eq(jigsim_handle(s, in, n, out, sizeof(out), &got, &e), JIGSIM_REPLY);
	ck_assert_int_eq(js_unframe(out, got, &resp), 0);
	ck_assert_uint_eq(resp.u.error.code, JIG_E_UNKNOWN_COMMAND);
	jigsim_free(s);

	/* jigsim --protocol 1.0: the station offering 1..2 gets 1.0 and 1.0's SE_INFO */
	c.max_version = JIG_VERSION_1_0;
	s = jigsim_new(&c, &e);
	ck_assert_ptr_nonnull(s);
	d = (js_direct){ .s = s };
	js_req(&req, JIG_CMD_HELLO);
	req.u.hello_req.min_version = 1;
	req.u.hello_req.max_version = 2;
	ok(&d, &req, &resp);
	ck_assert_uint_eq(resp.u.hello.version, JIG_VERSION_1_0);
	js_req(&req, JIG_CMD_SE_INFO);
	ok(&d, &req, &resp);
	ck_assert_int_eq(resp.u.se_info.chain_by_digest, 0);
	ck_assert_uint_eq(resp.u.se_info.ncerts, 2);
	js_req(&req, JIG_CMD_HELLO);
	req.u.hello_req.min_version = 2;
	req.u.hello_req.max_version = 2;
	fails(&d, &req, JIG_E_UNSUPPORTED_VERSION);
	jigsim_free(s);
}
END_TEST

START_TEST(test_preconditions)
{
	jigsim *s = sim_new(0, 0, 0);
	js_direct d = { .s = s };
	jig_se_info info;
	jig_blob pub;
	jig_msg req, resp;

	/* Nothing provisioning-related before the tool has authenticated. */
	js_req(&req, JIG_CMD_KEYGEN);
	req.u.keygen_req.algorithm = JIG_ALG_P256;
	fails(&d, &req, JIG_E_NOT_AUTHENTICATED);
	js_req(&req, JIG_CMD_LOCK);
	fails(&d, &req, JIG_E_NOT_AUTHENTICATED);

	/* A signature by another key fails and uses up the challenge. */
	se_info(&d, &info);
	js_req(&req, JIG_CMD_AUTH_RESPONSE);
	js_sign(js_test_pki->ca_key, JIG_TAG_TOOL_AUTH, info.serial, info.challenge, &req.u.signature);
	fails(&d, &req, JIG_E_AUTH_FAILED);
	js_sign(js_test_pki->tool, JIG_TAG_TOOL_AUTH, info.serial, info.challenge, &req.u.signature);
	fails(&d, &req, JIG_E_AUTH_FAILED);
	/* The right key over the rework tag is not a tool signature either. */
	se_info(&d, &info);
	js_sign(js_test_pki->tool, JIG_TAG_REWORK, info.serial, info.challenge, &req.u.signature);
	fails(&d, &req, JIG_E_AUTH_FAILED);

	authenticate(&d, &info);
	js_req(&req, JIG_CMD_GET_CSR);
	fails(&d, &req, JIG_E_SLOT_EMPTY);
	/* Our encoder refuses to write these: hand-made payloads. */
	ck_assert_int_eq(raw_call(s, JIG_CMD_KEYGEN, (const uint8_t[]){ 16, JIG_ALG_P256, 0 }, 3), JIG_E_BAD_SLOT);
	ck_assert_int_eq(raw_call(s, JIG_CMD_KEYGEN, (const uint8_t[]){ 0, 3, 0 }, 3), JIG_E_BAD_SLOT);
	ck_assert_int_eq(raw_call(s, JIG_CMD_READ_CERT, (const uint8_t[]){ 200 }, 1), JIG_E_BAD_SLOT);
	ck_assert_int_eq(raw_call(s, JIG_CMD_KEYGEN, (const uint8_t[]){ 0, JIG_ALG_P256, 0x80 }, 3), JIG_E_BAD_REQUEST);
	ck_assert_int_eq(raw_call(s, JIG_CMD_KEYGEN, (const uint8_t[]){ 0, JIG_ALG_P256, 0, 0 }, 4), JIG_E_BAD_REQUEST);
	ck_assert_int_eq(raw_call(s, JIG_CMD_DUT_POWER, (const uint8_t[]){ 3 }, 1), JIG_E_BAD_REQUEST);
	keygen(&d, 0, 0, &pub);

	/* A certificate for another key does not go in. */
	js_req(&req, JIG_CMD_INSTALL_CERT);
	{
		jig_msg csr;
		jig_blob other;

		keygen(&d, 1, 0, &other);
		js_req(&csr, JIG_CMD_GET_CSR);
		csr.u.csr_req.slot = 1;
		ok(&d, &csr, &resp);
		js_issue(js_test_pki, &resp.u.csr.csr, &req.u.install_req.cert);
	}
	fails(&d, &req, JIG_E_BAD_REQUEST);
	req.u.install_req.slot = 1;
	ok(&d, &req, &resp);

	js_req(&req, JIG_CMD_REWORK_CHALLENGE);
	fails(&d, &req, JIG_E_BAD_STATE);
	js_req(&req, JIG_CMD_LOCK);
	ok(&d, &req, &resp);
	ck_assert_uint_eq(resp.u.lock.lifecycle, JIG_LC_PROVISIONED);
	fails(&d, &req, JIG_E_LOCKED);
	js_req(&req, JIG_CMD_KEYGEN);
	req.u.keygen_req.algorithm = JIG_ALG_P256;
	fails(&d, &req, JIG_E_LOCKED);

	/* Power off loses the authentication; power on does not bring it back. */
	power(&d, JIG_POWER_OFF, 1, 0);
	js_req(&req, JIG_CMD_SE_INFO);
	fails(&d, &req, JIG_E_NO_DUT);
	power(&d, JIG_POWER_ON, 1, 1);
	js_req(&req, JIG_CMD_REWORK_CHALLENGE);
	fails(&d, &req, JIG_E_NOT_AUTHENTICATED);
	jigsim_free(s);
}
END_TEST

/* After editing a frame's header or payload: a valid CRC again. */
static void
fix_crc(uint8_t *f, size_t n)
{
	uint32_t crc = jig_crc32(f + 1, n - 5);

	f[n - 4] = (uint8_t)(crc >> 24);
	f[n - 3] = (uint8_t)(crc >> 16);
	f[n - 2] = (uint8_t)(crc >> 8);
	f[n - 1] = (uint8_t)crc;
}

START_TEST(test_frames)
{
	jigsim *s = sim_new(0, 0, 0);
	uint8_t in[JIG_MAX_FRAME], out[JIG_MAX_FRAME];
	size_t n, got;
	jig_msg req, resp;
	st_err e;

	/* Unknown command, short payload, wrong versions: error frames with our seq. */
	js_req(&req, JIG_CMD_DUT_STATUS);
	n = js_frame(7, &req, in);
	in[2] = 0x42;
	fix_crc(in, n);
	ck_assert_int_eq(jigsim_handle(s, in, n, out, sizeof(out), &got, &e), JIGSIM_REPLY);
	ck_assert_int_eq(js_unframe(out, got, &resp), 0);
	ck_assert_uint_eq(out[3], 7);
	ck_assert_uint_eq(resp.type, JIG_T_ERROR);
	ck_assert_uint_eq(resp.u.error.code, JIG_E_UNKNOWN_COMMAND);
	ck_assert_uint_eq(resp.u.error.command, 0x42);

	js_req(&req, JIG_CMD_DUT_POWER); /* 1 payload byte expected */
	n = js_frame(8, &req, in);
	in[5] = 0; /* length 0 */
	n = 10;
	fix_crc(in, n);
	ck_assert_int_eq(jigsim_handle(s, in, n, out, sizeof(out), &got, &e), JIGSIM_REPLY);
	ck_assert_int_eq(js_unframe(out, got, &resp), 0);
	ck_assert_uint_eq(resp.u.error.code, JIG_E_BAD_REQUEST);

	js_req(&req, JIG_CMD_HELLO);
	req.u.hello_req.min_version = 4;
	req.u.hello_req.max_version = 5;
	n = js_frame(9, &req, in);
	ck_assert_int_eq(jigsim_handle(s, in, n, out, sizeof(out), &got, &e), JIGSIM_REPLY);
	ck_assert_int_eq(js_unframe(out, got, &resp), 0);
	ck_assert_uint_eq(resp.u.error.code, JIG_E_UNSUPPORTED_VERSION);
	ck_assert_ptr_nonnull(strstr(resp.u.error.message, "1..3"));

	/* A well-formed frame of version 2. */
	js_req(&req, JIG_CMD_DUT_STATUS);
	n = js_frame(10, &req, in);
	in[1] = 2;
	fix_crc(in, n);
	ck_assert_int_eq(jigsim_handle(s, in, n, out, sizeof(out), &got, &e), JIGSIM_REPLY);
	ck_assert_int_eq(js_unframe(out, got, &resp), 0);
	ck_assert_uint_eq(out[1], 1);
	ck_assert_uint_eq(out[3], 10);
	ck_assert_uint_eq(resp.u.error.code, JIG_E_UNSUPPORTED_VERSION);

	/* A bad CRC is line noise: no answer at all. */
	n = js_frame(11, &req, in);
	in[n - 1] ^= 1;
	ck_assert_int_eq(jigsim_handle(s, in, n, out, sizeof(out), &got, &e), JIGSIM_REPLY);
	ck_assert_uint_eq(got, 0);
	jigsim_free(s);
}
END_TEST

START_TEST(test_retransmission)
{
	jigsim *s = sim_new(0, 0, 0);
	js_direct d = { .s = s };
	uint8_t in[JIG_MAX_FRAME], out1[JIG_MAX_FRAME], out2[JIG_MAX_FRAME];
	size_t n, got1, got2;
	jigsim_device_info di;
	jig_se_info info;
	jig_blob pub, kept;
	jig_msg req;
	st_err e;

	authenticate(&d, &info);
	js_req(&req, JIG_CMD_KEYGEN);
	req.u.keygen_req.algorithm = JIG_ALG_P256;
	n = js_frame(40, &req, in);
	ck_assert_int_eq(jigsim_handle(s, in, n, out1, sizeof(out1), &got1, &e), 0);
	ck_assert_int_eq(jigsim_handle(s, in, n, out2, sizeof(out2), &got2, &e), 0);
	ck_assert_uint_eq(got1, got2);
	ck_assert_mem_eq(out1, out2, got1);
	ck_assert_int_eq(jigsim_device_get(s, 0, &di), 0);
	ck_assert_uint_eq(di.keygens, 1);

	/* Same seq, other bytes: a new command, executed. */
	req.u.keygen_req.slot = 2;
	n = js_frame(40, &req, in);
	ck_assert_int_eq(jigsim_handle(s, in, n, out2, sizeof(out2), &got2, &e), 0);
	ck_assert_int_eq(jigsim_device_get(s, 0, &di), 0);
	ck_assert_uint_eq(di.keygens, 2);

	/* KEEP returns the slot's key; without KEEP a new one replaces it. */
	keygen(&d, 5, 0, &pub);
	keygen(&d, 5, JIG_KEYGEN_KEEP, &kept);
	ck_assert_uint_eq(pub.len, kept.len);
	ck_assert_mem_eq(pub.data, kept.data, pub.len);
	keygen(&d, 5, 0, &kept);
	ck_assert_mem_ne(pub.data, kept.data, pub.len);
	ck_assert_int_eq(jigsim_device_get(s, 0, &di), 0);
	ck_assert_uint_eq(di.keygens, 4);
	jigsim_free(s);
}
END_TEST

START_TEST(test_rework)
{
	jigsim *s = sim_new(0, 0, 0);
	js_direct d = { .s = s };
	js_device *dev = calloc(1, sizeof(*dev));
	jigsim_device_info di;
	jig_se_info info;
	jig_blob sig, pub2;
	uint8_t ch[JIG_NONCE_LEN] = { 1, 2, 3 }, rpub[JIG_BLOB_MAX], rcert[JIG_BLOB_MAX];
	size_t rpub_len, rcert_len;
	EVP_PKEY *key;
	jig_msg req, resp;

	js_provision(js_direct_call, &d, js_test_pki, dev);
	ck_assert_uint_eq(dev->failed_at, 0);
	/* js_provision released it; take the next one through without release. */
	ck_assert_int_eq(jigsim_device_get(s, 0, &di), 0);
	ck_assert_uint_eq(di.index, 2);
	authenticate(&d, &info);
	keygen(&d, 0, 0, &dev->pubkey);
	js_req(&req, JIG_CMD_GET_CSR);
	ok(&d, &req, &resp);
	js_req(&req, JIG_CMD_INSTALL_CERT);
	js_issue(js_test_pki, &resp.u.csr.csr, &dev->cert);
	req.u.install_req.cert = dev->cert;
	ok(&d, &req, &resp);
	js_req(&req, JIG_CMD_RETIRE);
	fails(&d, &req, JIG_E_BAD_STATE); /* factory: that is the factory path's job */
	js_req(&req, JIG_CMD_LOCK);
	ok(&d, &req, &resp);

	/* RETIRE needs the current key's answer to a challenge in this power cycle. */
	js_req(&req, JIG_CMD_RETIRE);
	fails(&d, &req, JIG_E_NOT_AUTHENTICATED);
	js_req(&req, JIG_CMD_REWORK_CHALLENGE);
	memcpy(req.u.rework_req.challenge, ch, sizeof(ch));
	ok(&d, &req, &resp);
	sig = resp.u.signature;
	ck_assert_ptr_nonnull(key = js_pubkey(&dev->pubkey));
	ck_assert(js_verify(key, JIG_TAG_REWORK, info.serial, ch, &sig));
	ck_assert(!js_verify(key, JIG_TAG_TOOL_AUTH, info.serial, ch, &sig));
	EVP_PKEY_free(key);
	power(&d, JIG_POWER_OFF, 1, 0);
	power(&d, JIG_POWER_ON, 1, 1);
	authenticate(&d, &info);
	js_req(&req, JIG_CMD_RETIRE);
	fails(&d, &req, JIG_E_NOT_AUTHENTICATED);
	js_req(&req, JIG_CMD_REWORK_CHALLENGE);
	ok(&d, &req, &resp);
	js_req(&req, JIG_CMD_RETIRE);
	ok(&d, &req, &resp);
	fails(&d, &req, JIG_E_BAD_STATE);

	/* The retired key's public half and certificate are kept; the slot is empty. */
	ck_assert_int_eq(jigsim_device_get(s, 0, &di), 0);
	ck_assert_uint_eq(di.lifecycle, JIG_LC_REWORK);
	ck_assert_uint_eq(di.retired, 1);
	ck_assert_int_eq(jigsim_device_retired(s, 0, 0, rpub, sizeof(rpub), &rpub_len, rcert, sizeof(rcert), &rcert_len), 0);
	ck_assert_uint_eq(rpub_len, dev->pubkey.len);
	ck_assert_mem_eq(rpub, dev->pubkey.data, rpub_len);
	ck_assert_uint_eq(rcert_len, dev->cert.len);
	ck_assert_mem_eq(rcert, dev->cert.data, rcert_len);
	js_req(&req, JIG_CMD_READ_CERT);
	ok(&d, &req, &resp);
	ck_assert_uint_eq(resp.u.cert.len, 0);
	js_req(&req, JIG_CMD_GET_CSR);
	fails(&d, &req, JIG_E_SLOT_EMPTY);

	/* A new key, a new certificate, provisioned again. */
	keygen(&d, 0, 0, &pub2);
	ck_assert_mem_ne(pub2.data, dev->pubkey.data, pub2.len);
	js_req(&req, JIG_CMD_LOCK);
	ok(&d, &req, &resp);
	ck_assert_uint_eq(resp.u.lock.lifecycle, JIG_LC_PROVISIONED);
	ck_assert_int_eq(jigsim_device_get(s, 0, &di), 0);
	ck_assert_uint_eq(di.retired, 1);
	free(dev);
	jigsim_free(s);
}
END_TEST

/* ---- faults ----------------------------------------------------------------- */

/* Provision devices 1..n (released after each) and return the failures. */
static void
run_panel(jigsim *s, js_device *devs, int n)
{
	js_direct d = { .s = s };
	int i;

	for (i = 0; i < n; i++)
		js_provision(js_direct_call, &d, js_test_pki, &devs[i]);
}

START_TEST(test_fault_every)
{
	jigsim *s = sim_new(JIGSIM_F_READBACK_MISMATCH, 2, 0);
	js_device *devs = calloc(4, sizeof(*devs));
	jigsim_device_info di;
	int i;

	run_panel(s, devs, 4);
	for (i = 0; i < 4; i++) {
		ck_assert_int_eq(jigsim_device_get(s, (unsigned)i + 1, &di), 0);
		if (i % 2 == 1) {
			ck_assert_uint_eq(di.faults, JIGSIM_F_READBACK_MISMATCH);
			ck_assert_uint_eq(devs[i].failed_at, JIG_CMD_READ_CERT);
			/* One byte differs, the length is the same. */
			ck_assert_uint_eq(devs[i].readback.len, devs[i].cert.len);
			ck_assert_mem_ne(devs[i].readback.data, devs[i].cert.data, devs[i].cert.len);
			ck_assert_mem_eq(devs[i].readback.data, devs[i].cert.data, devs[i].cert.len - 1);
		} else {
			ck_assert_uint_eq(di.faults, 0);
			ck_assert_uint_eq(devs[i].failed_at, 0);
		}
	}
	free(devs);
	jigsim_free(s);
}
END_TEST

static void
keygen_frames(jigsim *s, uint8_t *in, size_t *n, uint8_t *out, size_t *got)
{
	js_direct d = { .s = s };
	jig_se_info info;
	jig_msg req;
	st_err e;

	authenticate(&d, &info);
	js_req(&req, JIG_CMD_KEYGEN);
	req.u.keygen_req.algorithm = JIG_ALG_P256;
	*n = js_frame(99, &req, in);
	ck_assert_int_eq(jigsim_handle(s, in, *n, out, JIG_MAX_FRAME, got, &e), JIGSIM_REPLY);
}

START_TEST(test_fault_corrupt_byte)
{
	jigsim *s = sim_new(JIGSIM_F_CORRUPT_BYTE, 0, 0);
	uint8_t in[JIG_MAX_FRAME], out[JIG_MAX_FRAME], out2[JIG_MAX_FRAME];
	size_t n, got, got2;
	jigsim_device_info di;
	jig_frame f;
	jig_msg resp;
	st_err e;

	keygen_frames(s, in, &n, out, &got);
	ck_assert_uint_gt(got, 0);
	ck_assert_int_eq(jig_frame_decode(out, got, &f, &n, &e), JIG_DECODE_BAD);
	ck_assert_ptr_nonnull(strstr(e.msg, "checksum"));
	/* The station's retry: the cached, intact answer; one key. */
	n = js_frame(99, &(jig_msg){ .type = JIG_CMD_KEYGEN, .u.keygen_req = { 0, JIG_ALG_P256, 0 } }, in);
	ck_assert_int_eq(jigsim_handle(s, in, n, out2, sizeof(out2), &got2, &e), JIGSIM_REPLY);
	ck_assert_int_eq(js_unframe(out2, got2, &resp), 0);
	ck_assert_uint_eq(resp.type, JIG_CMD_KEYGEN | JIG_RESPONSE);
	ck_assert_uint_eq(got, got2);
	ck_assert_int_eq(memcmp(out, out2, got) != 0, 1);
	ck_assert_int_eq(jigsim_device_get(s, 0, &di), 0);
	ck_assert_uint_eq(di.keygens, 1);
	ck_assert_int_eq(jigsim_device_pubkey(s, 0, 0, out, sizeof(out), &n), 0);
	ck_assert_uint_eq(n, resp.u.pubkey.len);
	ck_assert_mem_eq(out, resp.u.pubkey.data, n);
	jigsim_free(s);
}
END_TEST

START_TEST(test_fault_drop_reply)
{
	jigsim *s = sim_new(JIGSIM_F_DROP_REPLY, 0, 0);
	uint8_t in[JIG_MAX_FRAME], out[JIG_MAX_FRAME];
	size_t n, got;
	jigsim_device_info di;
	jig_msg resp;
	st_err e;

	keygen_frames(s, in, &n, out, &got);
	ck_assert_uint_eq(got, 0);
	ck_assert_int_eq(jigsim_handle(s, in, n, out, sizeof(out), &got, &e), JIGSIM_REPLY);
	ck_assert_int_eq(js_unframe(out, got, &resp), 0);
	ck_assert_uint_eq(resp.type, JIG_CMD_KEYGEN | JIG_RESPONSE);
	ck_assert_int_eq(jigsim_device_get(s, 0, &di), 0);
	ck_assert_uint_eq(di.keygens, 1);
	jigsim_free(s);
}
END_TEST

START_TEST(test_fault_disconnect)
{
	jigsim *s = sim_new(JIGSIM_F_DISCONNECT, 0, 0);
	js_direct d = { .s = s };
	jigsim_device_info di;
	jig_se_info info;
	jig_blob pub;
	jig_msg req, resp;
	st_err e;

	authenticate(&d, &info);
	keygen(&d, 0, 0, &pub);
	js_req(&req, JIG_CMD_GET_CSR);
	ck_assert_int_eq(js_direct_call(&d, &req, &resp, &e), -1);
	ck_assert_int_eq(d.action, JIGSIM_DISCONNECT);
	/* The DUT stayed, with its key; the next GET_CSR is answered. */
	jigsim_connection_reset(s);
	ck_assert_int_eq(jigsim_device_get(s, 0, &di), 0);
	ck_assert_uint_eq(di.index, 1);
	ck_assert_uint_eq(di.keygens, 1);
	ok(&d, &req, &resp);
	ck_assert_uint_eq(resp.type, JIG_CMD_GET_CSR | JIG_RESPONSE);
	jigsim_free(s);
}
END_TEST

START_TEST(test_fault_slow_reply)
{
	jigsim_config c;
	jigsim *s;
	js_direct d = { .s = NULL };
	jig_se_info info;
	jig_blob pub;
	uint64_t t0;
	st_err e;

	js_config(&c, js_test_pki);
	c.faults = JIGSIM_F_SLOW_REPLY;
	c.slow_ms = 1000;
	ck_assert_ptr_nonnull(s = jigsim_new(&c, &e));
	d.s = s;
	authenticate(&d, &info);
	t0 = st_now_ms();
	se_info(&d, &info); /* other commands are not slowed */
	ck_assert_uint_lt(st_now_ms() - t0, 1000);
	t0 = st_now_ms();
	keygen(&d, 0, 0, &pub);
	ck_assert_uint_ge(st_now_ms() - t0, 1000);
	jigsim_free(s);
}
END_TEST

START_TEST(test_fault_attestation)
{
	static const struct {
		unsigned fault;
		int verdict;
	} cases[] = {
		{ JIGSIM_F_BAD_ATTEST_SIG, JS_BAD_SIG },
		{ JIGSIM_F_ATTEST_WRONG_KEY, JS_BAD_KEY },
		{ JIGSIM_F_REPLAY_NONCE, JS_BAD_NONCE },
		{ JIGSIM_F_UNKNOWN_VENDOR, JS_BAD_CHAIN },
	};
	js_device *devs = calloc(2, sizeof(*devs));
	size_t i;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		jigsim *s = sim_new(cases[i].fault, 2, 0);
		jigsim_device_info di;

		run_panel(s, devs, 2);
		ck_assert_msg(devs[0].failed_at == 0, "%s: clean device failed", jigsim_fault_name(cases[i].fault));
		ck_assert_msg(devs[1].failed_at == JIG_CMD_GET_CSR && devs[1].verdict == cases[i].verdict,
		    "%s: expected %s, got %s at %s", jigsim_fault_name(cases[i].fault), js_verdict_name(cases[i].verdict),
		    js_verdict_name(devs[1].verdict), jig_cmd_name(devs[1].failed_at));
		/* Nothing was installed on the faulty device. */
		ck_assert_int_eq(jigsim_device_get(s, 2, &di), 0);
		ck_assert_uint_eq(di.lifecycle, JIG_LC_FACTORY);
		ck_assert_uint_eq(di.keygens, 1);
		jigsim_free(s);
	}
	free(devs);
}
END_TEST

START_TEST(test_fault_replay_nonce_details)
{
	jigsim *s = sim_new(JIGSIM_F_REPLAY_NONCE, 0, 0);
	js_device *devs = calloc(2, sizeof(*devs));
	jig_attest a;
	static const uint8_t zero[JIG_NONCE_LEN];

	run_panel(s, devs, 2);
	/* The first attestation carries zeros, the second the first's nonce. */
	ck_assert_int_eq(jig_attest_decode(devs[0].csr.u.csr.attestation.data, devs[0].csr.u.csr.attestation.len, &a, NULL), 0);
	ck_assert_mem_eq(a.nonce, zero, JIG_NONCE_LEN);
	ck_assert_int_eq(jig_attest_decode(devs[1].csr.u.csr.attestation.data, devs[1].csr.u.csr.attestation.len, &a, NULL), 0);
	ck_assert_mem_eq(a.nonce, devs[0].nonce, JIG_NONCE_LEN);
	free(devs);
	jigsim_free(s);
}
END_TEST

START_TEST(test_fault_unknown_vendor_names)
{
	jigsim *s = sim_new(JIGSIM_F_UNKNOWN_VENDOR, 0, 0);
	js_direct d = { .s = s };
	jig_se_info info;
	const unsigned char *q;
	X509 *rogue, *real;

	se_info(&d, &info);
	q = info.certs[1].data;
	ck_assert_ptr_nonnull(rogue = d2i_X509(NULL, &q, (long)info.certs[1].len));
	ck_assert_ptr_nonnull(real = st_x509_load(js_test_pki->vendor_ca_cert, NULL));
	/* Same names, different key. */
	ck_assert_int_eq(X509_NAME_cmp(X509_get_subject_name(rogue), X509_get_subject_name(real)), 0);
	ck_assert_int_eq(X509_NAME_cmp(X509_get_issuer_name(rogue), X509_get_issuer_name(real)), 0);
	ck_assert_int_ne(EVP_PKEY_eq(X509_get0_pubkey(rogue), X509_get0_pubkey(real)), 1);
	X509_free(rogue);
	X509_free(real);
	jigsim_free(s);
}
END_TEST

START_TEST(test_fault_already_locked)
{
	jigsim *s = sim_new(JIGSIM_F_ALREADY_LOCKED, 0, 0);
	js_direct d = { .s = s };
	jig_se_info info;
	jig_msg req, resp;
	const unsigned char *q;
	X509 *x;

	authenticate(&d, &info);
	ck_assert_uint_eq(info.lifecycle, JIG_LC_PROVISIONED);
	js_req(&req, JIG_CMD_KEYGEN);
	req.u.keygen_req.algorithm = JIG_ALG_P256;
	fails(&d, &req, JIG_E_LOCKED);
	/* Slot 0 holds a leaf from nobody we know. */
	js_req(&req, JIG_CMD_READ_CERT);
	ok(&d, &req, &resp);
	q = resp.u.cert.data;
	ck_assert_ptr_nonnull(x = d2i_X509(NULL, &q, (long)resp.u.cert.len));
	ck_assert_int_ne(X509_check_issued(js_test_pki->ca_cert, x), X509_V_OK);
	{
		X509 *vendor = st_x509_load(js_test_pki->vendor_ca_cert, NULL);

		ck_assert_int_ne(X509_check_issued(vendor, x), X509_V_OK);
		X509_free(vendor);
	}
	X509_free(x);
	jigsim_free(s);
}
END_TEST

/* Latency and line-speed emulation: lower bounds only, so a loaded CI
 * machine cannot make them flaky. */
START_TEST(test_latencies)
{
	jigsim_config c;
	jigsim *s;
	js_direct d = { .s = NULL };
	jig_se_info info;
	jig_blob pub;
	jig_msg req, resp;
	uint64_t t0;
	st_err e;

	js_config(&c, js_test_pki);
	c.keygen_ms = 150;
	c.csr_ms = 120;
	c.cmd_ms = 30;
	ck_assert_ptr_nonnull(s = jigsim_new(&c, &e));
	d.s = s;
	authenticate(&d, &info);
	t0 = st_now_ms();
	keygen(&d, 0, 0, &pub);
	ck_assert_uint_ge(st_now_ms() - t0, 150);
	t0 = st_now_ms();
	js_req(&req, JIG_CMD_GET_CSR);
	ok(&d, &req, &resp);
	ck_assert_uint_ge(st_now_ms() - t0, 120);
	t0 = st_now_ms();
	js_req(&req, JIG_CMD_DUT_STATUS);
	ok(&d, &req, &resp);
	ck_assert_uint_ge(st_now_ms() - t0, 30);
	jigsim_free(s);

	/* 19200 baud: SE_INFO's ~1 KiB answer takes half a second. */
	js_config(&c, js_test_pki);
	c.baud = 19200;
	ck_assert_ptr_nonnull(s = jigsim_new(&c, &e));
	d.s = s;
	t0 = st_now_ms();
	se_info(&d, &info);
	ck_assert_uint_ge(st_now_ms() - t0,
	    (10 + 10 + 2 + strlen(info.serial) + 2 + strlen(info.model) + 4 + 1 + 2 + 32 + 1 + 2 + info.certs[0].len + 2 +
		info.certs[1].len) * 10 * 1000 / 19200);
	jigsim_free(s);
}
END_TEST

/* Invariant 1: no response ever carries a private key.  The test reaches
 * into the SE (internal header) for the slot and attestation keys before
 * the DUT leaves, then searches every byte jigsim sent. */
typedef struct tap {
	jigsim *s;
	uint8_t seq;
	uint8_t *seen;
	size_t len;
	uint8_t secret[2][32];
	int have;
} tap;

static int
tap_call(void *ctx, const jig_msg *req, jig_msg *resp, st_err *err)
{
	static uint8_t in[JIG_MAX_FRAME], out[JIG_MAX_FRAME];
	tap *t = ctx;
	size_t n = js_frame(++t->seq, req, in), got = 0;

	if (req->type == JIG_CMD_DUT_POWER) {
		se *d = t->s->dev[t->s->ndev - 1].se;
		EVP_PKEY *keys[2] = { d->slot[0].key, d->attest_key };
		int i;

		for (i = 0; i < 2; i++) {
			BIGNUM *bn = NULL;

			ck_assert(EVP_PKEY_get_bn_param(keys[i], OSSL_PKEY_PARAM_PRIV_KEY, &bn));
			ck_assert_int_eq(BN_bn2binpad(bn, t->secret[i], 32), 32);
			BN_clear_free(bn);
		}
		t->have = 1;
	}
	ck_assert_int_eq(jigsim_handle(t->s, in, n, out, sizeof(out), &got, err), JIGSIM_REPLY);
	ck_assert_ptr_nonnull(t->seen = realloc(t->seen, t->len + got));
	memcpy(t->seen + t->len, out, got);
	t->len += got;
	ck_assert_int_eq(js_unframe(out, got, resp), 0);
	return resp->type == JIG_T_ERROR ? resp->u.error.code : 0;
}

START_TEST(test_no_private_key_leaves)
{
	js_device *dev = calloc(1, sizeof(*dev));
	tap t;
	int i;

	memset(&t, 0, sizeof(t));
	t.s = sim_new(0, 0, 0);
	js_provision(tap_call, &t, js_test_pki, dev);
	ck_assert_uint_eq(dev->failed_at, 0);
	ck_assert(t.have);
	ck_assert_uint_gt(t.len, 2000);
	for (i = 0; i < 2; i++)
		ck_assert_ptr_null(memmem(t.seen, t.len, t.secret[i], 32));
	/* The search itself works: the public key is in there. */
	ck_assert_ptr_nonnull(memmem(t.seen, t.len, dev->pubkey.data, dev->pubkey.len));
	free(t.seen);
	free(dev);
	jigsim_free(t.s);
}
END_TEST

static int paused_cmd, paused_after;

static void
on_pause(void *arg, uint8_t cmd, int after)
{
	(void)arg;
	paused_cmd = cmd;
	paused_after = after;
}

START_TEST(test_pause)
{
	int after;

	for (after = 0; after <= 1; after++) {
		jigsim_config c;
		jigsim *s;
		js_direct d = { .s = NULL };
		jigsim_device_info di;
		jig_se_info info;
		jig_blob pub;
		jig_msg req, resp;
		st_err e;

		js_config(&c, js_test_pki);
		c.pause_cmd = JIG_CMD_KEYGEN;
		c.pause_after = after;
		c.on_pause = on_pause;
		ck_assert_ptr_nonnull(s = jigsim_new(&c, &e));
		d.s = s;
		paused_cmd = 0;
		authenticate(&d, &info);
		js_req(&req, JIG_CMD_KEYGEN);
		req.u.keygen_req.algorithm = JIG_ALG_P256;
		ck_assert_int_eq(js_direct_call(&d, &req, &resp, &e), -1);
		ck_assert_int_eq(d.action, JIGSIM_PAUSED);
		ck_assert_int_eq(paused_cmd, JIG_CMD_KEYGEN);
		ck_assert_int_eq(paused_after, after);
		ck_assert_int_eq(jigsim_device_get(s, 0, &di), 0);
		ck_assert_uint_eq(di.keygens, (unsigned)after);
		/* The station comes back: same DUT, KEEP finds the key if it was made. */
		jigsim_connection_reset(s);
		keygen(&d, 0, JIG_KEYGEN_KEEP, &pub);
		ck_assert_int_eq(jigsim_device_get(s, 0, &di), 0);
		ck_assert_uint_eq(di.index, 1);
		ck_assert_uint_eq(di.keygens, 1);
		/* One-shot. */
		keygen(&d, 1, 0, &pub);
		jigsim_free(s);
	}
}
END_TEST

START_TEST(test_config_errors)
{
	jigsim_config c;
	st_err e;
	char *missing = NULL;

	js_config(&c, js_test_pki);
	c.tool_pub = NULL;
	ck_assert_ptr_null(jigsim_new(&c, &e));
	ck_assert_int_eq(e.code, ST_E_CONFIG);
	ck_assert_int_ne(asprintf(&missing, "%s/nothing.pem", js_test_pki->dir), -1);
	js_config(&c, js_test_pki);
	c.vendor_ca_cert = missing;
	ck_assert_ptr_null(jigsim_new(&c, &e));
	ck_assert_ptr_nonnull(strstr(e.msg, "nothing.pem"));
	/* A CA key that is not the certificate's. */
	js_config(&c, js_test_pki);
	c.vendor_ca_cert = js_test_pki->vendor_root;
	ck_assert_ptr_null(jigsim_new(&c, &e));
	ck_assert_ptr_nonnull(strstr(e.msg, "does not hold the key"));
	ck_assert_uint_eq(jigsim_fault_parse("drop-reply"), JIGSIM_F_DROP_REPLY);
	ck_assert_uint_eq(jigsim_fault_parse("drop"), 0);
	free(missing);
}
END_TEST

static Suite *
suite(void)
{
	Suite *s = suite_create("jigsim-core");
	TCase *tc = tcase_create("core");

	tcase_add_unchecked_fixture(tc, js_pki_setup, js_pki_teardown);
	tcase_set_timeout(tc, 60);
	tcase_add_loop_test(tc, test_factory_conversation, 0, 3);
	tcase_add_test(tc, test_versions);
	tcase_add_test(tc, test_preconditions);
	tcase_add_test(tc, test_frames);
	tcase_add_test(tc, test_retransmission);
	tcase_add_test(tc, test_rework);
	tcase_add_test(tc, test_fault_every);
	tcase_add_test(tc, test_fault_corrupt_byte);
	tcase_add_test(tc, test_fault_drop_reply);
	tcase_add_test(tc, test_fault_disconnect);
	tcase_add_test(tc, test_fault_slow_reply);
	tcase_add_test(tc, test_fault_attestation);
	tcase_add_test(tc, test_fault_replay_nonce_details);
	tcase_add_test(tc, test_fault_unknown_vendor_names);
	tcase_add_test(tc, test_fault_already_locked);
	tcase_add_test(tc, test_pause);
	tcase_add_test(tc, test_latencies);
	tcase_add_test(tc, test_no_private_key_leaves);
	tcase_add_test(tc, test_config_errors);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	return tu_run_suite(suite());
}
