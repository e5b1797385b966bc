/*
 * fuzz_storage_s3_xml.c - libFuzzer target for the S3 backend's XML
 * reader (storage/sh_s3_xml.h) on arbitrary response bodies.
 *
 * Beyond "no crash, no leak, no sanitizer report":
 *   - a parsed tree is well formed: node 0 is the root, every link
 *     (parent, first child, next sibling) stays in range and agrees with
 *     the others, parents come before their children, nesting is at most
 *     SH_S3_XML_MAX_DEPTH, every node has a name and a text;
 *   - the lookups the S3 backend makes on ListObjectsV2, DeleteObjects,
 *     CreateMultipartUpload and error documents work on any tree;
 *   - write-then-read: the tree written back as XML (names under a prefix,
 *     so a name holding ':' keeps it; text escaped with sh_s3_xml_escape,
 *     the escaper our request bodies use) parses to the same tree, and
 *     writing that tree gives the same bytes again.
 * Seeds: tests/fuzz/corpus/fuzz_storage_s3_xml/: S3 documents as AWS and
 * S3-compatible servers send them (list pages, delete results, multipart,
 * errors), plus a few hostile ones (entities, CDATA, comments, DOCTYPE).
 * Single-threaded; everything is freed before returning.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "storage/sh_s3_xml.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(int ok, const char *what)
{
    if (!ok) {
        fprintf(stderr, "fuzz_storage_s3_xml: %s\n", what);
        abort();
    }
}

static volatile size_t sink;

static void touch(const char *s)
{
    if (s)
        sink += strlen(s);
}

static void check_tree(const sh_s3_xml_t *x)
{
    check(x->n >= 1 && x->n <= x->cap && x->nodes, "empty tree after a successful parse");
    check(x->nodes[0].parent == -1, "root has a parent");
    for (int i = 0; i < x->n; i++) {
        const sh_s3_xml_node_t *nd = &x->nodes[i];
        check(nd->name && nd->text, "node without name or text");
        touch(nd->name);
        touch(nd->text);
        check(i == 0 || (nd->parent >= 0 && nd->parent < i), "parent after its child");
        check(nd->first_child == -1 || (nd->first_child > i && nd->first_child < x->n),
              "first child out of range");
        check(nd->next_sibling == -1 || (nd->next_sibling > i && nd->next_sibling < x->n),
              "next sibling out of range");
        check(i > 0 || nd->next_sibling == -1, "root has a sibling");
        int depth = 0;
        for (int p = nd->parent; p >= 0; p = x->nodes[p].parent)
            depth++;
        check(depth < SH_S3_XML_MAX_DEPTH, "nested deeper than the limit");
        for (int c = nd->first_child; c >= 0; c = x->nodes[c].next_sibling)
            check(x->nodes[c].parent == i, "child does not point back at its parent");
    }
}

/* What sh_objstore_s3.c reads from each document it receives. */
static void use_like_s3(const sh_s3_xml_t *x)
{
    touch(sh_s3_xml_root_name(x));
    int root = sh_s3_xml_child(x, -1, "ListBucketResult");
    if (root >= 0) {
        for (int c = sh_s3_xml_child(x, root, "Contents"); c >= 0;
             c = sh_s3_xml_next(x, c, "Contents")) {
            touch(sh_s3_xml_child_text(x, c, "Key"));
            touch(sh_s3_xml_child_text(x, c, "Size"));
            touch(sh_s3_xml_child_text(x, c, "LastModified"));
        }
        touch(sh_s3_xml_child_text(x, root, "IsTruncated"));
        touch(sh_s3_xml_child_text(x, root, "NextContinuationToken"));
    }
    root = sh_s3_xml_child(x, -1, "DeleteResult");
    if (root >= 0)
        for (int e = sh_s3_xml_child(x, root, "Error"); e >= 0; e = sh_s3_xml_next(x, e, "Error")) {
            touch(sh_s3_xml_child_text(x, e, "Key"));
            touch(sh_s3_xml_child_text(x, e, "Code"));
            touch(sh_s3_xml_child_text(x, e, "Message"));
        }
    root = sh_s3_xml_child(x, -1, "Error");
    if (root >= 0) {
        touch(sh_s3_xml_child_text(x, root, "Code"));
        touch(sh_s3_xml_child_text(x, root, "Message"));
        touch(sh_s3_xml_child_text(x, root, "Region"));
        touch(sh_s3_xml_child_text(x, root, "Endpoint"));
    }
    touch(sh_s3_xml_child_text(x, sh_s3_xml_child(x, -1, "InitiateMultipartUploadResult"),
                               "UploadId"));
    /* out-of-range handles are refused, not followed */
    check(sh_s3_xml_child(x, x->n, "Key") == -1, "child of a node past the end");
    check(sh_s3_xml_next(x, x->n, "Key") == -1, "sibling of a node past the end");
    check(sh_s3_xml_next(x, -1, "Key") == -1, "sibling of no node");
}

/* Element i and its subtree as XML: all of its text, then its children
 * (the reader keeps an element's character data as one string, wherever
 * it sat between the children). */
static void write_node(const sh_s3_xml_t *x, int i, sh_s3_buf_t *b)
{
    sh_s3_buf_adds(b, "<s3:");
    sh_s3_buf_adds(b, x->nodes[i].name);
    sh_s3_buf_adds(b, ">");
    sh_s3_xml_escape(b, x->nodes[i].text);
    for (int c = x->nodes[i].first_child; c >= 0; c = x->nodes[c].next_sibling)
        write_node(x, c, b);
    sh_s3_buf_adds(b, "</s3:");
    sh_s3_buf_adds(b, x->nodes[i].name);
    sh_s3_buf_adds(b, ">");
}

static void same_tree(const sh_s3_xml_t *a, const sh_s3_xml_t *b)
{
    check(a->n == b->n, "node count changed through write and read");
    for (int i = 0; i < a->n; i++) {
        const sh_s3_xml_node_t *p = &a->nodes[i], *q = &b->nodes[i];
        check(strcmp(p->name, q->name) == 0, "name changed through write and read");
        /* a NUL in character data ends the text as a C string; both
         * sides compare up to it */
        check(strcmp(p->text, q->text) == 0, "text changed through write and read");
        check(p->parent == q->parent && p->first_child == q->first_child &&
                  p->next_sibling == q->next_sibling,
              "structure changed through write and read");
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    sh_s3_xml_t x;
    sh_err_t err = sh_s3_xml_parse((const char *)data, size, &x);
    if (err != SH_OK) {
        check(err == SH_E_DECODE || err == SH_E_NOMEM, "unexpected error code");
        check(x.n == 0 && x.nodes == NULL, "failed parse left nodes behind");
        check(sh_s3_xml_root_name(&x) == NULL && sh_s3_xml_child(&x, -1, "Error") == -1,
              "lookups on an empty tree");
        sh_s3_xml_fini(&x);
        return 0;
    }
    check_tree(&x);
    use_like_s3(&x);

    sh_s3_buf_t w1, w2;
    sh_s3_buf_init(&w1);
    sh_s3_buf_init(&w2);
    write_node(&x, 0, &w1);
    check(!w1.oom, "out of memory writing");
    sh_s3_xml_t y;
    err = sh_s3_xml_parse(sh_s3_buf_str(&w1), w1.len, &y);
    check(err == SH_OK, "a written tree does not parse");
    check_tree(&y);
    same_tree(&x, &y);
    write_node(&y, 0, &w2);
    check(!w2.oom, "out of memory writing");
    check(w1.len == w2.len && memcmp(sh_s3_buf_str(&w1), sh_s3_buf_str(&w2), w1.len) == 0,
          "write(read(write(x))) differs from write(x)");

    sh_s3_buf_fini(&w1);
    sh_s3_buf_fini(&w2);
    sh_s3_xml_fini(&y);
    sh_s3_xml_fini(&x);
    return 0;
}
