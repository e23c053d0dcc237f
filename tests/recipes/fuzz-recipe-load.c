/* Fuzz the recipe loader (libyaml events -> tree -> schema) and the
 * template expander.  Paths in a fuzzed recipe resolve under a folder that
 * does not exist, so no real file is ever read as a certificate. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "recipe.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	recipe_load_opts opts = { "/nonexistent-fuzz-root" };
	recipe_errors *errs = recipe_errors_new();
	recipe *r = recipe_load_buffer("/nonexistent-fuzz-root/fuzz.yaml", data, size, &opts, errs);
	size_t i;

	for (i = 0; i < recipe_errors_count(errs); i++)
		if (!recipe_errors_get(errs, i) || !recipe_errors_path(errs, i))
			abort();
	recipe_free(r);
	recipe_errors_free(errs);

	/* The same bytes as a template, with facts of every kind. */
	if (size < 1024) {
		char tpl[1024], out[256];
		recipe_facts f = { "SE0011", "TSE-100", "P", "O", "r", "1" };
		st_err err;

		memcpy(tpl, data, size);
		tpl[size] = '\0';
		if (recipe_expand(tpl, &f, out, sizeof(out), &err) == 0 && strlen(out) >= sizeof(out))
			abort();
	}
	return 0;
}
