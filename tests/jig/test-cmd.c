/* `station jig info|list` (the real executable, STATION_EXE) against the
 * scripted fake jig served over TCP. */
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <jansson.h>
#include <openssl/evp.h>
#include <openssl/x509.h>

#include "fakejig.h"
#include "jig.h"
#include "testutil.h"

static fakejig fake;
static uint8_t cert[1024];
static size_t cert_len;

struct server {
	int lfd;
	pthread_t th;
	int served;
};

/* The SE's attestation certificate: what `jig info` shows the subject of. */
static void
make_cert(void)
{
	EVP_PKEY *key = EVP_EC_gen("P-256");
	X509 *x = X509_new();
	X509_NAME *n = X509_NAME_new();
	uint8_t *p = cert;
	int len;

	ck_assert_ptr_nonnull(key);
	X509_set_version(x, 2);
	ASN1_INTEGER_set(X509_get_serialNumber(x), 7);
	X509_NAME_add_entry_by_txt(n, "O", MBSTRING_ASC, (const unsigned char *)"Test SE Vendor", -1, -1, 0);
	X509_NAME_add_entry_by_txt(n, "serialNumber", MBSTRING_ASC, (const unsigned char *)"SE00F00D", -1, -1, 0);
	X509_set_subject_name(x, n);
	X509_set_issuer_name(x, n);
	X509_gmtime_adj(X509_getm_notBefore(x), 0);
	X509_gmtime_adj(X509_getm_notAfter(x), 3600);
	X509_set_pubkey(x, key);
	ck_assert_int_gt(X509_sign(x, key, EVP_sha256()), 0);
	ck_assert_int_le(len = i2d_X509(x, NULL), (int)sizeof(cert));
	cert_len = (size_t)i2d_X509(x, &p);
	X509_NAME_free(n);
	X509_free(x);
	EVP_PKEY_free(key);
}

static void *
accept_one(void *arg)
{
	struct server *s = arg;
	struct pollfd p = { .fd = s->lfd, .events = POLLIN };
	int fd;

	if (poll(&p, 1, 10000) == 1 && (fd = accept(s->lfd, NULL, NULL)) >= 0) {
		fake_start(&fake, jig_transport_fd_new(fd, "station"));
		s->served = 1;
	}
	return NULL;
}

/* Run `station jig ARGS` against a fake jig set up by the caller in `fake`;
 * "URI" in args is replaced by the fake's tcp URI.  Returns the exit code. */
static int
run_station(const char *const *args, char **out)
{
	char bound[128];
	char *argv[16];
	struct server s = { 0 };
	st_err err;
	int i, rc;

	ck_assert_int_eq(jig_transport_tcp_listen("tcp:127.0.0.1:0", &s.lfd, bound, sizeof(bound), &err), 0);
	argv[0] = (char *)tu_station_exe();
	argv[1] = (char *)"jig";
	for (i = 0; args[i]; i++)
		argv[i + 2] = strcmp(args[i], "URI") == 0 ? bound : (char *)args[i];
	argv[i + 2] = NULL;
	pthread_create(&s.th, NULL, accept_one, &s);
	rc = tu_run(argv, out);
	if (!s.served)
		shutdown(s.lfd, SHUT_RDWR); /* wake accept_one */
	pthread_join(s.th, NULL);
	close(s.lfd);
	if (s.served)
		fake_stop(&fake);
	return rc;
}

static void
reset_fake(void)
{
	if (!cert_len)
		make_cert();
	memset(&fake, 0, sizeof(fake));
	fake.cert = cert;
	fake.cert_len = cert_len;
}

static void
assert_has(const char *out, const char *want)
{
	ck_assert_msg(out && strstr(out, want), "\"%s\" not in:\n%s", want, out ? out : "(null)");
}

START_TEST(test_info_text)
{
	const char *args[] = { "info", "--jig", "URI", NULL };
	char *out = NULL;

	reset_fake();
	ck_assert_int_eq(run_station(args, &out), 0);
	assert_has(out, "jig id        fake-1\n");
	assert_has(out, "jig firmware  0.9.1\n");
	assert_has(out, "protocol      1\n");
	assert_has(out, "capabilities  dut-detect, dut-power\n");
	assert_has(out, "DUT present   yes (powered)\n");
	assert_has(out, "SE serial     SE00F00D\n");
	assert_has(out, "SE model      TSE-100\n");
	assert_has(out, "SE firmware   1.4.2\n");
	assert_has(out, "lifecycle     factory\n");
	assert_has(out, "attestation   O = Test SE Vendor, serialNumber = SE00F00D\n");
	ck_assert_int_eq(fake.nreq, 3); /* HELLO, DUT_STATUS, SE_INFO */
	free(out);
}
END_TEST

START_TEST(test_info_json)
{
	const char *args[] = { "info", "--json", "--jig", "URI", "--timeout", "500", NULL };
	json_t *j, *se;
	json_error_t jerr;
	char *out = NULL;

	reset_fake();
	ck_assert_int_eq(run_station(args, &out), 0);
	j = json_loads(out, 0, &jerr);
	ck_assert_msg(j != NULL, "not JSON (%s): %s", jerr.text, out);
	ck_assert_str_eq(json_string_value(json_object_get(j, "jig_id")), "fake-1");
	ck_assert(json_is_true(json_object_get(j, "ok")));
	ck_assert_int_eq(json_integer_value(json_object_get(j, "protocol")), 1);
	ck_assert_uint_eq(json_array_size(json_object_get(j, "capabilities")), 2);
	ck_assert(json_is_true(json_object_get(j, "dut_present")));
	se = json_object_get(j, "se");
	ck_assert_str_eq(json_string_value(json_object_get(se, "serial")), "SE00F00D");
	ck_assert_str_eq(json_string_value(json_object_get(se, "firmware")), "1.4.2");
	ck_assert_str_eq(json_string_value(json_object_get(se, "lifecycle")), "factory");
	ck_assert_ptr_nonnull(strstr(json_string_value(json_object_get(se, "attestation_subject")), "SE00F00D"));
	json_decref(j);
	free(out);
}
END_TEST

START_TEST(test_info_no_dut)
{
	const char *args[] = { "info", "--jig", "URI", NULL };
	char *out = NULL;

	reset_fake();
	fake.no_dut = 1;
	ck_assert_int_eq(run_station(args, &out), 1);
	assert_has(out, "DUT present   no\n");
	assert_has(out, "no device in the jig; insert a device and retry");
	free(out);
}
END_TEST

START_TEST(test_info_jig_errors)
{
	static const int drop[] = { FAKE_DROP, FAKE_DROP, FAKE_DROP };
	static const int refuse[] = { FAKE_ANSWER, FAKE_ANSWER, FAKE_ERROR };
	const char *args[] = { "info", "--jig", "URI", "--timeout", "100", NULL };
	char *out = NULL;

	/* a jig that never answers */
	reset_fake();
	fake.script = drop;
	fake.nscript = 3;
	ck_assert_int_eq(run_station(args, &out), 1);
	assert_has(out, ": HELLO: no answer after 100 ms (2 retries)");
	assert_has(out, "check that the jig is powered");
	free(out);
	/* a jig refusing SE_INFO */
	reset_fake();
	fake.script = refuse;
	fake.nscript = 3;
	fake.error_code = JIG_E_SE_FAILURE;
	ck_assert_int_eq(run_station(args, &out), 1);
	assert_has(out, ": SE_INFO: the jig refused: SE_FAILURE: scripted error");
	free(out);
}
END_TEST

START_TEST(test_info_unreachable_and_usage)
{
	char bound[128];
	char *out = NULL, *exe = (char *)tu_station_exe();
	int lfd;
	st_err err;

	ck_assert_int_eq(jig_transport_tcp_listen("tcp:127.0.0.1:0", &lfd, bound, sizeof(bound), &err), 0);
	close(lfd); /* nobody listens there now */
	{
		char *argv[] = { exe, (char *)"jig", (char *)"info", (char *)"--jig", bound, NULL };

		ck_assert_int_eq(tu_run(argv, &out), 1);
		assert_has(out, bound);
		assert_has(out, "cannot connect");
		free(out);
	}
	{
		char *argv[] = { exe, (char *)"jig", (char *)"info", (char *)"--jig", (char *)"serial:/dev/ttyUSB0?flow=xon", NULL };

		ck_assert_int_eq(tu_run(argv, &out), 2);
		assert_has(out, "flow \"xon\": expected none or rtscts");
		free(out);
	}
	{
		char *argv[] = { exe, (char *)"jig", (char *)"info", NULL };

		ck_assert_int_eq(tu_run(argv, &out), 2);
		assert_has(out, "--jig URI is required");
		free(out);
	}
	{
		char *argv[] = { exe, (char *)"jig", (char *)"info", (char *)"--jig", (char *)"tcp:h:1", (char *)"--timeout",
			(char *)"soon", NULL };

		ck_assert_int_eq(tu_run(argv, &out), 2);
		free(out);
	}
	{
		char *argv[] = { exe, (char *)"jig", (char *)"--help", NULL };

		ck_assert_int_eq(tu_run(argv, &out), 0);
		assert_has(out, "usage: station jig info");
		free(out);
	}
	{
		char *argv[] = { exe, (char *)"jig", (char *)"frobnicate", NULL };

		ck_assert_int_eq(tu_run(argv, &out), 2);
		free(out);
	}
}
END_TEST

START_TEST(test_list)
{
	char *exe = (char *)tu_station_exe(), *out = NULL;
	json_error_t jerr;
	json_t *j;

	{
		/* what is attached depends on the machine; the shape does not */
		char *argv[] = { exe, (char *)"jig", (char *)"list", (char *)"--json", (char *)"--usb", (char *)"cafe:0b0e", NULL };

		ck_assert_int_eq(tu_run(argv, &out), 0);
		ck_assert_msg((j = json_loads(out, 0, &jerr)) != NULL, "not JSON (%s): %s", jerr.text, out);
		ck_assert(json_is_array(json_object_get(j, "usb")));
		ck_assert(json_is_array(json_object_get(j, "serial")));
		json_decref(j);
		free(out);
	}
	{
		char *argv[] = { exe, (char *)"jig", (char *)"list", NULL };

		ck_assert_int_eq(tu_run(argv, &out), 0);
		ck_assert_msg(strstr(out, "KIND") || strstr(out, "no USB jigs and no serial ports found"), "%s", out);
		free(out);
	}
	{
		char *argv[] = { exe, (char *)"jig", (char *)"list", (char *)"--usb", (char *)"12345:1", NULL };

		ck_assert_int_eq(tu_run(argv, &out), 2);
		assert_has(out, "--usb 12345:1: expected VID:PID");
		free(out);
	}
}
END_TEST

int
main(void)
{
	Suite *s = suite_create("jig-cmd");
	TCase *tc = tcase_create("cmd");

	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_info_text);
	tcase_add_test(tc, test_info_json);
	tcase_add_test(tc, test_info_no_dut);
	tcase_add_test(tc, test_info_jig_errors);
	tcase_add_test(tc, test_info_unreachable_and_usage);
	tcase_add_test(tc, test_list);
	suite_add_tcase(s, tc);
	return tu_run_suite(s);
}
