/* The token: module, slot, login, keys, and signing with them.
 *
 * libp11 does the work (one PKCS11_CTX per process, a session pool per slot
 * shared by all threads).  It does not expose CKA_SENSITIVE/CKA_EXTRACTABLE,
 * so we keep our own reference to the same, already initialised module and
 * read those attributes in a short session of our own. */
#include <dlfcn.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/rand.h>

#include "cms.h"
#include "hsm-int.h"
#include "station-config.h"

static pthread_mutex_t open_lock = PTHREAD_MUTEX_INITIALIZER;
static const char *open_token; /* the token of the live hsm_ctx, if any */

/* The one place a CK_RV is fished out of OpenSSL's error queue: libp11
 * raises its PKCS#11 errors in its own error library with the CK_RV as
 * the reason code. */
unsigned long
hsm_p11_rv(void)
{
	int lib = ERR_get_CKR_code();
	unsigned long e;

	/* Peek, do not consume: the caller may still report the queue. */
	if ((e = ERR_peek_last_error()) != 0 && ERR_GET_LIB(e) == lib)
		return (unsigned long)ERR_GET_REASON(e);
	if ((e = ERR_peek_error()) != 0 && ERR_GET_LIB(e) == lib)
		return (unsigned long)ERR_GET_REASON(e);
	return 0;
}

const char *
hsm_token_label(const hsm_ctx *ctx)
{
	return ctx ? ctx->token : NULL;
}

const char *
hsm_module_path(const hsm_ctx *ctx)
{
	return ctx ? ctx->module : NULL;
}

void
hsm_token_describe(const hsm_ctx *ctx, char *buf, size_t len)
{
	snprintf(buf, len, "%s", ctx ? ctx->desc : "");
}

/* List the labels of the initialised tokens, for "token not found". */
static void
list_tokens(PKCS11_SLOT *slots, unsigned int n, char *buf, size_t len)
{
	size_t used = 0;
	unsigned int i;

	buf[0] = '\0';
	for (i = 0; i < n; i++) {
		PKCS11_TOKEN *t = slots[i].token;
		int w;

		if (!t || !t->initialized || !t->label)
			continue;
		w = snprintf(buf + used, len - used, "%s\"%s\" (slot %lu)", used ? ", " : "", t->label,
		    PKCS11_get_slotid_from_slot(&slots[i]));
		if (w < 0 || (size_t)w >= len - used)
			break;
		used += (size_t)w;
	}
}

static int
login(hsm_ctx *ctx, const hsm_pin_source *pin_src, st_err *err)
{
	char pin[HSM_PIN_MAX];
	int ret = -1;
	unsigned long rv;

	memset(pin, 0, sizeof(pin));
	if (ctx->slot->token->userPinLocked) {
		st_err_set(err, ST_E_CONFIG,
		    "the user PIN of token \"%s\" is locked after too many wrong tries: the token's security officer must unlock it",
		    ctx->token);
		goto out;
	}
	if (hsm_pin_read(pin_src, ctx->token, pin, err) < 0) {
		st_err_prefix(err, "token \"%s\": PIN", ctx->token);
		goto out;
	}
	ERR_clear_error();
	if (PKCS11_login(ctx->slot, 0, pin) != 0) {
		rv = hsm_p11_rv();
		ERR_clear_error();
		if (rv == CKR_PIN_INCORRECT || rv == CKR_PIN_LEN_RANGE || rv == CKR_PIN_INVALID)
			st_err_set(err, ST_E_CONFIG,
			    "wrong PIN for token \"%s\" (check the PIN source; each wrong try counts towards locking the token)",
			    ctx->token);
		else if (rv == CKR_PIN_LOCKED)
			st_err_set(err, ST_E_CONFIG,
			    "the user PIN of token \"%s\" is locked: the token's security officer must unlock it", ctx->token);
		else if (rv == CKR_PIN_EXPIRED)
			st_err_set(err, ST_E_CONFIG, "the user PIN of token \"%s\" has expired: change it first", ctx->token);
		else
			st_err_set(err, ST_E_CONFIG, "login to token \"%s\" failed (CK_RV 0x%lx)", ctx->token, rv);
		goto out;
	}
	ret = 0;
out:
	st_wipe(pin, sizeof(pin));
	return ret;
}

hsm_ctx *
hsm_open(const char *module_path, const char *token_label, const hsm_pin_source *pin, st_err *err)
{
	hsm_ctx *ctx = NULL;
	CK_C_GetFunctionList getfl;
	char found[768];
	unsigned int i;

	if (!module_path || !*module_path)
		module_path = STATION_DEFAULT_PKCS11_MODULE;
	if (!token_label || !*token_label) {
		st_err_set(err, ST_E_CONFIG, "no token label given");
		return NULL;
	}
	pthread_mutex_lock(&open_lock);
	if (open_token) {
		st_err_set(err, ST_E_STATE,
		    "token \"%s\": a PKCS#11 context is already open in this process (token \"%s\"); share that one between threads",
		    token_label, open_token);
		pthread_mutex_unlock(&open_lock);
		return NULL;
	}
	open_token = "(opening)"; /* claimed: released by hsm_close or below */
	pthread_mutex_unlock(&open_lock);

	if (!(ctx = calloc(1, sizeof(*ctx))) || !(ctx->module = strdup(module_path)) ||
	    !(ctx->token = strdup(token_label))) {
		st_err_set(err, ST_E_NOMEM, "out of memory");
		goto fail;
	}
	pthread_mutex_init(&ctx->lock, NULL);

	if (access(module_path, R_OK) < 0) {
		st_err_errno(err, ST_E_CONFIG, errno, "PKCS#11 module %s", module_path);
		goto fail;
	}
	if (!(ctx->dl = dlopen(module_path, RTLD_NOW | RTLD_LOCAL))) {
		const char *why = dlerror();

		st_err_set(err, ST_E_CONFIG, "PKCS#11 module %s: cannot load: %s", module_path, why ? why : "?");
		goto fail;
	}
	*(void **)&getfl = dlsym(ctx->dl, "C_GetFunctionList");
	if (!getfl || getfl(&ctx->fl) != CKR_OK || !ctx->fl) {
		st_err_set(err, ST_E_CONFIG, "PKCS#11 module %s: not a PKCS#11 module (no C_GetFunctionList)", module_path);
		goto fail;
	}
	if (!(ctx->p11 = PKCS11_CTX_new())) {
		st_err_openssl(err, ST_E_NOMEM, "PKCS#11 context");
		goto fail;
	}
	if (PKCS11_CTX_load(ctx->p11, module_path) != 0) {
		st_err_openssl(err, ST_E_CONFIG, "PKCS#11 module %s: cannot initialise", module_path);
		PKCS11_CTX_free(ctx->p11);
		ctx->p11 = NULL;
		goto fail;
	}
	if (PKCS11_enumerate_slots(ctx->p11, &ctx->slots, &ctx->nslots) != 0) {
		st_err_openssl(err, ST_E_CONFIG, "PKCS#11 module %s: cannot list slots", module_path);
		goto fail;
	}
	for (i = 0; i < ctx->nslots; i++) {
		PKCS11_TOKEN *t = ctx->slots[i].token;

		if (!t || !t->initialized || !t->label || strcmp(t->label, token_label) != 0)
			continue;
		if (ctx->slot) {
			st_err_set(err, ST_E_CONFIG, "PKCS#11 module %s: more than one token is labelled \"%s\"", module_path,
			    token_label);
			goto fail;
		}
		ctx->slot = &ctx->slots[i];
	}
	if (!ctx->slot) {
		list_tokens(ctx->slots, ctx->nslots, found, sizeof(found));
		st_err_set(err, ST_E_CONFIG, "token \"%s\" not found in PKCS#11 module %s; tokens found: %s", token_label,
		    module_path, found[0] ? found : "none");
		goto fail;
	}
	ctx->slot_id = PKCS11_get_slotid_from_slot(ctx->slot);
	snprintf(ctx->desc, sizeof(ctx->desc), "\"%s\" (%s %s, serial %s, slot %lu)", token_label,
	    ctx->slot->token->manufacturer ? ctx->slot->token->manufacturer : "?",
	    ctx->slot->token->model ? ctx->slot->token->model : "?",
	    ctx->slot->token->serialnr ? ctx->slot->token->serialnr : "?", (unsigned long)ctx->slot_id);
	if (login(ctx, pin, err) < 0)
		goto fail;
	if (PKCS11_enumerate_keys(ctx->slot->token, &ctx->keys, &ctx->nkeys) != 0) {
		st_err_openssl(err, ST_E_CRYPTO, "token \"%s\": cannot list keys", token_label);
		goto fail;
	}
	pthread_mutex_lock(&open_lock);
	open_token = ctx->token;
	pthread_mutex_unlock(&open_lock);
	st_log("hsm", "opened token %s with %u private keys", ctx->desc, ctx->nkeys);
	return ctx;
fail:
	hsm_close(ctx);
	if (!ctx) {
		pthread_mutex_lock(&open_lock);
		open_token = NULL;
		pthread_mutex_unlock(&open_lock);
	}
	return NULL;
}

void
hsm_close(hsm_ctx *ctx)
{
	if (!ctx)
		return;
	if (ctx->live_keys)
		st_log("hsm", "hsm_close with %d keys still alive", ctx->live_keys);
	if (ctx->p11) {
		if (ctx->slots) {
			if (ctx->slot)
				PKCS11_logout(ctx->slot);
			PKCS11_release_all_slots(ctx->p11, ctx->slots, ctx->nslots);
		}
		PKCS11_CTX_unload(ctx->p11);
		PKCS11_CTX_free(ctx->p11);
	}
	if (ctx->dl)
		dlclose(ctx->dl);
	ERR_clear_error();
	pthread_mutex_destroy(&ctx->lock);
	free(ctx->module);
	free(ctx->token);
	free(ctx);
	pthread_mutex_lock(&open_lock);
	open_token = NULL;
	pthread_mutex_unlock(&open_lock);
}

/* ---- keys ------------------------------------------------------------- */

struct key_attrs {
	CK_BBOOL sensitive, extractable, always_sensitive, never_extractable;
	CK_BYTE id[128];
	CK_ULONG id_len;
	char label[256];
};

/* Find exactly one private key by label or id in a session of our own and
 * read the attributes libp11 does not show. */
static int
read_key_attrs(hsm_ctx *ctx, const char *label, const uint8_t *id, size_t id_len, const char *what,
    struct key_attrs *a, st_err *err)
{
	CK_OBJECT_CLASS cls = CKO_PRIVATE_KEY;
	CK_ATTRIBUTE find[2] = {
		{ CKA_CLASS, &cls, sizeof(cls) },
		{ label ? CKA_LABEL : CKA_ID, label ? (void *)label : (void *)id, label ? strlen(label) : id_len },
	};
	CK_ATTRIBUTE get[6] = {
		{ CKA_SENSITIVE, &a->sensitive, sizeof(a->sensitive) },
		{ CKA_EXTRACTABLE, &a->extractable, sizeof(a->extractable) },
		{ CKA_ALWAYS_SENSITIVE, &a->always_sensitive, sizeof(a->always_sensitive) },
		{ CKA_NEVER_EXTRACTABLE, &a->never_extractable, sizeof(a->never_extractable) },
		{ CKA_ID, a->id, sizeof(a->id) },
		{ CKA_LABEL, a->label, sizeof(a->label) - 1 },
	};
	CK_SESSION_HANDLE s = CK_INVALID_HANDLE;
	CK_OBJECT_HANDLE obj[2];
	CK_ULONG n = 0, i;
	CK_RV rv;
	int ret = -1;

	memset(a, 0, sizeof(*a));
	if ((rv = ctx->fl->C_OpenSession(ctx->slot_id, CKF_SERIAL_SESSION, NULL, NULL, &s)) != CKR_OK) {
		st_err_set(err, ST_E_CRYPTO, "token \"%s\": cannot open a session (CK_RV 0x%lx)", ctx->token, rv);
		return -1;
	}
	if ((rv = ctx->fl->C_FindObjectsInit(s, find, 2)) != CKR_OK) {
		st_err_set(err, ST_E_CRYPTO, "token \"%s\": cannot search keys (CK_RV 0x%lx)", ctx->token, rv);
		goto out;
	}
	rv = ctx->fl->C_FindObjects(s, obj, 2, &n);
	ctx->fl->C_FindObjectsFinal(s);
	if (rv != CKR_OK) {
		st_err_set(err, ST_E_CRYPTO, "token \"%s\": cannot search keys (CK_RV 0x%lx)", ctx->token, rv);
		goto out;
	}
	if (n == 0) {
		st_err_set(err, ST_E_CONFIG, "no private key %s in token \"%s\"", what, ctx->token);
		goto out;
	}
	if (n > 1) {
		st_err_set(err, ST_E_CONFIG, "more than one private key %s in token \"%s\": give each key its own label",
		    what, ctx->token);
		goto out;
	}
	if ((rv = ctx->fl->C_GetAttributeValue(s, obj[0], get, 6)) != CKR_OK) {
		/* CKA_LABEL may be absent on a key found by id: read the rest. */
		for (i = 0; i < 6; i++)
			if (get[i].ulValueLen == (CK_ULONG)-1)
				get[i].ulValueLen = 0;
		if (rv != CKR_ATTRIBUTE_TYPE_INVALID) {
			st_err_set(err, ST_E_CRYPTO, "token \"%s\": key %s: cannot read attributes (CK_RV 0x%lx)", ctx->token,
			    what, rv);
			goto out;
		}
	}
	a->id_len = get[4].ulValueLen;
	a->label[get[5].ulValueLen < sizeof(a->label) ? get[5].ulValueLen : sizeof(a->label) - 1] = '\0';
	ret = 0;
out:
	ctx->fl->C_CloseSession(s);
	return ret;
}

static void
describe_pkey(hsm_key *key)
{
	int type = EVP_PKEY_get_base_id(key->pkey);
	int bits = EVP_PKEY_get_bits(key->pkey);

	if (type == EVP_PKEY_EC)
		snprintf(key->desc, sizeof(key->desc), "EC P-%d", bits);
	else if (type == EVP_PKEY_RSA)
		snprintf(key->desc, sizeof(key->desc), "RSA %d", bits);
	else
		snprintf(key->desc, sizeof(key->desc), "%s %d", OBJ_nid2sn(type), bits);
}

const EVP_MD *
hsm_sig_md(EVP_PKEY *pkey)
{
	int bits = EVP_PKEY_get_bits(pkey);

	switch (EVP_PKEY_get_base_id(pkey)) {
	case EVP_PKEY_EC:
		return bits == 256 ? EVP_sha256() : bits == 384 ? EVP_sha384() : bits == 521 ? EVP_sha512() : NULL;
	case EVP_PKEY_RSA:
		return bits >= 2048 ? EVP_sha256() : NULL;
	default:
		return NULL;
	}
}

static hsm_key *
key_find(hsm_ctx *ctx, const char *label, const uint8_t *id, size_t id_len, st_err *err)
{
	struct key_attrs a;
	char what[300], idhex[2 * 64 + 1];
	hsm_key *key = NULL;
	unsigned int i;

	if (!ctx)
		return NULL;
	if (label) {
		snprintf(what, sizeof(what), "labelled \"%s\"", label);
	} else {
		if (!id || id_len == 0 || id_len > 64) {
			st_err_set(err, ST_E_CONFIG, "key id must be 1 to 64 bytes");
			return NULL;
		}
		st_hex(id, id_len, idhex);
		snprintf(what, sizeof(what), "with id %s", idhex);
	}
	pthread_mutex_lock(&ctx->lock);
	if (read_key_attrs(ctx, label, id, id_len, what, &a, err) < 0)
		goto fail;
	if (label)
		snprintf(a.label, sizeof(a.label), "%s", label);
	if (a.extractable) {
		st_err_set(err, ST_E_CONFIG,
		    "key \"%s\" in token \"%s\" has CKA_EXTRACTABLE=true: it could be exported; refusing it "
		    "(generate the key in the token as non-extractable)", a.label, ctx->token);
		goto fail;
	}
	if (!a.sensitive) {
		st_err_set(err, ST_E_CONFIG,
		    "key \"%s\" in token \"%s\" has CKA_SENSITIVE=false: its value could be read; refusing it "
		    "(generate the key in the token as sensitive)", a.label, ctx->token);
		goto fail;
	}
	if (!(key = calloc(1, sizeof(*key))) || !(key->label = strdup(a.label))) {
		st_err_set(err, ST_E_NOMEM, "out of memory");
		goto fail;
	}
	pthread_mutex_init(&key->lock, NULL);
	key->ctx = ctx;
	for (i = 0; i < ctx->nkeys; i++) {
		PKCS11_KEY *k = &ctx->keys[i];

		if (k->id_len != a.id_len || (a.id_len && memcmp(k->id, a.id, a.id_len) != 0))
			continue;
		if (strcmp(k->label ? k->label : "", a.label) != 0)
			continue;
		key->p11key = k;
		break;
	}
	if (!key->p11key) {
		st_err_set(err, ST_E_CONFIG,
		    "key \"%s\" in token \"%s\" appeared after the token was opened, or has a type libp11 cannot use",
		    a.label, ctx->token);
		goto fail;
	}
	ERR_clear_error();
	if (!(key->pkey = PKCS11_get_private_key(key->p11key))) {
		st_err_openssl(err, ST_E_CRYPTO, "key \"%s\" in token \"%s\"", a.label, ctx->token);
		goto fail;
	}
	describe_pkey(key);
	key->generated = a.always_sensitive && a.never_extractable;
	key->md = hsm_sig_md(key->pkey);
	ctx->live_keys++;
	pthread_mutex_unlock(&ctx->lock);
	return key;
fail:
	pthread_mutex_unlock(&ctx->lock);
	if (key) {
		EVP_PKEY_free(key->pkey);
		free(key->label);
		pthread_mutex_destroy(&key->lock);
		free(key);
	}
	return NULL;
}

hsm_key *
hsm_key_find(hsm_ctx *ctx, const char *label, st_err *err)
{
	if (!label || !*label) {
		st_err_set(err, ST_E_CONFIG, "no key label given");
		return NULL;
	}
	return key_find(ctx, label, NULL, 0, err);
}

hsm_key *
hsm_key_find_id(hsm_ctx *ctx, const uint8_t *id, size_t id_len, st_err *err)
{
	return key_find(ctx, NULL, id, id_len, err);
}

X509 *
hsm_cert_find(hsm_ctx *ctx, const char *label, st_err *err)
{
	PKCS11_CERT *certs = NULL, *found = NULL;
	unsigned int i, n = 0;
	X509 *x = NULL;

	if (!ctx || !label || !*label) {
		st_err_set(err, ST_E_CONFIG, "no certificate label given");
		return NULL;
	}
	pthread_mutex_lock(&ctx->lock);
	ERR_clear_error();
	if (PKCS11_enumerate_certs(ctx->slot->token, &certs, &n) != 0) {
		st_err_openssl(err, ST_E_CRYPTO, "listing the certificates of token \"%s\"", ctx->token);
		goto out;
	}
	for (i = 0; i < n; i++) {
		if (!certs[i].label || strcmp(certs[i].label, label) != 0 || !certs[i].x509)
			continue;
		if (found) {
			st_err_set(err, ST_E_CONFIG, "token \"%s\" holds several certificates labelled \"%s\"; "
			    "give the one to use", ctx->token, label);
			goto out;
		}
		found = &certs[i];
	}
	if (!found) {
		st_err_set(err, ST_E_NOTFOUND, "token \"%s\" holds no certificate labelled \"%s\"", ctx->token, label);
		goto out;
	}
	if (!(x = X509_dup(found->x509)))
		st_err_set(err, ST_E_NOMEM, "out of memory");
out:
	pthread_mutex_unlock(&ctx->lock);
	return x;
}

void
hsm_key_free(hsm_key *key)
{
	if (!key)
		return;
	pthread_mutex_lock(&key->ctx->lock);
	key->ctx->live_keys--;
	pthread_mutex_unlock(&key->ctx->lock);
	EVP_PKEY_free(key->pkey);
	X509_free(key->matched);
	pthread_mutex_destroy(&key->lock);
	free(key->label);
	free(key);
}

const char *
hsm_key_label(const hsm_key *key)
{
	return key ? key->label : NULL;
}

void
hsm_key_describe(const hsm_key *key, char *buf, size_t len)
{
	snprintf(buf, len, "%s", key ? key->desc : "");
}

const char *
hsm_key_protection(const hsm_key *key)
{
	if (!key)
		return "";
	return key->generated ? "sensitive, never extractable (generated in the token)"
			      : "sensitive, not extractable (imported)";
}

EVP_PKEY *
hsm_key_pkey(hsm_key *key)
{
	return key ? key->pkey : NULL;
}

/* ---- signing ----------------------------------------------------------- */

static int
sign_with(EVP_PKEY *pkey, const EVP_MD *md, const uint8_t *msg, size_t len, uint8_t **sig, size_t *sig_len,
    st_err *err)
{
	EVP_MD_CTX *mctx = NULL;
	size_t n = 0;
	int ret = -1;

	*sig = NULL;
	*sig_len = 0;
	if (!(mctx = EVP_MD_CTX_new())) {
		st_err_openssl(err, ST_E_NOMEM, "sign");
		goto out;
	}
	if (EVP_DigestSignInit(mctx, NULL, md, NULL, pkey) != 1 || EVP_DigestSign(mctx, NULL, &n, msg, len) != 1) {
		st_err_openssl(err, ST_E_CRYPTO, "sign");
		goto out;
	}
	if (!(*sig = malloc(n))) {
		st_err_set(err, ST_E_NOMEM, "out of memory");
		goto out;
	}
	if (EVP_DigestSign(mctx, *sig, &n, msg, len) != 1) {
		st_err_openssl(err, ST_E_CRYPTO, "sign (CK_RV 0x%lx)", hsm_p11_rv());
		free(*sig);
		*sig = NULL;
		goto out;
	}
	*sig_len = n;
	ret = 0;
out:
	EVP_MD_CTX_free(mctx);
	return ret;
}

int
hsm_sign(hsm_key *key, const uint8_t *msg, size_t len, uint8_t **sig_der, size_t *sig_len, st_err *err)
{
	if (sign_with(key->pkey, EVP_sha256(), msg, len, sig_der, sig_len, err) < 0)
		return st_err_prefix(err, "key \"%s\" in token \"%s\"", key->label, key->ctx->token);
	return 0;
}

int
hsm_key_matches_cert(hsm_key *key, X509 *cert, st_err *err)
{
	uint8_t challenge[32], *sig = NULL;
	size_t sig_len = 0;
	EVP_PKEY *pub = NULL;
	EVP_MD_CTX *mctx = NULL;
	char subject[256];
	int ret = -1;

	if (!cert)
		return st_err_set(err, ST_E_CONFIG, "no certificate given for key \"%s\"", key->label);
	st_x509_subject(cert, subject, sizeof(subject));
	if (!(pub = X509_get0_pubkey(cert))) {
		st_err_openssl(err, ST_E_CONFIG, "certificate \"%s\" has no usable public key", subject);
		goto out;
	}
	if (EVP_PKEY_get_base_id(pub) != EVP_PKEY_get_base_id(key->pkey) ||
	    EVP_PKEY_get_bits(pub) != EVP_PKEY_get_bits(key->pkey)) {
		st_err_set(err, ST_E_CONFIG, "certificate \"%s\" does not belong to key \"%s\" in token \"%s\" (key is %s)",
		    subject, key->label, key->ctx->token, key->desc);
		goto out;
	}
	if (RAND_bytes(challenge, sizeof(challenge)) != 1) {
		st_err_openssl(err, ST_E_CRYPTO, "random challenge");
		goto out;
	}
	if (sign_with(key->pkey, EVP_sha256(), challenge, sizeof(challenge), &sig, &sig_len, err) < 0) {
		st_err_prefix(err, "key \"%s\" in token \"%s\"", key->label, key->ctx->token);
		goto out;
	}
	if (!(mctx = EVP_MD_CTX_new()) || EVP_DigestVerifyInit(mctx, NULL, EVP_sha256(), NULL, pub) != 1) {
		st_err_openssl(err, ST_E_CRYPTO, "verify");
		goto out;
	}
	if (EVP_DigestVerify(mctx, sig, sig_len, challenge, sizeof(challenge)) != 1) {
		ERR_clear_error();
		st_err_set(err, ST_E_CONFIG, "certificate \"%s\" does not belong to key \"%s\" in token \"%s\"", subject,
		    key->label, key->ctx->token);
		goto out;
	}
	ret = 0;
out:
	EVP_MD_CTX_free(mctx);
	free(sig);
	return ret;
}

int
hsm_key_check_cert(hsm_key *key, X509 *cert, st_err *err)
{
	int known;

	if (!cert)
		return st_err_set(err, ST_E_CONFIG, "no certificate given for key \"%s\"", key->label);
	pthread_mutex_lock(&key->lock);
	known = key->matched && (key->matched == cert || X509_cmp(key->matched, cert) == 0);
	pthread_mutex_unlock(&key->lock);
	if (known)
		return 0;
	if (hsm_key_matches_cert(key, cert, err) < 0)
		return -1;
	X509_up_ref(cert);
	pthread_mutex_lock(&key->lock);
	X509_free(key->matched);
	key->matched = cert;
	pthread_mutex_unlock(&key->lock);
	return 0;
}
