/* The client against a scripted fake jig on the mem transport: sequence
 * numbers, retransmission of the same bytes, stale and corrupt replies,
 * ERROR frames, version negotiation, and the wording of every failure. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fakejig.h"
#include "jig.h"
#include "testutil.h"

static fakejig fake;
static jig_client *client;

/* Timeouts stretched under valgrind, where everything runs ~30x slower. */
static int
ms(int v)
{
	return getenv("STATION_UNDER_VALGRIND") ? 10 * v : v;
}

/* A client (timeouts 150 ms, 2 retries) talking to a fake running script. */
static void
start(const int *script, size_t n)
{
	jig_transport *a = NULL, *b = NULL;
	st_err err;

	memset(&fake, 0, sizeof(fake));
	fake.script = script;
	fake.nscript = n;
	ck_assert_int_eq(jig_transport_mem_pair(&a, &b, &err), 0);
	fake_start(&fake, b);
	ck_assert_ptr_nonnull(client = jig_client_new(a));
	jig_client_set_timeout(client, 0, ms(150));
}

static void
stop(void)
{
	jig_client_free(client);
	client = NULL;
	fake_stop(&fake);
}

static int
call(uint8_t cmd, jig_msg *resp, st_err *err)
{
	jig_msg req;

	memset(&req, 0, sizeof(req));
	req.type = cmd;
	if (cmd == JIG_CMD_KEYGEN)
		req.u.keygen_req.algorithm = JIG_ALG_P256;
	st_err_clear(err);
	return jig_client_call(client, &req, resp, err);
}

static void
assert_msg(const st_err *err, int code, const char *want)
{
	ck_assert_msg(err->code == code, "code %s, want %s: %s", st_code_name(err->code), st_code_name(code), err->msg);
	ck_assert_msg(strcmp(err->msg, want) == 0, "\"%s\" != \"%s\"", err->msg, want);
}

START_TEST(test_conversation)
{
	static jig_msg m;
	jig_client_stats st;
	st_err err;
	int i;

	start(NULL, 0);
	ck_assert_str_eq(jig_client_uri(client), "mem:a");
	ck_assert_msg(jig_client_hello(client, &m, &err) == 0, "%s", err.msg);
	ck_assert_str_eq(m.u.hello.jig_id, "fake-1");
	ck_assert_int_eq(call(JIG_CMD_DUT_STATUS, &m, &err), 0);
	ck_assert_uint_eq(m.u.dut.present, 1);
	ck_assert_int_eq(call(JIG_CMD_SE_INFO, &m, &err), 0);
	ck_assert_str_eq(m.u.se_info.serial, "SE00F00D");
	ck_assert_int_eq(call(JIG_CMD_KEYGEN, &m, &err), 0);
	ck_assert_int_eq(memcmp(m.u.pubkey.data, "key-4", 5), 0);
	jig_client_get_stats(client, &st);
	stop();
	ck_assert_int_eq(fake.nreq, 4);
	ck_assert_int_eq(fake.executed, 4);
	/* each request takes the next sequence number (mod 256) */
	for (i = 1; i < 4; i++)
		ck_assert_uint_eq(fake.raw[i][3], (uint8_t)(fake.raw[0][3] + i));
	ck_assert_uint_eq(st.round_trips, 4);
	ck_assert_uint_eq(st.retries, 0);
	ck_assert_uint_eq(st.payload_out, 2 + 0 + 0 + 3);
	ck_assert_uint_eq(st.bytes_out, st.payload_out + 4 * (JIG_HEADER_LEN + JIG_CRC_LEN));
	ck_assert_uint_eq(st.bytes_in, st.payload_in + 4 * (JIG_HEADER_LEN + JIG_CRC_LEN));
}
END_TEST

/* A lost KEYGEN reply: the same bytes go again, the jig answers from its
 * cache, the key is the one generated the first (and only) time. */
START_TEST(test_drop_reply_retransmits_same_bytes)
{
	static const int script[] = { FAKE_ANSWER, FAKE_DROP };
	static jig_msg m;
	jig_client_stats st;
	st_err err;

	start(script, 2);
	ck_assert_int_eq(jig_client_hello(client, &m, &err), 0);
	ck_assert_msg(call(JIG_CMD_KEYGEN, &m, &err) == 0, "%s", err.msg);
	ck_assert_int_eq(memcmp(m.u.pubkey.data, "key-2", 5), 0);
	jig_client_get_stats(client, &st);
	stop();
	ck_assert_int_eq(fake.nreq, 3);
	ck_assert_int_eq(fake.executed, 2); /* HELLO and one KEYGEN */
	ck_assert_uint_eq(fake.rawlen[1], fake.rawlen[2]);
	ck_assert_int_eq(memcmp(fake.raw[1], fake.raw[2], fake.rawlen[1]), 0);
	ck_assert_uint_eq(st.retries, 1);
	ck_assert_uint_eq(st.round_trips, 2);
}
END_TEST

START_TEST(test_stale_reply_discarded)
{
	static const int script[] = { FAKE_ANSWER, FAKE_STALE, FAKE_ANSWER };
	static jig_msg m;
	jig_client_stats st;
	st_err err;

	start(script, 3);
	ck_assert_int_eq(jig_client_hello(client, &m, &err), 0);
	ck_assert_int_eq(call(JIG_CMD_KEYGEN, &m, &err), 0);
	ck_assert_int_eq(memcmp(m.u.pubkey.data, "key-2", 5), 0);
	ck_assert_int_eq(call(JIG_CMD_LOCK, &m, &err), 0);
	ck_assert_uint_eq(m.u.lock.lifecycle, JIG_LC_PROVISIONED);
	jig_client_get_stats(client, &st);
	stop();
	ck_assert_uint_eq(st.stale, 1);
	ck_assert_uint_eq(st.retries, 0);
	ck_assert_int_eq(fake.nreq, 3);
}
END_TEST

START_TEST(test_corrupt_reply_retried)
{
	static const int script[] = { FAKE_ANSWER, FAKE_CORRUPT };
	static jig_msg m;
	jig_client_stats st;
	uint64_t t0;
	st_err err;

	start(script, 2);
	jig_client_set_timeout(client, 0, ms(3000));
	ck_assert_int_eq(jig_client_hello(client, &m, &err), 0);
	t0 = st_now_ms();
	ck_assert_msg(call(JIG_CMD_KEYGEN, &m, &err) == 0, "%s", err.msg);
	/* retransmitted on the bad checksum, not after the 3 s timeout */
	ck_assert_uint_lt(st_now_ms() - t0, (uint64_t)ms(2000));
	ck_assert_int_eq(memcmp(m.u.pubkey.data, "key-2", 5), 0);
	jig_client_get_stats(client, &st);
	stop();
	ck_assert_uint_eq(st.corrupt, 1);
	ck_assert_uint_eq(st.retries, 1);
	ck_assert_int_eq(fake.executed, 2);
}
END_TEST

START_TEST(test_garbage_and_split_reply)
{
	static const int script[] = { FAKE_GARBAGE, FAKE_GARBAGE };
	static jig_msg m;
	jig_client_stats st;
	st_err err;

	start(script, 2);
	jig_client_set_timeout(client, 0, ms(3000));
	ck_assert_msg(jig_client_hello(client, &m, &err) == 0, "%s", err.msg);
	ck_assert_msg(call(JIG_CMD_SE_INFO, &m, &err) == 0, "%s", err.msg);
	ck_assert_str_eq(m.u.se_info.model, "TSE-100");
	jig_client_get_stats(client, &st);
	stop();
	ck_assert_uint_eq(st.retries, 0);
}
END_TEST

START_TEST(test_error_frame)
{
	static const int script[] = { FAKE_ANSWER, FAKE_ERROR };
	static jig_msg m;
	jig_client_stats st;
	st_err err;

	start(script, 2);
	fake.error_code = JIG_E_NOT_AUTHENTICATED;
	ck_assert_int_eq(jig_client_hello(client, &m, &err), 0);
	ck_assert_int_eq(call(JIG_CMD_KEYGEN, &m, &err), -1);
	assert_msg(&err, ST_E_REMOTE, "jig mem:a: KEYGEN: the jig refused: NOT_AUTHENTICATED: scripted error");
	ck_assert_int_eq(err.remote, JIG_E_NOT_AUTHENTICATED);
	/* and the conversation goes on */
	ck_assert_int_eq(call(JIG_CMD_DUT_STATUS, &m, &err), 0);
	jig_client_get_stats(client, &st);
	stop();
	ck_assert_uint_eq(st.round_trips, 3);
}
END_TEST

START_TEST(test_no_answer)
{
	static const int script[] = { FAKE_ANSWER, FAKE_DROP, FAKE_DROP, FAKE_DROP };
	static jig_msg m;
	char want[128];
	st_err err;
	uint64_t t0;

	start(script, 4);
	jig_client_set_timeout(client, JIG_CMD_KEYGEN, ms(200));
	ck_assert_int_eq(jig_client_hello(client, &m, &err), 0);
	t0 = st_now_ms();
	ck_assert_int_eq(call(JIG_CMD_KEYGEN, &m, &err), -1);
	ck_assert_uint_ge(st_now_ms() - t0, (uint64_t)(3 * ms(200) - 10));
	snprintf(want, sizeof(want), "jig mem:a: KEYGEN: no answer after %d ms (2 retries)", ms(200));
	assert_msg(&err, ST_E_TIMEOUT, want);
	stop();
	ck_assert_int_eq(fake.nreq, 4);
	ck_assert_int_eq(fake.executed, 2); /* retransmissions never ran KEYGEN again */
	ck_assert_int_eq(memcmp(fake.raw[1], fake.raw[3], fake.rawlen[1]), 0);
}
END_TEST

START_TEST(test_always_corrupt)
{
	static const int script[] = { FAKE_CORRUPT, FAKE_CORRUPT };
	static jig_msg m;
	st_err err;

	start(script, 2);
	jig_client_set_retries(client, 1);
	ck_assert_int_eq(jig_client_hello(client, &m, &err), -1);
	ck_assert_int_eq(err.code, ST_E_PROTO);
	/* The last bad frame is the corrupted reply's checksum, or, when the two
	 * replies arrive in one read, what the resynchronisation found inside
	 * the corrupted bytes (a header with another version byte). */
	ck_assert_msg(strncmp(err.msg, "jig mem:a: HELLO: no valid answer after 1 retries: 2 corrupt replies (last: ", 76) == 0 &&
	        (strstr(err.msg, "bad frame checksum") || strstr(err.msg, "frame version")),
	    "%s", err.msg);
	stop();
}
END_TEST

START_TEST(test_wrong_type_and_malformed)
{
	static const int script[] = { FAKE_ANSWER, FAKE_WRONG_TYPE, FAKE_MALFORMED };
	static jig_msg m;
	st_err err;

	start(script, 3);
	ck_assert_int_eq(jig_client_hello(client, &m, &err), 0);
	ck_assert_int_eq(call(JIG_CMD_KEYGEN, &m, &err), -1);
	assert_msg(&err, ST_E_PROTO,
	    "jig mem:a: KEYGEN: the jig answered with frame type 0x8b (LOCK), expected a KEYGEN response");
	ck_assert_int_eq(call(JIG_CMD_SE_INFO, &m, &err), -1);
	assert_msg(&err, ST_E_PROTO, "jig mem:a: SE_INFO: malformed reply: SE_INFO response: 1 trailing bytes");
	stop();
}
END_TEST

START_TEST(test_disconnect)
{
	static const int script[] = { FAKE_ANSWER, FAKE_CLOSE };
	static jig_msg m;
	st_err err;

	start(script, 2);
	ck_assert_int_eq(jig_client_hello(client, &m, &err), 0);
	ck_assert_int_eq(call(JIG_CMD_GET_CSR, &m, &err), -1);
	assert_msg(&err, ST_E_DISCONNECTED, "jig mem:a: GET_CSR: read: the jig closed the connection");
	stop();
}
END_TEST

START_TEST(test_hello_versions)
{
	static const int script[] = { FAKE_ERROR };
	static jig_msg m;
	st_err err;

	/* the jig picks a version we do not speak */
	start(NULL, 0);
	fake.hello_version = JIG_VERSION_MAX + 1;
	ck_assert_int_eq(jig_client_hello(client, &m, &err), -1);
	assert_msg(&err, ST_E_PROTO, "jig mem:a: HELLO: the jig chose protocol version 4, this station speaks 1..3");
	stop();
	ck_assert_int_eq(fake.raw[0][1], 1);                /* HELLO in a version-1 frame */
	ck_assert_int_eq(fake.raw[0][6], JIG_VERSION_MIN); /* offering our range */
	ck_assert_int_eq(fake.raw[0][7], JIG_VERSION_MAX);

	/* the jig speaks none of ours */
	start(script, 1);
	fake.error_code = JIG_E_UNSUPPORTED_VERSION;
	ck_assert_int_eq(jig_client_hello(client, &m, &err), -1);
	assert_msg(&err, ST_E_REMOTE, "jig mem:a: HELLO: the jig speaks none of this station's protocol versions 1..3; "
	    "the jig says: \"scripted error\"; update the jig firmware or the station");
	ck_assert_int_eq(err.remote, JIG_E_UNSUPPORTED_VERSION);
	stop();

	/* a station that saw 1.1 offers only 1.1: a jig choosing 1.0 is refused */
	start(NULL, 0);
	fake.hello_version = 1;
	ck_assert_int_eq(jig_client_set_versions(client, 2, 2), 0);
	ck_assert_int_eq(jig_client_hello(client, &m, &err), -1);
	assert_msg(&err, ST_E_PROTO, "jig mem:a: HELLO: the jig chose protocol version 1, this station speaks 2..2");
	ck_assert_int_eq(jig_client_set_versions(client, 0, 2), -1);
	ck_assert_int_eq(jig_client_set_versions(client, 2, 1), -1);
	ck_assert_int_eq(jig_client_set_versions(client, 1, JIG_VERSION_MAX + 1), -1);
	stop();
	ck_assert_int_eq(fake.raw[0][6], 2);
	ck_assert_int_eq(fake.raw[0][7], 2);
}
END_TEST

START_TEST(test_bad_requests)
{
	static jig_msg m;
	jig_msg req;
	st_err err;

	start(NULL, 0);
	memset(&req, 0, sizeof(req));
	req.type = JIG_CMD_KEYGEN | JIG_RESPONSE;
	ck_assert_int_eq(jig_client_call(client, &req, &m, &err), -1);
	ck_assert_int_eq(err.code, ST_E_INTERNAL);
	req.type = JIG_CMD_KEYGEN;
	req.u.keygen_req.slot = 16;
	req.u.keygen_req.algorithm = JIG_ALG_P256;
	ck_assert_int_eq(jig_client_call(client, &req, &m, &err), -1);
	ck_assert_ptr_nonnull(strstr(err.msg, "jig mem:a: KEYGEN: encoding KEYGEN request: slot: 16, at most 15"));
	stop();
	ck_assert_int_eq(fake.nreq, 0); /* nothing malformed went out */
	ck_assert_ptr_null(jig_client_new(NULL));
	jig_client_free(NULL);
}
END_TEST

int
main(void)
{
	Suite *s = suite_create("jig-client");
	TCase *tc = tcase_create("client");

	tcase_set_timeout(tc, 30);
	tcase_add_test(tc, test_conversation);
	tcase_add_test(tc, test_drop_reply_retransmits_same_bytes);
	tcase_add_test(tc, test_stale_reply_discarded);
	tcase_add_test(tc, test_corrupt_reply_retried);
	tcase_add_test(tc, test_garbage_and_split_reply);
	tcase_add_test(tc, test_error_frame);
	tcase_add_test(tc, test_no_answer);
	tcase_add_test(tc, test_always_corrupt);
	tcase_add_test(tc, test_wrong_type_and_malformed);
	tcase_add_test(tc, test_disconnect);
	tcase_add_test(tc, test_hello_versions);
	tcase_add_test(tc, test_bad_requests);
	suite_add_tcase(s, tc);
	return tu_run_suite(s);
}
