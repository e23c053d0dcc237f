/* PKCS#11 return codes: the one table that names them and says what the
 * operator should do.  Every CK_RV the station reports goes through
 * hsm_ckr_name/hsm_ckr_hint (and hsm_err_ckr, which uses both). */
#include <stdarg.h>
#include <stdio.h>

#include "hsm-int.h"

static const struct ckr_entry {
	CK_RV rv;
	const char *name;
	const char *hint; /* what to do, or NULL when the name says enough */
} ckr_table[] = {
	{ CKR_OK, "CKR_OK", NULL },
	{ CKR_CANCEL, "CKR_CANCEL", "the operation was cancelled: retry" },
	{ CKR_HOST_MEMORY, "CKR_HOST_MEMORY", "the station host is out of memory" },
	{ CKR_SLOT_ID_INVALID, "CKR_SLOT_ID_INVALID", "the slot went away: check the HSM connection and restart" },
	{ CKR_GENERAL_ERROR, "CKR_GENERAL_ERROR", "the HSM reported an internal error: check its logs" },
	{ CKR_FUNCTION_FAILED, "CKR_FUNCTION_FAILED", "the HSM could not complete the operation: check its logs" },
	{ CKR_ARGUMENTS_BAD, "CKR_ARGUMENTS_BAD", "report this as a station bug" },
	{ CKR_CANT_LOCK, "CKR_CANT_LOCK", "the PKCS#11 module cannot be used from several threads" },
	{ CKR_ATTRIBUTE_SENSITIVE, "CKR_ATTRIBUTE_SENSITIVE", NULL },
	{ CKR_ATTRIBUTE_TYPE_INVALID, "CKR_ATTRIBUTE_TYPE_INVALID", NULL },
	{ CKR_ATTRIBUTE_VALUE_INVALID, "CKR_ATTRIBUTE_VALUE_INVALID", NULL },
	{ CKR_DATA_INVALID, "CKR_DATA_INVALID", NULL },
	{ CKR_DATA_LEN_RANGE, "CKR_DATA_LEN_RANGE", NULL },
	{ CKR_DEVICE_ERROR, "CKR_DEVICE_ERROR", "the HSM reported a hardware error: check the device and its logs" },
	{ CKR_DEVICE_MEMORY, "CKR_DEVICE_MEMORY", "the HSM is out of memory: close other sessions or free token objects" },
	{ CKR_DEVICE_REMOVED, "CKR_DEVICE_REMOVED", "the HSM was removed or the connection to it was lost: reconnect it and rerun" },
	{ CKR_FUNCTION_CANCELED, "CKR_FUNCTION_CANCELED", "the operation was cancelled: retry" },
	{ CKR_FUNCTION_NOT_SUPPORTED, "CKR_FUNCTION_NOT_SUPPORTED", "this PKCS#11 module lacks a function the station needs" },
	{ CKR_KEY_HANDLE_INVALID, "CKR_KEY_HANDLE_INVALID", "the key went away: rerun, and check no one deleted it" },
	{ CKR_KEY_SIZE_RANGE, "CKR_KEY_SIZE_RANGE", NULL },
	{ CKR_KEY_TYPE_INCONSISTENT, "CKR_KEY_TYPE_INCONSISTENT", "the key's type does not fit the signature: check the key" },
	{ CKR_KEY_FUNCTION_NOT_PERMITTED, "CKR_KEY_FUNCTION_NOT_PERMITTED",
	  "the key may not sign (CKA_SIGN is false): generate it with signing allowed" },
	{ CKR_MECHANISM_INVALID, "CKR_MECHANISM_INVALID", "the HSM does not offer this signature mechanism for the key" },
	{ CKR_MECHANISM_PARAM_INVALID, "CKR_MECHANISM_PARAM_INVALID", NULL },
	{ CKR_OBJECT_HANDLE_INVALID, "CKR_OBJECT_HANDLE_INVALID", "the object went away: rerun" },
	{ CKR_OPERATION_ACTIVE, "CKR_OPERATION_ACTIVE", "report this as a station bug" },
	{ CKR_OPERATION_NOT_INITIALIZED, "CKR_OPERATION_NOT_INITIALIZED", "report this as a station bug" },
	{ CKR_PIN_INCORRECT, "CKR_PIN_INCORRECT", "wrong PIN: check the PIN source; each wrong try counts towards locking the PIN" },
	{ CKR_PIN_INVALID, "CKR_PIN_INVALID", "the PIN has characters the token does not accept: check the PIN source" },
	{ CKR_PIN_LEN_RANGE, "CKR_PIN_LEN_RANGE", "the PIN is too short or too long for this token: check the PIN source" },
	{ CKR_PIN_EXPIRED, "CKR_PIN_EXPIRED", "the user PIN has expired: change it (pkcs11-tool --change-pin) and rerun" },
	{ CKR_PIN_LOCKED, "CKR_PIN_LOCKED", "the user PIN is locked after too many wrong tries: the token's security officer must unlock it" },
	{ CKR_SESSION_CLOSED, "CKR_SESSION_CLOSED", "the HSM closed the session: rerun" },
	{ CKR_SESSION_COUNT, "CKR_SESSION_COUNT", "the HSM has no free sessions: lower the number of jigs or close other clients" },
	{ CKR_SESSION_HANDLE_INVALID, "CKR_SESSION_HANDLE_INVALID", "the HSM lost the session (restarted?): rerun" },
	{ CKR_SESSION_PARALLEL_NOT_SUPPORTED, "CKR_SESSION_PARALLEL_NOT_SUPPORTED", NULL },
	{ CKR_SESSION_READ_ONLY, "CKR_SESSION_READ_ONLY", NULL },
	{ CKR_SESSION_EXISTS, "CKR_SESSION_EXISTS", NULL },
	{ CKR_SIGNATURE_INVALID, "CKR_SIGNATURE_INVALID", NULL },
	{ CKR_SIGNATURE_LEN_RANGE, "CKR_SIGNATURE_LEN_RANGE", NULL },
	{ CKR_TOKEN_NOT_PRESENT, "CKR_TOKEN_NOT_PRESENT", "the token is not in its slot (or the network HSM is unreachable): insert or reconnect it and rerun" },
	{ CKR_TOKEN_NOT_RECOGNIZED, "CKR_TOKEN_NOT_RECOGNIZED", "the module does not recognise the token: check the module path" },
	{ CKR_TOKEN_WRITE_PROTECTED, "CKR_TOKEN_WRITE_PROTECTED", NULL },
	{ CKR_USER_ALREADY_LOGGED_IN, "CKR_USER_ALREADY_LOGGED_IN", NULL },
	{ CKR_USER_NOT_LOGGED_IN, "CKR_USER_NOT_LOGGED_IN", "the HSM forgot the login (restarted?): rerun" },
	{ CKR_USER_PIN_NOT_INITIALIZED, "CKR_USER_PIN_NOT_INITIALIZED", "the token has no user PIN yet: the security officer must set one" },
	{ CKR_USER_TYPE_INVALID, "CKR_USER_TYPE_INVALID", NULL },
	{ CKR_USER_ANOTHER_ALREADY_LOGGED_IN, "CKR_USER_ANOTHER_ALREADY_LOGGED_IN", "log the other user (the SO?) out of the token first" },
	{ CKR_USER_TOO_MANY_TYPES, "CKR_USER_TOO_MANY_TYPES", NULL },
	{ CKR_BUFFER_TOO_SMALL, "CKR_BUFFER_TOO_SMALL", "report this as a station bug" },
	{ CKR_RANDOM_NO_RNG, "CKR_RANDOM_NO_RNG", NULL },
	{ CKR_CRYPTOKI_NOT_INITIALIZED, "CKR_CRYPTOKI_NOT_INITIALIZED", "the module was not initialised in this process: report this as a station bug" },
	{ CKR_CRYPTOKI_ALREADY_INITIALIZED, "CKR_CRYPTOKI_ALREADY_INITIALIZED", NULL },
	{ CKR_FUNCTION_REJECTED, "CKR_FUNCTION_REJECTED", "the HSM's policy refused the operation: check its key and partition policy" },
};

const char *
hsm_ckr_name(CK_RV rv)
{
	size_t i;

	for (i = 0; i < sizeof(ckr_table) / sizeof(ckr_table[0]); i++)
		if (ckr_table[i].rv == rv)
			return ckr_table[i].name;
	return NULL;
}

const char *
hsm_ckr_hint(CK_RV rv)
{
	size_t i;

	for (i = 0; i < sizeof(ckr_table) / sizeof(ckr_table[0]); i++)
		if (ckr_table[i].rv == rv)
			return ckr_table[i].hint;
	return NULL;
}

void
hsm_ckr_describe(CK_RV rv, char *buf, size_t len)
{
	const char *name = hsm_ckr_name(rv), *hint = hsm_ckr_hint(rv);

	if (name)
		snprintf(buf, len, "%s%s%s", name, hint ? ": " : "", hint ? hint : "");
	else if (rv & CKR_VENDOR_DEFINED)
		snprintf(buf, len, "vendor-defined PKCS#11 error CKR_VENDOR_DEFINED+0x%lx: see the HSM vendor's documentation",
		    (unsigned long)(rv & ~(CK_RV)CKR_VENDOR_DEFINED));
	else
		snprintf(buf, len, "unknown PKCS#11 error %lu", (unsigned long)rv);
}

int
hsm_err_ckr(st_err *err, int code, CK_RV rv, const char *fmt, ...)
{
	char what[512], why[256];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(what, sizeof(what), fmt, ap);
	va_end(ap);
	hsm_ckr_describe(rv, why, sizeof(why));
	return st_err_set(err, code, "%s: %s", what, why);
}
