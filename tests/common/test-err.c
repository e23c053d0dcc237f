#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/err.h>

#include "testutil.h"

START_TEST(test_prefix_chain)
{
	st_err err;

	st_err_clear(&err);
	ck_assert_int_eq(st_err_set(&err, ST_E_TIMEOUT, "no answer after %d ms", 800), -1);
	st_err_prefix(&err, "KEYGEN");
	st_err_prefix(&err, "jig %s", "tcp:127.0.0.1:7000");
	ck_assert_str_eq(err.msg, "jig tcp:127.0.0.1:7000: KEYGEN: no answer after 800 ms");
	ck_assert_int_eq(err.code, ST_E_TIMEOUT);
	ck_assert_int_eq(st_err_set(NULL, ST_E_IO, "ignored"), -1);
}
END_TEST

START_TEST(test_errno_and_openssl)
{
	st_err err;

	st_err_errno(&err, ST_E_IO, ENOENT, "open %s", "x");
	ck_assert_str_eq(err.msg, "open x: No such file or directory");
	ck_assert_ptr_null(EVP_get_digestbyname("no-such-digest"));
	ERR_raise(ERR_LIB_EVP, EVP_R_UNSUPPORTED_ALGORITHM);
	st_err_openssl(&err, ST_E_CRYPTO, "digest");
	ck_assert_ptr_nonnull(strstr(err.msg, "digest ("));
	ck_assert_int_eq(ERR_peek_error(), 0);
}
END_TEST

/* The log goes where the handler says, and nowhere without one. */
static char logged[4096];
static unsigned nlogged;

static void
capture(const char *module, const char *line)
{
	size_t n = strlen(logged);

	snprintf(logged + n, sizeof(logged) - n, "%s|%s\n", module, line);
	nlogged++;
}

START_TEST(test_log_handler)
{
	static const uint8_t bytes[70] = { 0xA5, 0x01 };

	unsetenv("STATION_DEBUG");
	st_log_set_handler(NULL);
	st_log_from_env();
	ck_assert_int_eq(st_log_enabled(), 0);
	st_log_set_handler(capture);
	ck_assert_int_eq(st_log_enabled(), 1);
	st_log("jig", "%s: retransmitting seq %u", "tcp:x", 7u);
	st_log_hex("jig", "tx", bytes, sizeof(bytes));
	st_log_hex("jig", "rx", bytes, 0);
	ck_assert_uint_eq(nlogged, 4);
	ck_assert_str_eq(logged, "jig|tcp:x: retransmitting seq 7\n"
	    "jig|tx 0000: a501000000000000000000000000000000000000000000000000000000000000"
	    "0000000000000000000000000000000000000000000000000000000000000000\n"
	    "jig|tx 0040: 000000000000\n"
	    "jig|rx (empty)\n");
	st_log_set_handler(NULL);
	st_log("jig", "dropped");
	ck_assert_uint_eq(nlogged, 4);
	/* STATION_DEBUG picks the stderr handler; "0" means off. */
	setenv("STATION_DEBUG", "0", 1);
	st_log_from_env();
	ck_assert_int_eq(st_log_enabled(), 0);
	setenv("STATION_DEBUG", "1", 1);
	st_log_from_env();
	ck_assert_int_eq(st_log_enabled(), 1);
	st_log_set_handler(NULL);
	unsetenv("STATION_DEBUG");
}
END_TEST

int
main(void)
{
	Suite *s = suite_create("err");
	TCase *tc = tcase_create("err");

	tcase_add_test(tc, test_prefix_chain);
	tcase_add_test(tc, test_errno_and_openssl);
	tcase_add_test(tc, test_log_handler);
	suite_add_tcase(s, tc);
	return tu_run_suite(s);
}
