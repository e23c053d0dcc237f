/* The token: module, slot, login, sessions, keys, and signing with them.
 *
 * The station talks PKCS#11 itself, through one function list per
 * process: p11-kit-proxy.so and p11-kit-client.so give every
 * C_GetFunctionList caller its own, separately initialised instance, so
 * two loaders in one process (we once had our own dlopen next to libp11's)
 * see CKR_CRYPTOKI_NOT_INITIALIZED on the second.  Signing threads share a
 * pool of sessions; the login lives as long as the first session. */
#include <dlfcn.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/rand.h>
#include <p11-kit/uri.h>

#include "cms.h"
#include "hsm-int.h"
#include "station-config.h"

static pthread_mutex_t open_lock = PTHREAD_MUTEX_INITIALIZER;
static const char *open_token; /* the token of the live hsm_ctx, if any */
static _Thread_local CK_RV sign_rv; /* this thread's last failed C_Sign* */
static _Thread_local const hsm_ctx *sign_ctx; /* and the token it failed in */

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

/* A blank-padded CK_UTF8CHAR field as a C string. */
static void
ck_str(const CK_UTF8CHAR *f, size_t flen, char *buf, size_t len)
{
	size_t n = flen < len - 1 ? flen : len - 1;

	memcpy(buf, f, n);
	while (n > 0 && (buf[n - 1] == ' ' || buf[n - 1] == '\0'))
		n--;
	buf[n] = '\0';
}

/* ---- sessions ---------------------------------------------------------- */

static CK_RV
session_get(hsm_ctx *ctx, CK_SESSION_HANDLE *s)
{
	CK_RV rv = CKR_OK;

	pthread_mutex_lock(&ctx->pool_lock);
	if (ctx->npool > 0)
		*s = ctx->pool[--ctx->npool];
	else
		rv = ctx->fl->C_OpenSession(ctx->slot_id, CKF_SERIAL_SESSION, NULL, NULL, s);
	pthread_mutex_unlock(&ctx->pool_lock);
	return rv;
}

/* Back to the pool, unless the last call says the session is dead. */
static void
session_put(hsm_ctx *ctx, CK_SESSION_HANDLE s, CK_RV last)
{
	CK_SESSION_HANDLE *p;

	if (last == CKR_SESSION_HANDLE_INVALID || last == CKR_SESSION_CLOSED || last == CKR_DEVICE_REMOVED ||
	    last == CKR_TOKEN_NOT_PRESENT) {
		ctx->fl->C_CloseSession(s);
		return;
	}
	pthread_mutex_lock(&ctx->pool_lock);
	if (ctx->npool == ctx->pool_cap) {
		size_t cap = ctx->pool_cap ? 2 * ctx->pool_cap : 8;

		if (!(p = realloc(ctx->pool, cap * sizeof(*p)))) {
			pthread_mutex_unlock(&ctx->pool_lock);
			ctx->fl->C_CloseSession(s);
			return;
		}
		ctx->pool = p;
		ctx->pool_cap = cap;
	}
	ctx->pool[ctx->npool++] = s;
	pthread_mutex_unlock(&ctx->pool_lock);
}

CK_RV
hsm_key_sign_raw(hsm_key *key, CK_MECHANISM_TYPE mech, const uint8_t *in, size_t inlen, uint8_t *out,
    CK_ULONG *outlen)
{
	CK_MECHANISM m = { mech, NULL, 0 };
	CK_SESSION_HANDLE s;
	CK_RV rv;

	if ((rv = session_get(key->ctx, &s)) != CKR_OK) {
		sign_rv = rv;
		sign_ctx = key->ctx;
		return rv;
	}
	if ((rv = key->ctx->fl->C_SignInit(s, &m, key->obj)) == CKR_OK)
		rv = key->ctx->fl->C_Sign(s, (CK_BYTE_PTR)in, (CK_ULONG)inlen, out, outlen);
	session_put(key->ctx, s, rv);
	if (rv != CKR_OK) {
		sign_rv = rv;
		sign_ctx = key->ctx;
	}
	return rv;
}

void
hsm_sign_rv_clear(void)
{
	sign_rv = CKR_OK;
	sign_ctx = NULL;
}

int
hsm_err_sign(st_err *err, const char *fmt, ...)
{
	char what[512];
	va_list ap;
	CK_RV rv = sign_rv;
	const hsm_ctx *ctx = sign_ctx;

	va_start(ap, fmt);
	vsnprintf(what, sizeof(what), fmt, ap);
	va_end(ap);
	sign_rv = CKR_OK;
	sign_ctx = NULL;
	if (rv == CKR_OK || !ctx)
		return st_err_openssl(err, ST_E_CRYPTO, "%s", what);
	ERR_clear_error();
	/* Name the HSM: on a line with a network HSM, "which box" is the
	 * first question. */
	return hsm_err_ckr(err, ST_E_CRYPTO, rv, "%s (token %s, PKCS#11 module %s)", what, ctx->desc, ctx->module);
}

/* ---- open, login, close ------------------------------------------------ */

static int
login(hsm_ctx *ctx, const hsm_pin_source *pin_src, st_err *err)
{
	char pin[HSM_PIN_MAX];
	int ret = -1;
	CK_RV rv;

	memset(pin, 0, sizeof(pin));
	if (ctx->info.flags & CKF_USER_PIN_LOCKED) {
		hsm_err_ckr(err, ST_E_CONFIG, CKR_PIN_LOCKED, "token \"%s\"", ctx->token);
		goto out;
	}
	if ((rv = ctx->fl->C_OpenSession(ctx->slot_id, CKF_SERIAL_SESSION, NULL, NULL, &ctx->login_session)) !=
	    CKR_OK) {
		ctx->login_session = CK_INVALID_HANDLE;
		hsm_err_ckr(err, ST_E_CRYPTO, rv, "token %s in PKCS#11 module %s: cannot open a session", ctx->desc,
		    ctx->module);
		goto out;
	}
	if (hsm_pin_read(pin_src, ctx->token, pin, err) < 0) {
		st_err_prefix(err, "token \"%s\": PIN", ctx->token);
		goto out;
	}
	rv = ctx->fl->C_Login(ctx->login_session, CKU_USER, (CK_UTF8CHAR_PTR)pin, (CK_ULONG)strlen(pin));
	if (rv == CKR_PIN_INCORRECT || rv == CKR_PIN_LEN_RANGE || rv == CKR_PIN_INVALID) {
		hsm_err_ckr(err, ST_E_CONFIG, rv, "wrong PIN for token \"%s\"", ctx->token);
		goto out;
	}
	if (rv != CKR_OK && rv != CKR_USER_ALREADY_LOGGED_IN) {
		hsm_err_ckr(err, rv == CKR_PIN_LOCKED || rv == CKR_PIN_EXPIRED ? ST_E_CONFIG : ST_E_CRYPTO, rv,
		    "login to token \"%s\"", ctx->token);
		goto out;
	}
	ret = 0;
out:
	st_wipe(pin, sizeof(pin));
	return ret;
}

/* SoftHSM finds its tokens through the file SOFTHSM2_CONF names (else
 * /etc/softhsm/softhsm2.conf): without it the module fails to initialise
 * with CKR_GENERAL_ERROR, or shows no token.  Say that plainly. */
static int
is_softhsm(const char *module_path)
{
	const char *base = strrchr(module_path, '/');

	return strstr(base ? base : module_path, "softhsm") != NULL;
}

static void
softhsm_conf_hint(const char *module_path, st_err *err)
{
	const char *conf = getenv("SOFTHSM2_CONF");
	size_t n = strlen(err->msg);

	if (!is_softhsm(module_path))
		return;
	if (!conf)
		snprintf(err->msg + n, sizeof(err->msg) - n, "; SOFTHSM2_CONF is not set, so SoftHSM reads "
		    "/etc/softhsm/softhsm2.conf: set SOFTHSM2_CONF to the configuration file of the token");
}

/* Find the initialised token labelled `label`: ctx->slot_id and ctx->info. */
static int
find_token(hsm_ctx *ctx, const char *label, P11KitUri *uri, st_err *err)
{
	CK_SLOT_ID *slots = NULL;
	CK_ULONG n = 0, i;
	CK_TOKEN_INFO ti;
	char name[64], found[768];
	size_t used = 0;
	int nfound = 0, ret = -1, w;
	CK_RV rv;

	found[0] = '\0';
	if ((rv = ctx->fl->C_GetSlotList(CK_TRUE, NULL, &n)) != CKR_OK) {
		hsm_err_ckr(err, ST_E_CONFIG, rv, "PKCS#11 module %s: cannot list slots", ctx->module);
		goto out;
	}
	if (n && (!(slots = calloc(n, sizeof(*slots))) || (rv = ctx->fl->C_GetSlotList(CK_TRUE, slots, &n)) != CKR_OK)) {
		if (!slots)
			st_err_set(err, ST_E_NOMEM, "out of memory");
		else
			hsm_err_ckr(err, ST_E_CONFIG, rv, "PKCS#11 module %s: cannot list slots", ctx->module);
		goto out;
	}
	for (i = 0; i < n; i++) {
		if (ctx->fl->C_GetTokenInfo(slots[i], &ti) != CKR_OK || !(ti.flags & CKF_TOKEN_INITIALIZED))
			continue;
		ck_str(ti.label, sizeof(ti.label), name, sizeof(name));
		w = snprintf(found + used, sizeof(found) - used, "%s\"%s\" (slot %lu)", used ? ", " : "", name,
		    (unsigned long)slots[i]);
		if (w > 0 && (size_t)w < sizeof(found) - used)
			used += (size_t)w;
		if (uri ? p11_kit_uri_match_token_info(uri, &ti) != 1 : strcmp(name, label) != 0)
			continue;
		if (nfound++) {
			st_err_set(err, ST_E_CONFIG, "PKCS#11 module %s: more than one token is labelled \"%s\"", ctx->module,
			    label);
			goto out;
		}
		ctx->slot_id = slots[i];
		ctx->info = ti;
		if (uri) {
			/* Messages name the token by its label, as for a plain label. */
			free(ctx->token);
			if (!(ctx->token = strdup(name))) {
				st_err_set(err, ST_E_NOMEM, "out of memory");
				goto out;
			}
		}
	}
	if (!nfound) {
		st_err_set(err, ST_E_CONFIG, "token \"%s\" not found in PKCS#11 module %s; tokens found: %s", label,
		    ctx->module, found[0] ? found : "none");
		softhsm_conf_hint(ctx->module, err);
		goto out;
	}
	ret = 0;
out:
	free(slots);
	return ret;
}

hsm_ctx *
hsm_open(const char *module_path, const char *token_label, const hsm_pin_source *pin, st_err *err)
{
	CK_C_INITIALIZE_ARGS init_args;
	CK_C_GetFunctionList getfl;
	hsm_ctx *ctx = NULL;
	P11KitUri *uri = NULL;
	char manuf[40], model[24], serial[24];
	CK_RV rv;

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
	ctx->login_session = CK_INVALID_HANDLE;
	pthread_mutex_init(&ctx->lock, NULL);
	pthread_mutex_init(&ctx->pool_lock, NULL);

	if (access(module_path, R_OK) < 0) {
		st_err_errno(err, ST_E_CONFIG, errno, "PKCS#11 module %s", module_path);
		goto fail;
	}
	if (is_softhsm(module_path) && getenv("SOFTHSM2_CONF") && access(getenv("SOFTHSM2_CONF"), R_OK) < 0) {
		st_err_set(err, ST_E_CONFIG, "SOFTHSM2_CONF=%s: %s: SoftHSM cannot read its configuration; set "
		    "SOFTHSM2_CONF to the configuration file of the token", getenv("SOFTHSM2_CONF"), strerror(errno));
		goto fail;
	}
	/* RTLD_NODELETE: the module stays mapped after hsm_close.  Modules
	 * leave things behind that point into their code: openCryptoki's
	 * C_Initialize registers a pthread_atfork handler, so unmapping it
	 * would crash the next fork of the process. */
	if (!(ctx->dl = dlopen(module_path, RTLD_NOW | RTLD_LOCAL | RTLD_NODELETE))) {
		const char *why = dlerror();

		st_err_set(err, ST_E_CONFIG, "PKCS#11 module %s: cannot load: %s", module_path, why ? why : "?");
		goto fail;
	}
	*(void **)&getfl = dlsym(ctx->dl, "C_GetFunctionList");
	if (!getfl || getfl(&ctx->fl) != CKR_OK || !ctx->fl) {
		ctx->fl = NULL;
		st_err_set(err, ST_E_CONFIG, "PKCS#11 module %s: not a PKCS#11 module (no C_GetFunctionList)", module_path);
		goto fail;
	}
	/* Our threads sign concurrently: the module must lock with the OS's
	 * primitives. */
	memset(&init_args, 0, sizeof(init_args));
	init_args.flags = CKF_OS_LOCKING_OK;
	rv = ctx->fl->C_Initialize(&init_args);
	if (rv == CKR_OK) {
		ctx->finalize = 1;
	} else if (rv != CKR_CRYPTOKI_ALREADY_INITIALIZED) {
		hsm_err_ckr(err, ST_E_CONFIG, rv, "PKCS#11 module %s: cannot initialise", module_path);
		softhsm_conf_hint(module_path, err);
		ctx->fl = NULL;
		goto fail;
	}
	/* A PKCS#11 URI (RFC 7512) or a plain token label. */
	if (strncmp(token_label, "pkcs11:", 7) == 0) {
		int urc;

		if (!(uri = p11_kit_uri_new())) {
			st_err_set(err, ST_E_NOMEM, "out of memory");
			goto fail;
		}
		if ((urc = p11_kit_uri_parse(token_label, P11_KIT_URI_FOR_TOKEN, uri)) != P11_KIT_URI_OK) {
			st_err_set(err, ST_E_CONFIG, "token URI \"%s\": %s", token_label, p11_kit_uri_message(urc));
			goto fail;
		}
	}
	if (find_token(ctx, token_label, uri, err) < 0)
		goto fail;
	p11_kit_uri_free(uri);
	uri = NULL;
	ck_str(ctx->info.manufacturerID, sizeof(ctx->info.manufacturerID), manuf, sizeof(manuf));
	ck_str(ctx->info.model, sizeof(ctx->info.model), model, sizeof(model));
	ck_str(ctx->info.serialNumber, sizeof(ctx->info.serialNumber), serial, sizeof(serial));
	snprintf(ctx->desc, sizeof(ctx->desc), "\"%s\" (%s %s, serial %s, slot %lu)", ctx->token, manuf, model, serial,
	    (unsigned long)ctx->slot_id);
	if (login(ctx, pin, err) < 0)
		goto fail;
	pthread_mutex_lock(&open_lock);
	open_token = ctx->token;
	pthread_mutex_unlock(&open_lock);
	st_log("hsm", "opened token %s in %s", ctx->desc, ctx->module);
	return ctx;
fail:
	p11_kit_uri_free(uri);
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
	size_t i;

	if (!ctx)
		return;
	if (ctx->live_keys)
		st_log("hsm", "hsm_close with %d keys still alive", ctx->live_keys);
	if (ctx->fl) {
		for (i = 0; i < ctx->npool; i++)
			ctx->fl->C_CloseSession(ctx->pool[i]);
		if (ctx->login_session != CK_INVALID_HANDLE) {
			ctx->fl->C_Logout(ctx->login_session);
			ctx->fl->C_CloseSession(ctx->login_session);
		}
		if (ctx->finalize)
			ctx->fl->C_Finalize(NULL);
	}
	if (ctx->dl)
		dlclose(ctx->dl);
	ERR_clear_error();
	pthread_mutex_destroy(&ctx->lock);
	pthread_mutex_destroy(&ctx->pool_lock);
	free(ctx->pool);
	free(ctx->module);
	free(ctx->token);
	free(ctx);
	pthread_mutex_lock(&open_lock);
	open_token = NULL;
	pthread_mutex_unlock(&open_lock);
}

/* ---- keys ------------------------------------------------------------- */

struct key_attrs {
	CK_OBJECT_HANDLE obj;
	CK_KEY_TYPE type;
	CK_BBOOL sensitive, extractable, always_sensitive, never_extractable, sign;
	CK_BYTE id[128];
	CK_ULONG id_len;
	char label[256];
};

/* Up to max objects matching tmpl. */
static CK_RV
find_objects(hsm_ctx *ctx, CK_SESSION_HANDLE s, CK_ATTRIBUTE *tmpl, CK_ULONG n, CK_OBJECT_HANDLE *obj,
    CK_ULONG max, CK_ULONG *found)
{
	CK_RV rv;

	*found = 0;
	if ((rv = ctx->fl->C_FindObjectsInit(s, tmpl, n)) != CKR_OK)
		return rv;
	rv = ctx->fl->C_FindObjects(s, obj, max, found);
	ctx->fl->C_FindObjectsFinal(s);
	return rv;
}

/* One attribute of variable length into buf (len in/out); absent = 0 bytes. */
static CK_RV
get_attr(hsm_ctx *ctx, CK_SESSION_HANDLE s, CK_OBJECT_HANDLE o, CK_ATTRIBUTE_TYPE t, void *buf, CK_ULONG *len)
{
	CK_ATTRIBUTE a = { t, buf, *len };
	CK_RV rv = ctx->fl->C_GetAttributeValue(s, o, &a, 1);

	if (rv == CKR_ATTRIBUTE_TYPE_INVALID || rv == CKR_ATTRIBUTE_SENSITIVE) {
		*len = 0;
		return CKR_OK;
	}
	*len = a.ulValueLen;
	return rv;
}

/* Find exactly one private key by label or id and read its attributes. */
static int
read_key_attrs(hsm_ctx *ctx, CK_SESSION_HANDLE s, const char *label, const uint8_t *id, size_t id_len,
    const char *what, struct key_attrs *a, st_err *err)
{
	CK_OBJECT_CLASS cls = CKO_PRIVATE_KEY;
	CK_ATTRIBUTE find[2] = {
		{ CKA_CLASS, &cls, sizeof(cls) },
		{ label ? CKA_LABEL : CKA_ID, label ? (void *)label : (void *)id, label ? strlen(label) : id_len },
	};
	struct {
		CK_ATTRIBUTE_TYPE type;
		void *p;
		CK_ULONG len;
	} get[] = {
		{ CKA_KEY_TYPE, &a->type, sizeof(a->type) },
		{ CKA_SENSITIVE, &a->sensitive, sizeof(a->sensitive) },
		{ CKA_EXTRACTABLE, &a->extractable, sizeof(a->extractable) },
		{ CKA_ALWAYS_SENSITIVE, &a->always_sensitive, sizeof(a->always_sensitive) },
		{ CKA_NEVER_EXTRACTABLE, &a->never_extractable, sizeof(a->never_extractable) },
		{ CKA_SIGN, &a->sign, sizeof(a->sign) },
		{ CKA_ID, a->id, sizeof(a->id) },
		{ CKA_LABEL, a->label, sizeof(a->label) - 1 },
	};
	CK_OBJECT_HANDLE obj[2];
	CK_ULONG n = 0, len;
	size_t i;
	CK_RV rv;

	memset(a, 0, sizeof(*a));
	a->type = (CK_KEY_TYPE)-1;
	if ((rv = find_objects(ctx, s, find, 2, obj, 2, &n)) != CKR_OK)
		return hsm_err_ckr(err, ST_E_CRYPTO, rv, "token \"%s\": cannot search keys", ctx->token);
	if (n == 0)
		return st_err_set(err, ST_E_CONFIG, "no private key %s in token \"%s\"", what, ctx->token);
	if (n > 1)
		return st_err_set(err, ST_E_CONFIG,
		    "more than one private key %s in token \"%s\": give each key its own label", what, ctx->token);
	a->obj = obj[0];
	/* One attribute at a time: a token may lack any of them, and a
	 * missing one must not hide the others. */
	for (i = 0; i < sizeof(get) / sizeof(get[0]); i++) {
		len = get[i].len;
		if ((rv = get_attr(ctx, s, obj[0], get[i].type, get[i].p, &len)) != CKR_OK)
			return hsm_err_ckr(err, ST_E_CRYPTO, rv, "token \"%s\": key %s: cannot read attributes", ctx->token,
			    what);
		if (get[i].type == CKA_ID)
			a->id_len = len;
		if (get[i].type == CKA_LABEL)
			a->label[len < sizeof(a->label) ? len : sizeof(a->label) - 1] = '\0';
	}
	return 0;
}

/* The public half: EC from CKA_EC_PARAMS and the CKA_EC_POINT of the
 * public key object with the same CKA_ID (or label), or from a certificate
 * object with the same CKA_ID; RSA from the private key's modulus. */
static EVP_PKEY *
key_public(hsm_ctx *ctx, CK_SESSION_HANDLE s, hsm_key *key, const struct key_attrs *a, st_err *err)
{
	CK_OBJECT_CLASS pub = CKO_PUBLIC_KEY, crt = CKO_CERTIFICATE;
	CK_ATTRIBUTE find[2] = {
		{ CKA_CLASS, &pub, sizeof(pub) },
		{ a->id_len ? CKA_ID : CKA_LABEL, a->id_len ? (void *)a->id : (void *)a->label,
		  a->id_len ? a->id_len : strlen(a->label) },
	};
	uint8_t buf1[1024], buf2[1024];
	CK_ULONG l1 = sizeof(buf1), l2 = sizeof(buf2), n = 0;
	CK_OBJECT_HANDLE o;
	const unsigned char *p;
	X509 *cert = NULL;
	EVP_PKEY *pkey = NULL;
	CK_RV rv;

	if (a->type == CKK_RSA) {
		if ((rv = get_attr(ctx, s, a->obj, CKA_MODULUS, buf1, &l1)) != CKR_OK ||
		    (rv = get_attr(ctx, s, a->obj, CKA_PUBLIC_EXPONENT, buf2, &l2)) != CKR_OK || !l1 || !l2) {
			hsm_err_ckr(err, ST_E_CONFIG, rv ? rv : CKR_ATTRIBUTE_TYPE_INVALID,
			    "key \"%s\" in token \"%s\": cannot read the RSA modulus", a->label, ctx->token);
			return NULL;
		}
		return hsm_pkey_rsa(key, buf1, l1, buf2, l2, err);
	}
	if (a->type != CKK_EC) {
		st_err_set(err, ST_E_CONFIG, "key \"%s\" in token \"%s\" is neither EC nor RSA (CKA_KEY_TYPE %lu)", a->label,
		    ctx->token, (unsigned long)a->type);
		return NULL;
	}
	if ((rv = get_attr(ctx, s, a->obj, CKA_EC_PARAMS, buf1, &l1)) != CKR_OK || !l1) {
		hsm_err_ckr(err, ST_E_CONFIG, rv ? rv : CKR_ATTRIBUTE_TYPE_INVALID,
		    "key \"%s\" in token \"%s\": cannot read CKA_EC_PARAMS", a->label, ctx->token);
		return NULL;
	}
	if ((rv = find_objects(ctx, s, find, 2, &o, 1, &n)) == CKR_OK && n == 0 && a->id_len) {
		/* A public key object without the CKA_ID: by label then. */
		CK_ATTRIBUTE by_label[2] = { find[0], { CKA_LABEL, (void *)a->label, strlen(a->label) } };

		rv = find_objects(ctx, s, by_label, 2, &o, 1, &n);
	}
	if (rv == CKR_OK && n == 1 && get_attr(ctx, s, o, CKA_EC_POINT, buf2, &l2) == CKR_OK && l2) {
		if ((pkey = hsm_pkey_ec(key, buf1, l1, buf2, l2, err)) == NULL)
			st_err_prefix(err, "key \"%s\" in token \"%s\"", a->label, ctx->token);
		return pkey;
	}
	/* No public key object: take the point from a certificate object. */
	find[0].pValue = &crt;
	l2 = sizeof(buf2);
	if (a->id_len && find_objects(ctx, s, find, 2, &o, 1, &n) == CKR_OK && n == 1 &&
	    get_attr(ctx, s, o, CKA_VALUE, buf2, &l2) == CKR_OK && l2 && l2 < sizeof(buf2)) {
		p = buf2;
		if ((cert = d2i_X509(NULL, &p, (long)l2)) != NULL) {
			EVP_PKEY *cp = X509_get0_pubkey(cert);
			unsigned char *q = NULL;
			size_t plen = 0;

			if (cp && EVP_PKEY_get_base_id(cp) == EVP_PKEY_EC &&
			    (plen = EVP_PKEY_get1_encoded_public_key(cp, &q)) > 0)
				pkey = hsm_pkey_ec(key, buf1, l1, q, plen, err);
			OPENSSL_free(q);
			X509_free(cert);
			if (pkey)
				return pkey;
		}
	}
	ERR_clear_error();
	st_err_set(err, ST_E_CONFIG,
	    "key \"%s\" in token \"%s\" has no public key object (CKO_PUBLIC_KEY) with the same %s, nor a certificate "
	    "object: import the public key or the certificate with the key's CKA_ID", a->label, ctx->token,
	    a->id_len ? "CKA_ID" : "label");
	return NULL;
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
	CK_SESSION_HANDLE s = CK_INVALID_HANDLE;
	struct key_attrs a;
	char what[300], idhex[2 * 64 + 1];
	hsm_key *key = NULL;
	CK_RV rv;

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
	if ((rv = session_get(ctx, &s)) != CKR_OK) {
		s = CK_INVALID_HANDLE;
		hsm_err_ckr(err, ST_E_CRYPTO, rv, "token %s in PKCS#11 module %s: cannot open a session", ctx->desc,
		    ctx->module);
		goto fail;
	}
	if (read_key_attrs(ctx, s, label, id, id_len, what, &a, err) < 0)
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
	key->obj = a.obj;
	key->type = a.type;
	memcpy(key->id, a.id, a.id_len);
	key->id_len = a.id_len;
	key->can_sign = a.sign;
	if (!(key->pkey = key_public(ctx, s, key, &a, err)))
		goto fail;
	describe_pkey(key);
	key->generated = a.always_sensitive && a.never_extractable;
	key->md = hsm_sig_md(key->pkey);
	ctx->live_keys++;
	session_put(ctx, s, CKR_OK);
	pthread_mutex_unlock(&ctx->lock);
	return key;
fail:
	if (s != CK_INVALID_HANDLE)
		session_put(ctx, s, CKR_OK);
	pthread_mutex_unlock(&ctx->lock);
	if (key) {
		EVP_PKEY_free(key->pkey);
		free(key->label);
		pthread_mutex_destroy(&key->lock);
		free(key);
	}
	return NULL;
}

/* pkcs11:token=line-a;object=intermediate;type=private (or id=%01):
 * the object's label or id, in this ctx's token. */
static hsm_key *
key_find_uri(hsm_ctx *ctx, const char *s, st_err *err)
{
	P11KitUri *uri = NULL;
	CK_ATTRIBUTE *lab, *id, *cls;
	char label[256];
	hsm_key *key = NULL;
	int urc;

	if (!(uri = p11_kit_uri_new())) {
		st_err_set(err, ST_E_NOMEM, "out of memory");
		goto out;
	}
	if ((urc = p11_kit_uri_parse(s, P11_KIT_URI_FOR_OBJECT_ON_TOKEN, uri)) != P11_KIT_URI_OK) {
		st_err_set(err, ST_E_CONFIG, "key URI \"%s\": %s", s, p11_kit_uri_message(urc));
		goto out;
	}
	if (p11_kit_uri_match_token_info(uri, &ctx->info) != 1) {
		st_err_set(err, ST_E_CONFIG, "key URI \"%s\" names another token than the open one, \"%s\"", s, ctx->token);
		goto out;
	}
	cls = p11_kit_uri_get_attribute(uri, CKA_CLASS);
	if (cls && (cls->ulValueLen != sizeof(CK_OBJECT_CLASS) || *(CK_OBJECT_CLASS *)cls->pValue != CKO_PRIVATE_KEY)) {
		st_err_set(err, ST_E_CONFIG, "key URI \"%s\": type= must be private (the key, not its certificate)", s);
		goto out;
	}
	lab = p11_kit_uri_get_attribute(uri, CKA_LABEL);
	id = p11_kit_uri_get_attribute(uri, CKA_ID);
	if (id && id->ulValueLen) {
		key = key_find(ctx, NULL, id->pValue, id->ulValueLen, err);
		if (key && lab && (lab->ulValueLen != strlen(key->label) ||
		    memcmp(lab->pValue, key->label, lab->ulValueLen) != 0)) {
			st_err_set(err, ST_E_CONFIG, "key URI \"%s\": the key with that id is labelled \"%s\"", s, key->label);
			hsm_key_free(key);
			key = NULL;
		}
	} else if (lab && lab->ulValueLen && lab->ulValueLen < sizeof(label)) {
		memcpy(label, lab->pValue, lab->ulValueLen);
		label[lab->ulValueLen] = '\0';
		key = key_find(ctx, label, NULL, 0, err);
	} else {
		st_err_set(err, ST_E_CONFIG, "key URI \"%s\" names no object= or id=", s);
	}
out:
	p11_kit_uri_free(uri);
	return key;
}

hsm_key *
hsm_key_find(hsm_ctx *ctx, const char *label, st_err *err)
{
	if (!label || !*label) {
		st_err_set(err, ST_E_CONFIG, "no key label given");
		return NULL;
	}
	if (ctx && strncmp(label, "pkcs11:", 7) == 0)
		return key_find_uri(ctx, label, err);
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
	CK_OBJECT_CLASS cls = CKO_CERTIFICATE;
	CK_ATTRIBUTE find[2] = {
		{ CKA_CLASS, &cls, sizeof(cls) },
		{ CKA_LABEL, (void *)label, label ? strlen(label) : 0 },
	};
	CK_SESSION_HANDLE s = CK_INVALID_HANDLE;
	CK_OBJECT_HANDLE obj[2];
	CK_ATTRIBUTE val = { CKA_VALUE, NULL, 0 };
	CK_ULONG n = 0;
	const unsigned char *p;
	uint8_t *der = NULL;
	X509 *x = NULL;
	CK_RV rv;

	if (!ctx || !label || !*label) {
		st_err_set(err, ST_E_CONFIG, "no certificate label given");
		return NULL;
	}
	pthread_mutex_lock(&ctx->lock);
	if ((rv = session_get(ctx, &s)) != CKR_OK) {
		s = CK_INVALID_HANDLE;
		hsm_err_ckr(err, ST_E_CRYPTO, rv, "token %s in PKCS#11 module %s: cannot open a session", ctx->desc,
		    ctx->module);
		goto out;
	}
	if ((rv = find_objects(ctx, s, find, 2, obj, 2, &n)) != CKR_OK) {
		hsm_err_ckr(err, ST_E_CRYPTO, rv, "listing the certificates of token \"%s\"", ctx->token);
		goto out;
	}
	if (n > 1) {
		st_err_set(err, ST_E_CONFIG, "token \"%s\" holds several certificates labelled \"%s\"; "
		    "give the one to use", ctx->token, label);
		goto out;
	}
	if (n == 0) {
		st_err_set(err, ST_E_NOTFOUND, "token \"%s\" holds no certificate labelled \"%s\"", ctx->token, label);
		goto out;
	}
	if ((rv = ctx->fl->C_GetAttributeValue(s, obj[0], &val, 1)) != CKR_OK || val.ulValueLen == 0 ||
	    val.ulValueLen > 1 << 20) {
		hsm_err_ckr(err, ST_E_CRYPTO, rv ? rv : CKR_ATTRIBUTE_VALUE_INVALID,
		    "certificate \"%s\" in token \"%s\": cannot read CKA_VALUE", label, ctx->token);
		goto out;
	}
	if (!(der = malloc(val.ulValueLen))) {
		st_err_set(err, ST_E_NOMEM, "out of memory");
		goto out;
	}
	val.pValue = der;
	if ((rv = ctx->fl->C_GetAttributeValue(s, obj[0], &val, 1)) != CKR_OK) {
		hsm_err_ckr(err, ST_E_CRYPTO, rv, "certificate \"%s\" in token \"%s\": cannot read CKA_VALUE", label,
		    ctx->token);
		goto out;
	}
	p = der;
	if (!(x = d2i_X509(NULL, &p, (long)val.ulValueLen)) || p != der + val.ulValueLen) {
		X509_free(x);
		x = NULL;
		st_err_openssl(err, ST_E_CONFIG, "certificate \"%s\" in token \"%s\" is not DER X.509", label,
		    ctx->token);
	}
out:
	if (s != CK_INVALID_HANDLE)
		session_put(ctx, s, rv);
	pthread_mutex_unlock(&ctx->lock);
	free(der);
	return x;
}

unsigned
hsm_token_pin_state(const hsm_ctx *ctx)
{
	unsigned st = 0;

	if (!ctx)
		return 0;
	if (ctx->info.flags & CKF_USER_PIN_COUNT_LOW)
		st |= HSM_PIN_COUNT_LOW;
	if (ctx->info.flags & CKF_USER_PIN_FINAL_TRY)
		st |= HSM_PIN_FINAL_TRY;
	if (ctx->info.flags & CKF_USER_PIN_LOCKED)
		st |= HSM_PIN_LOCKED;
	return st;
}

int
hsm_key_audit(hsm_key *key, st_err *err)
{
	hsm_ctx *ctx = key->ctx;
	CK_OBJECT_CLASS cls = CKO_CERTIFICATE;
	CK_ATTRIBUTE find[2] = {
		{ CKA_CLASS, &cls, sizeof(cls) },
		{ CKA_ID, key->id, key->id_len },
	};
	CK_SESSION_HANDLE s = CK_INVALID_HANDLE;
	CK_OBJECT_HANDLE obj[8];
	CK_ULONG n = 0, i, len;
	uint8_t der[4096];
	const unsigned char *p;
	X509 *cert = NULL;
	int ret = -1;
	CK_RV rv = CKR_OK;

	if (!key->id_len)
		return st_err_set(err, ST_E_CONFIG,
		    "key \"%s\" in token \"%s\" has no CKA_ID: libp11-based tools cannot find its public key; "
		    "give the key, its public key and its certificate the same CKA_ID (pkcs11-tool --id)", key->label,
		    ctx->token);
	if (!key->can_sign)
		return st_err_set(err, ST_E_CONFIG,
		    "key \"%s\" in token \"%s\" has CKA_SIGN=false: it cannot sign; generate it with --usage-sign",
		    key->label, ctx->token);
	if ((rv = session_get(ctx, &s)) != CKR_OK) {
		s = CK_INVALID_HANDLE;
		hsm_err_ckr(err, ST_E_CRYPTO, rv, "token %s: cannot open a session", ctx->desc);
		goto out;
	}
	if ((rv = find_objects(ctx, s, find, 2, obj, 8, &n)) != CKR_OK) {
		hsm_err_ckr(err, ST_E_CRYPTO, rv, "token \"%s\": cannot search certificates", ctx->token);
		goto out;
	}
	for (i = 0; i < n; i++) {
		len = sizeof(der);
		if ((rv = get_attr(ctx, s, obj[i], CKA_VALUE, der, &len)) != CKR_OK || !len) {
			hsm_err_ckr(err, ST_E_CONFIG, rv ? rv : CKR_ATTRIBUTE_VALUE_INVALID,
			    "a certificate object with the CKA_ID of key \"%s\" in token \"%s\" cannot be read", key->label,
			    ctx->token);
			goto out;
		}
		p = der;
		if (!(cert = d2i_X509(NULL, &p, (long)len))) {
			st_err_openssl(err, ST_E_CONFIG,
			    "a certificate object with the CKA_ID of key \"%s\" in token \"%s\" is not X.509", key->label,
			    ctx->token);
			goto out;
		}
		if (hsm_key_matches_cert(key, cert, err) < 0) {
			st_err_prefix(err, "certificate object with the key's CKA_ID");
			goto out;
		}
		X509_free(cert);
		cert = NULL;
	}
	ret = 0;
out:
	X509_free(cert);
	if (s != CK_INVALID_HANDLE)
		session_put(ctx, s, rv);
	return ret;
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
	hsm_sign_rv_clear();
	if (EVP_DigestSign(mctx, *sig, &n, msg, len) != 1) {
		hsm_err_sign(err, "sign");
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
