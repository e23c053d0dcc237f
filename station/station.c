#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/objects.h>
#include <openssl/pem.h>
#include <openssl/rand.h>

#include "audit.h"
#include "chains.h"
#include "cli.h"
#include "cms.h"
#include "hsm.h"
#include "metrics.h"
#include "recipe.h"
#include "revlist.h"
#include "station.h"
#include "step.h"
#include "verify.h"

int
station_recipe_policy(const struct recipe *r, int require_signed, const char *trust_pem, char *signer,
    size_t signer_cap, int *unchecked, st_err *err)
{
	recipe_errors *errs = recipe_errors_new();
	recipe_station_config *cfg = NULL;
	int ret = -1;

	*unchecked = 0;
	if (!errs)
		return st_err_set(err, ST_E_NOMEM, "out of memory");
	if (!(cfg = recipe_station_config_load(NULL, errs))) {
		st_err_set(err, ST_E_CONFIG, "station config: %s",
		    recipe_errors_count(errs) ? recipe_errors_get(errs, 0) : "cannot load");
		goto out;
	}
	if (recipe_policy_check(r, cfg, require_signed, trust_pem, signer, signer_cap, err) < 0)
		goto out;
	/* A present signature is always checked when there are signers to check
	 * it against; no signer here means nothing could. */
	*unchecked = !signer[0] && recipe_signature_present(r->path);
	ret = 0;
out:
	recipe_station_config_free(cfg);
	recipe_errors_free(errs);
	return ret;
}

static int
load_recipe(station *st, const char *path, int require_signed, const char *trust_pem, st_err *err)
{
	recipe_errors *errs = recipe_errors_new();
	size_t i, n;
	int ret = -1;

	if (!errs)
		return st_err_set(err, ST_E_NOMEM, "out of memory");
	if (!(st->rcp = recipe_load(path, NULL, errs))) {
		char *msg = NULL;
		size_t len = 0;
		FILE *f = open_memstream(&msg, &len);

		n = recipe_errors_count(errs);
		for (i = 0; f && i < n; i++)
			fprintf(f, "\n  %s", recipe_errors_get(errs, i));
		if (f)
			fclose(f);
		st_err_set(err, ST_E_CONFIG, "recipe %s has %zu error%s (fix them, then 'station recipe check'):%s", path,
		    n, n == 1 ? "" : "s", msg ? msg : "");
		free(msg);
		goto out;
	}
	if (station_recipe_policy(st->rcp, require_signed, trust_pem, st->recipe_signer, sizeof(st->recipe_signer),
	        &st->recipe_sig_unchecked, err) < 0)
		goto out;
	ret = 0;
out:
	recipe_errors_free(errs);
	return ret;
}

static void
settings_from_recipe(station *st)
{
	const recipe *r = st->rcp;
	int c;

	st->slot = (uint8_t)r->se.key_slot;
	st->algorithm = r->se.key_alg == RECIPE_ALG_P384 ? JIG_ALG_P384 : JIG_ALG_P256;
	st->curve_nid = r->se.key_alg == RECIPE_ALG_P384 ? NID_secp384r1 : NID_X9_62_prime256v1;
	st->lock = r->lifecycle.lock;
	st->lock_receipt = r->se.lock_receipt;
	for (c = 1; c <= JIG_CMD_LAST && c < RECIPE_CMD_COUNT; c++)
		st->timeouts[c] = r->jig.timeout_ms[c];
	st->retries = r->jig.retries;
	st->quota_run = (unsigned)r->quota.max_per_run;
	st->quota_shift = (unsigned)r->quota.max_per_shift;
}

static X509 *
load_cert_checked(hsm_key *key, const char *path, st_err *err)
{
	X509 *cert = st_x509_load(path, err);

	if (!cert)
		return NULL;
	if (hsm_key_matches_cert(key, cert, err) < 0) {
		X509_free(cert);
		return NULL;
	}
	return cert;
}

static int
open_hsm(station *st, const cli_pin *pin_opt, st_err *err)
{
	const recipe *r = st->rcp;
	hsm_pin_source pin;

	cli_pin_source(pin_opt, r, &pin);
	if (!(st->hsm = hsm_open(r->hsm.module, r->hsm.token, &pin, err)))
		return st_err_prefix(err, "HSM");
	if (!(st->ca_key = hsm_key_find(st->hsm, r->hsm.intermediate_key, err)) ||
	    !(st->tool_key = hsm_key_find(st->hsm, r->hsm.tool_key, err)) ||
	    !(st->audit_key = hsm_key_find(st->hsm, r->hsm.audit_key, err)))
		return st_err_prefix(err, "HSM");
	if (!(st->ca_cert = load_cert_checked(st->ca_key, r->hsm.intermediate_cert, err)) ||
	    !(st->audit_cert = load_cert_checked(st->audit_key, r->hsm.audit_cert, err)))
		return st_err_prefix(err, "HSM");
	if (r->hsm.chain && !(st->ca_chain = st_x509_chain_load(r->hsm.chain, err)))
		return -1;
	st_x509_ski_hex(st->ca_cert, st->ca_key_id); /* issuing needs it: hsm_aki_new says so */
	return 0;
}

const char *
station_default_jig(station *st)
{
	return st->rcp && st->rcp->jig.uri && *st->rcp->jig.uri ? st->rcp->jig.uri : NULL;
}

int
station_posture(station *st, const jig_se_info *info, st_err *err)
{
	const recipe *r = st->rcp;
	uint32_t fw = info->firmware, min = r->se.min_firmware;
	size_t i;

	for (i = 0; i < r->se.n_models; i++)
		if (strcmp(r->se.models[i], info->model) == 0)
			break;
	if (i == r->se.n_models) {
		char allowed[512] = "";
		size_t k, o = 0;

		for (k = 0; k < r->se.n_models && o < sizeof(allowed); k++)
			o += (size_t)snprintf(allowed + o, sizeof(allowed) - o, "%s%s", k ? ", " : "", r->se.models[k]);
		return st_err_set(err, ST_E_STATE, "SE model \"%s\" is not one recipe %s allows (%s): wrong recipe for "
		    "this part?", info->model, r->recipe.name, allowed);
	}
	if (fw < min) {
		char fs[JIG_FW_TEXT_MAX], ms[JIG_FW_TEXT_MAX];

		jig_fw_format(fw, fs);
		jig_fw_format(min, ms);
		return st_err_set(err, ST_E_STATE, "SE firmware %s is older than the recipe's minimum %s", fs, ms);
	}
	return 0;
}

int
station_tool_sign(station *st, const uint8_t *msg, size_t len, uint8_t **sig, size_t *sig_len, st_err *err)
{
	double t0 = metrics_now();

	if (hsm_sign(st->tool_key, msg, len, sig, sig_len, err) < 0)
		return st_err_prefix(err, "HSM: tool key \"%s\"", st->rcp->hsm.tool_key);
	metrics_hsm_sign(st->metrics, METRICS_KEY_TOOL, metrics_now() - t0);
	return 0;
}

int
station_cert_serial(char hex[ST_CERT_SERIAL_HEX_LEN + 1])
{
	char upper[HSM_SERIAL_HEX_MAX];

	if (hsm_serial_new(upper, NULL) < 0)
		return -1;
	revlist_canon(upper, hex); /* the journal's spelling, as eng_cert_serial_hex */
	return 0;
}

/* The recipe's profile for the device info describes: the CSR's key, or
 * (iak) the key given. */
static int
issue(station *st, X509_REQ *csr, EVP_PKEY *iak, const jig_se_info *info, const char *serial_hex, X509 **out,
    st_err *err)
{
	const recipe *r = st->rcp;
	recipe_facts facts;
	char cn[256], o[256], ou[256];
	char *san[16] = { 0 };
	const char *eku[8];
	hsm_leaf_profile p;
	size_t i;
	unsigned bit;
	int ret = -1;
	double t0;

	memset(&p, 0, sizeof(p));
	recipe_facts_init(&facts, r, info->serial, info->model);
	if (recipe_expand(r->certificate.cn, &facts, cn, sizeof(cn), err) < 0 ||
	    (r->certificate.o && recipe_expand(r->certificate.o, &facts, o, sizeof(o), err) < 0) ||
	    (r->certificate.ou && recipe_expand(r->certificate.ou, &facts, ou, sizeof(ou), err) < 0)) {
		st_err_prefix(err, "certificate subject");
		goto out;
	}
	if (r->certificate.n_san > sizeof(san) / sizeof(san[0])) {
		st_err_set(err, ST_E_CONFIG, "certificate.san: more than %zu entries", sizeof(san) / sizeof(san[0]));
		goto out;
	}
	for (i = 0; i < r->certificate.n_san; i++) {
		char v[512];
		const char *kind = r->certificate.san[i].type == RECIPE_SAN_DNS ? "DNS:" : "URI:";

		if (recipe_expand(r->certificate.san[i].tpl, &facts, v, sizeof(v), err) < 0) {
			st_err_prefix(err, "certificate.san[%zu]", i);
			goto out;
		}
		if (asprintf(&san[i], "%s%s", kind, v) < 0) {
			san[i] = NULL;
			st_err_set(err, ST_E_NOMEM, "out of memory");
			goto out;
		}
	}
	p.serial_number = info->serial;
	p.common_name = cn;
	p.organization = r->certificate.o ? o : NULL;
	p.org_unit = r->certificate.ou ? ou : NULL;
	p.san = (const char *const *)san;
	p.n_san = r->certificate.n_san;
	p.validity_days = (unsigned)r->certificate.validity_days;
	p.not_after = r->certificate.not_after;
	if (iak) {
		eku[p.n_eku++] = "2.23.133.8.3"; /* tcg-kp-AIKCertificate: an attestation key's certificate */
		p.subject_key = iak;
	} else {
		for (bit = 1; bit & RECIPE_EKU_ALL; bit <<= 1)
			if ((r->certificate.eku & bit) && p.n_eku < sizeof(eku) / sizeof(eku[0]))
				eku[p.n_eku++] = recipe_eku_name(bit);
	}
	p.eku = eku;
	p.serial_hex = serial_hex;
	p.hw_type = r->certificate.hw_type;
	p.hw_serial = info->serial;
	p.crl_url = r->certificate.crl_url;
	t0 = metrics_now();
	if (hsm_issue_leaf(st->ca_key, st->ca_cert, csr, &p, out, err) < 0) {
		st_err_prefix(err, "HSM: issue with \"%s\"", r->hsm.intermediate_key);
		goto out;
	}
	metrics_hsm_sign(st->metrics, METRICS_KEY_INTERMEDIATE, metrics_now() - t0);
	ret = 0;
out:
	for (i = 0; i < sizeof(san) / sizeof(san[0]); i++)
		free(san[i]);
	return ret;
}

int
station_issue(station *st, X509_REQ *csr, const jig_se_info *info, const char *serial_hex, X509 **out, st_err *err)
{
	return issue(st, csr, NULL, info, serial_hex, out, err);
}

int
station_issue_iak(station *st, EVP_PKEY *key, const jig_se_info *info, const char *serial_hex, X509 **out,
    st_err *err)
{
	return issue(st, NULL, key, info, serial_hex, out, err);
}

int
station_save_cert(station *st, const char *se_serial, X509 *cert, st_err *err)
{
	char path[4200];
	BIO *bio = BIO_new(BIO_s_mem());
	char *pem = NULL;
	long len;
	int ret = -1;

	if (!bio || !PEM_write_bio_X509(bio, cert)) {
		st_err_openssl(err, ST_E_NOMEM, "certificate PEM");
		goto out;
	}
	len = BIO_get_mem_data(bio, &pem);
	snprintf(path, sizeof(path), "%s/%s.pem", st->certs_dir, se_serial);
	/* A convenience copy: the journal's "issued" record is the durable
	 * original, so no fsync here, only an atomic rename. */
	ret = st_file_write_replace(path, pem, (size_t)len, 0644, err);
out:
	BIO_free(bio);
	return ret;
}

int
station_retire_cert(station *st, const char *se_serial, const char *cert_serial, st_err *err)
{
	char path[4200], dir[4200], to[4300];
	BIGNUM *want = NULL, *have = NULL;
	X509 *x = NULL;
	st_err ignored;
	int ret = -1;

	snprintf(path, sizeof(path), "%s/%s.pem", st->certs_dir, se_serial);
	if (access(path, F_OK) != 0 || !(x = st_x509_load(path, &ignored))) {
		ret = 0; /* no copy, or not ours to judge: the journal is the record */
		goto out;
	}
	if (!BN_hex2bn(&want, cert_serial) || !(have = ASN1_INTEGER_to_BN(X509_get0_serialNumber(x), NULL))) {
		st_err_openssl(err, ST_E_NOMEM, "certificate serial");
		goto out;
	}
	if (BN_cmp(want, have) != 0) {
		ret = 0; /* the copy is a newer, live certificate */
		goto out;
	}
	snprintf(dir, sizeof(dir), "%s/revoked", st->certs_dir);
	if (mkdir(dir, 0755) < 0 && errno != EEXIST) {
		st_err_errno(err, ST_E_IO, errno, "%s", dir);
		goto out;
	}
	snprintf(to, sizeof(to), "%s/%s-%s.pem", dir, se_serial, cert_serial);
	if (rename(path, to) < 0) {
		st_err_errno(err, ST_E_IO, errno, "moving %s to %s", path, to);
		goto out;
	}
	ret = 0;
out:
	BN_free(want);
	BN_free(have);
	X509_free(x);
	return ret;
}

void
station_close(station *st)
{
	if (!st)
		return;
	audit_close(st->journal);
	history_free(st->history);
	X509_free(st->ca_cert);
	X509_free(st->audit_cert);
	sk_X509_pop_free(st->ca_chain, X509_free);
	sv_trust_free(st->vendor_trust);
	chain_cache_free(st->chains);
	sk_X509_pop_free(st->tpm_vendor, X509_free);
	hsm_key_free(st->ca_key);
	hsm_key_free(st->tool_key);
	hsm_key_free(st->audit_key);
	hsm_close(st->hsm);
	recipe_free(st->rcp);
	pthread_mutex_destroy(&st->quota_lock);
	free(st);
}

int
station_journal(station *st, const char *jig, const char *device, const char *step, const char *result,
    json_t *details, int lazy, st_err *err)
{
	audit_event ev = { .jig = jig, .device = device, .step = step, .result = result, .details = details,
		.lazy = lazy };
	json_t *empty = details ? NULL : json_object();
	uint64_t seq = 0;
	int ret = audit_append(st->journal, &ev, &seq, err);

	if (ret >= 0) {
		/* In the journal now: the history says so too. */
		audit_record rec = { .seq = seq, .jig = jig, .device = device, .step = step, .result = result,
			.details = details ? details : empty };
		audit_status s;

		audit_get_status(st->journal, &s);
		if (st->history && history_apply(st->history, &rec, s.batch) < 0 && ret == 0)
			ret = st_err_set(err, ST_E_NOMEM, "out of memory (the record is in the journal)");
	}
	json_decref(empty);
	json_decref(details);
	return ret;
}

/* ---- announced serials ------------------------------------------------ */

struct announced {
	history_cert *v;
	size_t n, cap;
};

static int
collect_announced(const history_cert *c, void *ctx)
{
	struct announced *a = ctx;

	if (c->issued || c->revoked)
		return 0;
	if (a->n == a->cap) {
		size_t cap = a->cap ? a->cap * 2 : 16;
		history_cert *v = realloc(a->v, cap * sizeof(*v));

		if (!v)
			return 1;
		a->v = v;
		a->cap = cap;
	}
	a->v[a->n++] = *c;
	return 0;
}

int
station_close_announced(station *st, void (*note)(const history_cert *c, void *ctx), void *ctx, st_err *err)
{
	struct announced a = { 0 };
	size_t i;
	int ret = 0;

	if (history_foreach_cert(st->history, collect_announced, &a) != 0)
		ret = st_err_set(err, ST_E_NOMEM, "out of memory");
	for (i = 0; i < a.n && ret == 0; i++) {
		ret = station_journal(st, NULL, a.v[i].device, STEP_REVOKE, "ok",
		    json_pack("{s:s,s:s,s:b,s:s}", "cert_serial", a.v[i].serial, "reason", "cessationOfOperation",
		        "unissued", 1, "why", "announced by an \"issuing\" record, no certificate recorded: none left the "
		        "station; listed on the CRL so that none can be trusted"),
		    0, err);
		if (ret == 0 && note)
			note(&a.v[i], ctx);
	}
	free(a.v);
	return ret;
}

/* After an audit key rollover the journal names the audit certificate
 * that seals it; a recipe still naming the old one (or any other) would
 * seal batches that `station audit verify` refuses. */
static int
check_audit_key(station *st, st_err *err)
{
	char want[ST_SHA256_HEX_LEN + 1], have[ST_SHA256_HEX_LEN + 1];
	unsigned char *der = NULL;
	uint64_t seq;
	int n;

	if (!(seq = history_audit_key(st->history, want)))
		return 0;
	if ((n = i2d_X509(st->audit_cert, &der)) <= 0)
		return st_err_set(err, ST_E_NOMEM, "hsm.audit.cert: cannot encode");
	st_sha256_hex(der, (size_t)n, have);
	OPENSSL_free(der);
	if (strcmp(want, have) == 0)
		return 0;
	return st_err_set(err, ST_E_CONFIG, "audit journal %s: seq %llu handed the audit seal to the certificate with "
	    "SHA-256 %s; the recipe's hsm.audit.cert %s is another: set hsm.audit to the key and certificate "
	    "announced there ('station audit rollover' announces a new one)", st->rcp->audit.dir,
	    (unsigned long long)seq, want, st->rcp->hsm.audit_cert);
}

static int
open_journal(station *st, int with_signer, st_err *err)
{
	const recipe *r = st->rcp;
	audit_config cfg = {
		.station = r->audit.station_id,
		.operator_name = st->operator_name,
		.recipe = r->digest,
		.batch_devices = (unsigned)r->audit.batch_size,
		.engineering = r->lifecycle.engineering,
		.signer = with_signer ? &st->signer : NULL,
	};

	snprintf(st->certs_dir, sizeof(st->certs_dir), "%s/certs", r->audit.dir);
	if (mkdir(r->audit.dir, 0750) < 0 && errno != EEXIST)
		return st_err_errno(err, ST_E_CONFIG, errno, "audit.dir %s", r->audit.dir);
	if (mkdir(st->certs_dir, 0755) < 0 && errno != EEXIST)
		return st_err_errno(err, ST_E_CONFIG, errno, "%s", st->certs_dir);
	if (!(st->journal = audit_open(r->audit.dir, &cfg, err)))
		return st_err_prefix(err, "audit journal %s", r->audit.dir);
	{
		char dir[4200];

		/* The journal's lock keeps other stations out of these too. */
		snprintf(dir, sizeof(dir), "%s/vendor-chains", r->audit.dir);
		st_dir_remove_stale_tmp(dir);
		st_dir_remove_stale_tmp(st->certs_dir);
	}
	if (!(st->history = history_new()))
		return st_err_set(err, ST_E_NOMEM, "out of memory");
	if (history_load(st->history, r->audit.dir, err) != 0)
		return st_err_prefix(err, "audit journal %s", r->audit.dir);
	if (with_signer && check_audit_key(st, err) < 0)
		return -1;
	station_quota_load(st);
	return 0;
}

int
station_operator_check(const char *name, st_err *err)
{
	size_t i, n = name ? strlen(name) : 0;

	if (n > STATION_OPERATOR_MAX)
		return st_err_set(err, ST_E_CONFIG, "--operator: %zu bytes, more than the %d an operator's name may have", n,
		    STATION_OPERATOR_MAX);
	for (i = 0; i < n; i++)
		if ((unsigned char)name[i] < 0x20 || name[i] == 0x7f)
			return st_err_set(err, ST_E_CONFIG, "--operator: byte %zu is a control character (0x%02x): give the "
			    "operator's name as plain text", i + 1, (unsigned char)name[i]);
	return 0;
}

int
station_open(const char *recipe_path, const char *operator_name, int flags, int require_signed,
    const char *trust_pem, const cli_pin *pin, station **out, st_err *err)
{
	station *st = calloc(1, sizeof(*st));

	*out = NULL;
	if (!st)
		return st_err_set(err, ST_E_NOMEM, "out of memory");
	pthread_mutex_init(&st->quota_lock, NULL);
	if (station_operator_check(operator_name, err) < 0)
		goto fail;
	snprintf(st->operator_name, sizeof(st->operator_name), "%s", operator_name ? operator_name : "");
	if (load_recipe(st, recipe_path, require_signed, trust_pem, err) < 0)
		goto fail;
	settings_from_recipe(st);
	st->family = st->rcp->se.family;
	if (st->family == RECIPE_FAMILY_TPM2 && !(st->tpm_vendor = st_x509_chain_load(st->rcp->se.vendor_root, err))) {
		st_err_prefix(err, "se.vendor_root");
		goto fail;
	}
	{
		const struct recipe_attestation_model *am = &st->rcp->se.attestation_model;
		sv_model_rule rule = { .subject_nid = am->subject_nid, .prefix = am->prefix, .suffix = am->suffix,
			.models = (const char *const *)st->rcp->se.models, .policies = (const char *const *)am->policies,
			.n_models = st->rcp->se.n_models };
		X509_STORE *roots = st_x509_store_load(st->rcp->se.vendor_root, err);

		if (!roots || !(st->vendor_trust = sv_trust_new(roots, &rule))) {
			if (roots)
				st_err_set(err, ST_E_NOMEM, "out of memory");
			st_err_prefix(err, "se.vendor_root");
			goto fail;
		}
	}
	{
		char dir[4200];

		snprintf(dir, sizeof(dir), "%s/vendor-chains", st->rcp->audit.dir);
		if (!(st->chains = chain_cache_new((flags & STATION_OPEN_JOURNAL) ? dir : NULL))) {
			st_err_set(err, ST_E_NOMEM, "out of memory");
			goto fail;
		}
	}
	if ((flags & STATION_OPEN_HSM) && open_hsm(st, pin, err) < 0)
		goto fail;
	if (flags & STATION_OPEN_HSM) {
		st->signer.key = hsm_key_pkey(st->audit_key);
		st->signer.cert = st->audit_cert;
		st->signer.chain = st->ca_chain;
	}
	if ((flags & STATION_OPEN_JOURNAL) && open_journal(st, (flags & STATION_OPEN_HSM) != 0, err) < 0)
		goto fail;
	*out = st;
	return 0;
fail:
	station_close(st);
	return -1;
}
