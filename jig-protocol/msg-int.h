/* The command codec's field readers and checks (msg.c), shared with the
 * TPM commands' codec (msg-tpm.c).  Internal to libjig-codec. */
#ifndef JIG_MSG_INT_H
#define JIG_MSG_INT_H

#include "jig-codec.h"

/* PROTOCOL.md section 4, "Strings": identifiers or printable texts. */
enum str_kind { STR_ID, STR_TEXT };

/* Each reader sets err naming `field` when the payload is short or the
 * value out of its bounds. */
int rd_str(st_rd *rd, char *out, size_t max, const char *field, st_err *err);
int rd_blob(st_rd *rd, jig_blob *b, const char *field, st_err *err);
int rd_nonce(st_rd *rd, uint8_t out[JIG_NONCE_LEN], const char *field, st_err *err);
int rd_u8(st_rd *rd, uint8_t *v, const char *field, st_err *err);
int rd_u32(st_rd *rd, uint32_t *v, const char *field, st_err *err);
int check_max(size_t v, size_t max, const char *field, st_err *err);
int check_str(const char *s, size_t max, enum str_kind kind, const char *field, st_err *err);
void wr_str(st_wr *wr, const char *s);

/* msg-tpm.c: the TPM_* commands (0x10..0x1F). */
const char *jig_tpm_cmd_name(uint8_t cmd);
int jig_tpm_msg_check(const jig_msg *m, st_err *err);
/* ST_E_NOTFOUND for a type that is not a TPM command's. */
int jig_tpm_decode_fields(st_rd *rd, jig_msg *m, st_err *err);
void jig_tpm_encode_fields(st_wr *wr, const jig_msg *m);

#endif
