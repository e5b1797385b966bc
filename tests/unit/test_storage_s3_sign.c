/*
 * test_storage_s3_sign.c - AWS Signature Version 4 and its helpers.
 *
 * The expected values are AWS's published examples: the "get-vanilla"
 * case of the SigV4 test suite, and the four S3 examples of "Signature
 * Calculations for the Authorization Header: Transferring Payload in a
 * Single Chunk" (GET Object with a Range, PUT Object, GET Bucket
 * Lifecycle, GET Bucket/ListObjects), with their canonical requests,
 * string-to-sign hashes and signatures. Matching them byte for byte is
 * what proves the signer; s3rver's verification (test_storage_s3.c)
 * proves it again on live requests.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "storage/sh_s3_sign.h"

#define S3_AKID "AKIAIOSFODNN7EXAMPLE"
#define S3_SECRET "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
#define S3_DATE "20130524T000000Z"
#define S3_HOST "examplebucket.s3.amazonaws.com"

typedef struct signed_req {
    sh_s3_buf_t auth, creq, sts;
} signed_req_t;

static void sign(signed_req_t *r, const sh_s3_sign_input_t *in)
{
    sh_s3_buf_init(&r->auth);
    sh_s3_buf_init(&r->creq);
    sh_s3_buf_init(&r->sts);
    assert_int_equal(sh_s3_sign(in, &r->auth, &r->creq, &r->sts), SH_OK);
}

static void signed_fini(signed_req_t *r)
{
    sh_s3_buf_fini(&r->auth);
    sh_s3_buf_fini(&r->creq);
    sh_s3_buf_fini(&r->sts);
}

static sh_s3_sign_input_t s3_example(const char *method, const char *uri, const char *query,
                                     const sh_s3_header_t *h, size_t n, const char *hash)
{
    return (sh_s3_sign_input_t){
        .method = method,
        .canonical_uri = uri,
        .canonical_query = query,
        .headers = h,
        .nheaders = n,
        .payload_hash = hash,
        .amz_date = S3_DATE,
        .region = "us-east-1",
        .service = "s3",
        .access_key_id = S3_AKID,
        .secret_access_key = S3_SECRET,
    };
}

static void test_get_vanilla(void **state)
{
    (void)state;
    /* headers deliberately out of order: the signer sorts them */
    sh_s3_header_t h[] = {{"x-amz-date", "20150830T123600Z"}, {"host", "example.amazonaws.com"}};
    sh_s3_sign_input_t in = {
        .method = "GET",
        .canonical_uri = "/",
        .canonical_query = "",
        .headers = h,
        .nheaders = 2,
        .payload_hash = SH_S3_EMPTY_SHA256,
        .amz_date = "20150830T123600Z",
        .region = "us-east-1",
        .service = "service",
        .access_key_id = "AKIDEXAMPLE",
        .secret_access_key = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
    };
    signed_req_t r;
    sign(&r, &in);
    assert_string_equal(sh_s3_buf_str(&r.creq),
                        "GET\n/\n\nhost:example.amazonaws.com\nx-amz-date:20150830T123600Z\n\n"
                        "host;x-amz-date\n" SH_S3_EMPTY_SHA256);
    assert_string_equal(sh_s3_buf_str(&r.sts),
                        "AWS4-HMAC-SHA256\n20150830T123600Z\n20150830/us-east-1/service/aws4_request\n"
                        "bb579772317eb040ac9ed261061d46c1f17a8133879d6129b6e1c25292927e63");
    assert_string_equal(sh_s3_buf_str(&r.auth),
                        "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/"
                        "aws4_request, SignedHeaders=host;x-amz-date, "
                        "Signature=5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31");
    signed_fini(&r);
}

static void test_s3_get_object(void **state)
{
    (void)state;
    sh_s3_header_t h[] = {{"host", S3_HOST},
                          {"range", "bytes=0-9"},
                          {"x-amz-content-sha256", SH_S3_EMPTY_SHA256},
                          {"x-amz-date", S3_DATE}};
    sh_s3_sign_input_t in = s3_example("GET", "/test.txt", "", h, 4, SH_S3_EMPTY_SHA256);
    signed_req_t r;
    sign(&r, &in);
    assert_string_equal(sh_s3_buf_str(&r.creq),
                        "GET\n/test.txt\n\nhost:" S3_HOST "\nrange:bytes=0-9\n"
                        "x-amz-content-sha256:" SH_S3_EMPTY_SHA256 "\nx-amz-date:" S3_DATE "\n\n"
                        "host;range;x-amz-content-sha256;x-amz-date\n" SH_S3_EMPTY_SHA256);
    assert_string_equal(sh_s3_buf_str(&r.sts),
                        "AWS4-HMAC-SHA256\n" S3_DATE "\n20130524/us-east-1/s3/aws4_request\n"
                        "7344ae5b7ee6c3e7e6b0fe0640412a37625d1fbfff95c48bbb2dc43964946972");
    assert_string_equal(sh_s3_buf_str(&r.auth),
                        "AWS4-HMAC-SHA256 Credential=" S3_AKID "/20130524/us-east-1/s3/aws4_request, "
                        "SignedHeaders=host;range;x-amz-content-sha256;x-amz-date, "
                        "Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41");
    signed_fini(&r);
}

static void test_s3_put_object(void **state)
{
    (void)state;
    char hash[65];
    assert_int_equal(sh_s3_sha256_hex("Welcome to Amazon S3.", 21, hash), SH_OK);
    assert_string_equal(hash, "44ce7dd67c959e0d3524ffac1771dfbba87d2b6b4b4e99e42034a8b803f8b072");
    /* the key "test$file.text" shows the single URI encoding of S3 paths */
    sh_s3_buf_t uri;
    sh_s3_buf_init(&uri);
    sh_s3_buf_adds(&uri, "/");
    sh_s3_buf_add_uri(&uri, "test$file.text", 14, true);
    assert_string_equal(sh_s3_buf_str(&uri), "/test%24file.text");
    /* a value with extra blanks canonicalises to the same request */
    sh_s3_header_t h[] = {{"date", "Fri, 24 May 2013 00:00:00 GMT"},
                          {"host", S3_HOST},
                          {"x-amz-content-sha256", hash},
                          {"x-amz-date", S3_DATE},
                          {"x-amz-storage-class", "  REDUCED_REDUNDANCY "}};
    sh_s3_sign_input_t in = s3_example("PUT", sh_s3_buf_str(&uri), "", h, 5, hash);
    signed_req_t r;
    sign(&r, &in);
    assert_string_equal(sh_s3_buf_str(&r.creq),
                        "PUT\n/test%24file.text\n\ndate:Fri, 24 May 2013 00:00:00 GMT\nhost:" S3_HOST
                        "\nx-amz-content-sha256:44ce7dd67c959e0d3524ffac1771dfbba87d2b6b4b4e99e42034a8b803f8b072"
                        "\nx-amz-date:" S3_DATE "\nx-amz-storage-class:REDUCED_REDUNDANCY\n\n"
                        "date;host;x-amz-content-sha256;x-amz-date;x-amz-storage-class\n"
                        "44ce7dd67c959e0d3524ffac1771dfbba87d2b6b4b4e99e42034a8b803f8b072");
    assert_non_null(strstr(sh_s3_buf_str(&r.sts),
                           "9e0e90d9c76de8fa5b200d8c849cd5b8dc7a3be3951ddb7f6a76b4158342019d"));
    assert_non_null(strstr(sh_s3_buf_str(&r.auth),
                           "Signature=98ad721746da40c64f1a55b78f14c238d841ea1380cd77a1b5971af0ece108bd"));
    signed_fini(&r);
    sh_s3_buf_fini(&uri);
}

static void test_s3_bucket_queries(void **state)
{
    (void)state;
    sh_s3_header_t h[] = {{"host", S3_HOST},
                          {"x-amz-content-sha256", SH_S3_EMPTY_SHA256},
                          {"x-amz-date", S3_DATE}};
    /* GET ?lifecycle: a valueless parameter is signed as "lifecycle=" */
    sh_s3_buf_t q;
    sh_s3_buf_init(&q);
    sh_s3_param_t lc[] = {{"lifecycle", NULL}};
    assert_int_equal(sh_s3_query_build(lc, 1, &q), SH_OK);
    assert_string_equal(sh_s3_buf_str(&q), "lifecycle=");
    sh_s3_sign_input_t in = s3_example("GET", "/", sh_s3_buf_str(&q), h, 3, SH_S3_EMPTY_SHA256);
    signed_req_t r;
    sign(&r, &in);
    assert_non_null(strstr(sh_s3_buf_str(&r.creq), "GET\n/\nlifecycle=\nhost:"));
    assert_non_null(strstr(sh_s3_buf_str(&r.auth),
                           "Signature=fea454ca298b7da1c68078a5d1bdbfbbe0d65c699e0f91ac7a200a0136783543"));
    signed_fini(&r);

    /* GET /?max-keys=2&prefix=J, given in the other order */
    sh_s3_buf_reset(&q);
    sh_s3_param_t ls[] = {{"prefix", "J"}, {"max-keys", "2"}};
    assert_int_equal(sh_s3_query_build(ls, 2, &q), SH_OK);
    assert_string_equal(sh_s3_buf_str(&q), "max-keys=2&prefix=J");
    in = s3_example("GET", "/", sh_s3_buf_str(&q), h, 3, SH_S3_EMPTY_SHA256);
    sign(&r, &in);
    assert_non_null(strstr(sh_s3_buf_str(&r.sts),
                           "df57d21db20da04d7fa30298dd4488ba3a2b47ca3a489c74750e0f1e7df1b9b7"));
    assert_non_null(strstr(sh_s3_buf_str(&r.auth),
                           "Signature=34b48302e7b5fa45bde8084f4b7868a86f0a534bc59db6670ed5711ef69dc6f7"));
    signed_fini(&r);
    sh_s3_buf_fini(&q);
}

static void test_wrong_secret_changes_signature(void **state)
{
    (void)state;
    sh_s3_header_t h[] = {{"host", S3_HOST}, {"x-amz-date", S3_DATE}};
    sh_s3_sign_input_t in = s3_example("GET", "/k", "", h, 2, SH_S3_EMPTY_SHA256);
    signed_req_t a, b;
    sign(&a, &in);
    in.secret_access_key = S3_SECRET "x";
    sign(&b, &in);
    assert_string_not_equal(sh_s3_buf_str(&a.auth), sh_s3_buf_str(&b.auth));
    /* the secret appears in nothing the signer returns */
    assert_null(strstr(sh_s3_buf_str(&a.auth), S3_SECRET));
    assert_null(strstr(sh_s3_buf_str(&a.creq), S3_SECRET));
    assert_null(strstr(sh_s3_buf_str(&a.sts), S3_SECRET));
    signed_fini(&a);
    signed_fini(&b);
}

static void test_bad_input(void **state)
{
    (void)state;
    sh_s3_buf_t auth;
    sh_s3_buf_init(&auth);
    sh_s3_header_t upper[] = {{"Host", S3_HOST}};
    sh_s3_sign_input_t in = s3_example("GET", "/", "", upper, 1, SH_S3_EMPTY_SHA256);
    assert_int_equal(sh_s3_sign(&in, &auth, NULL, NULL), SH_E_INVAL);
    sh_s3_header_t dup[] = {{"host", "a"}, {"host", "b"}};
    in = s3_example("GET", "/", "", dup, 2, SH_S3_EMPTY_SHA256);
    assert_int_equal(sh_s3_sign(&in, &auth, NULL, NULL), SH_E_INVAL);
    sh_s3_header_t ok[] = {{"host", "a"}};
    in = s3_example("GET", "/", "", ok, 1, SH_S3_EMPTY_SHA256);
    in.amz_date = "2013";
    assert_int_equal(sh_s3_sign(&in, &auth, NULL, NULL), SH_E_INVAL);
    in = s3_example("GET", "/", "", ok, 0, SH_S3_EMPTY_SHA256);
    assert_int_equal(sh_s3_sign(&in, &auth, NULL, NULL), SH_E_INVAL);
    assert_int_equal(auth.len, 0);
    sh_s3_buf_fini(&auth);
}

static void test_uri_and_query_encoding(void **state)
{
    (void)state;
    sh_s3_buf_t b;
    sh_s3_buf_init(&b);
    const char key[] = "a b/c+d/e%41/~x_y-z.0/\xc3\xbc=(1)*!'";
    sh_s3_buf_add_uri(&b, key, strlen(key), true);
    assert_string_equal(sh_s3_buf_str(&b),
                        "a%20b/c%2Bd/e%2541/~x_y-z.0/%C3%BC%3D%281%29%2A%21%27");
    sh_s3_buf_reset(&b);
    sh_s3_buf_add_uri(&b, "p/q r", 5, false);
    assert_string_equal(sh_s3_buf_str(&b), "p%2Fq%20r");
    sh_s3_buf_reset(&b);
    /* sorted by encoded name, then value; empty and NULL values keep '=' */
    sh_s3_param_t p[] = {{"prefix", "a/b c"}, {"list-type", "2"}, {"continuation-token", "x+y="},
                         {"delete", NULL}, {"a", ""}, {"a", "0"}};
    assert_int_equal(sh_s3_query_build(p, 6, &b), SH_OK);
    assert_string_equal(sh_s3_buf_str(&b),
                        "a=&a=0&continuation-token=x%2By%3D&delete=&list-type=2&prefix=a%2Fb%20c");
    sh_s3_buf_reset(&b);
    assert_int_equal(sh_s3_query_build(NULL, 0, &b), SH_OK);
    assert_string_equal(sh_s3_buf_str(&b), "");
    sh_s3_buf_fini(&b);
}

static void test_hashes(void **state)
{
    (void)state;
    char h[65], whole[65], md5[25];
    assert_int_equal(sh_s3_sha256_hex("", 0, h), SH_OK);
    assert_string_equal(h, SH_S3_EMPTY_SHA256);
    assert_int_equal(sh_s3_sha256_hex_iov(NULL, 0, h), SH_OK);
    assert_string_equal(h, SH_S3_EMPTY_SHA256);
    /* a range across iovec boundaries hashes like the same bytes in one piece */
    const char *text = "Welcome to Amazon S3.";
    struct iovec iov[4] = {{(void *)text, 3}, {NULL, 0}, {(void *)(text + 3), 10},
                           {(void *)(text + 13), 8}};
    assert_int_equal(sh_s3_sha256_hex_iov(iov, 4, h), SH_OK);
    assert_string_equal(h, "44ce7dd67c959e0d3524ffac1771dfbba87d2b6b4b4e99e42034a8b803f8b072");
    for (uint64_t off = 0; off <= 21; off++)
        for (uint64_t len = 0; off + len <= 21; len += 3) {
            assert_int_equal(sh_s3_sha256_hex_range(iov, 4, off, len, h), SH_OK);
            assert_int_equal(sh_s3_sha256_hex(text + off, len, whole), SH_OK);
            assert_string_equal(h, whole);
        }
    assert_int_equal(sh_s3_sha256_hex_range(iov, 4, 20, 2, h), SH_E_INVAL);
    assert_int_equal(sh_s3_md5_base64("", 0, md5), SH_OK);
    assert_string_equal(md5, "1B2M2Y8AsgTpgAmY7PhCfg==");
    char date[17];
    sh_s3_amz_date(1369353600, date); /* 2013-05-24 00:00:00 UTC */
    assert_string_equal(date, S3_DATE);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_get_vanilla),
        cmocka_unit_test(test_s3_get_object),
        cmocka_unit_test(test_s3_put_object),
        cmocka_unit_test(test_s3_bucket_queries),
        cmocka_unit_test(test_wrong_secret_changes_signature),
        cmocka_unit_test(test_bad_input),
        cmocka_unit_test(test_uri_and_query_encoding),
        cmocka_unit_test(test_hashes),
    };
    return cmocka_run_group_tests_name("storage_s3_sign", tests, NULL, NULL);
}
