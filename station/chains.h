/* The SE vendor chains protocol 1.1 names by digest (PROTOCOL.md section 4,
 * SE_INFO and VENDOR_CHAIN): kept in this process and on disk beside the
 * journal (AUDIT_DIR/vendor-chains/SHA256.chain, the VENDOR_CHAIN payload
 * exactly, so the file hashes to its name).  A chain is a cache entry, not a
 * trust decision: whatever comes from here is verified up to the recipe's
 * vendor root like a chain from the wire (sv_check_se_chain).  Thread-safe. */
#ifndef STATION_CHAINS_H
#define STATION_CHAINS_H

#include "jig-codec.h"

typedef struct chain_cache chain_cache;

/* dir: the folder for the files (created on the first store); NULL keeps
 * chains in memory only.  NULL on allocation failure. */
chain_cache *chain_cache_new(const char *dir);
void chain_cache_free(chain_cache *c);

enum { CHAIN_MISS = 0, CHAIN_MEMORY = 1, CHAIN_DISK = 2 };
/* Append to info->certs (after the attestation certificate) the chain
 * whose digest is info->chain_sha256.  CHAIN_MISS when neither memory nor
 * disk has it; a file that is not that chain is a miss too, with err saying
 * where and why (the caller fetches the chain and the file is replaced). */
int chain_cache_get(chain_cache *c, jig_se_info *info, st_err *err);
/* Remember info->certs[1..] under info->chain_sha256 (the caller checked
 * the digest and verified the chain up to a vendor root); written to disk
 * when the disk did not have it.  A failed write only costs wire bytes. */
void chain_cache_put(chain_cache *c, const jig_se_info *info, int on_disk);

#endif
