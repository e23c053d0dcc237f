/* Placeholder until its issue lands: the command is listed but refuses to run. */
#include <stdio.h>

#include "commands.h"

int
cmd_rework_main(int argc, char **argv)
{
	fprintf(stderr, "station rework: not implemented yet\n");
	return EXIT_USAGE;
}
