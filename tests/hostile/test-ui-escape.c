/* The operator UI is the last line of item 7 (issue 13): whatever bytes reach
 * it — a serial, an error text, a note — come out without a control byte
 * (C0, DEL, C1) or invalid UTF-8, on the terminal, the plain output and
 * --json; valid UTF-8 text stays as it is. */
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "testutil.h"
#include "ui.h"

static const char *const evil[] = {
	"SE01\r\033[2K\033]0;pwned\007PASS SEFAKE",
	"SE\xff\xfe" "01",
	"x\xc2\x9b" "31mred", /* C1 CSI */
	"\x7f\x01\x1b",
};

static char *
render(ui_mode mode, const char *s)
{
	const char *names[] = { "jig0" };
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);
	ui *u;

	ck_assert_ptr_nonnull(f);
	ck_assert_ptr_nonnull(u = ui_new(mode, f, 1, names));
	ui_device_start(u, 0, s);
	ui_jig_note(u, 0, s);
	ui_fail(u, 0, s, "posture", s, "re-seat");
	ui_device_start(u, 0, s);
	ui_pass(u, 0, s, "00ff", 0);
	ui_free(u);
	fclose(f);
	return buf;
}

START_TEST(test_ui_escape)
{
	static const ui_mode modes[] = { UI_TTY, UI_PLAIN, UI_JSON };
	size_t i;

	for (i = 0; i < sizeof(modes) / sizeof(modes[0]); i++) {
		char *out = render(modes[i], evil[_i]);
		const unsigned char *p;
		char *line, *save = NULL;

		ck_assert_ptr_nonnull(out);
		/* The TTY's own sequences (colour, cursor) are ESC [ ... ; take
		 * those out and nothing else may be a control byte. */
		for (p = (const unsigned char *)out; *p; p++) {
			if (modes[i] == UI_TTY && p[0] == 0x1b && p[1] == '[') {
				p += 2;
				while (*p && ((*p >= '0' && *p <= '9') || *p == ';'))
					p++;
				ck_assert_msg(*p == 'm' || *p == 'A' || *p == 'J' || *p == 'K', "mode %zu: ESC [ ... %c", i, *p);
				continue;
			}
			ck_assert_msg(!((*p < 0x20 && *p != '\n') || *p == 0x7f || *p == 0xff || *p == 0xfe ||
			                  (p[0] == 0xc2 && p[1] >= 0x80 && p[1] < 0xa0)),
			    "mode %zu, string %d: byte 0x%02x at %zu in:\n%s", i, _i, *p, (size_t)(p - (const unsigned char *)out),
			    out);
		}
		ck_assert_msg(!strstr(out, "\nPASS SEFAKE"), "a forged PASS line:\n%s", out);
		if (modes[i] == UI_JSON)
			for (line = strtok_r(out, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
				json_t *ev = json_loads(line, 0, NULL);

				ck_assert_msg(ev != NULL, "not JSON: %s", line);
				json_decref(ev);
			}
		free(out);
	}
}
END_TEST

START_TEST(test_ui_utf8_kept)
{
	char *out = render(UI_PLAIN, "Gr\xc3\xbc\xc3\x9f" "e \xe2\x80\x94 ok");

	ck_assert_msg(strstr(out, "Gr\xc3\xbc\xc3\x9f" "e \xe2\x80\x94 ok") != NULL, "valid UTF-8 was escaped:\n%s", out);
	free(out);
}
END_TEST

int
main(void)
{
	Suite *s = suite_create("hostile-ui-escape");
	TCase *tc = tcase_create("escape");

	tcase_add_loop_test(tc, test_ui_escape, 0, (int)(sizeof(evil) / sizeof(evil[0])));
	tcase_add_test(tc, test_ui_utf8_kept);
	suite_add_tcase(s, tc);
	return tu_run_suite(s);
}
