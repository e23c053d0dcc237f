/* What the commands share when they talk to the operator. */
#ifndef STATION_CLI_H
#define STATION_CLI_H

#include "recipe.h"

/* Every error of a recipe load on stderr, one a line ("FILE:LINE:COL: key: message"). */
void cli_recipe_errors_print(const recipe_errors *errs);
/* Load the recipe a command works with.  When it does not load, its errors
 * go to stderr followed by "station CMD: recipe PATH has N errors: fix them
 * ('station recipe check PATH')", and the result is NULL. */
recipe *cli_recipe_load(const char *cmd, const char *path);

#endif
