/* Placeholder until its issue lands: the command is listed but refuses to run. */
#include <stdio.h>

#include "commands.h"

int
cmd_revoke_main(int argc, char **argv)
{
	fprintf(stderr, "station revoke: not implemented yet\n");
	return EXIT_USAGE;
}
