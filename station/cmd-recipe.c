/* Placeholder until its issue lands: the command is listed but refuses to run. */
#include <stdio.h>

#include "commands.h"

int
cmd_recipe_main(int argc, char **argv)
{
	fprintf(stderr, "station recipe: not implemented yet\n");
	return EXIT_USAGE;
}
