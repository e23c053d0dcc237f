/* Signed recipes and the station config that can demand them.  The
 * signature is a detached CMS SignedData over the recipe file's exact bytes
 * (FILE.sig, DER), so `openssl cms -verify -binary -inform DER` checks it too. */
#include <errno.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/cms.h>
#include <openssl/err.h>

#include "cms.h"
#include "recipe-int.h"

#define SIG_MAX (64u << 10)

/* Why a signature that st_cms_verify refused fails: a content mismatch or
 * an untrusted signer.  Only for the message; the decision is already made. */
static void
diagnose(const uint8_t *data, size_t len, const uint8_t *der, size_t der_len, char *who, size_t cap)
{
	const unsigned char *p = der;
	CMS_ContentInfo *cms = NULL;
	STACK_OF(X509) *signers = NULL;
	BIO *content = NULL;

	who[0] = '\0';
	if (!(cms = d2i_CMS_ContentInfo(NULL, &p, (long)der_len)) || !(content = BIO_new_mem_buf(data, (int)len)))
		goto out;
	if (CMS_verify(cms, NULL, NULL, content, NULL, CMS_DETACHED | CMS_BINARY | CMS_NO_SIGNER_CERT_VERIFY) != 1)
		goto out;
	if ((signers = CMS_get0_signers(cms)) && sk_X509_num(signers) == 1)
		st_x509_subject(sk_X509_value(signers, 0), who, cap);
	if (!who[0])
		snprintf(who, cap, "an unnamed signer");
out:
	ERR_clear_error();
	sk_X509_free(signers);
	BIO_free(content);
	CMS_ContentInfo_free(cms);
}

bool
recipe_signature_present(const char *path)
{
	char *sig_path = NULL;
	bool present;

	if (asprintf(&sig_path, "%s.sig", path) < 0)
		return false;
	present = access(sig_path, F_OK) == 0;
	free(sig_path);
	return present;
}

int
recipe_signature_check(const char *path, const char *digest, const char *trust_pem, char *signer,
    size_t signer_cap, st_err *err)
{
	uint8_t *data = NULL, *der = NULL, md[32];
	size_t len = 0, der_len = 0;
	char *sig_path = NULL, hex[RECIPE_DIGEST_HEX], who[256];
	X509_STORE *trust = NULL;
	X509 *cert = NULL;
	int ret = -1;

	if (signer && signer_cap)
		signer[0] = '\0';
	if (asprintf(&sig_path, "%s.sig", path) < 0)
		return st_err_set(err, ST_E_NOMEM, "out of memory");
	if (st_file_read(path, RECIPE_MAX_FILE, &data, &len, err) < 0)
		goto out;
	st_sha256(data, len, md);
	st_hex(md, sizeof(md), hex);
	if (digest && strcmp(digest, hex) != 0) {
		st_err_set(err, ST_E_VERIFY, "%s changed on disk after it was loaded (SHA-256 now %.16s..., loaded %.16s...)",
		    path, hex, digest);
		goto out;
	}
	if (st_file_read(sig_path, SIG_MAX, &der, &der_len, err) < 0) {
		if (err && err->code == ST_E_NOTFOUND)
			st_err_set(err, ST_E_NOTFOUND, "%s is not signed (no %s)", path, sig_path);
		goto out;
	}
	if (!(trust = st_x509_store_load(trust_pem, err))) {
		st_err_prefix(err, "recipe signers");
		goto out;
	}
	/* The trust file may pin the signers' own certificates instead of their CA. */
	X509_STORE_set_flags(trust, X509_V_FLAG_PARTIAL_CHAIN);
	if (st_cms_verify(data, len, der, der_len, trust, &cert, err) < 0) {
		diagnose(data, len, der, der_len, who, sizeof(who));
		if (who[0]) {
			char why[ST_ERR_MSG_MAX];

			snprintf(why, sizeof(why), "%s", err ? err->msg : "");
			st_err_set(err, ST_E_VERIFY, "%s: signed by %s, who is not trusted by %s (%.300s)", sig_path, who,
			    trust_pem, why);
		} else
			st_err_set(err, ST_E_VERIFY, "%s does not match %s: the recipe was changed after signing, or the "
			    "signature is damaged", sig_path, path);
		goto out;
	}
	if (st_x509_check_role(cert, ST_ROLE_RECIPE, err) < 0) {
		st_err_prefix(err, "%s", sig_path);
		goto out;
	}
	if (signer && signer_cap)
		st_x509_subject(cert, signer, signer_cap);
	ret = 0;
out:
	X509_free(cert);
	X509_STORE_free(trust);
	free(der);
	free(data);
	free(sig_path);
	return ret;
}

/* ---- station config ------------------------------------------------------- */

void
recipe_station_config_free(recipe_station_config *c)
{
	if (!c)
		return;
	free(c->path);
	free(c->recipe_signers);
	free(c);
}

static void
read_config(rctx *c, recipe_station_config *cfg, const char *dir)
{
	static const char *const keys[] = { "require_signed_recipes", "recipe_signers", NULL };
	ynode *root = ytree_parse(c), *v;
	char *s = NULL;
	st_err err;

	if (!root)
		return;
	if (root->kind != YN_MAP) {
		rc_err(c, root->line, root->col, NULL, "expected a mapping (key: value lines), got %s", ynode_kind_name(root));
		goto out;
	}
	rc_map(c, root, "", keys, NULL);
	rc_get_bool(c, root, "", "require_signed_recipes", false, &cfg->require_signed_recipes);
	if (rc_get_str(c, root, "", "recipe_signers", false, 4095, &s) == 0) {
		v = rc_get(root, "recipe_signers");
		if (!(cfg->recipe_signers = rc_resolve(dir, NULL, s)))
			rc_err(c, v->line, v->col, "recipe_signers", "out of memory");
		else if (rc_cert_file(cfg->recipe_signers, 0, &err) < 0)
			rc_err(c, v->line, v->col, "recipe_signers", "%s", err.msg);
	} else if (cfg->require_signed_recipes && !rc_get(root, "recipe_signers")) {
		v = rc_get(root, "require_signed_recipes");
		rc_err(c, v->kline, v->kcol, "recipe_signers",
		    "require_signed_recipes: true needs recipe_signers: FILE.pem (the certificates that may sign recipes)");
	}
out:
	free(s);
	ynode_free(root);
}

recipe_station_config *
recipe_station_config_load(const char *path, recipe_errors *errs)
{
	recipe_station_config *cfg = calloc(1, sizeof(*cfg));
	const char *env = getenv("STATION_CONFIG");
	uint8_t *buf = NULL;
	size_t len = 0;
	char *copy = NULL, *dir;
	rctx c = { NULL, NULL, 0, errs, 0 };
	st_err err;

	if (!cfg) {
		recipe_errors_add(errs, path ? path : "station config", 0, 0, NULL, "out of memory");
		return NULL;
	}
	if (!path && env && *env)
		path = env;
	if (!path) {
		path = RECIPE_STATION_CONFIG_DEFAULT;
		if (access(path, F_OK) < 0 && errno == ENOENT)
			return cfg; /* no config: defaults */
	}
	c.file = path;
	if (!(cfg->path = strdup(path)) || !(copy = strdup(path))) {
		rc_err(&c, 0, 0, NULL, "out of memory");
		goto out;
	}
	if (st_file_read(path, RECIPE_MAX_FILE, &buf, &len, &err) < 0) {
		rc_err(&c, 0, 0, NULL, "%s", err.msg);
		goto out;
	}
	c.src = buf;
	c.len = len;
	dir = dirname(copy);
	read_config(&c, cfg, dir);
out:
	free(copy);
	free(buf);
	if (c.nerr) {
		recipe_station_config_free(cfg);
		return NULL;
	}
	return cfg;
}

int
recipe_policy_check(const recipe *r, const recipe_station_config *cfg, bool require_signed,
    const char *trust_pem, char *signer, size_t signer_cap, st_err *err)
{
	bool required = require_signed || (cfg && cfg->require_signed_recipes);
	const char *trust = trust_pem ? trust_pem : cfg ? cfg->recipe_signers : NULL;
	st_err e;

	if (signer && signer_cap)
		signer[0] = '\0';
	if (!trust) {
		if (required)
			return st_err_set(err, ST_E_CONFIG,
			    "this station runs only signed recipes, but no signers are configured: set recipe_signers in "
			    "the station config or pass --trust FILE.pem");
		return 0; /* nothing to check a signature against: it runs unsigned */
	}
	if (recipe_signature_check(r->path, r->digest, trust, signer, signer_cap, &e) == 0)
		return 0;
	if (e.code == ST_E_NOTFOUND && !required)
		return 0;
	if (e.code == ST_E_NOTFOUND)
		return st_err_set(err, ST_E_CONFIG,
		    "%s; this station runs only signed recipes: have engineering sign it (station recipe sign)", e.msg);
	if (err)
		*err = e;
	return st_err_prefix(err, "recipe refused");
}
