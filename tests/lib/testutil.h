/* Helpers shared by the Check suites.  Tests make their own throw-away state
 * and remove it; nothing is shared between test binaries running in parallel. */
#ifndef TESTUTIL_H
#define TESTUTIL_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <check.h>
#include <openssl/x509.h>

#include "st.h"

/* A fresh empty directory under $TMPDIR (or /tmp), removed by tu_rmtree().
 * Returns a malloc'd path. */
char *tu_tmpdir(const char *tag);
void tu_rmtree(const char *path);
/* dir/name, malloc'd (asserts). */
char *tu_path(const char *dir, const char *name);
/* Path of a file in the source tree: $STATION_SOURCE_ROOT/rel (static buffer per call site: copy it). */
char *tu_src(const char *rel);
/* Run argv (argv[0] looked up in PATH unless it has a '/'), capture stdout
 * and stderr together into *out (malloc'd, may be NULL), return the exit
 * status, or 128+signal when killed.  The command line, status and output
 * go to stderr when STATION_TEST_VERBOSE is set. */
int tu_run(char *const argv[], char **out);
/* Run argv on a new pseudo-terminal (its controlling terminal), type
 * answer and a newline once it asks a question (output ending in "\": ",
 * as the PIN prompt does; NULL: never), and collect what it wrote to the
 * terminal into *out (malloc'd).  Returns the exit status, or 128+signal. */
int tu_run_pty(char *const argv[], const char *answer, char **out);
/* Run a shell command line, same contract as tu_run. */
int tu_sh(const char *cmdline, char **out);
/* tu_sh of a printf-formatted command line; tu_vshf puts prefix (a shell
 * fragment, may be NULL) before it, for wrappers such as "cd DIR && " or
 * "'PROGRAM' --db 'DB' ". */
int tu_shf(char **out, const char *fmt, ...) ST_PRINTF(2, 3);
int tu_vshf(char **out, const char *prefix, const char *fmt, va_list ap) ST_PRINTF(3, 0);
/* A network-HSM stand-in: `p11-kit server` exposing the token `token` of
 * SoftHSM (SOFTHSM2_CONF as set) on a unix socket in dir, detached.  Sets
 * P11_KIT_SERVER_ADDRESS (and XDG_RUNTIME_DIR, a 0700 dir under dir) for
 * this process and returns the server's pid; stop it with kill(). */
pid_t tu_p11kit_server_start(const char *dir, const char *token);
/* Kill the server and the per-connection p11-kit-remote processes it
 * forked (its process group): the network HSM is gone. */
void tu_p11kit_server_stop(pid_t pid);
#define TU_P11KIT_CLIENT "/usr/lib/x86_64-linux-gnu/pkcs11/p11-kit-client.so"
/* Create the test PKI (fixtures/make-test-pki) in a fresh directory and
 * return it; sets SOFTHSM2_CONF and STATION_HSM_PIN for this process. */
char *tu_make_pki(void);
/* The same with a chosen intermediate (make-test-pki --intermediate:
 * ec256, ec384, rsa2048, rsa3072). */
char *tu_make_pki_alg(const char *inter_alg);
/* One test PKI for a whole test binary: register tu_pki_setup and
 * tu_pki_teardown as an unchecked fixture; tu_pki is its directory. */
extern char *tu_pki;
void tu_pki_setup(void);
void tu_pki_teardown(void);
/* A suite of one test case (tcase) under that one test PKI, with a timeout
 * in seconds: add the tests to *tc, then tu_run_suite. */
Suite *tu_pki_suite(const char *name, const char *tcase, int timeout, TCase **tc);
/* The station program under test ($STATION_EXE, set by meson test); fails
 * the test when it is not set. */
const char *tu_station_exe(void);
/* Run the station program with the NULL-terminated arguments (tu_run). */
int tu_station(char **out, const char *arg, ...) __attribute__((sentinel));
/* A certificate's serial as the journal and --json spell it, OpenSSL's
 * way (BN_bn2hex, `openssl x509 -serial`): upper-case hex in whole bytes.  The DER form fails the test
 * when der is not a certificate. */
#define TU_SERIAL_HEX_MAX 64
void tu_cert_serial_hex(const X509 *x, char out[TU_SERIAL_HEX_MAX]);
void tu_der_serial_hex(const uint8_t *der, size_t len, char out[TU_SERIAL_HEX_MAX]);
/* Read a whole file into a malloc'd NUL-terminated string (NULL if absent). */
char *tu_slurp(const char *path, size_t *len);
/* `$PROMTOOL check metrics < path` passes with nothing to say (the test
 * fails otherwise, or when meson test did not set PROMTOOL). */
void tu_promtool_check(const char *path);
/* ---- benchmarks ---- */
/* VmHWM (peak RSS) of a running process in kB; -1 once it is gone (or a
 * zombie).  Sample it until the process exits: wait4's ru_maxrss would not
 * do, posix_spawn shares this process's memory until exec. */
long tu_proc_hwm_kb(pid_t pid);
/* Median of v[0..n) (sorts v in place); the mean of the middle two when n is even. */
double tu_median(double *v, size_t n);
/* A numeric argument in [min, max], or a message naming prog and exit 2. */
unsigned tu_bench_arg(const char *prog, const char *s, unsigned min, unsigned max);
/* Run one Check test in this process (no fork, so it can time itself; one
 * hour at most) and return main's exit code. */
int tu_run_bench(const char *name, const TTest *test);

/* Check suite runner: runs s with CK_ENV settings and returns main's exit code. */
int tu_run_suite(Suite *s);
/* Under ASan (ASAN_OPTIONS set): run this program again, and so every child
 * it starts, with fast_unwind_on_malloc=0, so that a leak inside a library
 * built without frame pointers (a PKCS#11 module calling libcrypto) shows
 * the module's name for tests/lsan.supp.  The sanitizer reads its options
 * at start, hence the exec; a no-op when already set or not under ASan. */
void tu_asan_full_unwind(char **argv);

#endif
