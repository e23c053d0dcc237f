/* A reference reading of journal records (tests only): record-ref.c. */
#ifndef RECORD_REF_H
#define RECORD_REF_H

#include "audit.h"

/* Parse one line into rec; *root (json_decref it) holds the strings.
 * -1 and a reason in why when the line is not a valid record. */
int ref_record_parse(const char *line, size_t len, json_t **root, audit_record *rec, char *why, size_t why_len);

#endif
