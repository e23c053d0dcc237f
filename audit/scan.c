/* Reading the journal back: every record in order, chain checked, for the
 * station's resume logic and for tools. */
#include <stdlib.h>
#include <string.h>

#include "audit-int.h"

struct device_filter {
	const char *device;
	audit_record_cb cb;
	void *ctx;
};

static int
scan_dir(const char *dir, audit_record_cb cb, void *ctx, st_err *err)
{
	unsigned *nums = NULL;
	size_t n = 0, i;
	struct audit_chain c;
	int ret = -1;

	if (audit_batch_list(dir, &nums, &n, err) < 0) {
		st_err_prefix(err, "audit scan");
		goto out;
	}
	audit_chain_start(&c);
	for (i = 0; i < n; i++) {
		char name[AUDIT_NAME_MAX], *path = NULL;
		uint8_t *buf = NULL;
		size_t len = 0;
		struct audit_walk w;
		int rc;

		audit_batch_name((unsigned)i + 1, name);
		if (nums[i] != i + 1) {
			st_err_set(err, ST_E_VERIFY, "audit scan %s: %s is missing (the batches jump to %u)", dir, name, nums[i]);
			goto out;
		}
		if (!(path = audit_path(dir, name))) {
			st_err_set(err, ST_E_NOMEM, "out of memory");
			goto out;
		}
		rc = st_file_read(path, AUDIT_BATCH_FILE_MAX, &buf, &len, err);
		free(path);
		if (rc < 0) {
			st_err_prefix(err, "audit scan");
			goto out;
		}
		rc = audit_walk_batch(name, buf, len, &c, &w, cb, ctx);
		free(buf);
		if (rc != 0) {
			audit_walk_clear(&w);
			ret = rc;
			goto out;
		}
		if (w.bad || (!w.closed && i + 1 < n)) {
			st_err_set(err, ST_E_VERIFY, "audit scan %s: %s", dir,
			    w.bad ? w.msg : "a batch before the last one has no batch-close record");
			audit_walk_clear(&w);
			goto out;
		}
		audit_walk_clear(&w);
	}
	ret = 0;
out:
	free(nums);
	return ret;
}

int
audit_scan(const char *dir, audit_record_cb cb, void *ctx, st_err *err)
{
	return scan_dir(dir, cb, ctx, err);
}

static int
filter_device(const audit_record *rec, void *ctx)
{
	struct device_filter *f = ctx;

	if (!rec->device || strcmp(rec->device, f->device) != 0)
		return 0;
	return f->cb(rec, f->ctx);
}

int
audit_find_device(const char *dir, const char *device, audit_record_cb cb, void *ctx, st_err *err)
{
	struct device_filter f = { device, cb, ctx };

	return scan_dir(dir, filter_device, &f, err);
}

int
audit_scan_batch(const char *dir, unsigned n, audit_record_cb cb, void *ctx, st_err *err)
{
	char name[AUDIT_NAME_MAX], *path;
	struct audit_chain c = { 0 }; /* not anchored: this batch's own chain */
	struct audit_walk w;
	uint8_t *buf = NULL;
	size_t len = 0;
	int rc;

	audit_batch_name(n, name);
	if (!(path = audit_path(dir, name)))
		return st_err_set(err, ST_E_NOMEM, "out of memory");
	rc = st_file_read(path, AUDIT_BATCH_FILE_MAX, &buf, &len, err);
	free(path);
	if (rc < 0)
		return st_err_prefix(err, "audit scan %s", dir);
	rc = audit_walk_batch(name, buf, len, &c, &w, cb, ctx);
	free(buf);
	if (rc == 0 && w.bad)
		rc = st_err_set(err, ST_E_VERIFY, "audit scan %s: %s", dir, w.msg);
	audit_walk_clear(&w);
	return rc;
}
