/*
 * test_storage_s3_xml.c - the small XML reader of the S3 backend: the
 * documents S3 sends (as AWS documents them, with namespaces, entities and
 * the odd declaration), and malformed or hostile input, which must fail
 * with SH_E_DECODE and never crash or expand anything.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "storage/sh_s3_xml.h"

static void parse_ok(const char *doc, sh_s3_xml_t *x)
{
    assert_int_equal(sh_s3_xml_parse(doc, strlen(doc), x), SH_OK);
}

static void test_list_result(void **state)
{
    (void)state;
    const char *doc =
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
        "<ListBucketResult xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">\n"
        "  <Name>bucket</Name><Prefix>p/</Prefix><KeyCount>3</KeyCount><MaxKeys>3</MaxKeys>\n"
        "  <IsTruncated>true</IsTruncated>\n"
        "  <Contents><Key>p/a&amp;b &lt;c&gt; &quot;d&quot; &apos;e&apos;</Key>"
        "<LastModified>2009-10-12T17:50:30.000Z</LastModified>"
        "<ETag>&quot;fba9dede5f27731c9771645a39863328&quot;</ETag><Size>434234</Size>"
        "<StorageClass>STANDARD</StorageClass></Contents>\n"
        "  <Contents><Key>p/&#252;&#x00FC;&#x1F600;</Key><Size>0</Size></Contents>\n"
        "  <!-- a comment -->\n"
        "  <Contents><Key><![CDATA[p/<raw> & ]]>tail</Key><Size>7</Size><Owner/></Contents>\n"
        "  <NextContinuationToken>1ueGcxLPRx1Tr/XYExHnhbYLgveDs2J/wm36Hy4vbOwM=</NextContinuationToken>\n"
        "</ListBucketResult>\n";
    sh_s3_xml_t x;
    parse_ok(doc, &x);
    assert_string_equal(sh_s3_xml_root_name(&x), "ListBucketResult");
    int root = sh_s3_xml_child(&x, -1, "ListBucketResult");
    assert_int_equal(root, 0);
    assert_string_equal(sh_s3_xml_child_text(&x, root, "IsTruncated"), "true");
    assert_string_equal(sh_s3_xml_child_text(&x, root, "NextContinuationToken"),
                        "1ueGcxLPRx1Tr/XYExHnhbYLgveDs2J/wm36Hy4vbOwM=");
    const char *want_keys[] = {"p/a&b <c> \"d\" 'e'", "p/\xc3\xbc\xc3\xbc\xf0\x9f\x98\x80",
                               "p/<raw> & tail"};
    const char *want_sizes[] = {"434234", "0", "7"};
    int n = 0;
    for (int c = sh_s3_xml_child(&x, root, "Contents"); c >= 0;
         c = sh_s3_xml_next(&x, c, "Contents")) {
        assert_true(n < 3);
        assert_string_equal(sh_s3_xml_child_text(&x, c, "Key"), want_keys[n]);
        assert_string_equal(sh_s3_xml_child_text(&x, c, "Size"), want_sizes[n]);
        n++;
    }
    assert_int_equal(n, 3);
    int first = sh_s3_xml_child(&x, root, "Contents");
    assert_string_equal(sh_s3_xml_child_text(&x, first, "ETag"),
                        "\"fba9dede5f27731c9771645a39863328\"");
    assert_null(sh_s3_xml_child_text(&x, root, "ContinuationToken"));
    assert_int_equal(sh_s3_xml_child(&x, -1, "Error"), -1);
    sh_s3_xml_fini(&x);
}

static void test_delete_result_and_errors(void **state)
{
    (void)state;
    const char *doc =
        "<DeleteResult xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">"
        "<Deleted><Key>a</Key></Deleted>"
        "<Error><Key>b</Key><Code>AccessDenied</Code><Message>Access Denied</Message></Error>"
        "<Deleted><Key>c</Key></Deleted>"
        "<Error><Key>d</Key><Code>InternalError</Code><Message>oops</Message></Error>"
        "</DeleteResult>";
    sh_s3_xml_t x;
    parse_ok(doc, &x);
    int root = sh_s3_xml_child(&x, -1, "DeleteResult");
    assert_true(root >= 0);
    int e = sh_s3_xml_child(&x, root, "Error");
    assert_string_equal(sh_s3_xml_child_text(&x, e, "Key"), "b");
    assert_string_equal(sh_s3_xml_child_text(&x, e, "Code"), "AccessDenied");
    e = sh_s3_xml_next(&x, e, "Error");
    assert_string_equal(sh_s3_xml_child_text(&x, e, "Key"), "d");
    assert_int_equal(sh_s3_xml_next(&x, e, "Error"), -1);
    sh_s3_xml_fini(&x);

    const char *err = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\r\n"
                      "<Error><Code>SignatureDoesNotMatch</Code>"
                      "<Message>The request signature we calculated does not match</Message>"
                      "<StringToSign>AWS4-HMAC-SHA256\n20130524T000000Z</StringToSign>"
                      "<RequestId>4442587FB7D0A2F9</RequestId></Error>";
    parse_ok(err, &x);
    int r = sh_s3_xml_child(&x, -1, "Error");
    assert_int_equal(r, 0);
    assert_string_equal(sh_s3_xml_child_text(&x, r, "Code"), "SignatureDoesNotMatch");
    assert_string_equal(sh_s3_xml_child_text(&x, r, "StringToSign"),
                        "AWS4-HMAC-SHA256\n20130524T000000Z");
    sh_s3_xml_fini(&x);

    /* namespace prefixes and attributes (with '>' inside quotes) */
    const char *ns = "<s3:InitiateMultipartUploadResult xmlns:s3='urn:x' a=\"1>2\">"
                     "<s3:UploadId  >VXBsb2FkIElE</s3:UploadId></s3:InitiateMultipartUploadResult >";
    parse_ok(ns, &x);
    assert_string_equal(sh_s3_xml_child_text(&x, sh_s3_xml_child(&x, -1,
                                                                 "InitiateMultipartUploadResult"),
                                             "UploadId"),
                        "VXBsb2FkIElE");
    sh_s3_xml_fini(&x);
}

static void test_malformed(void **state)
{
    (void)state;
    const char *bad[] = {
        "",
        "   ",
        "just text",
        "<a>",
        "<a></b>",
        "<a><b></a></b>",
        "<a></a><b></b>",          /* two roots */
        "<a></a>trailing",
        "text<a></a>",
        "<a>&unknown;</a>",
        "<a>&amp</a>",
        "<a>&#;</a>",
        "<a>&#xZZ;</a>",
        "<a>&#0;</a>",
        "<a>&#x110000;</a>",
        "<a>&#xD800;</a>",
        "<!DOCTYPE a [<!ENTITY x \"boom\">]><a>&x;</a>",
        "<a><!-- unterminated </a>",
        "<a><![CDATA[ unterminated </a>",
        "<a attr=\"unterminated></a>",
        "</a>",
        "<>",
        "<a><b/></a",
        NULL,
    };
    for (int i = 0; bad[i]; i++) {
        sh_s3_xml_t x;
        sh_err_t err = sh_s3_xml_parse(bad[i], strlen(bad[i]), &x);
        if (err != SH_E_DECODE)
            fprintf(stderr, "accepted malformed document %d: \"%s\"\n", i, bad[i]);
        assert_int_equal(err, SH_E_DECODE);
        assert_int_equal(x.n, 0);
        sh_s3_xml_fini(&x);
    }
    sh_s3_xml_t x;
    assert_int_equal(sh_s3_xml_parse(NULL, 0, &x), SH_E_DECODE);
}

static void test_depth_and_size_bounds(void **state)
{
    (void)state;
    /* nesting just inside the limit parses, one more level does not */
    char doc[4096];
    size_t n = 0;
    for (int i = 0; i < SH_S3_XML_MAX_DEPTH; i++)
        n += (size_t)snprintf(doc + n, sizeof(doc) - n, "<e>");
    for (int i = 0; i < SH_S3_XML_MAX_DEPTH; i++)
        n += (size_t)snprintf(doc + n, sizeof(doc) - n, "</e>");
    sh_s3_xml_t x;
    assert_int_equal(sh_s3_xml_parse(doc, n, &x), SH_OK);
    sh_s3_xml_fini(&x);
    n = 0;
    for (int i = 0; i <= SH_S3_XML_MAX_DEPTH; i++)
        n += (size_t)snprintf(doc + n, sizeof(doc) - n, "<e>");
    for (int i = 0; i <= SH_S3_XML_MAX_DEPTH; i++)
        n += (size_t)snprintf(doc + n, sizeof(doc) - n, "</e>");
    assert_int_equal(sh_s3_xml_parse(doc, n, &x), SH_E_DECODE);

    /* a truncated copy of a valid document fails at every length */
    const char *ok = "<R><C><K>a&amp;b</K><S>1</S></C><T>x</T></R>";
    for (size_t len = 0; len < strlen(ok); len++) {
        assert_int_equal(sh_s3_xml_parse(ok, len, &x), SH_E_DECODE);
        sh_s3_xml_fini(&x);
    }
    assert_int_equal(sh_s3_xml_parse(ok, strlen(ok), &x), SH_OK);
    sh_s3_xml_fini(&x);

    /* a thousand-key page, as S3's largest */
    size_t cap = 1000 * 120 + 100;
    char *big = malloc(cap);
    assert_non_null(big);
    n = (size_t)snprintf(big, cap, "<ListBucketResult>");
    for (int i = 0; i < 1000; i++)
        n += (size_t)snprintf(big + n, cap - n, "<Contents><Key>k/%04d</Key><Size>%d</Size></Contents>",
                              i, i);
    n += (size_t)snprintf(big + n, cap - n, "</ListBucketResult>");
    assert_int_equal(sh_s3_xml_parse(big, n, &x), SH_OK);
    int cnt = 0;
    for (int c = sh_s3_xml_child(&x, 0, "Contents"); c >= 0; c = sh_s3_xml_next(&x, c, "Contents"))
        cnt++;
    assert_int_equal(cnt, 1000);
    sh_s3_xml_fini(&x);
    free(big);
}

static void test_escape(void **state)
{
    (void)state;
    sh_s3_buf_t b;
    sh_s3_buf_init(&b);
    sh_s3_xml_escape(&b, "a&b<c>d\"e'f/g");
    assert_string_equal(sh_s3_buf_str(&b), "a&amp;b&lt;c&gt;d&quot;e&apos;f/g");
    /* what we escape, we read back */
    char doc[256];
    snprintf(doc, sizeof(doc), "<Key>%s</Key>", sh_s3_buf_str(&b));
    sh_s3_xml_t x;
    parse_ok(doc, &x);
    assert_string_equal(x.nodes[0].text, "a&b<c>d\"e'f/g");
    sh_s3_xml_fini(&x);
    sh_s3_buf_fini(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_list_result),
        cmocka_unit_test(test_delete_result_and_errors),
        cmocka_unit_test(test_malformed),
        cmocka_unit_test(test_depth_and_size_bounds),
        cmocka_unit_test(test_escape),
    };
    return cmocka_run_group_tests_name("storage_s3_xml", tests, NULL, NULL);
}
