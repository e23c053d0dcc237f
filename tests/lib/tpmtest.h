/* Software TPMs for the tests (issue 18): a throw-away "TPM vendor" CA
 * (swtpm_localca configured in a temp directory, never the system's
 * /var/lib/swtpm-localca), TPM states manufactured with swtpm_setup (EK
 * certificates from that CA in the TCG NV indices) and `swtpm socket`
 * instances serving them on loopback TCP. */
#ifndef TPMTEST_H
#define TPMTEST_H

#include <sys/types.h>

typedef struct tu_tpm_ca {
	char dir[512];        /* the CA's folder: keys, certificates, configs */
	char root_pem[600];   /* swtpm-localca-rootca-cert.pem (after the first tu_tpm_manufacture) */
	char issuer_pem[600]; /* issuercert.pem: the CA that signs EK certificates */
	char setup_conf[600]; /* the swtpm_setup --config file naming our localca config */
} tu_tpm_ca;

/* Write the configuration of a local TPM vendor CA in dir (which must
 * exist); swtpm_localca creates its keys at the first EK certificate. */
int tu_tpm_ca_init(tu_tpm_ca *ca, const char *dir);
/* Manufacture a TPM state in statedir (created): EK (RSA 2048 and ECC
 * P-384) certificates signed by ca, NV locked, as swtpm_setup does it.
 * Returns 0, or -1 with swtpm_setup's log in *log (malloc'd, may be NULL). */
int tu_tpm_manufacture(const tu_tpm_ca *ca, const char *statedir, char **log);

typedef struct tu_swtpm {
	pid_t pid;
	int port, ctrl_port; /* ctrl_port = port + 1, as the swtpm TCTI expects */
	char tcti[64]; /* "swtpm:host=127.0.0.1,port=P" */
	char statedir[512];
} tu_swtpm;

/* Serve statedir with `swtpm socket` on free loopback ports; returns once
 * the TPM answers connections.  The child dies with its parent. */
int tu_swtpm_start(tu_swtpm *t, const char *statedir);
/* Stop it (SIGTERM, then SIGKILL) and reap it; a no-op when not running. */
void tu_swtpm_stop(tu_swtpm *t);

/* tpmdut ($TPMDUT_EXE) serving a panel: args are its device options
 * (--tcti T [--fault F]...), NULL-terminated.  Writes the jig URI into uri
 * and returns the pid (stop it with tu_tpmdut_stop), or -1.  Its output
 * goes to a file in dir, whose path goes into log (when not NULL). */
pid_t tu_tpmdut_start(const char *dir, char *uri, size_t uri_cap, const char *const *args, char *log, size_t log_cap);
void tu_tpmdut_stop(pid_t pid);

/* A TPM resource manager in front of a swtpm, as tpm2-pkcs11 needs (a
 * bare TPM holds three loaded objects; tpm2-pkcs11 and tpm2_ptool keep
 * more): a private D-Bus session bus in dir (dbus-daemon) and tpm2-abrmd
 * on it.  Sets DBUS_SESSION_BUS_ADDRESS for this process and its children;
 * the TCTI to use is then "tabrmd:bus_type=session".  Both die with their
 * parent.  Returns 0 once tpm2-abrmd answers, or -1 (the logs in dir). */
typedef struct tu_tabrmd {
	pid_t bus, rm;
} tu_tabrmd;

#define TU_TABRMD_TCTI "tabrmd:bus_type=session"

int tu_tabrmd_start(tu_tabrmd *t, const char *dir, const tu_swtpm *tpm);
void tu_tabrmd_stop(tu_tabrmd *t);

#endif
