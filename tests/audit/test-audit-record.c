/* audit_record_parse against a reference reading (record-ref.c: jansson's
 * tree of the whole line, the schema checked on it): valid records, records
 * that break each rule, and a few hundred thousand mutations of them must
 * be accepted or refused alike, and read alike where accepted. */
#include <check.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "audit-int.h"
#include "record-ref.h"
#include "testutil.h"

#define P64 "\"prev\":\"00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff\""
#define HEAD "\"v\":1,\"seq\":7,\"time\":\"2026-11-21T09:43:30.123Z\",\"station\":\"s\",\"operator\":\"o\",\"recipe\":\"\""

static const char *const lines[] = {
	"{" HEAD ",\"jig\":\"tcp:127.0.0.1:7700\",\"device\":\"SE-1\",\"step\":\"issued\",\"result\":\"ok\","
	"\"details\":{\"cert_serial\":\"5d1c\",\"cert\":\"MIIB\",\"n\":[1,2.5,-3e2,true,false,null,{\"a\":{}}]}," P64 "}",
	"{" HEAD ",\"jig\":null,\"device\":null,\"step\":\"batch-close\",\"result\":\"info\",\"engineering\":true,"
	"\"details\":{}," P64 "}",
	"{ " P64 " , \"details\" : { \"k\" : \"v\" } ,\"result\":\"fail\",\"step\":\"x\",\"device\":\"d\",\"jig\":null,"
	"\"recipe\":\"r\",\"operator\":\"\",\"station\":\"\",\"time\":\"2026-11-21T09:43:30.123Z\",\"seq\":9223372036854775807,"
	"\"v\":1}\t",
	"{" HEAD ",\"jig\":\"j\\u00e9\\ud83d\\ude00\\n\\t\\\"\\\\\\/\\b\\f\\r\",\"device\":\"\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80\","
	"\"step\":\"s\",\"result\":\"ok\",\"details\":{\"x\":\"\\u0041\"}," P64 "}",
	/* Each breaks one rule. */
	"{" HEAD ",\"jig\":null,\"device\":null,\"step\":\"s\",\"result\":\"ok\",\"details\":{}," P64 ",\"v\":1}",
	"{" HEAD ",\"jig\":null,\"device\":null,\"step\":\"s\",\"result\":\"ok\",\"details\":{\"a\":1,\"a\":2}," P64 "}",
	"{" HEAD ",\"jig\":null,\"device\":null,\"step\":\"s\",\"result\":\"ok\",\"details\":{},\"extra\":1," P64 "}",
	"{" HEAD ",\"jig\":null,\"device\":\"a\\u0000b\",\"step\":\"s\",\"result\":\"ok\",\"details\":{}," P64 "}",
	"{" HEAD ",\"jig\":null,\"device\":\"\\ud800\",\"step\":\"s\",\"result\":\"ok\",\"details\":{}," P64 "}",
	"{" HEAD ",\"jig\":null,\"device\":\"\\udc00\\ud800\",\"step\":\"s\",\"result\":\"ok\",\"details\":{}," P64 "}",
	"{" HEAD ",\"jig\":null,\"device\":\"\xc0\xaf\",\"step\":\"s\",\"result\":\"ok\",\"details\":{}," P64 "}",
	"{" HEAD ",\"jig\":null,\"device\":\"\xed\xa0\x80\",\"step\":\"s\",\"result\":\"ok\",\"details\":{}," P64 "}",
	"{" HEAD ",\"jig\":null,\"device\":\"\xf4\x90\x80\x80\",\"step\":\"s\",\"result\":\"ok\",\"details\":{}," P64 "}",
	"{" HEAD ",\"jig\":null,\"device\":\"a\tb\",\"step\":\"s\",\"result\":\"ok\",\"details\":{}," P64 "}",
	"{" HEAD ",\"jig\":null,\"device\":null,\"step\":\"s\",\"result\":\"ok\",\"details\":{}," P64 "} x",
	"{" HEAD ",\"jig\":null,\"device\":null,\"step\":\"s\",\"result\":\"ok\",\"details\":[]," P64 "}",
	"{" HEAD ",\"jig\":null,\"device\":null,\"step\":\"\",\"result\":\"ok\",\"details\":{}," P64 "}",
	"{" HEAD ",\"jig\":null,\"device\":null,\"step\":\"s\",\"result\":\"ok\",\"engineering\":false,\"details\":{}," P64 "}",
	"{\"v\":1.0,\"seq\":7,\"time\":\"2026-11-21T09:43:30.123Z\",\"station\":\"s\",\"operator\":\"o\",\"recipe\":\"\","
	"\"jig\":null,\"device\":null,\"step\":\"s\",\"result\":\"ok\",\"details\":{}," P64 "}",
	"{\"v\":1,\"seq\":9223372036854775808,\"time\":\"2026-11-21T09:43:30.123Z\",\"station\":\"s\",\"operator\":\"o\","
	"\"recipe\":\"\",\"jig\":null,\"device\":null,\"step\":\"s\",\"result\":\"ok\",\"details\":{}," P64 "}",
	"{\"v\":1,\"seq\":07,\"time\":\"2026-11-21T09:43:30.123Z\",\"station\":\"s\",\"operator\":\"o\",\"recipe\":\"\","
	"\"jig\":null,\"device\":null,\"step\":\"s\",\"result\":\"ok\",\"details\":{}," P64 "}",
	"{" HEAD ",\"jig\":{},\"device\":null,\"step\":\"s\",\"result\":\"ok\",\"details\":{}," P64 "}",
	"[1]",
	"",
	"{}",
};

static int
same_str(const char *a, const char *b)
{
	return (!a && !b) || (a && b && strcmp(a, b) == 0);
}

static unsigned long compared, accepted;

/* Both readers on one line: the same verdict, the same fields. */
static void
compare(const char *line, size_t len)
{
	struct audit_parsed ps;
	audit_record a, b;
	json_t *root = NULL;
	char why_a[512], why_b[512];
	int ra, rb;

	memset(&ps, 0, sizeof(ps));
	ra = audit_record_parse(line, len, &ps, &a, why_a, sizeof(why_a));
	rb = ref_record_parse(line, len, &root, &b, why_b, sizeof(why_b));
	ck_assert_msg(ra == rb, "verdicts differ on %.*s: audit_record_parse %d (%s), reference %d (%s)", (int)len, line, ra,
	    ra ? why_a : "", rb, rb ? why_b : "");
	if (ra == 0) {
		ck_assert_msg(a.seq == b.seq && same_str(a.time, b.time) && same_str(a.station, b.station) &&
		        same_str(a.operator_name, b.operator_name) && same_str(a.recipe, b.recipe) && same_str(a.jig, b.jig) &&
		        same_str(a.device, b.device) && same_str(a.step, b.step) && same_str(a.result, b.result) &&
		        a.engineering == b.engineering && json_equal(a.details, b.details) &&
		        strcmp(ps.prev, json_string_value(json_object_get(root, "prev"))) == 0,
		    "fields differ on %.*s", (int)len, line);
		accepted++;
	}
	compared++;
	json_decref(root);
	audit_parsed_clear(&ps);
}

START_TEST(test_lines)
{
	size_t i;

	/* A raw NUL byte after a literal, a number, inside details (jansson
	 * 2.14 skips the first two; found by fuzz-audit-journal). */
	static const char nul_lines[][400] = {
		"{" HEAD ",\"jig\":null\0,\"device\":null,\"step\":\"s\",\"result\":\"ok\",\"details\":{}," P64 "}",
		"{\"v\":1\0," "\"seq\":7,\"time\":\"2026-11-21T09:43:30.123Z\",\"station\":\"s\",\"operator\":\"o\",\"recipe\":\"\","
		"\"jig\":null,\"device\":null,\"step\":\"s\",\"result\":\"ok\",\"details\":{}," P64 "}",
		"{" HEAD ",\"jig\":null,\"device\":null,\"step\":\"s\",\"result\":\"ok\",\"details\":{\"n\":1\0}," P64 "}",
	};
	struct audit_parsed ps;
	audit_record rec;
	char why[512];

	for (i = 0; i < sizeof(lines) / sizeof(lines[0]); i++)
		compare(lines[i], strlen(lines[i]));
	ck_assert_uint_eq(accepted, 4); /* the four valid records */
	for (i = 0; i < sizeof(nul_lines) / sizeof(nul_lines[0]); i++) {
		size_t n = strlen(nul_lines[i]);

		n += 1 + strlen(nul_lines[i] + n + 1); /* the whole line, NUL included */
		compare(nul_lines[i], n);
		memset(&ps, 0, sizeof(ps));
		ck_assert_int_eq(audit_record_parse(nul_lines[i], n, &ps, &rec, why, sizeof(why)), -1);
		ck_assert_msg(strstr(why, "a NUL byte at column"), "%s", why);
		audit_parsed_clear(&ps);
	}
	ck_assert_uint_eq(accepted, 4);
}
END_TEST

static uint64_t rng = 0x5eed5eed12345678ull;

static unsigned
rnd(unsigned n)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return (unsigned)(rng % n);
}

/* Mutations of the lines: bytes replaced, inserted, removed, spans cut or
 * doubled, from an alphabet of JSON's syntax, escapes and UTF-8 edges. */
START_TEST(test_mutations)
{
	static const char *const bits[] = { "\"", "\\", "{", "}", "[", "]", ",", ":", "0", "1", "-", ".", "e", "+", "t",
		"true", "null", "false", " ", "\t", "\r", "\\u", "\\u0000", "\\ud800", "\\udc00", "\\u00e9", "\\ud83d\\ude00",
		"\xc3", "\xa9", "\xc0\x80", "\xed\xa0\x80", "\xf4\x90\x80\x80", "\xf0\x9f\x98\x80", "\x01", "\x7f", "\xff",
		"\"details\":{}", "\"v\":1", ",\"seq\":7", "\"jig\":null", "\"engineering\":true", "9223372036854775808" };
	char buf[4096];
	size_t i, len, at, n, cut;
	unsigned k, m;

	for (i = 0; i < sizeof(lines) / sizeof(lines[0]); i++) {
		for (k = 0; k < 12000; k++) {
			len = strlen(lines[i]);
			memcpy(buf, lines[i], len);
			for (m = 0; m <= rnd(3); m++) {
				const char *b = bits[rnd(sizeof(bits) / sizeof(bits[0]))];

				n = strlen(b);
				at = len ? rnd((unsigned)len + 1) : 0;
				switch (rnd(4)) {
				case 0: /* replace */
					if (at + n <= len) {
						memcpy(buf + at, b, n);
						break;
					}
					/* fall through */
				case 1: /* insert */
					if (len + n < sizeof(buf)) {
						memmove(buf + at + n, buf + at, len - at);
						memcpy(buf + at, b, n);
						len += n;
					}
					break;
				case 2: /* remove */
					cut = at < len ? 1 + rnd((unsigned)(len - at < 8 ? len - at : 8)) : 0;
					memmove(buf + at, buf + at + cut, len - at - cut);
					len -= cut;
					break;
				default: /* double a span */
					cut = at < len ? 1 + rnd((unsigned)(len - at < 40 ? len - at : 40)) : 0;
					if (len + cut < sizeof(buf)) {
						memmove(buf + at + cut, buf + at, len - at);
						len += cut;
					}
					break;
				}
			}
			compare(buf, len);
		}
	}
	/* The mutations must reach both verdicts (most break a line; about
	 * one in 250 is still a record, its fields compared). */
	ck_assert_uint_gt(accepted, compared / 1000);
	ck_assert_uint_lt(accepted, compared / 2);
}
END_TEST

int
main(void)
{
	Suite *s = suite_create("audit-record");
	TCase *tc = tcase_create("record");

	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, test_lines);
	tcase_add_test(tc, test_mutations);
	suite_add_tcase(s, tc);
	return tu_run_suite(s);
}
