/* A PKCS#11 module for tests and benchmarks that stands for a slow (network)
 * HSM: it loads the real module named by $STATION_P11_DELAY_TARGET (default
 * SoftHSM), hands out that module's own function list with C_Sign and
 * C_SignFinal wrapped, and sleeps $STATION_P11_DELAY_MS milliseconds
 * (default 5) before forwarding each of them.  The sleep holds no lock, so
 * signatures on several sessions overlap as they do on a network HSM.
 * With $STATION_P11_DELAY_COUNT set, C_Finalize writes the number of
 * delayed signatures to that file, so a benchmark can show the delay was on
 * its path. */
#include <dlfcn.h>
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <p11-kit/pkcs11.h>

#define DEFAULT_TARGET "/usr/lib/softhsm/libsofthsm2.so"

static pthread_once_t once = PTHREAD_ONCE_INIT;
static CK_FUNCTION_LIST *real;
static CK_FUNCTION_LIST ours;
static long delay_ns = 5 * 1000000L;
static atomic_ulong delayed;

static void
pause_ms(void)
{
	struct timespec ts = { delay_ns / 1000000000L, delay_ns % 1000000000L };

	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
	atomic_fetch_add(&delayed, 1);
}

static CK_RV
delay_sign(CK_SESSION_HANDLE s, CK_BYTE_PTR data, CK_ULONG len, CK_BYTE_PTR sig, CK_ULONG_PTR sig_len)
{
	if (sig) /* not the length query */
		pause_ms();
	return real->C_Sign(s, data, len, sig, sig_len);
}

static CK_RV
delay_sign_final(CK_SESSION_HANDLE s, CK_BYTE_PTR sig, CK_ULONG_PTR sig_len)
{
	if (sig)
		pause_ms();
	return real->C_SignFinal(s, sig, sig_len);
}

static CK_RV
delay_finalize(CK_VOID_PTR reserved)
{
	const char *path = getenv("STATION_P11_DELAY_COUNT");
	CK_RV rv = real->C_Finalize(reserved);
	FILE *f;

	if (path && *path && (f = fopen(path, "w"))) {
		fprintf(f, "%lu\n", (unsigned long)atomic_load(&delayed));
		fclose(f);
	}
	return rv;
}

static CK_RV get_function_list(CK_FUNCTION_LIST_PTR_PTR list);

static void
load(void)
{
	const char *target = getenv("STATION_P11_DELAY_TARGET"), *ms = getenv("STATION_P11_DELAY_MS");
	CK_C_GetFunctionList getfl;
	void *dl;

	if (ms && *ms) {
		char *end;
		double v = strtod(ms, &end);

		if (*end || v < 0 || v > 10000) {
			fprintf(stderr, "p11-delay: STATION_P11_DELAY_MS=%s: expected 0..10000\n", ms);
			return;
		}
		delay_ns = (long)(v * 1e6);
	}
	if (!(dl = dlopen(target && *target ? target : DEFAULT_TARGET, RTLD_NOW | RTLD_LOCAL))) {
		fprintf(stderr, "p11-delay: %s\n", dlerror());
		return;
	}
	*(void **)&getfl = dlsym(dl, "C_GetFunctionList");
	if (!getfl || getfl(&real) != CKR_OK || !real) {
		fprintf(stderr, "p11-delay: %s has no usable C_GetFunctionList\n", target ? target : DEFAULT_TARGET);
		real = NULL;
		return;
	}
	ours = *real;
	ours.C_GetFunctionList = get_function_list;
	ours.C_Finalize = delay_finalize;
	ours.C_Sign = delay_sign;
	ours.C_SignFinal = delay_sign_final;
}

static CK_RV
get_function_list(CK_FUNCTION_LIST_PTR_PTR list)
{
	if (!list)
		return CKR_ARGUMENTS_BAD;
	pthread_once(&once, load);
	if (!real)
		return CKR_GENERAL_ERROR;
	*list = &ours;
	return CKR_OK;
}

__attribute__((visibility("default"))) CK_RV C_GetFunctionList(CK_FUNCTION_LIST_PTR_PTR list);

CK_RV
C_GetFunctionList(CK_FUNCTION_LIST_PTR_PTR list)
{
	return get_function_list(list);
}
