/* Fuzz target 'fleet-line': arbitrary bytes as one data line of a fleet
 * revocations file (`station crl --revocations`; station/fleet.h), its
 * newline gone.  Nothing may crash; a refusal names the line and says why;
 * an accepted line is exactly three fields apart by blanks, and its reason
 * is the third one as written. */
#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include "fleet.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *line = malloc(size + 1), *p, *field[4] = { NULL };
	fleet_rev r;
	st_err err;
	size_t n = 0;

	if (!line)
		return 0;
	memcpy(line, data, size);
	line[size] = '\0'; /* the file reader refuses a line with a NUL byte before it gets here */
	err.msg[0] = '\0';
	if (fleet_line("f", 1, line, &r, &err) < 0) {
		if (strncmp(err.msg, "f:1:", 4) != 0)
			abort(); /* every refusal names the line */
		free(line);
		return 0;
	}
	for (p = strtok(line, " \t\n\v\f\r"); p && n < 4; p = strtok(NULL, " \t\n\v\f\r"))
		field[n++] = p;
	if (n != 3 || strcmp(field[2], r.reason) != 0 || !r.serial[0])
		abort();
	free(line);
	return 0;
}
