/* The files a recipe names are checked when it loads, so a wrong path or a
 * wrong certificate is found at the desk, not on the line. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include "cms.h"
#include "recipe-int.h"

char *
rc_resolve(const char *dir, const char *root, const char *p)
{
	char *out = NULL;
	int n;

	if (p[0] == '/')
		n = asprintf(&out, "%s%s", root ? root : "", p);
	else
		n = asprintf(&out, "%s/%s", dir, p);
	return n < 0 ? NULL : out;
}

int
rc_file_readable(const char *path, st_err *err)
{
	struct stat st;
	int fd, ret = -1;

	if ((fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK)) < 0)
		return st_err_errno(err, errno == ENOENT ? ST_E_NOTFOUND : ST_E_IO, errno, "cannot read %s", path);
	if (fstat(fd, &st) < 0)
		st_err_errno(err, ST_E_IO, errno, "cannot read %s", path);
	else if (!S_ISREG(st.st_mode))
		st_err_set(err, ST_E_CONFIG, "%s is not a regular file", path);
	else
		ret = 0;
	close(fd);
	return ret;
}

static const char *
file_kind(mode_t m)
{
	return S_ISDIR(m) ? "a folder" : S_ISCHR(m) ? "a character device" : S_ISBLK(m) ? "a block device" :
	    S_ISFIFO(m) ? "a FIFO" : S_ISSOCK(m) ? "a socket" : "not a regular file";
}

int
recipe_metrics_file_check(const char *path, st_err *err)
{
	const char *base = strrchr(path, '/');
	size_t n;
	struct stat st;

	base = base ? base + 1 : path;
	n = strlen(base);
	if (stat(path, &st) == 0 && !S_ISREG(st.st_mode))
		return st_err_set(err, ST_E_CONFIG, "%s is %s: the metrics file is replaced by rename (a new file beside "
		    "it, then renamed over it), so it must be a regular file or not exist yet; name a FILE.prom in "
		    "node_exporter's textfile folder", path, file_kind(st.st_mode));
	if (n <= 5 || strcmp(base + n - 5, ".prom") != 0)
		return st_err_set(err, ST_E_CONFIG, "%s: the name must end in .prom (node_exporter's textfile collector "
		    "reads only *.prom files)", path);
	return 0;
}

/* Every certificate in a PEM file; NULL (and err) when the file cannot be
 * read, holds none, or has a block that does not parse. */
static STACK_OF(X509) *
read_certs(const char *path, st_err *err)
{
	STACK_OF(X509) *certs = NULL;
	BIO *bio = NULL;
	X509 *x = NULL;
	unsigned long e;

	if (rc_file_readable(path, err) < 0)
		return NULL;
	ERR_clear_error();
	if (!(bio = BIO_new_file(path, "r"))) {
		st_err_openssl(err, ST_E_IO, "cannot read %s", path);
		goto fail;
	}
	if (!(certs = sk_X509_new_null())) {
		st_err_openssl(err, ST_E_NOMEM, "%s", path);
		goto fail;
	}
	while ((x = PEM_read_bio_X509(bio, NULL, NULL, NULL))) {
		if (!sk_X509_push(certs, x)) {
			st_err_openssl(err, ST_E_NOMEM, "%s", path);
			goto fail;
		}
		x = NULL;
	}
	/* The loop ends with "no start line" at the end of the file; anything
	 * else is a block that is not a certificate or does not parse. */
	e = ERR_peek_last_error();
	if (ERR_GET_LIB(e) == ERR_LIB_PEM && ERR_GET_REASON(e) == PEM_R_NO_START_LINE) {
		ERR_clear_error();
		if (sk_X509_num(certs) == 0) {
			st_err_set(err, ST_E_CONFIG, "%s holds no PEM certificate", path);
			goto fail;
		}
	} else {
		/* The OpenSSL queue only says "nested asn1 error" here; say it plainly. */
		ERR_clear_error();
		st_err_set(err, ST_E_CONFIG, "%s: certificate %d is damaged (its PEM block does not decode)", path,
		    sk_X509_num(certs) + 1);
		goto fail;
	}
	BIO_free(bio);
	return certs;
fail:
	X509_free(x);
	sk_X509_pop_free(certs, X509_free);
	BIO_free(bio);
	return NULL;
}

int
rc_cert_file(const char *path, int flags, st_err *err)
{
	STACK_OF(X509) *certs = read_certs(path, err);
	int i, ret = -1;

	if (!certs)
		return -1;
	if ((flags & RC_CERT_ONE) && sk_X509_num(certs) != 1) {
		st_err_set(err, ST_E_CONFIG, "%s holds %d certificates, expected exactly one", path, sk_X509_num(certs));
		goto out;
	}
	for (i = 0; (flags & RC_CERT_CA) && i < sk_X509_num(certs); i++)
		if (X509_check_ca(sk_X509_value(certs, i)) != 1) {
			char subject[256];

			st_x509_subject(sk_X509_value(certs, i), subject, sizeof(subject));
			st_err_set(err, ST_E_CONFIG, "%s: certificate %d (%s) is not a CA certificate", path, i + 1, subject);
			goto out;
		}
	ret = 0;
out:
	sk_X509_pop_free(certs, X509_free);
	return ret;
}

int
rc_cert_chains(const char *cert_path, const char *chain_path, st_err *err)
{
	STACK_OF(X509) *leaf = NULL, *chain = NULL;
	X509_STORE *store = NULL;
	X509_STORE_CTX *ctx = NULL;
	int i, ret = -1;

	if (!(leaf = read_certs(cert_path, err)) || !(chain = read_certs(chain_path, err)))
		goto out;
	if (!(store = X509_STORE_new()) || !(ctx = X509_STORE_CTX_new())) {
		st_err_openssl(err, ST_E_NOMEM, "certificate chain");
		goto out;
	}
	for (i = 0; i < sk_X509_num(chain); i++)
		if (!X509_STORE_add_cert(store, sk_X509_value(chain, i))) {
			st_err_openssl(err, ST_E_CONFIG, "%s", chain_path);
			goto out;
		}
	if (!X509_STORE_CTX_init(ctx, store, sk_X509_value(leaf, 0), NULL)) {
		st_err_openssl(err, ST_E_NOMEM, "certificate chain");
		goto out;
	}
	if (X509_verify_cert(ctx) != 1) {
		st_err_set(err, ST_E_CONFIG, "%s does not chain to a root in %s: %s", cert_path, chain_path,
		    X509_verify_cert_error_string(X509_STORE_CTX_get_error(ctx)));
		goto out;
	}
	ret = 0;
out:
	ERR_clear_error();
	X509_STORE_CTX_free(ctx);
	X509_STORE_free(store);
	sk_X509_pop_free(leaf, X509_free);
	sk_X509_pop_free(chain, X509_free);
	return ret;
}
