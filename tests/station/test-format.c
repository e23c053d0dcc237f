/* audit/FORMAT.md section 3 and the station's step table (station/step.c)
 * say the same: every step of the code is documented with its operator name
 * and whether its record is lazy, and every documented station step is in
 * the code.  (stu_audit_verify holds every test journal to the same
 * section: steps, results and details members.) */
#include <string.h>

#include "step.h"
#include "stutil.h"

START_TEST(test_steps_documented)
{
	stu_format f;
	size_t n, i, k;
	const step_def *t = step_table(&n);

	stu_format_load(&f);
	for (i = 0; i < n; i++) {
		for (k = 0; k < f.nsteps && strcmp(f.step[k].name, t[i].name) != 0; k++)
			;
		ck_assert_msg(k < f.nsteps, "step \"%s\" is not in audit/FORMAT.md section 3", t[i].name);
		ck_assert_msg(strcmp(f.step[k].display, t[i].display) == 0, "step %s: FORMAT.md says the operator sees %s, "
		    "the code shows %s", t[i].name, f.step[k].display, t[i].display);
		ck_assert_msg(f.step[k].lazy == t[i].lazy, "step %s: FORMAT.md says %s, the code writes it %s", t[i].name,
		    f.step[k].lazy ? "lazy" : "durable", t[i].lazy ? "lazily" : "durably");
		ck_assert_ptr_eq(step_find(t[i].name), &t[i]);
	}
	for (k = 0; k < f.nsteps; k++)
		ck_assert_msg(step_find(f.step[k].name) != NULL, "audit/FORMAT.md documents step \"%s\", the code has none",
		    f.step[k].name);
	ck_assert_uint_eq(f.nsteps, n);
	/* The operator's words and the journal's. */
	ck_assert_str_eq(step_display(STEP_VERIFY), "VERIFY");
	ck_assert_str_eq(step_display("no-such-step"), "no-such-step");
	ck_assert(step_is_lazy(STEP_POSTURE, "ok"));
	ck_assert(!step_is_lazy(STEP_POSTURE, "fail"));
	ck_assert(!step_is_lazy(STEP_ISSUING, "ok"));
}
END_TEST

static Suite *
suite(void)
{
	Suite *s = suite_create("station-format");
	TCase *tc = tcase_create("format");

	tcase_add_test(tc, test_steps_documented);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	return tu_run_suite(suite());
}
