#include <errno.h>
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

int
main(void)
{
	Suite *s = suite_create("err");
	TCase *tc = tcase_create("err");

	tcase_add_test(tc, test_prefix_chain);
	tcase_add_test(tc, test_errno_and_openssl);
	suite_add_tcase(s, tc);
	return tu_run_suite(s);
}
