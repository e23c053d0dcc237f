/* Placeholder until its issue lands: the command is listed but refuses to run. */
#include <stdio.h>

#include "commands.h"

int
cmd_audit_main(int argc, char **argv)
{
	fprintf(stderr, "station audit: not implemented yet\n");
	return EXIT_USAGE;
}
