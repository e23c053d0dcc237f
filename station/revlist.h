/* What the journal says about certificates: which we issued (to which SE),
 * which are revoked (when, why), and the last CRL number.  The journal is
 * the one source of truth for `station revoke` and `station crl`. */
#ifndef STATION_REVLIST_H
#define STATION_REVLIST_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "st.h"

typedef struct rev_cert {
	char serial[41];   /* lower-case hex, no leading zeros */
	char device[65];
	int revoked;
	time_t revoked_at;
	char reason[40];   /* RFC 5280 name, e.g. "superseded" */
} rev_cert;

typedef struct revlist {
	rev_cert *certs;
	size_t n, cap;
	uint64_t last_crl_number;
} revlist;

int revlist_load(const char *journal_dir, revlist *rl, st_err *err);
void revlist_free(revlist *rl);
/* The journal's spelling of a certificate serial (hex, at most 40 digits):
 * lower case, no leading zeros.  Every serial the station writes or compares
 * goes through it. */
void revlist_canon(const char *in, char out[41]);
rev_cert *revlist_find(revlist *rl, const char *serial);

#endif
