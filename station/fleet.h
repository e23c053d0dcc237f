/* A line of the fleet revocations file that `station crl --revocations`
 * reads (`station-registry revocations` writes it). */
#ifndef STATION_FLEET_H
#define STATION_FLEET_H

#include <time.h>

#include "st.h"

typedef struct fleet_rev {
	char serial[ST_CERT_SERIAL_HEX_LEN + 1];
	time_t revoked_at;
	char reason[40];
	unsigned line; /* in the file */
} fleet_rev;

/* One data line (its newline gone): "SERIAL TIME REASON", fields apart by
 * blanks: a serial as `station revoke` takes it, YYYY-MM-DDTHH:MM:SS[.f]Z,
 * an RFC 5280 reason name; nothing else.  Errors name path:lineno. */
int fleet_line(const char *path, unsigned lineno, const char *line, fleet_rev *r, st_err *err);

#endif
