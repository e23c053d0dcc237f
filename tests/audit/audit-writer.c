/* audit-writer: append events read from stdin to a journal.  A test and
 * fixture tool (make-golden uses it), not part of the station: the station
 * journals only what it does.
 *
 *   audit-writer --dir DIR --station ID --operator NAME --recipe HEX
 *                [--batch-devices N] [--engineering] < EVENTS
 *
 * EVENTS: one JSON object per line with "step" and "result" (strings) and
 * optional "jig", "device" (strings) and "details" (object).  Prints each
 * record's sequence number. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "audit.h"

static int
usage(void)
{
	fprintf(stderr, "usage: audit-writer --dir DIR --station ID --operator NAME --recipe HEX "
	                "[--batch-devices N] [--engineering] < EVENTS\n");
	return 2;
}

int
main(int argc, char **argv)
{
	audit_config cfg = { NULL, NULL, NULL, 0, 0, NULL };
	const char *dir = NULL;
	audit_journal *j = NULL;
	char *line = NULL;
	size_t cap = 0;
	unsigned lineno = 0;
	st_err err;
	int i, ret = 1;

	for (i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--engineering") == 0)
			cfg.engineering = 1;
		else if (i + 1 >= argc)
			return usage();
		else if (strcmp(argv[i], "--dir") == 0)
			dir = argv[++i];
		else if (strcmp(argv[i], "--station") == 0)
			cfg.station = argv[++i];
		else if (strcmp(argv[i], "--operator") == 0)
			cfg.operator_name = argv[++i];
		else if (strcmp(argv[i], "--recipe") == 0)
			cfg.recipe = argv[++i];
		else if (strcmp(argv[i], "--batch-devices") == 0)
			cfg.batch_devices = (unsigned)strtoul(argv[++i], NULL, 10);
		else
			return usage();
	}
	if (!dir || !cfg.station)
		return usage();
	if (!(j = audit_open(dir, &cfg, &err))) {
		fprintf(stderr, "audit-writer: %s\n", err.msg);
		return 1;
	}
	while (getline(&line, &cap, stdin) > 0) {
		json_error_t jerr;
		json_t *o = json_loads(line, 0, &jerr);
		audit_event ev;
		uint64_t seq;

		lineno++;
		if (!o || !json_is_object(o)) {
			fprintf(stderr, "audit-writer: stdin:%u: %s\n", lineno, o ? "not a JSON object" : jerr.text);
			json_decref(o);
			goto out;
		}
		ev.jig = json_string_value(json_object_get(o, "jig"));
		ev.device = json_string_value(json_object_get(o, "device"));
		ev.step = json_string_value(json_object_get(o, "step"));
		ev.result = json_string_value(json_object_get(o, "result"));
		ev.details = json_object_get(o, "details");
		if (audit_append(j, &ev, &seq, &err) < 0) {
			fprintf(stderr, "audit-writer: stdin:%u: %s\n", lineno, err.msg);
			json_decref(o);
			goto out;
		}
		printf("%llu\n", (unsigned long long)seq);
		json_decref(o);
	}
	ret = 0;
out:
	free(line);
	audit_close(j);
	return ret;
}
