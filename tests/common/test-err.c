#include <errno.h>
#include <fcntl.h>
#include <regex.h>
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>
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
capture(int level, const char *module, const char *line)
{
	size_t n = strlen(logged);

	snprintf(logged + n, sizeof(logged) - n, "%d|%s|%s\n", level, module, line);
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
	ck_assert_str_eq(logged, "7|jig|tcp:x: retransmitting seq 7\n"
	    "7|jig|tx 0000: a501000000000000000000000000000000000000000000000000000000000000"
	    "0000000000000000000000000000000000000000000000000000000000000000\n"
	    "7|jig|tx 0040: 000000000000\n"
	    "7|jig|rx (empty)\n");
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

/* st_log_stderr's lines, with stderr sent to a file: a UTC timestamp with
 * milliseconds and the level; with JOURNAL_STREAM naming that file (as
 * systemd sets it), a syslog priority prefix instead; JOURNAL_STREAM naming
 * another stream (a redirected child) changes nothing. */
START_TEST(test_log_stderr_format)
{
	char *dir = tu_tmpdir("log"), path[4200], js[64], *text;
	int fd, saved;
	struct stat st;

	snprintf(path, sizeof(path), "%s/stderr", dir);
	ck_assert_int_ge(fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600), 0);
	ck_assert_int_eq(fstat(fd, &st), 0);
	fflush(stderr);
	ck_assert_int_ge(saved = dup(STDERR_FILENO), 0);
	ck_assert_int_eq(dup2(fd, STDERR_FILENO), STDERR_FILENO);
	unsetenv("JOURNAL_STREAM");
	st_log_set_handler(st_log_stderr);
	st_log("jig", "frame %u", 1u);
	st_logl(ST_LOG_WARNING, "metrics", "cannot write\nsecond line");
	setenv("JOURNAL_STREAM", "1:2", 1);
	st_logl(ST_LOG_ERR, "hsm", "not the journal");
	snprintf(js, sizeof(js), "%llu:%llu", (unsigned long long)st.st_dev, (unsigned long long)st.st_ino);
	setenv("JOURNAL_STREAM", js, 1);
	st_logl(ST_LOG_ERR, "hsm", "token gone");
	st_log("jig", "frame %u", 2u);
	st_logl(ST_LOG_INFO, "audit", "sealed");
	fflush(stderr);
	dup2(saved, STDERR_FILENO);
	close(saved);
	close(fd);
	st_log_set_handler(NULL);
	unsetenv("JOURNAL_STREAM");
	ck_assert_ptr_nonnull(text = tu_slurp(path, NULL));
	{
		static const char *const want[] = {
			"^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\\.[0-9]{3}Z debug \\[jig\\] frame 1\n"
			"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\\.[0-9]{3}Z warning \\[metrics\\] cannot write second line\n"
			"[0-9-]{10}T[0-9:.]{12}Z error \\[hsm\\] not the journal\n"
			"<3>\\[hsm\\] token gone\n"
			"<7>\\[jig\\] frame 2\n"
			"<6>\\[audit\\] sealed\n$",
		};
		regex_t re;

		ck_assert_int_eq(regcomp(&re, want[0], REG_EXTENDED), 0);
		ck_assert_msg(regexec(&re, text, 0, NULL, 0) == 0, "log lines:\n%s", text);
		regfree(&re);
	}
	free(text);
	tu_rmtree(dir);
	free(dir);
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
	tcase_add_test(tc, test_log_stderr_format);
	suite_add_tcase(s, tc);
	return tu_run_suite(s);
}
