/*
 * sh_s3_xml.c - a small strict XML reader for S3 response bodies and an
 * escaper for the bodies we send.
 *
 * S3 answers in plain, namespace-qualified, attribute-free XML; what we
 * read is ListBucketResult, DeleteResult, InitiateMultipartUploadResult,
 * CompleteMultipartUploadResult and Error. One pass builds a tree of
 * elements with their decoded text. Everything that does not matter for
 * those documents (declaration, comments, processing instructions,
 * attributes, DOCTYPE) is skipped; entity references are only the five
 * predefined ones plus numeric character references, so nothing is ever
 * expanded from outside the document.
 *
 * Thread: any. Ownership: the tree owns all names and texts.
 */
#include "storage/sh_s3_xml.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* A response is at most a few MiB; this bounds the node array whatever
 * the body looks like. */
#define SH_S3_XML_MAX_NODES (1 << 20)

typedef struct sh_s3_xml_parser {
    const char *p, *end;
    sh_s3_xml_t *x;
    int stack[SH_S3_XML_MAX_DEPTH];
    sh_s3_buf_t text[SH_S3_XML_MAX_DEPTH];
    int depth;
    bool root_seen;
} sh_s3_xml_parser_t;

static bool sh_s3_xml_name_char(unsigned char c)
{
    return c == ':' || c == '_' || c == '-' || c == '.' || (c >= 'a' && c <= 'z') ||
           (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c >= 0x80;
}

static bool sh_s3_xml_space(char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

/* Find the needle in [p, end); NULL if absent. */
static const char *sh_s3_xml_find(const char *p, const char *end, const char *needle)
{
    size_t n = strlen(needle);
    while ((size_t)(end - p) >= n) {
        if (memcmp(p, needle, n) == 0)
            return p;
        p++;
    }
    return NULL;
}

static void sh_s3_xml_add_utf8(sh_s3_buf_t *b, uint32_t cp)
{
    char u[4];
    size_t n;
    if (cp < 0x80) {
        u[0] = (char)cp;
        n = 1;
    } else if (cp < 0x800) {
        u[0] = (char)(0xc0 | (cp >> 6));
        u[1] = (char)(0x80 | (cp & 0x3f));
        n = 2;
    } else if (cp < 0x10000) {
        u[0] = (char)(0xe0 | (cp >> 12));
        u[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
        u[2] = (char)(0x80 | (cp & 0x3f));
        n = 3;
    } else {
        u[0] = (char)(0xf0 | (cp >> 18));
        u[1] = (char)(0x80 | ((cp >> 12) & 0x3f));
        u[2] = (char)(0x80 | ((cp >> 6) & 0x3f));
        u[3] = (char)(0x80 | (cp & 0x3f));
        n = 4;
    }
    sh_s3_buf_add(b, u, n);
}

/* Decode character data [s, e) into b. */
static sh_err_t sh_s3_xml_decode(const char *s, const char *e, sh_s3_buf_t *b)
{
    while (s < e) {
        const char *amp = memchr(s, '&', (size_t)(e - s));
        if (!amp) {
            sh_s3_buf_add(b, s, (size_t)(e - s));
            break;
        }
        sh_s3_buf_add(b, s, (size_t)(amp - s));
        const char *semi = memchr(amp, ';', (size_t)(e - amp));
        if (!semi || semi - amp > 12)
            return SH_E_DECODE;
        const char *ent = amp + 1;
        size_t elen = (size_t)(semi - ent);
        if (elen == 2 && memcmp(ent, "lt", 2) == 0) {
            sh_s3_buf_add(b, "<", 1);
        } else if (elen == 2 && memcmp(ent, "gt", 2) == 0) {
            sh_s3_buf_add(b, ">", 1);
        } else if (elen == 3 && memcmp(ent, "amp", 3) == 0) {
            sh_s3_buf_add(b, "&", 1);
        } else if (elen == 4 && memcmp(ent, "quot", 4) == 0) {
            sh_s3_buf_add(b, "\"", 1);
        } else if (elen == 4 && memcmp(ent, "apos", 4) == 0) {
            sh_s3_buf_add(b, "'", 1);
        } else if (elen >= 2 && ent[0] == '#') {
            uint32_t cp = 0;
            bool hex = ent[1] == 'x' || ent[1] == 'X';
            const char *d = ent + (hex ? 2 : 1);
            if (d == semi)
                return SH_E_DECODE;
            for (; d < semi; d++) {
                unsigned char c = (unsigned char)*d;
                uint32_t v;
                if (c >= '0' && c <= '9')
                    v = c - '0';
                else if (hex && c >= 'a' && c <= 'f')
                    v = c - 'a' + 10;
                else if (hex && c >= 'A' && c <= 'F')
                    v = c - 'A' + 10;
                else
                    return SH_E_DECODE;
                cp = cp * (hex ? 16 : 10) + v;
                if (cp > 0x10ffff)
                    return SH_E_DECODE;
            }
            if (cp == 0 || (cp >= 0xd800 && cp <= 0xdfff))
                return SH_E_DECODE;
            sh_s3_xml_add_utf8(b, cp);
        } else {
            return SH_E_DECODE; /* no DTD, so no other entities exist */
        }
        s = semi + 1;
    }
    return b->oom ? SH_E_NOMEM : SH_OK;
}

static int sh_s3_xml_node_new(sh_s3_xml_parser_t *ps, const char *name, size_t nlen)
{
    sh_s3_xml_t *x = ps->x;
    if (x->n >= SH_S3_XML_MAX_NODES)
        return -1;
    if (x->n == x->cap) {
        int cap = x->cap ? x->cap * 2 : 32;
        sh_s3_xml_node_t *nn = realloc(x->nodes, (size_t)cap * sizeof(*nn));
        if (!nn)
            return -1;
        x->nodes = nn;
        x->cap = cap;
    }
    /* keep only the local part of a qualified name */
    const char *colon = memchr(name, ':', nlen);
    if (colon) {
        nlen -= (size_t)(colon + 1 - name);
        name = colon + 1;
    }
    char *nm = malloc(nlen + 1);
    if (!nm)
        return -1;
    memcpy(nm, name, nlen);
    nm[nlen] = '\0';
    int id = x->n++;
    sh_s3_xml_node_t *node = &x->nodes[id];
    *node = (sh_s3_xml_node_t){nm, NULL, -1, -1, -1, -1};
    if (ps->depth > 0) {
        int parent = ps->stack[ps->depth - 1];
        node->parent = parent;
        sh_s3_xml_node_t *pn = &x->nodes[parent];
        if (pn->last_child >= 0)
            x->nodes[pn->last_child].next_sibling = id;
        else
            pn->first_child = id;
        pn->last_child = id;
    }
    return id;
}

/* Close the innermost open element: its text becomes final. */
static sh_err_t sh_s3_xml_close(sh_s3_xml_parser_t *ps)
{
    int id = ps->stack[ps->depth - 1];
    sh_s3_buf_t *t = &ps->text[ps->depth - 1];
    if (t->oom)
        return SH_E_NOMEM;
    char *text = t->p ? t->p : strdup("");
    if (!text)
        return SH_E_NOMEM;
    ps->x->nodes[id].text = text;
    sh_s3_buf_init(t); /* ownership moved to the node */
    ps->depth--;
    return SH_OK;
}

static sh_err_t sh_s3_xml_run(sh_s3_xml_parser_t *ps)
{
    const char *p = ps->p, *end = ps->end;
    sh_err_t err;
    /* a UTF-8 byte order mark is allowed before anything */
    if (end - p >= 3 && memcmp(p, "\xef\xbb\xbf", 3) == 0)
        p += 3;
    while (p < end) {
        if (*p != '<') {
            const char *lt = memchr(p, '<', (size_t)(end - p));
            const char *e = lt ? lt : end;
            if (ps->depth > 0) {
                if ((err = sh_s3_xml_decode(p, e, &ps->text[ps->depth - 1])) != SH_OK)
                    return err;
            } else {
                for (const char *c = p; c < e; c++)
                    if (!sh_s3_xml_space(*c))
                        return SH_E_DECODE; /* text outside the root */
            }
            p = e;
            continue;
        }
        if (end - p >= 4 && memcmp(p, "<!--", 4) == 0) {
            const char *c = sh_s3_xml_find(p + 4, end, "-->");
            if (!c)
                return SH_E_DECODE;
            p = c + 3;
        } else if (end - p >= 9 && memcmp(p, "<![CDATA[", 9) == 0) {
            const char *c = sh_s3_xml_find(p + 9, end, "]]>");
            if (!c || ps->depth == 0)
                return SH_E_DECODE;
            sh_s3_buf_add(&ps->text[ps->depth - 1], p + 9, (size_t)(c - (p + 9)));
            p = c + 3;
        } else if (end - p >= 2 && (p[1] == '?' || p[1] == '!')) {
            /* declaration, processing instruction, DOCTYPE: skipped; a
             * DOCTYPE with an internal subset ('[') is refused outright */
            const char *gt = memchr(p, '>', (size_t)(end - p));
            if (!gt || (p[1] == '!' && memchr(p, '[', (size_t)(gt - p))))
                return SH_E_DECODE;
            p = gt + 1;
        } else if (end - p >= 2 && p[1] == '/') {
            const char *n = p + 2, *ne = n;
            while (ne < end && sh_s3_xml_name_char((unsigned char)*ne))
                ne++;
            const char *gt = ne;
            while (gt < end && sh_s3_xml_space(*gt))
                gt++;
            if (gt >= end || *gt != '>' || ps->depth == 0)
                return SH_E_DECODE;
            /* compare the full (qualified) name: strip the same prefix */
            const char *colon = memchr(n, ':', (size_t)(ne - n));
            if (colon)
                n = colon + 1;
            const char *open = ps->x->nodes[ps->stack[ps->depth - 1]].name;
            if (strlen(open) != (size_t)(ne - n) || memcmp(open, n, (size_t)(ne - n)) != 0)
                return SH_E_DECODE;
            if ((err = sh_s3_xml_close(ps)) != SH_OK)
                return err;
            p = gt + 1;
        } else {
            const char *n = p + 1, *ne = n;
            while (ne < end && sh_s3_xml_name_char((unsigned char)*ne))
                ne++;
            if (ne == n)
                return SH_E_DECODE;
            /* skip attributes, honouring quotes (a '>' may sit in one) */
            const char *q = ne;
            char quote = 0;
            while (q < end) {
                if (quote) {
                    if (*q == quote)
                        quote = 0;
                } else if (*q == '"' || *q == '\'') {
                    quote = *q;
                } else if (*q == '>') {
                    break;
                }
                q++;
            }
            if (q >= end)
                return SH_E_DECODE;
            bool empty = q[-1] == '/' && q - 1 >= ne;
            if (ps->depth == 0 && ps->root_seen)
                return SH_E_DECODE; /* a second root */
            if (ps->depth >= SH_S3_XML_MAX_DEPTH)
                return SH_E_DECODE;
            int id = sh_s3_xml_node_new(ps, n, (size_t)(ne - n));
            if (id < 0)
                return SH_E_NOMEM;
            ps->root_seen = true;
            ps->stack[ps->depth] = id;
            sh_s3_buf_init(&ps->text[ps->depth]);
            ps->depth++;
            if (empty && (err = sh_s3_xml_close(ps)) != SH_OK)
                return err;
            p = q + 1;
        }
    }
    if (ps->depth != 0 || !ps->root_seen)
        return SH_E_DECODE;
    return SH_OK;
}

void sh_s3_xml_fini(sh_s3_xml_t *x)
{
    for (int i = 0; i < x->n; i++) {
        free(x->nodes[i].name);
        free(x->nodes[i].text);
    }
    free(x->nodes);
    memset(x, 0, sizeof(*x));
}

sh_err_t sh_s3_xml_parse(const char *doc, size_t len, sh_s3_xml_t *x)
{
    memset(x, 0, sizeof(*x));
    if (!doc)
        return SH_E_DECODE;
    sh_s3_xml_parser_t ps = {.p = doc, .end = doc + len, .x = x};
    sh_err_t err = sh_s3_xml_run(&ps);
    for (int i = 0; i < ps.depth; i++)
        sh_s3_buf_fini(&ps.text[i]);
    if (err != SH_OK)
        sh_s3_xml_fini(x);
    return err;
}

const char *sh_s3_xml_root_name(const sh_s3_xml_t *x)
{
    return x->n > 0 ? x->nodes[0].name : NULL;
}

int sh_s3_xml_child(const sh_s3_xml_t *x, int parent, const char *name)
{
    if (x->n == 0)
        return -1;
    if (parent < 0)
        return strcmp(x->nodes[0].name, name) == 0 ? 0 : -1;
    if (parent >= x->n)
        return -1;
    for (int c = x->nodes[parent].first_child; c >= 0; c = x->nodes[c].next_sibling)
        if (strcmp(x->nodes[c].name, name) == 0)
            return c;
    return -1;
}

int sh_s3_xml_next(const sh_s3_xml_t *x, int node, const char *name)
{
    if (node < 0 || node >= x->n)
        return -1;
    for (int c = x->nodes[node].next_sibling; c >= 0; c = x->nodes[c].next_sibling)
        if (strcmp(x->nodes[c].name, name) == 0)
            return c;
    return -1;
}

const char *sh_s3_xml_child_text(const sh_s3_xml_t *x, int parent, const char *name)
{
    int c = sh_s3_xml_child(x, parent, name);
    return c >= 0 ? x->nodes[c].text : NULL;
}

void sh_s3_xml_escape(sh_s3_buf_t *b, const char *s)
{
    for (; *s; s++) {
        switch (*s) {
        case '&': sh_s3_buf_adds(b, "&amp;"); break;
        case '<': sh_s3_buf_adds(b, "&lt;"); break;
        case '>': sh_s3_buf_adds(b, "&gt;"); break;
        case '"': sh_s3_buf_adds(b, "&quot;"); break;
        case '\'': sh_s3_buf_adds(b, "&apos;"); break;
        default: sh_s3_buf_add(b, s, 1);
        }
    }
}
