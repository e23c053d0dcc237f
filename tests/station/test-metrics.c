/* The metrics file's label values (station/metrics.c) against hostile
 * strings: whatever a jig sends as its id or firmware, and whatever a jig
 * URI holds, is one label value in the file, escaped as the Prometheus text
 * format 0.0.4 defines (\\, \", \n), every other byte that is not printable
 * ASCII spelled \xNN, so no raw jig byte reaches the file and no string
 * can end a label, a sample or a line early. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "metrics.h"
#include "testutil.h"

static char *
escaped(const char *s)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);

	ck_assert_ptr_nonnull(f);
	metrics_label(f, s);
	ck_assert_int_eq(fclose(f), 0);
	return buf;
}

/* A label value as the format reads it back, from just after its opening
 * quote: *end is set after the closing quote.  NULL when the value is not
 * well formed (an escape the format does not have, no closing quote). */
static char *
unescape(const char *p, const char **end)
{
	char *out = malloc(strlen(p) + 1);
	size_t o = 0;

	ck_assert_ptr_nonnull(out);
	for (; *p && *p != '"'; p++) {
		if (*p == '\n') {
			free(out);
			return NULL;
		}
		if (*p != '\\') {
			out[o++] = *p;
			continue;
		}
		p++;
		if (*p == '\\' || *p == '"')
			out[o++] = *p;
		else if (*p == 'n')
			out[o++] = '\n';
		else {
			free(out);
			return NULL;
		}
	}
	if (*p != '"') {
		free(out);
		return NULL;
	}
	out[o] = '\0';
	*end = p + 1;
	return out;
}

static const struct {
	const char *in, *out;
} cases[] = {
	{ "", "" },
	{ "jigsim-1", "jigsim-1" },
	{ "back\\slash", "back\\\\slash" },
	{ "say \"hi\"", "say \\\"hi\\\"" },
	{ "two\nlines", "two\\nlines" },
	{ "\\n is not a line feed", "\\\\n is not a line feed" },
	{ "end\\", "end\\\\" },
	{ "\"", "\\\"" },
	/* a label, a sample and a second series smuggled in */
	{ "x\"} 1\nstation_devices_total{jig=\"y", "x\\\"} 1\\nstation_devices_total{jig=\\\"y" },
	/* control bytes, a terminal escape, DEL, bytes above ASCII */
	{ "\x01\t\r\x1b[2J\x7f", "\\\\x01\\\\x09\\\\x0d\\\\x1b[2J\\\\x7f" },
	{ "caf\xc3\xa9 \xff\xfe", "caf\\\\xc3\\\\xa9 \\\\xff\\\\xfe" },
};

START_TEST(test_label_escape)
{
	char *got = escaped(cases[_i].in), *back;
	const char *end;
	char quoted[1024];

	ck_assert_msg(strcmp(got, cases[_i].out) == 0, "case %d: got \"%s\", expected \"%s\"", _i, got, cases[_i].out);
	/* Read back as the format reads it: one value, up to the closing quote. */
	snprintf(quoted, sizeof(quoted), "%s\"} 1", got);
	ck_assert_msg((back = unescape(quoted, &end)) != NULL, "case %d: \"%s\" is not a well-formed label value", _i, got);
	ck_assert_str_eq(end, "} 1");
	free(back);
	free(got);
}
END_TEST

/* Printable ASCII and line feeds come back exactly as they were. */
START_TEST(test_label_roundtrip)
{
	char in[257], quoted[1200], *got, *back;
	const char *end;
	unsigned seed = 1, i, round;

	for (round = 0; round < 500; round++) {
		for (i = 0; i < sizeof(in) - 1; i++) {
			unsigned v = (seed = seed * 1103515245u + 12345u) >> 16;

			in[i] = v % 97 == 0 ? '\n' : (char)(0x20 + v % 95);
		}
		in[sizeof(in) - 1] = '\0';
		got = escaped(in);
		snprintf(quoted, sizeof(quoted), "%s\"", got);
		ck_assert_ptr_nonnull(back = unescape(quoted, &end));
		ck_assert_str_eq(back, in);
		ck_assert_str_eq(end, "");
		free(back);
		free(got);
	}
}
END_TEST

/* What hostile jig strings become in the file: count the samples, read
 * the jig ids back, and have promtool read it. */
START_TEST(test_file_with_hostile_jigs)
{
	const char *uris[] = { "tcp:127.0.0.1:1\"} 1\nstation_jig_info{jig=\"evil", "serial:/dev/tty\\USB0\x1b[31m" };
	const char *ids[] = { "jig\"}\n# TYPE x counter\nx 1", "\x7f\x80id\\" };
	char *dir = tu_tmpdir("metrics"), path[4200], *text, *line, *save = NULL;
	metrics *m;
	st_err err;
	unsigned infos = 0, samples = 0;
	size_t i;

	snprintf(path, sizeof(path), "%s/station.prom", dir);
	ck_assert_msg((m = metrics_new(path, 2, uris, &err)) != NULL, "%s", err.msg);
	for (i = 0; i < 2; i++) {
		metrics_jig(m, i, ids[i], "fw \"1\"\n", "1.1");
		metrics_device(m, i, 0, "verify\n", "\"reason\"", 0.5);
		metrics_device(m, i, 1, NULL, NULL, 1.5);
	}
	metrics_hsm_sign(m, METRICS_KEY_TOOL, 0.002);
	ck_assert_msg(metrics_update(m, NULL, 1, &err) == 0, "%s", err.msg);
	ck_assert_ptr_nonnull(text = tu_slurp(path, NULL));
	for (i = 0; text[i]; i++)
		ck_assert_msg(text[i] == '\n' || (text[i] >= 0x20 && text[i] <= 0x7e), "raw byte 0x%02x at %zu",
		    (unsigned char)text[i], i);
	for (line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		const char *p;

		if (strncmp(line, "# HELP station_", 15) == 0 || strncmp(line, "# TYPE station_", 15) == 0)
			continue;
		ck_assert_msg(strncmp(line, "station_", 8) == 0, "not a station sample: %s", line);
		samples++;
		p = line + strcspn(line, "{ ");
		if (*p == '{') {
			/* name="value" pairs, each value well formed, then "} VALUE" */
			for (p++; *p != '}';) {
				const char *eq = strchr(p, '=');
				char *v;

				ck_assert_msg(eq && eq[1] == '"', "bad label in: %s", line);
				ck_assert_msg((v = unescape(eq + 2, &p)) != NULL, "bad label value in: %s", line);
				if (strncmp(line, "station_jig_info{", 17) == 0 && strncmp(eq - 6, "jig_id", 6) == 0) {
					const char *want = infos == 0 ? ids[0] : "\\x7f\\x80id\\";

					ck_assert_str_eq(v, want);
					infos++;
				}
				free(v);
				if (*p == ',')
					p++;
			}
			p++;
		}
		ck_assert_msg(*p == ' ' && p[1], "no value in: %s", line);
	}
	ck_assert_uint_eq(infos, 2);
	/* 2 info + 4 device counts + 2 failure rows + yield + 2 x 15 cycle + 2 x 14 HSM + in progress + start */
	ck_assert_uint_eq(samples, 2 + 4 + 2 + 1 + 2 * 15 + 2 * 14 + 2);
	/* and promtool reads it as these samples, nothing more */
	tu_promtool_check(path);
	free(text);
	metrics_free(m);
	tu_rmtree(dir);
	free(dir);
}
END_TEST

int
main(void)
{
	Suite *s = suite_create("station-metrics-labels");
	TCase *tc = tcase_create("labels");

	tcase_add_loop_test(tc, test_label_escape, 0, (int)(sizeof(cases) / sizeof(cases[0])));
	tcase_add_test(tc, test_label_roundtrip);
	tcase_add_test(tc, test_file_with_hostile_jigs);
	suite_add_tcase(s, tc);
	return tu_run_suite(s);
}
