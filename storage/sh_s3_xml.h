/*
 * sh_s3_xml.h - just enough XML for S3: parse a response body into a small
 * element tree (names without namespace prefixes, decoded text), look up
 * children by name; and escape text for the request bodies we build
 * (DeleteObjects, CompleteMultipartUpload).
 *
 * Not a general XML parser: no DTDs, no external entities (never fetched,
 * never expanded), attributes skipped. It is strict about structure
 * (mismatched or unclosed tags fail) and bounded (depth, node count), so a
 * hostile or truncated body gives SH_E_DECODE, never a crash.
 *
 * Thread: any. Ownership: sh_s3_xml_t owns its nodes and text; strings it
 * returns live until sh_s3_xml_fini.
 */
#ifndef SH_S3_XML_H
#define SH_S3_XML_H

#include <stddef.h>

#include "common/sh_err.h"
#include "storage/sh_s3_sign.h"

#define SH_S3_XML_MAX_DEPTH 32

typedef struct sh_s3_xml_node {
    char *name;        /* local name ("Key" for "s3:Key") */
    char *text;        /* decoded character data directly inside, "" if none */
    int parent;        /* -1 for the root element */
    int first_child;   /* -1 if none */
    int next_sibling;  /* -1 if none */
    int last_child;    /* internal */
} sh_s3_xml_node_t;

typedef struct sh_s3_xml {
    sh_s3_xml_node_t *nodes; /* nodes[0] is the root element */
    int n, cap;
} sh_s3_xml_t;

/* Parse doc[0..len). SH_E_DECODE for anything malformed, SH_E_NOMEM. On
 * failure *x is left empty (fini is still safe). */
sh_err_t sh_s3_xml_parse(const char *doc, size_t len, sh_s3_xml_t *x);
void sh_s3_xml_fini(sh_s3_xml_t *x);

/* Name of the root element, or NULL for an empty tree. */
const char *sh_s3_xml_root_name(const sh_s3_xml_t *x);

/* First child of `parent` named `name` (-1 = none). parent -1 means the
 * root element itself is matched. */
int sh_s3_xml_child(const sh_s3_xml_t *x, int parent, const char *name);
/* Next sibling after `node` with the same name as `name` (-1 = none). */
int sh_s3_xml_next(const sh_s3_xml_t *x, int node, const char *name);
/* Text of the first child named `name`, or NULL if there is none. */
const char *sh_s3_xml_child_text(const sh_s3_xml_t *x, int parent, const char *name);

/* Append s escaped for element content (&, <, >, ", ' and nothing else). */
void sh_s3_xml_escape(sh_s3_buf_t *b, const char *s);

#endif
