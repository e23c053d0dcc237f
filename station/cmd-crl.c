/* Placeholder until its issue lands: the command is listed but refuses to run. */
#include <stdio.h>

#include "commands.h"

int
cmd_crl_main(int argc, char **argv)
{
	fprintf(stderr, "station crl: not implemented yet\n");
	return EXIT_USAGE;
}
