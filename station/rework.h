/* Rework: re-provision a device that already holds our identity, proven by
 * that identity (DESIGN.md invariant 5).  The old credential is retired in
 * the SE and revoked; the new one goes through the factory path's own
 * KEYGEN / attested CSR / VERIFY / SIGN / INSTALL / LOCK steps. */
#ifndef STATION_REWORK_H
#define STATION_REWORK_H

#include "authz.h"
#include "engine.h"
#include "station.h"
#include "ui.h"

/* Rework the device on the jig at uri under the checked authorization az
 * (it must name the SE and not have completed a rework of it before); note
 * (may be NULL) is recorded beside it.  0 pass, 1 refused or failed (the UI
 * said why), -1 stopped by an error (err; *end says which kind: a
 * configuration error, the HSM, the audit folder). */
int rework_run(station *st, const char *uri, const authz *az, const char *note, ui *u, run_end *end, st_err *err);

#endif
