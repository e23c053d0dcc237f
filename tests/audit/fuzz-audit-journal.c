/* Fuzz target 'audit-journal': arbitrary bytes as a batch file, through the
 * reader that `audit_verify` and `audit_scan` use and through the torn-tail
 * classifier `audit_open` applies to the open batch. */
#include <stdint.h>
#include <stdlib.h>

#include "audit-int.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	audit_report *rep = NULL;
	struct audit_chain c;
	struct audit_walk w;
	st_err err;

	/* On its own: the first record anchors the chain. */
	audit_verify_buffer("batch-000001.jsonl", data, size, &rep, &err);
	audit_report_free(rep);

	/* As the first batch of a journal, as audit_open reads it. */
	audit_chain_start(&c);
	audit_walk_batch("batch-000001.jsonl", data, size, &c, &w, NULL, NULL);
	if (w.bad && w.bad_offset > size)
		abort();
	if (w.bad)
		(void)audit_good_record_after(data, size, w.bad_offset);
	audit_walk_clear(&w);
	return 0;
}
