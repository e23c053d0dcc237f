/* The recipe schema (SCHEMA.md is its documentation; keep the two in step).
 * Each section is read by one function that reports every problem it sees
 * and fills the typed struct; recipe_load() fails if any error was reported. */
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/asn1.h>
#include <openssl/objects.h>
#include <openssl/x509.h>

#include "recipe-int.h"
#include "station-config.h"

typedef struct walk {
	rctx *c;
	recipe *r;
	const char *root; /* recipe_load_opts.root */
} walk;

static const char *const cmd_names[RECIPE_CMD_COUNT + 1] = {
	"default", "hello", "dut_status", "dut_power", "se_info", "auth_challenge", "auth_response", "keygen",
	"get_csr", "install_cert", "read_cert", "lock", "rework_challenge", "retire",
	"vendor_chain", "set_baud", NULL,
};

const char *
recipe_cmd_name(int code)
{
	return code >= 0 && code < RECIPE_CMD_COUNT ? cmd_names[code] : NULL;
}

static const char *const eku_names[] = {
	"serverAuth", "clientAuth", "codeSigning", "emailProtection", "timeStamping", "OCSPSigning", NULL,
};

const char *
recipe_eku_name(unsigned bit)
{
	size_t i;

	for (i = 0; eku_names[i]; i++)
		if (bit == 1u << i)
			return eku_names[i];
	return NULL;
}

/* ---- helpers ------------------------------------------------------------- */

static bool
is_ident(const char *s, const char *extra)
{
	for (; *s; s++)
		if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') || strchr(extra, *s)))
			return false;
	return true;
}

/* A section (mapping) under map; NULL when absent or not a mapping. */
static const ynode *
section(walk *w, const ynode *map, const char *parent, const char *key, bool required, const char *const *keys,
    const rkey_note *notes, char *path)
{
	const ynode *v = rc_get(map, key);

	rc_path(path, parent, key);
	if (!v) {
		if (required)
			rc_missing(w->c, map, path);
		return NULL;
	}
	return rc_map(w->c, v, path, keys, notes) == 0 ? v : NULL;
}

/* A list under map with min..max items; NULL when absent or wrong. */
static const ynode *
list(walk *w, const ynode *map, const char *parent, const char *key, bool required, size_t min, size_t max,
    char *path)
{
	const ynode *v = rc_get(map, key);

	rc_path(path, parent, key);
	if (!v) {
		if (required)
			rc_missing(w->c, map, path);
		return NULL;
	}
	if (v->bad)
		return NULL;
	if (v->kind != YN_SEQ) {
		if (ynode_is_null(v))
			rc_err(w->c, v->kline, v->kcol, path, "missing value: expected a list");
		else
			rc_err(w->c, v->line, v->col, path, "expected a list (\"- item\" lines or [a, b]), got %s",
			    ynode_kind_name(v));
		return NULL;
	}
	if (v->n < min || v->n > max) {
		if (v->n < min)
			rc_err(w->c, v->line, v->col, path, "expected at least %zu item%s, got %zu", min, min == 1 ? "" : "s", v->n);
		else
			rc_err(w->c, v->line, v->col, path, "at most %zu items are allowed, got %zu", max, v->n);
		return NULL;
	}
	return v;
}

enum { F_READABLE, F_CERT_ONE, F_CA_BUNDLE, F_CA_ONE, F_CERTS, F_NONE, F_METRICS };

/* Check the file a node names; report at the node. */
static int
check_file(walk *w, const ynode *v, const char *path, const char *file, int kind)
{
	st_err err;
	int rc = 0;

	switch (kind) {
	case F_READABLE: rc = rc_file_readable(file, &err); break;
	case F_CERT_ONE: rc = rc_cert_file(file, RC_CERT_ONE, &err); break;
	case F_CA_BUNDLE: rc = rc_cert_file(file, RC_CERT_CA, &err); break;
	case F_CA_ONE: rc = rc_cert_file(file, RC_CERT_ONE | RC_CERT_CA, &err); break;
	case F_CERTS: rc = rc_cert_file(file, 0, &err); break;
	case F_METRICS: rc = recipe_metrics_file_check(file, &err); break;
	default: break;
	}
	if (rc < 0)
		rc_err(w->c, v->line, v->col, path, "%s", err.msg);
	return rc;
}

/* A path-valued key: resolved against the recipe's folder (absolute ones
 * under opts.root) and checked.  1 absent, 0 ok, -1 reported. */
static int
get_file(walk *w, const ynode *map, const char *parent, const char *key, bool required, int kind, char **out)
{
	char path[RECIPE_PATH_MAX];
	const ynode *v = rc_get(map, key);
	char *s = NULL;
	int ret = -1;

	*out = NULL;
	rc_path(path, parent, key);
	if (!v) {
		if (required && map)
			rc_missing(w->c, map, path);
		return 1;
	}
	if (rc_str(w->c, v, path, PATH_MAX - 1, &s) < 0)
		return -1;
	if (!(*out = rc_resolve(w->r->dir, w->root, s))) {
		rc_err(w->c, v->line, v->col, path, "out of memory");
		goto out;
	}
	ret = check_file(w, v, path, *out, kind);
out:
	free(s);
	return ret;
}

static int
get_template(walk *w, const ynode *map, const char *parent, const char *key, bool required, char **out)
{
	char path[RECIPE_PATH_MAX];
	int rc = rc_get_str(w->c, map, parent, key, required, 255, out);

	if (rc == 0 && rc_template(w->c, rc_get(map, key), rc_path(path, parent, key)) < 0) {
		free(*out);
		*out = NULL;
		return -1;
	}
	return rc;
}

/* ---- sections ------------------------------------------------------------- */

static void
read_recipe(walk *w, const ynode *root)
{
	static const char *const keys[] = { "name", "version", NULL };
	char path[RECIPE_PATH_MAX];
	const ynode *m = section(w, root, "", "recipe", true, keys, NULL, path);

	if (!m)
		return;
	if (rc_get_str(w->c, m, "recipe", "name", true, 64, &w->r->recipe.name) == 0 &&
	    !is_ident(w->r->recipe.name, "._-")) {
		const ynode *v = rc_get(m, "name");

		rc_err(w->c, v->line, v->col, "recipe.name",
		    "only letters, digits, '.', '_' and '-' are allowed (the name goes into file names and audit records)");
	}
	rc_get_str(w->c, m, "recipe", "version", true, 64, &w->r->recipe.version);
}

static void
read_product(walk *w, const ynode *root)
{
	static const char *const keys[] = { "name", "organisation", NULL };
	static const rkey_note notes[] = {
		{ "organization", "spelled 'organisation' in a recipe" },
		{ NULL, NULL },
	};
	char path[RECIPE_PATH_MAX];
	const ynode *m = section(w, root, "", "product", true, keys, notes, path);

	if (!m)
		return;
	rc_get_str(w->c, m, "product", "name", true, 64, &w->r->product.name);
	rc_get_str(w->c, m, "product", "organisation", true, 64, &w->r->product.organisation);
}

static void
read_jig(walk *w, const ynode *root)
{
	static const char *const keys[] = { "uri", "timeouts_ms", "retries", NULL };
	char path[RECIPE_PATH_MAX];
	const ynode *m = section(w, root, "", "jig", true, keys, NULL, path), *t;
	long v;
	size_t i;
	int k;

	if (!m)
		return;
	if (rc_get_str(w->c, m, "jig", "uri", true, 255, &w->r->jig.uri) == 0 &&
	    strncmp(w->r->jig.uri, "tcp:", 4) != 0 && strncmp(w->r->jig.uri, "serial:", 7) != 0 &&
	    strncmp(w->r->jig.uri, "usb:", 4) != 0) {
		const ynode *u = rc_get(m, "uri");

		rc_err(w->c, u->line, u->col, "jig.uri",
		    "expected tcp:HOST:PORT, serial:PATH?baud=N or usb:VID:PID[?serial=S], got \"%s\"", w->r->jig.uri);
	}
	if (rc_get_int(w->c, m, "jig", "retries", false, 0, 10, &v) == 0)
		w->r->jig.retries = (int)v;
	if (!(t = section(w, m, "jig", "timeouts_ms", false, cmd_names, NULL, path)))
		return;
	/* "default" first: it fills the commands the recipe does not name. */
	if (rc_get_int(w->c, t, path, "default", false, 1, 600000, &v) == 0)
		for (k = 0; k < RECIPE_CMD_COUNT; k++)
			w->r->jig.timeout_ms[k] = (int)v;
	for (i = 0; i + 1 < t->n; i += 2)
		for (k = 1; k < RECIPE_CMD_COUNT; k++)
			if (t->kids[i]->kind == YN_SCALAR && strcmp(t->kids[i]->text, cmd_names[k]) == 0 &&
			    rc_get(t, cmd_names[k]) == t->kids[i + 1] &&
			    rc_get_int(w->c, t, path, cmd_names[k], false, 1, 600000, &v) == 0)
				w->r->jig.timeout_ms[k] = (int)v;
}

static int
parse_firmware(const char *s, uint32_t *out)
{
	unsigned long part[3];
	const char *p = s;
	char *end;
	int i;

	for (i = 0; i < 3; i++) {
		if (*p < '0' || *p > '9')
			return -1;
		part[i] = strtoul(p, &end, 10);
		if (end - p > 5)
			return -1;
		p = end;
		if (i < 2 && *p++ != '.')
			return -1;
	}
	if (*p || part[0] > 255 || part[1] > 255 || part[2] > 65535)
		return -1;
	*out = (uint32_t)(part[0] << 24 | part[1] << 16 | part[2]);
	return 0;
}

/* Subject attributes a vendor may name the model in. */
static const char *const model_attrs[] = { "CN", "OU", "O", "title", "pseudonym", "description", NULL };
#define MODEL_VAR "${se.model}"

/* se.attestation_model: "subject: ATTR=TEXT${se.model}TEXT", or "policies:"
 * mapping each model of se.models to a certificatePolicies OID.  Without it
 * a vendor-valid certificate for one model would vouch for another. */
static void
read_attestation_model(walk *w, const ynode *se)
{
	static const char *const keys[] = { "subject", "policies", NULL };
	char path[RECIPE_PATH_MAX], sub[RECIPE_PATH_MAX];
	const ynode *m = section(w, se, "se", "attestation_model", true, keys, NULL, path), *s, *p;
	struct recipe_attestation_model *am = &w->r->se.attestation_model;
	char *text = NULL;
	size_t i, j;

	if (!m)
		return;
	s = rc_get(m, "subject");
	p = rc_get(m, "policies");
	if (!s == !p) {
		rc_err(w->c, m->line, m->col, path,
		    "give exactly one of subject (ATTR=TEXT with ${se.model}, e.g. \"CN=${se.model} attestation\") and "
		    "policies (a certificatePolicies OID per model)");
		return;
	}
	if (s) {
		const char *eq, *var;

		if (rc_str(w->c, s, rc_path(sub, path, "subject"), 255, &text) < 0)
			return;
		eq = strchr(text, '=');
		var = strstr(text, MODEL_VAR);
		for (i = 0; eq && model_attrs[i]; i++)
			if (strlen(model_attrs[i]) == (size_t)(eq - text) && strncmp(text, model_attrs[i], (size_t)(eq - text)) == 0)
				break;
		if (!eq || !model_attrs[i])
			rc_err(w->c, s->line, s->col, sub, "expected ATTR=VALUE with ATTR one of CN, OU, O, title, pseudonym, "
			                                   "description, got \"%s\"", text);
		else if (!var || strstr(var + 1, MODEL_VAR) || strstr(text, "${") != var || strstr(var + 1, "${"))
			rc_err(w->c, s->line, s->col, sub, "the value must contain " MODEL_VAR " exactly once and no other "
			                                   "${...}: it is what binds the certificate to the model the SE claims");
		else {
			am->subject_nid = OBJ_txt2nid(model_attrs[i]);
			am->prefix = strndup(eq + 1, (size_t)(var - eq - 1));
			am->suffix = strdup(var + strlen(MODEL_VAR));
			if (!am->subject_nid || !am->prefix || !am->suffix)
				rc_err(w->c, s->line, s->col, sub, "out of memory");
		}
		free(text);
		return;
	}
	rc_path(sub, path, "policies");
	if (!w->r->se.n_models)
		return; /* se.models is wrong: reported there */
	{
		const char **names = calloc(w->r->se.n_models + 1, sizeof(*names));

		if (!names || !(am->policies = calloc(w->r->se.n_models, sizeof(char *)))) {
			free(names);
			rc_err(w->c, p->line, p->col, sub, "out of memory");
			return;
		}
		for (i = 0; i < w->r->se.n_models; i++)
			names[i] = w->r->se.models[i];
		i = rc_map(w->c, p, sub, names, NULL) == 0;
		free(names);
		if (!i)
			return;
	}
	for (i = 0; i < w->r->se.n_models; i++) {
		char mp[RECIPE_PATH_MAX];
		const ynode *v = rc_get(p, w->r->se.models[i]);
		ASN1_OBJECT *o;

		rc_path(mp, sub, w->r->se.models[i]);
		if (!v) {
			rc_err(w->c, p->kline ? p->kline : p->line, p->kline ? p->kcol : p->col, mp,
			    "missing: every model of se.models needs its policy OID");
			continue;
		}
		if (rc_str(w->c, v, mp, 128, &text) < 0)
			continue;
		o = OBJ_txt2obj(text, 1);
		if (!o || strspn(text, "0123456789.") != strlen(text)) {
			rc_err(w->c, v->line, v->col, mp, "expected a dotted OID such as 1.3.6.1.4.1.55555.1.100, got \"%s\"",
			    text);
			free(text);
		} else {
			for (j = 0; j < i; j++)
				if (am->policies[j] && strcmp(am->policies[j], text) == 0)
					break;
			if (j < i) {
				rc_err(w->c, v->line, v->col, mp, "OID %s is %s's too: one OID cannot tell two models apart", text,
				    w->r->se.models[j]);
				free(text);
			} else {
				am->policies[i] = text;
			}
		}
		ASN1_OBJECT_free(o);
		text = NULL;
	}
}

/* tpm2: TPM_PT_FIRMWARE_VERSION_1 as TPM tools show it, "MAJOR.MINOR"
 * (the upper and lower 16 bits). */
static int
parse_tpm_firmware(const char *s, uint32_t *out)
{
	unsigned long major, minor;
	char *end;

	if (*s < '0' || *s > '9' || (major = strtoul(s, &end, 10)) > 65535 || end - s > 5 || *end != '.')
		return -1;
	s = end + 1;
	if (*s < '0' || *s > '9' || (minor = strtoul(s, &end, 10)) > 65535 || end - s > 5 || *end)
		return -1;
	*out = (uint32_t)(major << 16 | minor);
	return 0;
}

static void
read_se(walk *w, const ynode *root)
{
	static const char *const keys[] = {
		"family", "models", "manufacturers", "min_firmware", "key_slot", "key_algorithm", "vendor_root", "lifecycle",
		"lock_receipt", "attestation_model", NULL,
	};
	static const char *const families[] = { "applet", "tpm2", NULL };
	static const char *const algs[] = { "p256", "p384", NULL };
	static const char *const lifecycles[] = { "factory", NULL };
	char path[RECIPE_PATH_MAX], sub[RECIPE_PATH_MAX];
	const ynode *m = section(w, root, "", "se", true, keys, NULL, path), *l, *v;
	const char *list_key;
	char *fw = NULL;
	long slot;
	size_t i, j;
	int k, tpm;

	if (!m)
		return;
	if (rc_get_enum(w->c, m, "se", "family", false, families, &k) == 0)
		w->r->se.family = k == 1 ? RECIPE_FAMILY_TPM2 : RECIPE_FAMILY_APPLET;
	tpm = w->r->se.family == RECIPE_FAMILY_TPM2;
	/* A TPM has a manufacturer, not an SE model; its keys live at fixed
	 * handles, not in slots (PROTOCOL.md section 11). */
	list_key = tpm ? "manufacturers" : "models";
	if ((v = rc_get(m, tpm ? "models" : "manufacturers")))
		rc_err(w->c, v->kline, v->kcol, tpm ? "se.models" : "se.manufacturers",
		    tpm ? "family tpm2 names TPM manufacturers (se.manufacturers), not SE models" :
		          "se.manufacturers is for family tpm2; an SE lists se.models");
	if (tpm && (v = rc_get(m, "key_slot")))
		rc_err(w->c, v->kline, v->kcol, "se.key_slot",
		    "family tpm2 has no key slots: the IAK and IDevID live at fixed persistent handles");
	if ((l = list(w, m, "se", list_key, true, 1, 16, path))) {
		if (!(w->r->se.models = calloc(l->n, sizeof(char *)))) {
			rc_err(w->c, l->line, l->col, path, "out of memory");
			return;
		}
		for (i = 0; i < l->n; i++) {
			if (rc_str(w->c, l->kids[i], rc_path_idx(sub, path, i), 64, &w->r->se.models[w->r->se.n_models]) < 0)
				continue;
			for (j = 0; j < w->r->se.n_models; j++)
				if (strcmp(w->r->se.models[j], w->r->se.models[w->r->se.n_models]) == 0)
					break;
			if (j < w->r->se.n_models) {
				rc_err(w->c, l->kids[i]->line, l->kids[i]->col, sub, "%s \"%s\" is listed twice",
				    tpm ? "manufacturer" : "model", w->r->se.models[j]);
				free(w->r->se.models[w->r->se.n_models]);
				w->r->se.models[w->r->se.n_models] = NULL;
				continue;
			}
			w->r->se.n_models++;
		}
	}
	if (rc_get_str(w->c, m, "se", "min_firmware", true, 32, &fw) == 0 &&
	    (tpm ? parse_tpm_firmware(fw, &w->r->se.min_firmware) : parse_firmware(fw, &w->r->se.min_firmware)) < 0) {
		v = rc_get(m, "min_firmware");
		if (tpm)
			rc_err(w->c, v->line, v->col, "se.min_firmware",
			    "expected MAJOR.MINOR of TPM_PT_FIRMWARE_VERSION_1 (each 0..65535), got \"%s\"", fw);
		else
			rc_err(w->c, v->line, v->col, "se.min_firmware",
			    "expected MAJOR.MINOR.PATCH (major and minor 0..255, patch 0..65535), got \"%s\"", fw);
	}
	free(fw);
	if (rc_get_int(w->c, m, "se", "key_slot", false, 0, 15, &slot) == 0)
		w->r->se.key_slot = (int)slot;
	if (rc_get_enum(w->c, m, "se", "key_algorithm", false, algs, &k) == 0) {
		w->r->se.key_alg = k == 0 ? RECIPE_ALG_P256 : RECIPE_ALG_P384;
		if (tpm && k != 0) {
			v = rc_get(m, "key_algorithm");
			rc_err(w->c, v->line, v->col, "se.key_algorithm",
			    "family tpm2: the IAK and IDevID templates are ECC P-256 (p256)");
		}
	}
	get_file(w, m, "se", "vendor_root", true, F_CA_BUNDLE, &w->r->se.vendor_root);
	if (!tpm)
		read_attestation_model(w, m);
	else if ((v = rc_get(m, "attestation_model")))
		rc_err(w->c, v->kline, v->kcol, "se.attestation_model",
		    "family tpm2: a TPM's EK certificate names no model; se.manufacturers is checked against the TPM");
	v = rc_get(m, "lifecycle");
	if (v && v->kind == YN_SCALAR && !v->bad &&
	    (strcmp(v->text, "provisioned") == 0 || strcmp(v->text, "rework") == 0))
		rc_err(w->c, v->line, v->col, "se.lifecycle",
		    "the factory path provisions only SEs in the factory state; a %s SE goes through `station rework`",
		    v->text);
	else if (rc_get_enum(w->c, m, "se", "lifecycle", false, lifecycles, &k) == 0)
		w->r->se.lifecycle = RECIPE_LIFECYCLE_FACTORY;
	rc_get_bool(w->c, m, "se", "lock_receipt", false, &w->r->se.lock_receipt);
}

/* hsm.intermediate / hsm.audit / hsm.tool: a key label and its certificate. */
static void
read_hsm_key(walk *w, const ynode *hsm, const char *name, char **label, char **cert, char **chain)
{
	static const char *const keys_chain[] = { "key", "cert", "chain", NULL };
	static const char *const keys[] = { "key", "cert", NULL };
	char path[RECIPE_PATH_MAX];
	const ynode *m = section(w, hsm, "hsm", name, true, chain ? keys_chain : keys, NULL, path);
	char *s = NULL;
	bool ok;

	if (!m)
		return;
	if (rc_get_str(w->c, m, path, "key", false, 255, &s) == 0) {
		free(*label);
		*label = s;
	}
	ok = get_file(w, m, path, "cert", true, chain ? F_CA_ONE : F_CERT_ONE, cert) == 0;
	/* The certificate is checked against the chain only when both are sound. */
	if (chain && get_file(w, m, path, "chain", false, F_CA_BUNDLE, chain) == 0 && ok) {
		st_err err;

		if (rc_cert_chains(*cert, *chain, &err) < 0) {
			char sub[RECIPE_PATH_MAX];
			const ynode *v = rc_get(m, "chain");

			rc_err(w->c, v->line, v->col, rc_path(sub, path, "chain"), "%s", err.msg);
		}
	}
}

static void
read_hsm(walk *w, const ynode *root)
{
	static const char *const keys[] = { "module", "token", "pin", "intermediate", "audit", "tool", NULL };
	static const char *const pin_keys[] = { "env", "file", NULL };
	static const rkey_note pin_notes[] = {
		{ "value", "a PIN is never written in a recipe: use env: VARIABLE, file: PATH or prompt" },
		{ NULL, NULL },
	};
	char path[RECIPE_PATH_MAX];
	const ynode *m = section(w, root, "", "hsm", true, keys, NULL, path), *pin, *v;
	recipe *r = w->r;
	char *s = NULL;
	int have_env, have_file;

	if (!m)
		return;
	if ((v = rc_get(m, "module"))) {
		get_file(w, m, "hsm", "module", false, F_READABLE, &r->hsm.module);
	} else {
		free(r->hsm.module);
		if (!(r->hsm.module = rc_resolve(".", w->root, STATION_DEFAULT_PKCS11_MODULE)))
			rc_err(w->c, m->kline, m->kcol, "hsm.module", "out of memory");
		else
			check_file(w, m, "hsm.module", r->hsm.module, F_READABLE);
	}
	/* A token label (1..32 bytes) or a PKCS#11 URI (RFC 7512), which
	 * libhsm parses with p11-kit when it opens the token. */
	if (rc_get_str(w->c, m, "hsm", "token", true, 1024, &r->hsm.token) == 0 && r->hsm.token &&
	    strncmp(r->hsm.token, "pkcs11:", 7) != 0 && strlen(r->hsm.token) > 32) {
		const ynode *t = rc_get(m, "token");

		rc_err(w->c, t ? t->line : m->line, t ? t->col : m->col, "hsm.token",
		    "a token label has at most 32 bytes, got %zu (or give a PKCS#11 URI, pkcs11:token=...)",
		    strlen(r->hsm.token));
	}
	pin = rc_get(m, "pin");
	if (pin && pin->kind == YN_SCALAR && !pin->bad && !ynode_is_null(pin) && pin->len == 6 &&
	    memcmp(pin->text, "prompt", 6) == 0) {
		/* the operator types it on the station's terminal */
		free(r->hsm.pin_env);
		r->hsm.pin_env = NULL;
		r->hsm.pin_source = RECIPE_PIN_PROMPT;
	} else if (pin && pin->kind == YN_SCALAR && !pin->bad && !ynode_is_null(pin)) {
		/* never echo the value: it may be the PIN itself */
		rc_err(w->c, pin->line, pin->col, "hsm.pin",
		    "a PIN is never written in a recipe: use env: VARIABLE, file: PATH or prompt");
	} else if ((pin = section(w, m, "hsm", "pin", false, pin_keys, pin_notes, path))) {
		have_env = rc_get(pin, "env") != NULL;
		have_file = rc_get(pin, "file") != NULL;
		if (have_env == have_file) {
			rc_err(w->c, pin->kline, pin->kcol, path, "give exactly one PIN source: env: VARIABLE or file: PATH (or pin: prompt)");
		} else if (have_env) {
			if (rc_get_str(w->c, pin, path, "env", true, 64, &s) == 0) {
				if (!is_ident(s, "_") || (s[0] >= '0' && s[0] <= '9')) {
					v = rc_get(pin, "env");
					/* not echoed: a PIN typed here by mistake must not reach a log */
					rc_err(w->c, v->line, v->col, "hsm.pin.env",
					    "not an environment variable name (letters, digits and '_', not starting with a digit)");
					free(s);
				} else {
					free(r->hsm.pin_env);
					r->hsm.pin_env = s;
				}
			}
		} else {
			free(r->hsm.pin_env);
			r->hsm.pin_env = NULL;
			r->hsm.pin_source = RECIPE_PIN_FILE;
			/* Only its presence is checked here; the HSM library checks its mode when it reads it. */
			get_file(w, pin, path, "file", true, F_READABLE, &r->hsm.pin_file);
		}
	}
	read_hsm_key(w, m, "intermediate", &r->hsm.intermediate_key, &r->hsm.intermediate_cert, &r->hsm.chain);
	read_hsm_key(w, m, "audit", &r->hsm.audit_key, &r->hsm.audit_cert, NULL);
	read_hsm_key(w, m, "tool", &r->hsm.tool_key, &r->hsm.tool_cert, NULL);
}

static void
read_certificate(walk *w, const ynode *root)
{
	static const char *const keys[] = { "subject", "san", "validity_days", "not_after", "extended_key_usage",
		"hardware_module_type", "crl_url", NULL };
	static const rkey_note notes[] = {
		{ "key_usage", "key usage is fixed: digitalSignature (critical); remove this key" },
		{ "keyUsage", "key usage is fixed: digitalSignature (critical); remove this key" },
		{ NULL, NULL },
	};
	static const char *const subject_keys[] = { "CN", "O", "OU", NULL };
	static const rkey_note subject_notes[] = {
		{ "serialNumber", "serialNumber is always the SE serial the SE attested; it cannot be set" },
		{ "SN", "serialNumber is always the SE serial the SE attested; it cannot be set" },
		{ NULL, NULL },
	};
	char path[RECIPE_PATH_MAX], sub[RECIPE_PATH_MAX];
	const ynode *m = section(w, root, "", "certificate", true, keys, notes, path), *s, *l, *days, *na;
	recipe *r = w->r;
	char *o = NULL;
	size_t i;
	long v;

	if (!m)
		return;
	if ((s = section(w, m, "certificate", "subject", true, subject_keys, subject_notes, path))) {
		get_template(w, s, path, "CN", true, &r->certificate.cn);
		if (get_template(w, s, path, "O", false, &o) == 0) {
			free(r->certificate.o);
			r->certificate.o = o;
		}
		get_template(w, s, path, "OU", false, &r->certificate.ou);
	}
	if ((l = list(w, m, "certificate", "san", false, 0, 8, path))) {
		if (l->n && !(r->certificate.san = calloc(l->n, sizeof(recipe_san)))) {
			rc_err(w->c, l->line, l->col, path, "out of memory");
			return;
		}
		for (i = 0; i < l->n; i++) {
			const ynode *e = l->kids[i];
			recipe_san *san = &r->certificate.san[r->certificate.n_san];
			char *t = NULL;

			rc_path_idx(sub, path, i);
			if (rc_str(w->c, e, sub, 255, &t) < 0)
				continue;
			if (strncmp(t, "URI:", 4) == 0 || strncmp(t, "DNS:", 4) == 0) {
				san->type = t[0] == 'U' ? RECIPE_SAN_URI : RECIPE_SAN_DNS;
				if (!t[4])
					rc_err(w->c, e->line, e->col, sub, "empty %.3s name", t);
				else if (!(san->tpl = strdup(t + 4)))
					rc_err(w->c, e->line, e->col, sub, "out of memory");
				else if (rc_template(w->c, e, sub) == 0)
					r->certificate.n_san++;
				else {
					free(san->tpl);
					san->tpl = NULL;
				}
			} else {
				rc_err(w->c, e->line, e->col, sub, "a SAN starts with URI: or DNS:, got \"%.40s\"", t);
			}
			free(t);
		}
	}
	days = rc_get(m, "validity_days");
	na = rc_get(m, "not_after");
	if (days && na) {
		rc_err(w->c, na->kline, na->kcol, "certificate.not_after",
		    "give either validity_days or not_after, not both");
	} else if (!days && !na) {
		rc_err(w->c, m->kline, m->kcol, "certificate.validity_days",
		    "missing required key: give validity_days or not_after (e.g. 99991231235959Z for no expiry)");
	} else if (days) {
		if (rc_int(w->c, days, "certificate.validity_days", 1, 36500, &v) == 0)
			r->certificate.validity_days = (int)v;
	} else if (rc_str(w->c, na, "certificate.not_after", 64, &r->certificate.not_after) == 0) {
		ASN1_TIME *t = ASN1_TIME_new();
		const char *date = r->certificate.not_after;

		if (!t || strlen(date) != 15 || date[14] != 'Z' || strspn(date, "0123456789") != 14 ||
		    !ASN1_TIME_set_string_X509(t, date))
			rc_err(w->c, na->line, na->col, "certificate.not_after",
			    "expected a UTC date YYYYMMDDHHMMSSZ (e.g. %s for no well-defined expiry), got \"%s\"",
			    RECIPE_NO_EXPIRY, date);
		else if (X509_cmp_time(t, NULL) <= 0)
			rc_err(w->c, na->line, na->col, "certificate.not_after",
			    "%s is in the past: every certificate would be issued expired", date);
		ASN1_TIME_free(t);
	}
	if (rc_get_str(w->c, m, "certificate", "hardware_module_type", false, 128, &r->certificate.hw_type) == 0) {
		ASN1_OBJECT *obj = OBJ_txt2obj(r->certificate.hw_type, 1);

		if (!obj) {
			const ynode *t = rc_get(m, "hardware_module_type");

			rc_err(w->c, t->line, t->col, "certificate.hardware_module_type",
			    "expected a dotted OID (the hwType of RFC 4108's hardwareModuleName), got \"%s\"",
			    r->certificate.hw_type);
		}
		ASN1_OBJECT_free(obj);
	}
	if (rc_get_str(w->c, m, "certificate", "crl_url", false, 512, &r->certificate.crl_url) == 0) {
		const char *u = r->certificate.crl_url, *bad = u + strspn(u, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
		    "0123456789-._~:/?#[]@!$&'()*+,;=%");
		const ynode *t = rc_get(m, "crl_url");

		/* RFC 5280 4.2.1.13: an http or ldap URI; https would need the
		 * very certificate checking the CRL is for (RFC 5280 8). */
		if (strncmp(u, "http://", 7) != 0 && strncmp(u, "ldap://", 7) != 0)
			rc_err(w->c, t->line, t->col, "certificate.crl_url",
			    "expected an http:// (or ldap://) URI where relying parties fetch the CRL, got \"%.60s\"%s", u,
			    strncmp(u, "https://", 8) == 0 ? ": a CRL is signed, serve it over plain http (RFC 5280 8)" : "");
		else if (*bad)
			rc_err(w->c, t->line, t->col, "certificate.crl_url",
			    "byte %zu is not allowed in a URI (RFC 3986): percent-encode it", (size_t)(bad - u) + 1);
		else if (!u[7] || u[7] == '/')
			rc_err(w->c, t->line, t->col, "certificate.crl_url", "no host after \"%.7s\"", u);
	}
	if ((l = list(w, m, "certificate", "extended_key_usage", false, 0, 6, path)))
		for (i = 0; i < l->n; i++) {
			int k;

			if (rc_enum(w->c, l->kids[i], rc_path_idx(sub, path, i), eku_names, &k) < 0)
				continue;
			if (r->certificate.eku & (1u << k))
				rc_err(w->c, l->kids[i]->line, l->kids[i]->col, sub, "%s is listed twice", eku_names[k]);
			r->certificate.eku |= 1u << k;
		}
}

static void
read_quota(walk *w, const ynode *root)
{
	static const char *const keys[] = { "max_per_shift", "max_per_run", "release_signers", NULL };
	static const rkey_note notes[] = {
		{ "max_per_batch", "removed: an audit batch seals itself every audit.batch_size devices, so a per-batch "
		                   "quota never bound; write max_per_shift (certificates between two signed releases, "
		                   "SCHEMA.md)" },
		{ NULL, NULL },
	};
	char path[RECIPE_PATH_MAX];
	const ynode *m = section(w, root, "", "quota", true, keys, notes, path);

	if (!m)
		return;
	rc_get_int(w->c, m, "quota", "max_per_shift", true, 1, 100000000, &w->r->quota.max_per_shift);
	rc_get_int(w->c, m, "quota", "max_per_run", true, 1, 100000000, &w->r->quota.max_per_run);
	get_file(w, m, "quota", "release_signers", false, F_CERTS, &w->r->quota.release_signers);
}

static void
read_lifecycle(walk *w, const ynode *root)
{
	static const char *const keys[] = { "lock", "mode", NULL };
	static const char *const modes[] = { "production", "engineering", NULL };
	char path[RECIPE_PATH_MAX];
	const ynode *m = section(w, root, "", "lifecycle", false, keys, NULL, path), *lock, *mode_node;
	int mode = -1;

	if (!m)
		return;
	rc_get_bool(w->c, m, "lifecycle", "lock", false, &w->r->lifecycle.lock);
	if (rc_get_enum(w->c, m, "lifecycle", "mode", false, modes, &mode) == 0)
		w->r->lifecycle.engineering = mode == 1;
	lock = rc_get(m, "lock");
	mode_node = rc_get(m, "mode");
	/* An invalid mode was reported already: do not pile a second error on it. */
	if (lock && !lock->bad && !w->r->lifecycle.lock && !w->r->lifecycle.engineering &&
	    (!mode_node || mode == 0))
		rc_err(w->c, lock->line, lock->col, "lifecycle.lock",
		    "lock: false is allowed only with mode: engineering (an unlocked SE can be re-provisioned by anyone)");
}

static void
read_audit(walk *w, const ynode *root)
{
	static const char *const keys[] = { "dir", "batch_size", "station_id", NULL };
	char path[RECIPE_PATH_MAX];
	const ynode *m = section(w, root, "", "audit", true, keys, NULL, path);
	char *s = NULL;

	if (!m)
		return;
	/* The journal folder is created by the station: it need not exist yet. */
	get_file(w, m, "audit", "dir", true, F_NONE, &w->r->audit.dir);
	/* Absent is the default; a value that failed to parse is compared with nothing. */
	rc_get_int(w->c, m, "audit", "batch_size", false, 1, 1000000, &w->r->audit.batch_size);
	if (rc_get_str(w->c, m, "audit", "station_id", true, 64, &s) == 0) {
		if (!is_ident(s, "._-")) {
			const ynode *v = rc_get(m, "station_id");

			rc_err(w->c, v->line, v->col, "audit.station_id", "only letters, digits, '.', '_' and '-' are allowed");
		}
		w->r->audit.station_id = s;
	}
}

/* The file station run writes for node_exporter's textfile collector: it
 * need not exist yet (the run makes it), but what is there must be a file. */
static void
read_metrics(walk *w, const ynode *root)
{
	static const char *const keys[] = { "file", NULL };
	char path[RECIPE_PATH_MAX];
	const ynode *m = section(w, root, "", "metrics", false, keys, NULL, path);

	if (!m)
		return;
	get_file(w, m, "metrics", "file", true, F_METRICS, &w->r->metrics.file);
}

static void
read_rework(walk *w, const ynode *root)
{
	static const char *const keys[] = { "intermediates", "allow_foreign_devices", "crl_next_update_days",
		"authorizers", "revoke_needs_authorization", NULL };
	char path[RECIPE_PATH_MAX], sub[RECIPE_PATH_MAX];
	const ynode *m = section(w, root, "", "rework", false, keys, NULL, path), *l;
	recipe *r = w->r;
	long v;
	size_t i;

	if (!m)
		return;
	if ((l = list(w, m, "rework", "intermediates", false, 1, 8, path))) {
		for (i = 0; i < r->rework.n_intermediates; i++)
			free(r->rework.intermediates[i]);
		r->rework.n_intermediates = 0;
		free(r->rework.intermediates);
		if (!(r->rework.intermediates = calloc(l->n, sizeof(char *)))) {
			rc_err(w->c, l->line, l->col, path, "out of memory");
			return;
		}
		for (i = 0; i < l->n; i++) {
			char *s = NULL, *file;

			rc_path_idx(sub, path, i);
			if (rc_str(w->c, l->kids[i], sub, PATH_MAX - 1, &s) < 0)
				continue;
			file = rc_resolve(r->dir, w->root, s);
			free(s);
			if (!file) {
				rc_err(w->c, l->kids[i]->line, l->kids[i]->col, sub, "out of memory");
				continue;
			}
			r->rework.intermediates[r->rework.n_intermediates++] = file;
			check_file(w, l->kids[i], sub, file, F_CA_ONE);
		}
	}
	rc_get_bool(w->c, m, "rework", "allow_foreign_devices", false, &r->rework.allow_foreign_devices);
	get_file(w, m, "rework", "authorizers", false, F_CA_BUNDLE, &r->rework.authorizers);
	rc_get_bool(w->c, m, "rework", "revoke_needs_authorization", false, &r->rework.revoke_needs_authorization);
	if (r->rework.revoke_needs_authorization && !r->rework.authorizers)
		rc_err(w->c, m->line, m->col, "rework.revoke_needs_authorization",
		    "needs rework.authorizers: the certificates whose authorizations count");
	if (rc_get_int(w->c, m, "rework", "crl_next_update_days", false, 1, 365, &v) == 0)
		r->rework.crl_next_update_days = (int)v;
}

#define HALT_WINDOW_MAX 1000 /* = the history's window (station/history.c) */

static void
read_halt(walk *w, const ynode *root)
{
	static const char *const keys[] = { "attestation_failures", "within", "identical_posture_failures",
		"authorizers", NULL };
	char path[RECIPE_PATH_MAX];
	const ynode *m = section(w, root, "", "halt", false, keys, NULL, path), *k, *n;
	recipe *r = w->r;

	if (!m)
		return;
	k = rc_get(m, "attestation_failures");
	n = rc_get(m, "within");
	rc_get_int(w->c, m, "halt", "attestation_failures", false, 1, HALT_WINDOW_MAX, &r->halt.attestation_failures);
	rc_get_int(w->c, m, "halt", "within", false, 1, HALT_WINDOW_MAX, &r->halt.within);
	rc_get_int(w->c, m, "halt", "identical_posture_failures", false, 2, HALT_WINDOW_MAX,
	    &r->halt.identical_posture_failures);
	get_file(w, m, "halt", "authorizers", false, F_CA_BUNDLE, &r->halt.authorizers);
	if (k && !n)
		rc_err(w->c, k->kline, k->kcol, "halt.attestation_failures",
		    "needs halt.within: among how many of the last devices (e.g. within: 20)");
	else if (n && !k)
		rc_err(w->c, n->kline, n->kcol, "halt.within", "needs halt.attestation_failures: how many failures among them");
	else if (k && r->halt.within && r->halt.attestation_failures > r->halt.within)
		rc_err(w->c, n->line, n->col, "halt.within", "%ld devices cannot hold %ld failures: give within >= "
		    "attestation_failures", r->halt.within, r->halt.attestation_failures);
	if (!k && !n && !rc_get(m, "identical_posture_failures"))
		rc_err(w->c, m->kline, m->kcol, "halt", "give attestation_failures and within, or "
		    "identical_posture_failures (or remove halt:)");
	if (!r->halt.authorizers && !r->rework.authorizers)
		rc_err(w->c, m->kline, m->kcol, "halt.authorizers", "a halted run resumes only with an authorization signed "
		    "by someone this recipe trusts: give halt.authorizers (or rework.authorizers)");
	else if (!r->halt.authorizers && !(r->halt.authorizers = strdup(r->rework.authorizers)))
		rc_err(w->c, m->line, m->col, "halt.authorizers", "out of memory");
}

/* ---- load -------------------------------------------------------------------- */

/* n strings and their array (NULL: none). */
static void
strv_free(char **v, size_t n)
{
	size_t i;

	for (i = 0; v && i < n; i++)
		free(v[i]);
	free(v);
}

void
recipe_free(recipe *r)
{
	size_t i;

	if (!r)
		return;
	free(r->path);
	free(r->dir);
	free(r->recipe.name);
	free(r->recipe.version);
	free(r->product.name);
	free(r->product.organisation);
	free(r->jig.uri);
	strv_free(r->se.models, r->se.n_models);
	free(r->se.vendor_root);
	free(r->se.attestation_model.prefix);
	free(r->se.attestation_model.suffix);
	strv_free(r->se.attestation_model.policies, r->se.n_models);
	free(r->quota.release_signers);
	free(r->hsm.module);
	free(r->hsm.token);
	free(r->hsm.intermediate_key);
	free(r->hsm.audit_key);
	free(r->hsm.tool_key);
	free(r->hsm.intermediate_cert);
	free(r->hsm.chain);
	free(r->hsm.audit_cert);
	free(r->hsm.tool_cert);
	free(r->hsm.pin_env);
	free(r->hsm.pin_file);
	free(r->certificate.cn);
	free(r->certificate.o);
	free(r->certificate.ou);
	for (i = 0; i < r->certificate.n_san; i++)
		free(r->certificate.san[i].tpl);
	free(r->certificate.san);
	free(r->certificate.not_after);
	free(r->certificate.hw_type);
	free(r->certificate.crl_url);
	free(r->halt.authorizers);
	free(r->audit.dir);
	free(r->audit.station_id);
	free(r->metrics.file);
	strv_free(r->rework.intermediates, r->rework.n_intermediates);
	free(r->rework.authorizers);
	free(r);
}

/* The defaults SCHEMA.md lists. */
static int
set_defaults(recipe *r)
{
	int k;

	for (k = 0; k < RECIPE_CMD_COUNT; k++)
		r->jig.timeout_ms[k] = 2000;
	r->jig.retries = 2;
	r->se.key_slot = 0;
	r->se.key_alg = RECIPE_ALG_P256;
	r->se.lifecycle = RECIPE_LIFECYCLE_FACTORY;
	r->se.lock_receipt = true;
	r->hsm.pin_source = RECIPE_PIN_ENV;
	r->lifecycle.lock = true;
	r->audit.batch_size = 100;
	r->rework.crl_next_update_days = 7;
	if (!(r->hsm.intermediate_key = strdup("intermediate")) || !(r->hsm.audit_key = strdup("audit")) ||
	    !(r->hsm.tool_key = strdup("tool")) || !(r->hsm.pin_env = strdup("STATION_HSM_PIN")) ||
	    !(r->certificate.o = strdup("${product.organisation}")))
		return -1;
	return 0;
}

static char *
folder_of(const char *name)
{
	char *copy = strdup(name), *dir, *real = NULL;

	if (!copy)
		return NULL;
	dir = dirname(copy);
	/* An absolute folder keeps paths valid whatever the station's working directory. */
	if (!(real = realpath(dir, NULL)))
		real = strdup(dir);
	free(copy);
	return real;
}

recipe *
recipe_load_buffer(const char *name, const void *data, size_t len, const recipe_load_opts *opts,
    recipe_errors *errs)
{
	static const char *const top[] = {
		"recipe", "product", "jig", "se", "hsm", "certificate", "quota", "lifecycle", "audit", "metrics", "rework",
		"halt", NULL,
	};
	rctx c = { name, data, len, errs, 0 };
	walk w = { &c, NULL, opts ? opts->root : NULL };
	size_t first_err = recipe_errors_count(errs);
	ynode *root = NULL;
	recipe *r = NULL;
	uint8_t md[32];

	if (len > RECIPE_MAX_FILE) {
		rc_err(&c, 0, 0, NULL, "larger than %u bytes: not a recipe", RECIPE_MAX_FILE);
		return NULL;
	}
	if (!(r = calloc(1, sizeof(*r))) || !(r->path = strdup(name)) || !(r->dir = folder_of(name)) ||
	    set_defaults(r) < 0) {
		rc_err(&c, 0, 0, NULL, "out of memory");
		goto out;
	}
	w.r = r;
	st_sha256(data, len, md);
	st_hex(md, sizeof(md), r->digest);
	if (!(root = ytree_parse(&c)))
		goto out;
	if (root->kind != YN_MAP) {
		rc_err(&c, root->line, root->col, NULL,
		    "expected a mapping of sections (recipe:, product:, jig:, ...), got %s", ynode_kind_name(root));
		goto out;
	}
	rc_map(&c, root, "", top, NULL);
	read_recipe(&w, root);
	read_product(&w, root);
	read_jig(&w, root);
	read_se(&w, root);
	read_hsm(&w, root);
	read_certificate(&w, root);
	read_quota(&w, root);
	read_lifecycle(&w, root);
	read_audit(&w, root);
	read_metrics(&w, root);
	read_rework(&w, root);
	read_halt(&w, root);
	/* Rework accepts our own intermediate unless the recipe lists others. */
	if (!rc_get(rc_get(root, "rework"), "intermediates") && r->hsm.intermediate_cert) {
		if (!(r->rework.intermediates = calloc(1, sizeof(char *))) ||
		    !(r->rework.intermediates[0] = strdup(r->hsm.intermediate_cert)))
			rc_err(&c, 0, 0, NULL, "out of memory");
		else
			r->rework.n_intermediates = 1;
	}
out:
	ynode_free(root);
	/* Sections are read in a fixed order; the engineer reads the file top down. */
	recipe_errors_sort(errs, first_err);
	if (c.nerr) {
		recipe_free(r);
		return NULL;
	}
	return r;
}

recipe *
recipe_load(const char *path, const recipe_load_opts *opts, recipe_errors *errs)
{
	uint8_t *buf = NULL;
	size_t len = 0;
	recipe *r;
	st_err err;

	if (st_file_read(path, RECIPE_MAX_FILE, &buf, &len, &err) < 0) {
		recipe_errors_add(errs, path, 0, 0, NULL, err.msg);
		return NULL;
	}
	r = recipe_load_buffer(path, buf, len, opts, errs);
	free(buf);
	return r;
}
