#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "testutil.h"

START_TEST(test_reader_bounds)
{
	const uint8_t data[] = { 0x01, 0x02, 0x03, 0x00, 0x02, 'h', 'i', 0xff };
	const uint8_t *p;
	size_t n;
	uint8_t u8;
	uint16_t u16;
	st_rd rd;

	st_rd_init(&rd, data, sizeof(data));
	ck_assert_int_eq(st_rd_u8(&rd, &u8), 0);
	ck_assert_uint_eq(u8, 1);
	ck_assert_int_eq(st_rd_u16(&rd, &u16), 0);
	ck_assert_uint_eq(u16, 0x0203);
	ck_assert_int_eq(st_rd_lv16(&rd, &p, &n), 0);
	ck_assert_uint_eq(n, 2);
	ck_assert_int_eq(memcmp(p, "hi", 2), 0);
	ck_assert_int_eq(st_rd_done(&rd), -1); /* one byte left */
	ck_assert_int_eq(st_rd_u16(&rd, &u16), -1);
	ck_assert_int_eq(st_rd_u8(&rd, &u8), -1); /* sticky */
	ck_assert_uint_eq(st_rd_left(&rd), 0);
}
END_TEST

START_TEST(test_reader_lv_overrun)
{
	const uint8_t data[] = { 0xff, 0xff, 'x' };
	const uint8_t *p = NULL;
	size_t n = 0;
	st_rd rd;

	st_rd_init(&rd, data, sizeof(data));
	ck_assert_int_eq(st_rd_lv16(&rd, &p, &n), -1);
	ck_assert_ptr_null(p);
	ck_assert_ptr_null(st_rd_take(&rd, 0)); /* stays failed */
}
END_TEST

START_TEST(test_writer_bounds)
{
	uint8_t buf[6];
	uint32_t v;
	st_wr wr;
	st_rd rd;

	st_wr_init(&wr, buf, sizeof(buf));
	ck_assert_int_eq(st_wr_u32(&wr, 0xdeadbeef), 0);
	ck_assert_int_eq(st_wr_u16(&wr, 7), 0);
	ck_assert_int_eq(st_wr_u8(&wr, 1), -1);
	ck_assert_int_eq(wr.bad, 1);
	ck_assert_uint_eq(wr.len, 6);
	st_rd_init(&rd, buf, sizeof(buf));
	ck_assert_int_eq(st_rd_u32(&rd, &v), 0);
	ck_assert_uint_eq(v, 0xdeadbeef);
}
END_TEST

START_TEST(test_atomic_write)
{
	char *dir = tu_tmpdir("buf");
	char path[512];
	char *got;
	st_err err;

	snprintf(path, sizeof(path), "%s/f", dir);
	ck_assert_int_eq(st_file_write_atomic(path, "abc", 3, 0600, &err), 0);
	ck_assert_int_eq(st_file_write_atomic(path, "defg", 4, 0600, &err), 0);
	got = tu_slurp(path, NULL);
	ck_assert_str_eq(got, "defg");
	free(got);
	ck_assert_int_eq(st_file_read("/nonexistent/x", 10, (uint8_t **)&got, &(size_t){ 0 }, &err), -1);
	ck_assert_int_eq(err.code, ST_E_NOTFOUND);
	ck_assert_ptr_nonnull(strstr(err.msg, "/nonexistent/x"));

	/* A device is written, not replaced (a link to /dev/null here, so a
	 * regression replaces the link, not the system's /dev/null). */
	snprintf(path, sizeof(path), "%s/null", dir);
	ck_assert_int_eq(symlink("/dev/null", path), 0);
	ck_assert_msg(st_file_write_atomic(path, "abc", 3, 0600, &err) == 0, "%s", err.msg);
	ck_assert_msg(st_file_write_replace(path, "abc", 3, 0600, &err) == 0, "%s", err.msg);
	{
		struct stat sb;

		ck_assert_int_eq(lstat(path, &sb), 0);
		ck_assert(S_ISLNK(sb.st_mode));
		ck_assert_int_eq(stat("/dev/null", &sb), 0);
		ck_assert(S_ISCHR(sb.st_mode));
	}
	/* A folder is refused, and said to be one. */
	ck_assert_int_eq(st_file_write_atomic(dir, "abc", 3, 0600, &err), -1);
	ck_assert_ptr_nonnull(strstr(err.msg, "not a file"));
	tu_rmtree(dir);
	free(dir);
}
END_TEST

int
main(void)
{
	Suite *s = suite_create("buf");
	TCase *tc = tcase_create("buf");

	tcase_add_test(tc, test_reader_bounds);
	tcase_add_test(tc, test_reader_lv_overrun);
	tcase_add_test(tc, test_writer_bounds);
	tcase_add_test(tc, test_atomic_write);
	suite_add_tcase(s, tc);
	return tu_run_suite(s);
}
