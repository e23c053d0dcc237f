/* Helpers for the gang tests (several jigs in one `station run`, started
 * with stu_station_start_jigs): a "patch panel" — a TCP port in front of an
 * in-process jigsim core that the test can unplug and plug back in on the
 * same port, cut at a chosen command, or re-wire to another jigsim, so one
 * SE can be carried from one jig to another.  Built on tests/station's
 * helpers (stutil.h). */
#ifndef GANGUTIL_H
#define GANGUTIL_H

#include "stutil.h"

/* A jigsim core with the test PKI's SE vendor CA and tool key (no socket). */
jigsim *gang_core_new(const char *pki, const jigsim_config *c);
/* Take the core's DUT out (DUT_POWER release through the core itself): with
 * a panel of one device this leaves an empty jig. */
void gang_core_release(jigsim *s);

/* A workspace whose recipe names this PKCS#11 module (another HSM than the
 * SoftHSM default), the test PKI that goes with its token in pki. */
stu_ws *gang_ws_module(const char *pki, const char *module);
/* n jigsims on threads (ids 1..n), per_jig devices each, cmd_ms per
 * command; their URIs in uris (for stu_station_start_jigs). */
void gang_sims_start(const char *pki, size_t n, unsigned per_jig, unsigned cmd_ms, stu_sim **sim, const char **uris);
/* A gang of njigs jigs provisions all their per_jig devices in one
 * `station run` (each certificate checked, and verified by openssl); then
 * every other command that signs in the HSM: `station audit seal` (+ audit
 * verify), `station crl` (verified by openssl), `station recipe sign` and
 * `recipe check --trust` the test root. */
void gang_provision_and_sign(stu_ws *w, stu_sim **sim, const char **uris, size_t njigs, unsigned per_jig);

typedef struct gang_port gang_port;

/* Listen on tcp:127.0.0.1:0 and serve each connection, one at a time, with
 * the core attached at that moment (frames go to jigsim_handle). */
gang_port *gang_port_new(jigsim *core);
void gang_port_free(gang_port *p);
const char *gang_port_uri(const gang_port *p);
/* Wire the port to another core from the next frame on (the station's
 * connection stays up, as when an operator moves a DUT between jigs). */
void gang_port_attach(gang_port *p, jigsim *core);

enum gang_cut {
	GANG_HANGUP = 1, /* close the station's connection */
	GANG_UNPLUG = 2, /* and stop listening: connections are refused */
};
/* At the nth request (1-based) of command cmd on this port: do not pass it
 * on, cut the line as `how` says, and attach `then` (NULL: keep the core). */
void gang_port_arm(gang_port *p, uint8_t cmd, unsigned nth, enum gang_cut how, jigsim *then);
/* Wait up to timeout_s for the armed cut; 0 when it happened. */
int gang_port_wait_cut(gang_port *p, int timeout_s);
/* Pose as a clone of the core's SE (on = 1): DUT_POWER release is answered
 * here, so the same SE stays in the jig, and once the SE is locked SE_INFO
 * reports it factory-fresh — its genuine serial and attestation chain in
 * the factory state, as a cloned SE would present itself. */
void gang_port_clone(gang_port *p, int on);
/* Stop listening (and drop the connection) / listen again on the same port. */
void gang_port_unplug(gang_port *p);
void gang_port_plug(gang_port *p);
/* Connections accepted so far. */
unsigned gang_port_connections(gang_port *p);

/* Wait up to timeout_s until the station's stdout file holds an event line
 * containing every one of the given substrings (NULL-terminated); 0 when
 * found.  For following a run while it goes on. */
int gang_wait_output(const stu_run *r, int timeout_s, ...);

#endif
