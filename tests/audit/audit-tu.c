#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/pem.h>

#include "audit-tu.h"
#include "cms.h"

void
atu_make_signer(const char *pki, const char *base, const char *issuer)
{
	char *cmd = NULL, *out = NULL;
	int rc;

	if (issuer)
		rc = asprintf(&cmd,
		    "set -e; cd '%s'; "
		    "openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out %s.key 2>/dev/null; "
		    "printf 'basicConstraints=critical,CA:FALSE\\nkeyUsage=critical,digitalSignature\\n"
		    "extendedKeyUsage=emailProtection," ST_OID_ARC ".1.1\\nsubjectKeyIdentifier=hash\\n' > %s.ext; "
		    "openssl req -new -key %s.key -subj '/O=Station Test/CN=Test %s' 2>/dev/null | "
		    "openssl x509 -req -CA %s.pem -CAkey %s.key -extfile %s.ext -days 30 -sha256 -out %s.pem 2>/dev/null",
		    pki, base, base, base, base, issuer, issuer, base, base);
	else
		rc = asprintf(&cmd,
		    "set -e; cd '%s'; "
		    "openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out %s.key 2>/dev/null; "
		    "openssl req -new -x509 -key %s.key -subj '/O=Station Test/CN=Test %s' -days 30 "
		    "-addext keyUsage=critical,digitalSignature -addext extendedKeyUsage=emailProtection," ST_OID_ARC ".1.1 "
		    "-out %s.pem 2>/dev/null",
		    pki, base, base, base, base);
	ck_assert_int_ne(rc, -1);
	rc = tu_sh(cmd, &out);
	ck_assert_msg(rc == 0, "making signer %s: %s", base, out ? out : "");
	free(out);
	free(cmd);
}

void
atu_signer_load(atu_signer *sg, const char *pki, const char *base)
{
	char path[1024];
	FILE *f;
	st_err err;

	memset(sg, 0, sizeof(*sg));
	snprintf(path, sizeof(path), "%s/%s.key", pki, base);
	ck_assert_ptr_nonnull(f = fopen(path, "r"));
	sg->key = PEM_read_PrivateKey(f, NULL, NULL, NULL);
	fclose(f);
	ck_assert_ptr_nonnull(sg->key);
	snprintf(path, sizeof(path), "%s/%s.pem", pki, base);
	sg->cert = st_x509_load(path, &err);
	ck_assert_msg(sg->cert != NULL, "%s", err.msg);
	sg->s.key = sg->key;
	sg->s.cert = sg->cert;
	sg->s.chain = NULL;
}

void
atu_signer_clear(atu_signer *sg)
{
	EVP_PKEY_free(sg->key);
	X509_free(sg->cert);
	memset(sg, 0, sizeof(*sg));
}

X509_STORE *
atu_trust(const char *pki)
{
	char path[1024];
	X509_STORE *s;
	st_err err;

	snprintf(path, sizeof(path), "%s/root-ca.pem", pki);
	s = st_x509_store_load(path, &err);
	ck_assert_msg(s != NULL, "%s", err.msg);
	return s;
}

char *
atu_read(const char *dir, const char *name, size_t *len)
{
	char *p = tu_path(dir, name);
	char *buf = tu_slurp(p, len);

	ck_assert_msg(buf != NULL, "cannot read %s", p);
	free(p);
	return buf;
}

static void
write_mode(const char *dir, const char *name, const void *p, size_t len, int flags)
{
	char *path = tu_path(dir, name);
	int fd = open(path, O_WRONLY | O_CREAT | flags, 0644);

	ck_assert_msg(fd >= 0, "open %s", path);
	ck_assert_int_eq(write(fd, p, len), (ssize_t)len);
	close(fd);
	free(path);
}

void
atu_write(const char *dir, const char *name, const void *p, size_t len)
{
	write_mode(dir, name, p, len, O_TRUNC);
}

void
atu_append_bytes(const char *dir, const char *name, const void *p, size_t len)
{
	write_mode(dir, name, p, len, O_APPEND);
}

int
atu_exists(const char *dir, const char *name)
{
	char *p = tu_path(dir, name);
	struct stat st;
	int rc = stat(p, &st) == 0;

	free(p);
	return rc;
}

unsigned
atu_lines(const char *dir, const char *name)
{
	size_t len = 0, i;
	char *buf = atu_read(dir, name, &len);
	unsigned n = 0;

	for (i = 0; i < len; i++)
		n += buf[i] == '\n';
	free(buf);
	return n;
}

size_t
atu_line_offset(const char *buf, size_t len, unsigned line)
{
	size_t off = 0;

	while (--line) {
		const char *nl = memchr(buf + off, '\n', len - off);

		ck_assert_ptr_nonnull(nl);
		off = (size_t)(nl - buf) + 1;
	}
	return off;
}

void
atu_copy_dir(const char *src, const char *dst)
{
	char *cmd = NULL;

	ck_assert_int_ne(asprintf(&cmd, "rm -rf '%s' && cp -a '%s' '%s'", dst, src, dst), -1);
	ck_assert_int_eq(tu_sh(cmd, NULL), 0);
	free(cmd);
}

uint64_t
atu_append(audit_journal *j, const char *device, const char *step, const char *result)
{
	audit_event ev = { "tcp:127.0.0.1:7000", device, step, result, NULL, 0 };
	uint64_t seq = 0;
	st_err err;

	ck_assert_msg(audit_append(j, &ev, &seq, &err) == 0, "%s", err.msg);
	return seq;
}

char *atu_pki;

void
atu_pki_setup(void)
{
	atu_pki = tu_make_pki();
	atu_make_signer(atu_pki, "seal", "root-ca");
	atu_make_signer(atu_pki, "other", NULL);
}

void
atu_pki_teardown(void)
{
	tu_rmtree(atu_pki);
	free(atu_pki);
	atu_pki = NULL;
}
