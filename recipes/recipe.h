/* librecipe: the YAML recipe a manufacturing engineer writes and a line
 * operator runs.  recipe_load() parses (libyaml), validates every key and
 * file, and returns a typed struct with no YAML left inside; every problem is
 * collected as "FILE:LINE:COL: key.path: message".  SCHEMA.md documents every
 * key.  Signed recipes: a detached CMS signature in FILE.sig, checked against
 * trust anchors named by the caller or the station config. */
#ifndef RECIPE_H
#define RECIPE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "st.h"

/* ---- errors ------------------------------------------------------------ */

/* An ordered list of every error found; one list can collect several loads. */
typedef struct recipe_errors recipe_errors;

recipe_errors *recipe_errors_new(void);
void recipe_errors_free(recipe_errors *e);
size_t recipe_errors_count(const recipe_errors *e);
/* Error i as one line: "FILE:LINE:COL: key.path: message", or "FILE: message"
 * about the file as a whole (cannot be read, too large).  NULL if i is out of range. */
const char *recipe_errors_get(const recipe_errors *e, size_t i);
/* Error i's parts: line and column are 1-based (0 for the whole file); path is "se.key_slot", "(root)"... */
int recipe_errors_line(const recipe_errors *e, size_t i);
int recipe_errors_col(const recipe_errors *e, size_t i);
const char *recipe_errors_path(const recipe_errors *e, size_t i);
const char *recipe_errors_message(const recipe_errors *e, size_t i);

/* ---- the recipe ---------------------------------------------------------- */

/* Jig commands by protocol code (PROTOCOL.md): index 0 is "default". */
enum {
	RECIPE_CMD_DEFAULT = 0,
	RECIPE_CMD_MAX = 15, /* SET_BAUD */
	RECIPE_CMD_COUNT = RECIPE_CMD_MAX + 1,
};
/* "default", "hello", "dut_status", ... "retire" for 0..RECIPE_CMD_MAX, else NULL. */
const char *recipe_cmd_name(int code);

enum recipe_key_alg { RECIPE_ALG_P256 = 1, RECIPE_ALG_P384 = 2 }; /* = PROTOCOL.md KEYGEN algorithm */
enum recipe_san_type { RECIPE_SAN_URI = 1, RECIPE_SAN_DNS = 2 };
/* se.family: the kind of secure element (SCHEMA.md). */
enum recipe_se_family { RECIPE_FAMILY_APPLET = 0, RECIPE_FAMILY_TPM2 = 1 };
enum recipe_pin_source { RECIPE_PIN_ENV = 1, RECIPE_PIN_FILE = 2, RECIPE_PIN_PROMPT = 3 };

/* Extended key usages (bit mask); recipe_eku_name() gives OpenSSL's short name. */
enum recipe_eku {
	RECIPE_EKU_SERVER_AUTH = 1u << 0,
	RECIPE_EKU_CLIENT_AUTH = 1u << 1,
	RECIPE_EKU_CODE_SIGNING = 1u << 2,
	RECIPE_EKU_EMAIL_PROTECTION = 1u << 3,
	RECIPE_EKU_TIME_STAMPING = 1u << 4,
	RECIPE_EKU_OCSP_SIGNING = 1u << 5,
};
#define RECIPE_EKU_ALL 0x3fu
/* "serverAuth", "clientAuth", ... for one bit, NULL otherwise. */
const char *recipe_eku_name(unsigned bit);

#define RECIPE_LIFECYCLE_FACTORY 1 /* = PROTOCOL.md lifecycle code */
#define RECIPE_DIGEST_HEX (ST_SHA256_HEX_LEN + 1) /* with the NUL */
#define RECIPE_NO_EXPIRY "99991231235959Z" /* RFC 5280 4.1.2.5: no well-defined expiration */

typedef struct recipe_san {
	int type;  /* enum recipe_san_type */
	char *tpl; /* the template after "URI:" / "DNS:" */
} recipe_san;

/* Every path is resolved: relative paths against the recipe file's folder.
 * Every field is set: defaults (SCHEMA.md) are applied by the loader. */
typedef struct recipe {
	char *path;                      /* the file as given to recipe_load() */
	char *dir;                       /* the folder relative paths resolve against */
	char digest[RECIPE_DIGEST_HEX];  /* SHA-256 of the file bytes, lower-case hex */

	struct { char *name, *version; } recipe;
	struct { char *name, *organisation; } product;
	struct {
		char *uri;                          /* default transport, `station run --jig` overrides */
		int timeout_ms[RECIPE_CMD_COUNT];  /* by command code, all filled (from "default") */
		int retries;
	} jig;
	struct {
		int family;          /* enum recipe_se_family */
		char **models;       /* allowed SE models, exact match; tpm2: allowed TPM manufacturers */
		size_t n_models;
		uint32_t min_firmware; /* major << 24 | minor << 16 | patch, as SE_INFO encodes it;
		                          tpm2: TPM_PT_FIRMWARE_VERSION_1, major << 16 | minor */
		int key_slot;        /* 0..15 */
		int key_alg;         /* enum recipe_key_alg */
		char *vendor_root;   /* PEM bundle: SE vendor root (+ vendor intermediates) */
		int lifecycle;       /* required before provisioning: RECIPE_LIFECYCLE_FACTORY */
		bool lock_receipt;   /* the SE signs a lock receipt (protocol 1.1): required before PASS */
		/* How the vendor's attestation certificate names the model (the
		 * SE's claim is checked against it): one subject attribute whose
		 * value is model_prefix MODEL model_suffix, or a certificatePolicies
		 * OID per model. */
		struct recipe_attestation_model {
			int subject_nid;      /* OpenSSL NID of the attribute; 0 with policies */
			char *prefix, *suffix;
			char **policies;      /* dotted OIDs parallel to models, or NULL */
		} attestation_model;
	} se;
	struct {
		char *module;        /* PKCS#11 module path */
		char *token;         /* token label */
		char *intermediate_key, *audit_key, *tool_key; /* key labels */
		char *intermediate_cert, *chain; /* chain: the intermediate's issuers up to the root, or NULL */
		char *audit_cert, *tool_cert;
		int pin_source;      /* enum recipe_pin_source */
		char *pin_env;       /* RECIPE_PIN_ENV: variable name */
		char *pin_file;      /* RECIPE_PIN_FILE: resolved path */
	} hsm;
	struct {
		char *cn, *o, *ou;   /* subject templates; o and ou may be NULL (absent) */
		recipe_san *san;
		size_t n_san;
		int validity_days;   /* > 0, or 0 when not_after is set */
		char *not_after;     /* RECIPE_NO_EXPIRY or NULL */
		unsigned eku;        /* enum recipe_eku bits, 0 = no extendedKeyUsage */
		char *hw_type;       /* hardwareModuleName hwType OID (RFC 4108), or NULL: no such SAN */
		char *crl_url;       /* cRLDistributionPoints URI (http:// or ldap://), or NULL: none */
	} certificate;            /* keyUsage is always digitalSignature (critical) */
	struct {
		long max_per_shift;     /* certificates between two releases, over the whole journal */
		long max_per_run;
		char *release_signers;  /* PEM: certificates of whoever may release the shift quota, or NULL */
	} quota;
	struct {
		bool lock;           /* false only when engineering */
		bool engineering;    /* mode: engineering — every audit record must say so */
	} lifecycle;
	struct { char *dir; long batch_size; char *station_id; } audit;
	struct {
		char *file;          /* the metrics file `station run` writes (*.prom), or NULL: none */
	} metrics;
	struct {
		char **intermediates;   /* our intermediates' certificates that rework accepts */
		size_t n_intermediates;
		bool allow_foreign_devices;
		int crl_next_update_days;
		char *authorizers;      /* PEM: who may sign rework authorizations (NULL: no rework) */
		bool revoke_needs_authorization; /* station revoke too needs a signed authorization */
	} rework;
	/* Anomaly halt (0: rule off): the run stops issuing after
	 * attestation_failures attestation or identity failures among the
	 * last `within` devices, or identical_posture_failures posture
	 * failures in a row with the same error; a signed resume lifts it. */
	struct {
		long attestation_failures, within;
		long identical_posture_failures;
		char *authorizers;      /* PEM: who may sign a resume (default rework.authorizers) */
	} halt;
} recipe;

typedef struct recipe_load_opts {
	/* When set, absolute paths in the recipe (and the default PKCS#11 module)
	 * are looked up under this folder: check a recipe written for another
	 * machine against a copy of its files.  Relative paths are unaffected. */
	const char *root;
} recipe_load_opts;

/* Load and validate a recipe.  NULL on failure, with every error appended
 * to errs (which may be NULL).  opts may be NULL. */
recipe *recipe_load(const char *path, const recipe_load_opts *opts, recipe_errors *errs);
/* The same from memory; name is used in messages and its folder for relative paths. */
recipe *recipe_load_buffer(const char *name, const void *data, size_t len, const recipe_load_opts *opts,
    recipe_errors *errs);
void recipe_free(recipe *r);
/* A metrics file `station run` may write (metrics.file, --metrics): named
 * *.prom (what node_exporter's textfile collector reads), and a regular file
 * or nothing yet, since it is replaced by rename.  ST_E_CONFIG saying why. */
int recipe_metrics_file_check(const char *path, st_err *err);

/* ---- templates ------------------------------------------------------------ */

/* The only facts a template may use, all attested or from the recipe:
 * ${se.serial} ${se.model} ${product.name} ${product.organisation}
 * ${recipe.name} ${recipe.version} */
typedef struct recipe_facts {
	const char *se_serial, *se_model;
	const char *product_name, *product_organisation;
	const char *recipe_name, *recipe_version;
} recipe_facts;

/* Fill facts from the recipe and the SE's attested serial and model (pointers, not copies). */
void recipe_facts_init(recipe_facts *f, const recipe *r, const char *se_serial, const char *se_model);
/* Expand tpl into out (NUL-terminated).  Fails on an unknown variable, a
 * fact that is missing or holds a non-printable byte, or an output longer
 * than cap - 1. */
int recipe_expand(const char *tpl, const recipe_facts *facts, char *out, size_t cap, st_err *err);

/* ---- signatures and the station config ------------------------------------ */

/* Verify PATH.sig, a detached DER CMS signature over the bytes of PATH, up
 * to the certificates in trust_pem.  If digest is not NULL the bytes must
 * still hash to it (the recipe did not change since it was loaded).  0 and
 * the signer's subject in signer on success; otherwise -1 and err: ST_E_NOTFOUND
 * (no .sig), ST_E_VERIFY (altered, bad or untrusted), ST_E_CONFIG (trust file). */
/* PATH.sig exists (whether or not anything checks it). */
bool recipe_signature_present(const char *path);
int recipe_signature_check(const char *path, const char *digest, const char *trust_pem, char *signer,
    size_t signer_cap, st_err *err);

/* The station's own settings: $STATION_CONFIG, else /etc/station/station.yaml. */
typedef struct recipe_station_config {
	char *path;                  /* the file read, NULL when none exists */
	bool require_signed_recipes;
	char *recipe_signers;        /* PEM trust anchors for recipe signatures, or NULL */
} recipe_station_config;

#define RECIPE_STATION_CONFIG_DEFAULT "/etc/station/station.yaml"

/* Load path, or (path NULL) $STATION_CONFIG, or the default file when it
 * exists (its absence means defaults).  NULL with errors in errs on failure. */
recipe_station_config *recipe_station_config_load(const char *path, recipe_errors *errs);
void recipe_station_config_free(recipe_station_config *c);

/* The gate `station run` calls before using r.  Trust anchors: trust_pem,
 * else cfg->recipe_signers.  Signatures are required when require_signed or
 * cfg->require_signed_recipes; then an unsigned, altered or untrusted recipe
 * is refused (-1, ST_E_CONFIG or ST_E_VERIFY, message says what to do).  A
 * .sig that is present is always checked when trust anchors are known, and a
 * bad one is refused even when signatures are optional.  On 0, signer holds
 * the signer's subject or "" when the recipe runs unsigned.  cfg may be NULL. */
int recipe_policy_check(const recipe *r, const recipe_station_config *cfg, bool require_signed,
    const char *trust_pem, char *signer, size_t signer_cap, st_err *err);

#endif
