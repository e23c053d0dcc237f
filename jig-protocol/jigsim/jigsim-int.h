/* jigsim internals shared by the jig core (jigsim.c) and its socket
 * server (net.c). */
#ifndef JIGSIM_INT_H
#define JIGSIM_INT_H

#include <pthread.h>
#include <stdatomic.h>

#include "jigsim.h"
#include "se.h"

typedef struct jigsim_dev {
	se *se;
	unsigned fired; /* one-shot faults already used on this device */
	int returned;   /* came back once as an RMA return */
} jigsim_dev;

struct jigsim {
	pthread_mutex_t lock;
	jigsim_config cfg;
	se_env env;
	jigsim_dev *dev; /* every device seen, in order; dev[ndev - 1] is the newest */
	size_t ndev;
	int present;     /* dev[ndev - 1] is in the jig */
	int powered;
	unsigned released;
	int pause_done;
	uint8_t version; /* negotiated by HELLO on this connection; 0: none yet (version-1 frames) */
	unsigned line_baud;     /* the jig's end of the line now */
	unsigned revert_baud;   /* SET_BAUD pending confirmation: the rate to go back to */
	uint64_t confirm_until; /* ... until then (st_now_ms); 0: nothing pending */
	int busy_next;          /* baud_busy: answer the next frame with BUSY */
	/* Retransmission cache: the last response and the request it answered. */
	int cache_valid;
	uint8_t cache_seq;
	uint32_t cache_crc;
	uint8_t cache[JIG_MAX_FRAME];
	size_t cache_len;
	int listen_fd;
	char listen_uri[256];
	atomic_int stop;
};

#endif
