/* Loading a recipe for a command and showing why it does not load: said
 * once, so every command reports a bad recipe the same way. */
#include <stdio.h>

#include "cli.h"

void
cli_recipe_errors_print(const recipe_errors *errs)
{
	size_t i, n = recipe_errors_count(errs);

	for (i = 0; i < n; i++)
		fprintf(stderr, "%s\n", recipe_errors_get(errs, i));
}

recipe *
cli_recipe_load(const char *cmd, const char *path)
{
	recipe_errors *errs = recipe_errors_new();
	recipe *r = NULL;
	size_t n;

	if (!errs) {
		fprintf(stderr, "station %s: out of memory\n", cmd);
		return NULL;
	}
	if (!(r = recipe_load(path, NULL, errs))) {
		n = recipe_errors_count(errs);
		cli_recipe_errors_print(errs);
		fprintf(stderr, "station %s: recipe %s has %zu error%s: fix %s ('station recipe check %s')\n", cmd, path,
		    n, n == 1 ? "" : "s", n == 1 ? "it" : "them", path);
	}
	recipe_errors_free(errs);
	return r;
}
