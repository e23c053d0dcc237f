/* Fuzz target 'audit-journal': arbitrary bytes as a batch file, through the
 * reader that `audit_verify` and `audit_scan` use and through the torn-tail
 * classifier `audit_open` applies to the open batch.  Every record that
 * parses has its details' span checked: the text found is the value parsed;
 * every line is read by the reference reader too (record-ref.c), and the
 * two must agree. */
#include <stdint.h>
#include <stdlib.h>

#include <string.h>

#include "audit-int.h"
#include "record-ref.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int
check_span(const audit_record *rec, void *ctx)
{
	const char *p;
	size_t n;
	json_t *v;

	(void)ctx;
	if (audit_record_details_span(rec, &p, &n) == 0) {
		if (p < rec->text || p + n > rec->text + rec->text_len || !(v = json_loadb(p, n, 0, NULL)))
			abort();
		if (!json_equal(v, rec->details))
			abort();
		json_decref(v);
	}
	return 0;
}

static void
same_verdict(const uint8_t *data, size_t size)
{
	const uint8_t *p = data, *nl;

	while (p < data + size) {
		size_t l = (nl = memchr(p, '\n', (size_t)(data + size - p))) ? (size_t)(nl - p) : (size_t)(data + size - p);
		struct audit_parsed ps;
		audit_record a, b;
		json_t *root = NULL;
		char why[512];
		int ra, rb;

		memset(&ps, 0, sizeof(ps));
		ra = audit_record_parse((const char *)p, l, &ps, &a, why, sizeof(why));
		rb = ref_record_parse((const char *)p, l, &root, &b, why, sizeof(why));
		if (ra != rb || (!ra && (a.seq != b.seq || strcmp(a.step, b.step) != 0 || !json_equal(a.details, b.details))))
			abort();
		json_decref(root);
		audit_parsed_clear(&ps);
		p += l + 1;
	}
}

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
	audit_walk_batch("batch-000001.jsonl", data, size, &c, &w, check_span, NULL);
	if (w.bad && w.bad_offset > size)
		abort();
	if (w.bad)
		(void)audit_good_record_after(data, size, w.bad_offset);
	audit_walk_clear(&w);
	same_verdict(data, size);
	return 0;
}
