/* Export: a self-contained bundle of the sealed batches for upload.  The
 * journal is only read.  Two passes: first check and describe every batch
 * to export, then copy each one, checking it still has the bytes the first
 * pass saw, and write the manifest last. */
#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <openssl/cms.h>
#include <openssl/pem.h>

#include "audit-int.h"
#include "cms.h"

struct export_batch {
	unsigned num;
	char sha256[ST_SHA256_HEX_LEN + 1], seal_sha256[ST_SHA256_HEX_LEN + 1];
	uint64_t first_seq, last_seq;
	unsigned records, devices;
};

static int
read_in(const char *dir, const char *name, uint8_t **buf, size_t *len, st_err *err)
{
	char *path = audit_path(dir, name);
	int rc;

	if (!path)
		return st_err_set(err, ST_E_NOMEM, "out of memory");
	rc = st_file_read(path, AUDIT_BATCH_FILE_MAX, buf, len, err);
	free(path);
	return rc;
}

static int
write_out(const char *out, const char *name, const void *p, size_t len, st_err *err)
{
	char *path = audit_path(out, name);
	int rc;

	if (!path)
		return st_err_set(err, ST_E_NOMEM, "out of memory");
	rc = st_file_write_atomic(path, p, len, 0644, err);
	free(path);
	return rc;
}

/* OUT must be new or empty. */
static int
make_out_dir(const char *out, st_err *err)
{
	DIR *d;
	struct dirent *de;
	int empty = 1;

	if (mkdir(out, 0755) == 0)
		return 0;
	if (errno != EEXIST)
		return st_err_errno(err, ST_E_IO, errno, "%s: create folder", out);
	if (!(d = opendir(out)))
		return st_err_errno(err, ST_E_CONFIG, errno, "%s", out);
	while ((de = readdir(d)))
		if (strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0)
			empty = 0;
	closedir(d);
	if (!empty)
		return st_err_set(err, ST_E_CONFIG, "%s: exists and is not empty: give a new folder", out);
	return 0;
}

/* Certificates carried by a seal, added to certs unless already there. */
static int
add_seal_certs(const uint8_t *der, size_t len, STACK_OF(X509) *certs, st_err *err)
{
	const unsigned char *p = der;
	CMS_ContentInfo *cms = d2i_CMS_ContentInfo(NULL, &p, (long)len);
	STACK_OF(X509) *in = NULL;
	int i, k, ret = -1;

	if (!cms || !(in = CMS_get1_certs(cms))) {
		st_err_openssl(err, ST_E_VERIFY, "seal carries no certificates");
		goto out;
	}
	for (i = 0; i < sk_X509_num(in); i++) {
		X509 *x = sk_X509_value(in, i);

		for (k = 0; k < sk_X509_num(certs); k++)
			if (X509_cmp(x, sk_X509_value(certs, k)) == 0)
				break;
		if (k < sk_X509_num(certs))
			continue;
		if (!sk_X509_push(certs, x)) {
			st_err_set(err, ST_E_NOMEM, "out of memory");
			goto out;
		}
		X509_up_ref(x);
	}
	ret = 0;
out:
	sk_X509_pop_free(in, X509_free);
	CMS_ContentInfo_free(cms);
	return ret;
}

static int
write_chain(const char *out, STACK_OF(X509) *certs, char sha[ST_SHA256_HEX_LEN + 1], st_err *err)
{
	BIO *bio = BIO_new(BIO_s_mem());
	char *p = NULL;
	long n;
	int i, ret = -1;

	if (!bio)
		return st_err_openssl(err, ST_E_NOMEM, "audit chain");
	for (i = 0; i < sk_X509_num(certs); i++) {
		if (!PEM_write_bio_X509(bio, sk_X509_value(certs, i))) {
			st_err_openssl(err, ST_E_CRYPTO, "audit chain: PEM");
			goto out;
		}
	}
	n = BIO_get_mem_data(bio, &p);
	st_sha256_hex(p, (size_t)n, sha);
	ret = write_out(out, AUDIT_CHAIN_FILE, p, (size_t)n, err);
out:
	BIO_free(bio);
	return ret;
}

/* Quarantine files of batch `name` in dir, sorted; *names malloc'd. */
static int
list_quarantine(const char *dir, const char *name, struct dirent ***list, int *n, st_err *err)
{
	char prefix[AUDIT_NAME_MAX + 16];
	int i, k = 0;

	snprintf(prefix, sizeof(prefix), "%s.quarantine-", name);
	if ((*n = scandir(dir, list, NULL, alphasort)) < 0)
		return st_err_errno(err, ST_E_IO, errno, "%s", dir);
	for (i = 0; i < *n; i++) {
		if (strncmp((*list)[i]->d_name, prefix, strlen(prefix)) == 0 && !strstr((*list)[i]->d_name, ".tmp."))
			(*list)[k++] = (*list)[i];
		else
			free((*list)[i]);
	}
	*n = k;
	return 0;
}

static json_t *
manifest_new(const struct export_batch *b, size_t nb, const audit_export_info *info)
{
	json_t *m = NULL, *batches = NULL;
	char when[32];
	size_t i;

	audit_time_now(when);
	if (!(batches = json_array()))
		return NULL;
	for (i = 0; i < nb; i++) {
		char name[AUDIT_NAME_MAX], seal[AUDIT_NAME_MAX + 8];

		audit_batch_name(b[i].num, name);
		snprintf(seal, sizeof(seal), "%s.p7s", name);
		if (json_array_append_new(batches, json_pack("{s:s, s:s, s:s, s:s, s:I, s:I, s:I, s:I}", "file", name,
		                                       "sha256", b[i].sha256, "seal", seal, "seal_sha256", b[i].seal_sha256,
		                                       "first_seq", (json_int_t)b[i].first_seq, "last_seq",
		                                       (json_int_t)b[i].last_seq, "records", (json_int_t)b[i].records,
		                                       "devices", (json_int_t)b[i].devices)) < 0) {
			json_decref(batches);
			return NULL;
		}
	}
	if (!(m = json_pack("{s:s, s:i, s:s, s:o, s:[]}", "format", AUDIT_BUNDLE_FORMAT, "version", 1, "created", when,
	          "batches", batches, "files")))
		return NULL;
	if (info->open_batch[0] || info->unsealed) {
		json_t *ne = json_pack("{s:s, s:I, s:s, s:i}", "open_batch", info->open_batch, "open_records",
		    (json_int_t)info->open_records, "first_unsealed", info->first_unsealed, "unsealed", (int)info->unsealed);

		if (!ne || json_object_set_new(m, "not_exported", ne) < 0) {
			json_decref(m);
			return NULL;
		}
	}
	return m;
}

static char *
append_newline(char *text)
{
	size_t n = strlen(text);
	char *t = realloc(text, n + 2);

	if (!t) {
		free(text);
		return NULL;
	}
	t[n] = '\n';
	t[n + 1] = '\0';
	return t;
}

static int
add_file(json_t *m, const char *name, const char sha[ST_SHA256_HEX_LEN + 1])
{
	return json_array_append_new(json_object_get(m, "files"), json_pack("{s:s, s:s}", "name", name, "sha256", sha));
}

int
audit_export(const char *dir, const char *out, const audit_signer *signer, audit_export_info *info,
    st_err *err)
{
	uint8_t *mseal = NULL;
	size_t mseal_len = 0;
	unsigned *nums = NULL;
	size_t n = 0, nb = 0, i;
	struct export_batch *b = NULL;
	struct audit_chain c;
	STACK_OF(X509) *certs = NULL;
	json_t *m = NULL;
	char *text = NULL, sha[ST_SHA256_HEX_LEN + 1];
	audit_export_info local;
	int ret = -1;

	if (!signer || !signer->key || !signer->cert)
		return st_err_set(err, ST_E_CONFIG, "audit export %s: the manifest needs the audit key to seal it", dir);
	if (st_x509_check_role(signer->cert, ST_ROLE_AUDIT_SEAL, err) < 0) {
		err->code = ST_E_CONFIG;
		return st_err_prefix(err, "audit export %s", dir);
	}
	if (!info)
		info = &local;
	memset(info, 0, sizeof(*info));
	if (audit_batch_list(dir, &nums, &n, err) < 0)
		goto out;
	if (n && !(b = calloc(n, sizeof(*b)))) {
		st_err_set(err, ST_E_NOMEM, "out of memory");
		goto out;
	}
	/* Pass 1: check the chain and find what can be exported. */
	audit_chain_start(&c);
	for (i = 0; i < n; i++) {
		char name[AUDIT_NAME_MAX], seal[AUDIT_NAME_MAX + 8];
		uint8_t *buf = NULL, *der = NULL;
		size_t len = 0, der_len = 0;
		struct audit_walk w;
		st_err serr;

		audit_batch_name((unsigned)i + 1, name);
		if (nums[i] != i + 1) {
			st_err_set(err, ST_E_VERIFY, "%s is missing (the batches jump to %u)", name, nums[i]);
			goto out;
		}
		if (read_in(dir, name, &buf, &len, err) < 0)
			goto out;
		audit_walk_batch(name, buf, len, &c, &w, NULL, NULL);
		if (w.bad) {
			st_err_set(err, ST_E_VERIFY, "%s", w.msg);
			audit_walk_clear(&w);
			free(buf);
			goto out;
		}
		if (!w.closed) {
			snprintf(info->open_batch, sizeof(info->open_batch), "%s", name);
			info->open_records = w.records;
			audit_walk_clear(&w);
			free(buf);
			break; /* only the last batch can be open: the walk of the next would fail */
		}
		snprintf(seal, sizeof(seal), "%s.p7s", name);
		if (read_in(dir, seal, &der, &der_len, &serr) < 0) {
			audit_walk_clear(&w);
			free(buf);
			if (serr.code != ST_E_NOTFOUND) {
				*err = serr;
				goto out;
			}
			if (!info->unsealed)
				snprintf(info->first_unsealed, sizeof(info->first_unsealed), "%s", name);
			info->unsealed++;
			continue;
		}
		if (!info->unsealed) {
			b[nb].num = (unsigned)i + 1;
			st_sha256_hex(buf, len, b[nb].sha256);
			st_sha256_hex(der, der_len, b[nb].seal_sha256);
			b[nb].first_seq = w.first_seq;
			b[nb].last_seq = w.last_seq;
			b[nb].records = w.records;
			b[nb].devices = w.devices;
			nb++;
		}
		audit_walk_clear(&w);
		free(der);
		free(buf);
	}
	info->batches = (unsigned)nb;
	if (nb) {
		info->first_seq = b[0].first_seq;
		info->last_seq = b[nb - 1].last_seq;
	}
	if (!nb) {
		st_err_set(err, ST_E_STATE, "nothing to export: no sealed batch yet (run 'station audit seal' first)");
		goto out;
	}

	/* Pass 2: copy. */
	if (make_out_dir(out, err) < 0)
		goto out;
	if (!(certs = sk_X509_new_null()) || !(m = manifest_new(b, nb, info))) {
		st_err_set(err, ST_E_NOMEM, "out of memory");
		goto out;
	}
	for (i = 0; i < nb; i++) {
		char name[AUDIT_NAME_MAX], seal[AUDIT_NAME_MAX + 8], bsha[ST_SHA256_HEX_LEN + 1], ssha[ST_SHA256_HEX_LEN + 1];
		uint8_t *buf = NULL, *der = NULL;
		size_t len = 0, der_len = 0;
		struct dirent **q = NULL;
		int nq = 0, k, rc;

		audit_batch_name(b[i].num, name);
		snprintf(seal, sizeof(seal), "%s.p7s", name);
		rc = read_in(dir, name, &buf, &len, err) < 0 || read_in(dir, seal, &der, &der_len, err) < 0 ? -1 : 0;
		if (rc == 0) {
			st_sha256_hex(buf, len, bsha);
			st_sha256_hex(der, der_len, ssha);
			if (strcmp(bsha, b[i].sha256) != 0 || strcmp(ssha, b[i].seal_sha256) != 0)
				rc = st_err_set(err, ST_E_STATE, "%s changed while it was being exported", name);
		}
		if (rc == 0 && (write_out(out, name, buf, len, err) < 0 || write_out(out, seal, der, der_len, err) < 0 ||
		                   add_seal_certs(der, der_len, certs, err) < 0))
			rc = st_err_prefix(err, "%s", seal);
		free(buf);
		free(der);
		if (rc == 0)
			rc = list_quarantine(dir, name, &q, &nq, err);
		for (k = 0; k < nq; k++) {
			if (rc == 0) {
				buf = NULL;
				if (read_in(dir, q[k]->d_name, &buf, &len, err) < 0 ||
				    write_out(out, q[k]->d_name, buf, len, err) < 0)
					rc = -1;
				else {
					st_sha256_hex(buf, len, sha);
					if (add_file(m, q[k]->d_name, sha) < 0)
						rc = st_err_set(err, ST_E_NOMEM, "out of memory");
				}
				free(buf);
			}
			free(q[k]);
		}
		free(q);
		if (rc < 0)
			goto out;
	}
	if (write_chain(out, certs, sha, err) < 0 || add_file(m, AUDIT_CHAIN_FILE, sha) < 0)
		goto out;
	if (!(text = json_dumps(m, JSON_INDENT(2))) || !(text = append_newline(text))) {
		st_err_set(err, ST_E_NOMEM, "out of memory");
		goto out;
	}
	/* The seal last: a bundle with a manifest seal is complete. */
	if (write_out(out, AUDIT_MANIFEST, text, strlen(text), err) < 0 ||
	    st_cms_sign(signer->key, signer->cert, signer->chain, text, strlen(text), &mseal, &mseal_len, err) < 0 ||
	    write_out(out, AUDIT_MANIFEST_SEAL, mseal, mseal_len, err) < 0)
		goto out;
	ret = 0;
out:
	if (ret < 0)
		st_err_prefix(err, "audit export %s", dir);
	free(mseal);
	free(text);
	json_decref(m);
	sk_X509_pop_free(certs, X509_free);
	free(b);
	free(nums);
	return ret;
}
