/* What the journal says about each SE serial, rebuilt from the journal at
 * start and kept current while the run goes on: the basis of resume and of
 * "never two live certificates for one SE".  Thread-safe. */
#ifndef STATION_DEVINDEX_H
#define STATION_DEVINDEX_H

#include <stddef.h>
#include <stdint.h>

typedef enum {
	DEV_SEEN = 0,    /* records exist, not finished */
	DEV_PASSED,      /* provisioned and locked (or done in engineering mode) */
	DEV_FAILED,      /* last attempt failed */
} dev_state;

typedef struct dev_entry {
	char serial[65];
	dev_state state;
	/* The live certificate: issued by us and not revoked (len 0 when none). */
	uint8_t cert[2048];
	size_t cert_len;
	char cert_serial[41];
	uint8_t pubkey_sha256[32];
	int cert_installed; /* read back equal from the SE */
} dev_entry;

typedef struct devindex devindex;

devindex *devindex_new(void);
void devindex_free(devindex *ix);
/* Copy of the entry for serial; 0 when found, -1 when the journal never saw it. */
int devindex_get(devindex *ix, const char *serial, dev_entry *out);
/* Create or replace the entry for e->serial. */
int devindex_put(devindex *ix, const dev_entry *e);
/* Call cb for every entry (under the lock: cb must not call back into ix). */
void devindex_foreach(devindex *ix, void (*cb)(const dev_entry *e, void *ctx), void *ctx);
size_t devindex_count(devindex *ix);

#endif
