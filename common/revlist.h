/* Certificate serials as the station and the registry spell them.  (What the journal says
 * about each certificate is station/history.h's.) */
#ifndef ST_REVLIST_H
#define ST_REVLIST_H

#include <stddef.h>

#include "st.h"

/* A certificate serial as an operator or another tool may write it
 * (0C5F4E73, c5f4e73, 0x0c5f4e73, 0c:5f:4e:73) into the station's spelling,
 * which is OpenSSL's (`openssl x509 -serial`): upper-case hex, leading zeros
 * only to make whole bytes, at most 20 bytes.  -1 with err saying where and
 * why for anything else. */
int revlist_serial_parse(const char *in, char out[ST_CERT_SERIAL_HEX_LEN + 1], st_err *err);
/* The same for a serial read from the journal (old journals spell them in
 * lower case without leading zeros).  Every serial the station writes or
 * compares goes through it. */
void revlist_canon(const char *in, char out[ST_CERT_SERIAL_HEX_LEN + 1]);

#endif
