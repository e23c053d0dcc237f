#include <stddef.h>
#include <string.h>

#include "step.h"

/* A new step is one line here and one row in audit/FORMAT.md section 3. */
static const step_def steps[] = {
	{ STEP_IDENTIFY, "IDENTIFY", 1 },
	{ STEP_POSTURE, "POSTURE", 1 },
	{ STEP_AUTH, "AUTH", 1 },
	{ STEP_KEYGEN, "KEYGEN", 1 },
	{ STEP_CSR, "CSR", 0 },
	{ STEP_VERIFY, "VERIFY", 1 },
	{ STEP_ACTIVATE, "VERIFY", 1 },
	{ STEP_JOURNAL, "JOURNAL", 0 },
	{ STEP_ISSUING, "JOURNAL", 0 },
	{ STEP_QUOTA, "JOURNAL", 0 },
	{ STEP_SIGN, "SIGN", 0 },
	{ STEP_ISSUED, "SIGN", 0 },
	{ STEP_RESUME, "SIGN", 1 },
	{ STEP_INSTALL, "INSTALL", 1 },
	{ STEP_LOCKING, "LOCK", 0 },
	{ STEP_LOCK, "LOCK", 1 },
	{ STEP_DONE, "DONE", 0 },
	{ STEP_ABANDONED, "DONE", 0 },
	{ STEP_REWORK_START, "REWORK", 1 },
	{ STEP_REWORK_AUTH, "REWORK", 1 },
	{ STEP_REWORK, "REWORK", 0 },
	{ STEP_RETIRE, "RETIRE", 0 },
	{ STEP_REVOKE, "REVOKE", 0 },
	{ STEP_CRL, "CRL", 0 },
	{ STEP_HALT, "HALT", 0 },
	{ STEP_HALT_RESUME, "HALT", 0 },
};

const step_def *
step_find(const char *name)
{
	size_t i;

	for (i = 0; name && i < sizeof(steps) / sizeof(steps[0]); i++)
		if (strcmp(steps[i].name, name) == 0)
			return &steps[i];
	return NULL;
}

const char *
step_display(const char *name)
{
	const step_def *s = step_find(name);

	return s ? s->display : name;
}

int
step_is_lazy(const char *name, const char *result)
{
	const step_def *s = step_find(name);

	return s && s->lazy && strcmp(result, "ok") == 0;
}

const step_def *
step_table(size_t *n)
{
	*n = sizeof(steps) / sizeof(steps[0]);
	return steps;
}
