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
	char serial[41];   /* OpenSSL's spelling: upper-case hex, whole bytes */
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
/* A certificate serial as an operator or another tool may write it
 * (0C5F4E73, c5f4e73, 0x0c5f4e73, 0c:5f:4e:73) into the station's spelling,
 * which is OpenSSL's (`openssl x509 -serial`): upper-case hex, leading zeros
 * only to make whole bytes, at most 20 bytes.  -1 with err saying where and
 * why for anything else. */
int revlist_serial_parse(const char *in, char out[41], st_err *err);
/* The same for a serial read from the journal (old journals spell them in
 * lower case without leading zeros).  Every serial the station writes or
 * compares goes through it. */
void revlist_canon(const char *in, char out[41]);
rev_cert *revlist_find(revlist *rl, const char *serial);

#endif
