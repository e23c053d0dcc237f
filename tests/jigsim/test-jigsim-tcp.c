/* libjig's client <-> jigsim over TCP on loopback: whole factory
 * conversations, retransmission, and every fault as the station sees it. */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "jsutil.h"

/* A jigsim serving tcp:127.0.0.1:<ephemeral> from a thread. */
typedef struct server {
	jigsim *s;
	pthread_t thread;
	char uri[300];
} server;

static void *
run(void *arg)
{
	server *sv = arg;
	st_err e;

	ck_assert_msg(jigsim_run(sv->s, &e) == 0, "%s", e.msg);
	return NULL;
}

static void
server_start(server *sv, jigsim_config *c)
{
	st_err e;

	sv->s = jigsim_new(c, &e);
	ck_assert_msg(sv->s != NULL, "%s", e.msg);
	ck_assert_msg(jigsim_listen(sv->s, "tcp:127.0.0.1:0", sv->uri, sizeof(sv->uri), &e) == 0, "%s", e.msg);
	ck_assert_int_eq(strncmp(sv->uri, "tcp:127.0.0.1:", 14), 0);
	ck_assert_int_ne(atoi(sv->uri + 14), 0);
	ck_assert_int_eq(pthread_create(&sv->thread, NULL, run, sv), 0);
}

static void
server_stop(server *sv)
{
	jigsim_stop(sv->s);
	pthread_join(sv->thread, NULL);
	jigsim_free(sv->s);
}

static jig_client *
connect_v(const server *sv, uint8_t max_version)
{
	jig_transport *t = NULL;
	jig_client *c;
	jig_msg hello;
	st_err e;

	ck_assert_msg(jig_transport_open(sv->uri, &t, &e) == 0, "%s", e.msg);
	ck_assert_ptr_nonnull(c = jig_client_new(t));
	ck_assert_int_eq(jig_client_set_versions(c, JIG_VERSION_MIN, max_version), 0);
	ck_assert_msg(jig_client_hello(c, &hello, &e) == 0, "%s", e.msg);
	ck_assert_uint_eq(hello.u.hello.version, max_version);
	ck_assert_str_eq(hello.u.hello.jig_id, "jigsim-1");
	ck_assert_int_eq(strncmp(hello.u.hello.firmware, "jigsim ", 7), 0);
	return c;
}

static jig_client *
connect_to(const server *sv)
{
	return connect_v(sv, JIG_VERSION_MAX);
}

START_TEST(test_factory_panel)
{
	enum { N = 5 };
	js_device *dev = calloc(1, sizeof(*dev));
	jigsim_device_info di;
	jig_client_stats st0, st1;
	uint8_t der[JIG_BLOB_MAX];
	jigsim_config cfg;
	jig_client *c;
	jig_msg req, resp;
	server sv;
	size_t len;
	st_err e;
	int i;

	js_config(&cfg, js_test_pki);
	cfg.devices = N;
	server_start(&sv, &cfg);
	c = connect_to(&sv);
	for (i = 1; i <= N; i++) {
		jig_client_get_stats(c, &st0);
		js_provision(js_client_call, c, js_test_pki, dev);
		ck_assert_msg(dev->failed_at == 0, "device %d failed at %s: %s", i, jig_cmd_name(dev->failed_at), dev->err.msg);
		jig_client_get_stats(c, &st1);
		/* PROTOCOL.md section 9: eight round trips per device, no retries
		 * (1.1: and VENDOR_CHAIN for the first device; 1.2: and for it
		 * INSTALL_CERT's NO_TEMPLATE answer and CERT_TEMPLATE). */
		ck_assert_uint_eq(st1.round_trips - st0.round_trips,
		    8 + (unsigned)dev->chain_fetched + 2 * (unsigned)dev->template_sent);
		ck_assert_int_eq(dev->chain_fetched, i == 1);
		ck_assert_int_eq(dev->template_sent, i == 1);
		ck_assert_uint_eq(st1.retries, 0);
		ck_assert_int_eq(jigsim_device_get(sv.s, (unsigned)i, &di), 0);
		ck_assert_str_eq(di.serial, dev->info.serial);
		ck_assert_uint_eq(di.lifecycle, JIG_LC_PROVISIONED);
		ck_assert_uint_eq(di.keygens, 1);
		ck_assert_int_eq(jigsim_device_cert(sv.s, (unsigned)i, 0, der, sizeof(der), &len), 0);
		ck_assert_uint_eq(len, dev->cert.len);
		ck_assert_mem_eq(der, dev->cert.data, len);
	}
	ck_assert_uint_eq(jigsim_released(sv.s), N);
	js_req(&req, JIG_CMD_SE_INFO);
	ck_assert_int_eq(jig_client_call(c, &req, &resp, &e), -1);
	ck_assert_int_eq(e.code, ST_E_REMOTE);
	ck_assert_int_eq(e.remote, JIG_E_NO_DUT);
	ck_assert_ptr_nonnull(strstr(e.msg, "NO_DUT"));
	jig_client_free(c);
	server_stop(&sv);
	free(dev);
}
END_TEST

START_TEST(test_preconditions)
{
	jigsim_config cfg;
	jig_client *c;
	jig_msg req, resp, info;
	server sv;
	st_err e;

	js_config(&cfg, js_test_pki);
	server_start(&sv, &cfg);
	c = connect_to(&sv);
	/* protocol 1.0 here: a second LOCK is LOCKED (1.1 signs a receipt again) */
	ck_assert_int_eq(jig_client_set_versions(c, 1, 1), 0);
	ck_assert_msg(jig_client_hello(c, &resp, &e) == 0, "%s", e.msg);
	ck_assert_uint_eq(jig_client_version(c), 1);
	js_req(&req, JIG_CMD_KEYGEN);
	req.u.keygen_req.algorithm = JIG_ALG_P256;
	ck_assert_int_eq(jig_client_call(c, &req, &resp, &e), -1);
	ck_assert_int_eq(e.remote, JIG_E_NOT_AUTHENTICATED);
	ck_assert_ptr_nonnull(strstr(e.msg, "KEYGEN"));

	js_req(&req, JIG_CMD_SE_INFO);
	ck_assert_int_eq(jig_client_call(c, &req, &info, &e), 0);
	js_req(&req, JIG_CMD_AUTH_RESPONSE);
	js_sign(js_test_pki->ca_key, JIG_TAG_TOOL_AUTH, info.u.se_info.serial, info.u.se_info.challenge, &req.u.signature);
	ck_assert_int_eq(jig_client_call(c, &req, &resp, &e), -1);
	ck_assert_int_eq(e.remote, JIG_E_AUTH_FAILED);

	js_req(&req, JIG_CMD_SE_INFO);
	ck_assert_int_eq(jig_client_call(c, &req, &info, &e), 0);
	js_req(&req, JIG_CMD_AUTH_RESPONSE);
	js_sign(js_test_pki->tool, JIG_TAG_TOOL_AUTH, info.u.se_info.serial, info.u.se_info.challenge, &req.u.signature);
	ck_assert_msg(jig_client_call(c, &req, &resp, &e) == 0, "%s", e.msg);
	js_req(&req, JIG_CMD_LOCK);
	ck_assert_int_eq(jig_client_call(c, &req, &resp, &e), 0);
	ck_assert_int_eq(jig_client_call(c, &req, &resp, &e), -1);
	ck_assert_int_eq(e.remote, JIG_E_LOCKED);
	jig_client_free(c);
	server_stop(&sv);
}
END_TEST

/* drop-reply and corrupt-byte: the client's retry recovers, one key. */
START_TEST(test_retransmission)
{
	static const unsigned faults[] = { JIGSIM_F_DROP_REPLY, JIGSIM_F_CORRUPT_BYTE };
	js_device *dev = calloc(1, sizeof(*dev));
	uint8_t der[JIG_BLOB_MAX];
	size_t i, len;

	for (i = 0; i < 2; i++) {
		jigsim_device_info di;
		jig_client_stats st;
		jigsim_config cfg;
		jig_client *c;
		server sv;

		js_config(&cfg, js_test_pki);
		cfg.faults = faults[i];
		server_start(&sv, &cfg);
		c = connect_to(&sv);
		jig_client_set_timeout(c, JIG_CMD_KEYGEN, 500);
		js_provision(js_client_call, c, js_test_pki, dev);
		ck_assert_msg(dev->failed_at == 0, "%s: failed at %s: %s", jigsim_fault_name(faults[i]),
		    jig_cmd_name(dev->failed_at), dev->err.msg);
		jig_client_get_stats(c, &st);
		ck_assert_uint_eq(st.retries, 1);
		ck_assert_int_eq(jigsim_device_get(sv.s, 1, &di), 0);
		ck_assert_uint_eq(di.keygens, 1);
		ck_assert_int_eq(jigsim_device_pubkey(sv.s, 1, 0, der, sizeof(der), &len), 0);
		ck_assert_uint_eq(len, dev->pubkey.len);
		ck_assert_mem_eq(der, dev->pubkey.data, len);
		jig_client_free(c);
		server_stop(&sv);
	}
	free(dev);
}
END_TEST

START_TEST(test_faults)
{
	static const struct {
		unsigned fault;
		uint8_t failed_at;
		int code;    /* jig error, -1 = no answer, 0 = VERIFY refused */
		int verdict; /* for code 0 */
	} cases[] = {
		{ JIGSIM_F_SLOW_REPLY, JIG_CMD_KEYGEN, -1, 0 },
		{ JIGSIM_F_BAD_ATTEST_SIG, JIG_CMD_GET_CSR, 0, JS_BAD_SIG },
		{ JIGSIM_F_ATTEST_WRONG_KEY, JIG_CMD_GET_CSR, 0, JS_BAD_KEY },
		{ JIGSIM_F_REPLAY_NONCE, JIG_CMD_GET_CSR, 0, JS_BAD_NONCE },
		{ JIGSIM_F_UNKNOWN_VENDOR, JIG_CMD_GET_CSR, 0, JS_BAD_CHAIN },
		{ JIGSIM_F_ALREADY_LOCKED, JIG_CMD_KEYGEN, JIG_E_LOCKED, 0 },
		{ JIGSIM_F_READBACK_MISMATCH, JIG_CMD_READ_CERT, 0, 0 },
	};
	js_device *dev = calloc(1, sizeof(*dev));
	size_t i;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const char *name = jigsim_fault_name(cases[i].fault);
		jigsim_device_info di;
		jigsim_config cfg;
		jig_client *c;
		server sv;

		js_config(&cfg, js_test_pki);
		cfg.faults = cases[i].fault;
		cfg.fault_every = 2;
		cfg.slow_ms = 1000;
		server_start(&sv, &cfg);
		/* 1.1, where each verdict shows on the wire; the station's tests
		 * hold 1.2, where only signatures travel, to the same faults */
		c = connect_v(&sv, JIG_VERSION_1_1);
		jig_client_set_timeout(c, JIG_CMD_KEYGEN, 200);
		jig_client_set_retries(c, 1);
		js_provision(js_client_call, c, js_test_pki, dev); /* device 1: clean */
		ck_assert_msg(dev->failed_at == 0, "%s: clean device failed at %s", name, jig_cmd_name(dev->failed_at));
		js_provision(js_client_call, c, js_test_pki, dev);
		ck_assert_msg(dev->failed_at == cases[i].failed_at && dev->code == cases[i].code &&
			(cases[i].code != 0 || dev->verdict == cases[i].verdict),
		    "%s: failed at %s code %d verdict %s: %s", name, jig_cmd_name(dev->failed_at), dev->code,
		    js_verdict_name(dev->verdict), dev->err.msg);
		if (cases[i].code == -1)
			ck_assert_int_eq(dev->err.code, ST_E_TIMEOUT);
		ck_assert_int_eq(jigsim_device_get(sv.s, 2, &di), 0);
		ck_assert_uint_eq(di.faults, cases[i].fault);
		ck_assert_uint_eq(di.keygens, cases[i].fault == JIGSIM_F_ALREADY_LOCKED ? 0 : 1);
		jig_client_free(c);
		server_stop(&sv);
	}
	free(dev);
}
END_TEST

/* disconnect-mid-command: the connection closes at GET_CSR, nothing is
 * executed, and the same DUT with its key is there for the next connection. */
START_TEST(test_disconnect_keeps_dut)
{
	js_device *dev = calloc(1, sizeof(*dev));
	jigsim_device_info di;
	jigsim_config cfg;
	jig_client *c;
	jig_msg req, resp;
	char serial[JIG_STR_MAX + 1];
	server sv;
	st_err e;

	js_config(&cfg, js_test_pki);
	cfg.faults = JIGSIM_F_DISCONNECT;
	server_start(&sv, &cfg);
	c = connect_to(&sv);
	js_provision(js_client_call, c, js_test_pki, dev);
	ck_assert_uint_eq(dev->failed_at, JIG_CMD_GET_CSR);
	ck_assert_int_eq(dev->code, -1);
	ck_assert_int_eq(dev->err.code, ST_E_DISCONNECTED);
	ck_assert_ptr_nonnull(strstr(dev->err.msg, "GET_CSR"));
	strcpy(serial, dev->info.serial);
	jig_client_free(c);

	/* The station comes back: same SE, same key (KEEP), and this time it works. */
	c = connect_to(&sv);
	ck_assert_int_eq(jigsim_device_get(sv.s, 0, &di), 0);
	ck_assert_uint_eq(di.index, 1);
	js_req(&req, JIG_CMD_SE_INFO);
	ck_assert_int_eq(jig_client_call(c, &req, &resp, &e), 0);
	ck_assert_str_eq(resp.u.se_info.serial, serial);
	js_req(&req, JIG_CMD_AUTH_RESPONSE);
	js_sign(js_test_pki->tool, JIG_TAG_TOOL_AUTH, serial, resp.u.se_info.challenge, &req.u.signature);
	ck_assert_int_eq(jig_client_call(c, &req, &resp, &e), 0);
	js_req(&req, JIG_CMD_KEYGEN);
	req.u.keygen_req.algorithm = JIG_ALG_P256;
	req.u.keygen_req.flags = JIG_KEYGEN_KEEP;
	ck_assert_int_eq(jig_client_call(c, &req, &resp, &e), 0);
	ck_assert_uint_eq(resp.u.pubkey.len, dev->pubkey.len);
	ck_assert_mem_eq(resp.u.pubkey.data, dev->pubkey.data, dev->pubkey.len);
	js_req(&req, JIG_CMD_GET_CSR);
	ck_assert_msg(jig_client_call(c, &req, &resp, &e) == 0, "%s", e.msg);
	ck_assert_int_eq(jigsim_device_get(sv.s, 0, &di), 0);
	ck_assert_uint_eq(di.keygens, 1);
	jig_client_free(c);
	server_stop(&sv);
	free(dev);
}
END_TEST

/* SET_BAUD on jigsim's emulated line (issue 17, item 3): the jig lists its
 * rates in HELLO, answers at the old rate, runs at the new one once a frame
 * confirms it; where nothing arrives at the new rate (--baud-fail) both ends
 * are back at the old rate within the confirmation window.  _i: 0 the switch
 * holds, 1 it reverts, 2 a rate the jig does not list is refused, 3 it
 * reverts after a 2000 ms window, which the station waits out asleep (a
 * nanosleep of over a second was refused, and the wait spun on the CPU),
 * 4 the confirming frame is answered with an ERROR: it crossed the line at
 * the new rate both ways, so the switch holds at both ends. */
START_TEST(test_set_baud)
{
	jigsim_config cfg;
	jig_client *c;
	jig_msg req, resp;
	server sv;
	st_err e;
	struct timespec cpu0, cpu1;
	double t0;
	int rc;

	js_config(&cfg, js_test_pki);
	cfg.baud = 115200;
	cfg.nrates = 2;
	cfg.rates[0] = 115200;
	cfg.rates[1] = 921600;
	cfg.baud_fail = _i == 1 || _i == 3;
	cfg.baud_busy = _i == 4;
	server_start(&sv, &cfg);
	c = connect_to(&sv);
	ck_assert_int_eq(jigsim_line_baud(sv.s), 115200);
	t0 = (st_now_ms() / 1000.0);
	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &cpu0);
	rc = jig_client_set_baud(c, _i == 2 ? 460800 : 921600, _i == 3 ? 2000 : 500, &e);
	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &cpu1);
	if (_i == 3) {
		double cpu = (double)(cpu1.tv_sec - cpu0.tv_sec) + (cpu1.tv_nsec - cpu0.tv_nsec) / 1e9;

		ck_assert_msg(rc == 1 && strstr(e.msg, "no answer at 921600 baud within 1000 ms"), "%d: %s", rc, e.msg);
		ck_assert_uint_eq(jigsim_line_baud(sv.s), 115200);
		ck_assert_msg((st_now_ms() / 1000.0) - t0 >= 2.0, "back at the old rate after %.2f s, inside the jig's window",
		    (st_now_ms() / 1000.0) - t0);
		ck_assert_msg(cpu < 0.5, "waiting out the window took %.2f s of CPU", cpu);
	} else if (_i == 0 || _i == 4) {
		ck_assert_msg(rc == 0, "%s", e.msg);
		ck_assert_uint_eq(jigsim_line_baud(sv.s), 921600);
		usleep(700 * 1000); /* past the window: confirmed, it stays */
		ck_assert_uint_eq(jigsim_line_baud(sv.s), 921600);
	} else if (_i == 1) {
		ck_assert_int_eq(rc, 1);
		ck_assert_msg(strstr(e.msg, "no answer at 921600 baud within 250 ms") && strstr(e.msg, "back at the old rate"),
		    "%s", e.msg);
		ck_assert_uint_eq(jigsim_line_baud(sv.s), 115200);
		ck_assert_msg((st_now_ms() / 1000.0) - t0 < 1.5, "the revert took %.2f s", (st_now_ms() / 1000.0) - t0); /* bounded: window + margin */
	} else {
		ck_assert_int_eq(rc, -1);
		ck_assert_int_eq(e.code, ST_E_REMOTE);
		ck_assert_msg(strstr(e.msg, "460800 baud is not a rate this jig lists"), "%s", e.msg);
		ck_assert_uint_eq(jigsim_line_baud(sv.s), 115200);
	}
	/* either way the conversation goes on */
	js_req(&req, JIG_CMD_DUT_STATUS);
	ck_assert_msg(jig_client_call(c, &req, &resp, &e) == 0, "%s", e.msg);
	jig_client_free(c);
	usleep(300 * 1000);
	ck_assert_uint_eq(jigsim_line_baud(sv.s), 115200); /* a new connection starts at the start rate */
	server_stop(&sv);
}
END_TEST

static Suite *
suite(void)
{
	Suite *s = suite_create("jigsim-tcp");
	TCase *tc = tcase_create("tcp");

	tcase_add_unchecked_fixture(tc, js_pki_setup, js_pki_teardown);
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_factory_panel);
	tcase_add_test(tc, test_preconditions);
	tcase_add_test(tc, test_retransmission);
	tcase_add_test(tc, test_faults);
	tcase_add_test(tc, test_disconnect_keeps_dut);
	tcase_add_loop_test(tc, test_set_baud, 0, 5);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	return tu_run_suite(suite());
}
