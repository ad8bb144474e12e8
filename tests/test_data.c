/*
 * test_data.c - the data loaders and dataset helpers (lib/data): IDX, NPY
 * and CSV round trips in every supported variant, plain and gzip; every
 * documented failure with its status and a message naming the file; the
 * corrupt corpus (tests/data/corrupt); Fashion-MNIST when installed;
 * normalisation, splits, subsets and getters; compact (palette) storage:
 * bit-identical values, transforms and whole runs against dense copies.
 *
 * Every expected failure also checks the loader contract: *out untouched,
 * no context memory leaked, no file descriptor left open.
 */
#include <check.h>
#include <dirent.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "data/dataset.h"
#include "metagrad.h"
#include "testutil.h"
#include "tmpfiles.h"

Suite *make_suite(void);

static void setup(void) { tmpfiles_make("data-test"); }

static void teardown(void) { tmpfiles_teardown(); }

static const char *write_text(const char *name, const char *text)
{
    return write_file(name, text, strlen(text));
}

/* An IDX file: header then payload (already big-endian). */
static size_t make_idx(uint8_t *buf, uint8_t type, int rank, const uint32_t *dims,
                       const void *payload, size_t payload_len)
{
    buf[0] = buf[1] = 0;
    buf[2] = type;
    buf[3] = (uint8_t)rank;
    for (int i = 0; i < rank; i++)
        for (int b = 0; b < 4; b++) buf[4 + 4 * i + b] = (uint8_t)(dims[i] >> (24 - 8 * b));
    memcpy(buf + 4 + 4 * rank, payload, payload_len);
    return 4 + 4 * (size_t)rank + payload_len;
}

/* An NPY file of the given version with dict text `dict` (padding added). */
static size_t make_npy(uint8_t *buf, int version, const char *dict, const void *payload,
                       size_t payload_len)
{
    size_t pre = version == 1 ? 10 : 12, dl = strlen(dict);
    size_t hlen = dl + 1;
    while ((pre + hlen) % 64 != 0) hlen++;
    memcpy(buf, "\x93NUMPY", 6);
    buf[6] = (uint8_t)version;
    buf[7] = 0;
    if (version == 1) {
        buf[8] = (uint8_t)hlen;
        buf[9] = (uint8_t)(hlen >> 8);
    } else {
        for (int b = 0; b < 4; b++) buf[8 + b] = (uint8_t)(hlen >> (8 * b));
    }
    memcpy(buf + pre, dict, dl);
    memset(buf + pre + dl, ' ', hlen - dl - 1);
    buf[pre + hlen - 1] = '\n';
    memcpy(buf + pre + hlen, payload, payload_len);
    return pre + hlen + payload_len;
}

static void get_inputs(const mgrad_dataset *ds, double *x, int64_t count)
{
    ck_assert_int_eq(mgrad_dataset_get_inputs(ds, MGRAD_DTYPE_F64, x, count), MGRAD_OK);
}

/* ---- IDX --------------------------------------------------------------- */

static const uint8_t pixels[12] = {0, 20, 40, 60, 80, 100, 120, 140, 160, 180, 200, 255};

START_TEST(test_idx_round_trip)
{
    for (int dt = 0; dt < 2; dt++) {
        mgrad_context *ctx = new_ctx(dt ? MGRAD_DTYPE_F64 : MGRAD_DTYPE_F32);
        uint8_t img[64], lab[32];
        uint32_t di[3] = {3, 2, 2}, dl[1] = {3};
        uint8_t labels[3] = {2, 0, 1};
        size_t ni = make_idx(img, 0x08, 3, di, pixels, 12);
        size_t nl = make_idx(lab, 0x08, 1, dl, labels, 3);
        const char *paths[2][2] = {
            {write_file("i.idx", img, ni), write_file("l.idx", lab, nl)},
            {write_gz("i.idx.gz", img, ni), write_gz("l.idx.gz", lab, nl)},
        };
        for (int gz = 0; gz < 2; gz++) {
            mgrad_dataset *ds = NULL;
            ck_assert_int_eq(mgrad_dataset_load_idx(&ds, ctx, paths[gz][0], paths[gz][1], 0,
                                                    1.0 / 255.0), MGRAD_OK);
            int64_t n, shape[3];
            int32_t ndim, classes, got[3];
            double x[12];
            mgrad_dataset_size(ds, &n);
            ck_assert_int_eq(n, 3);
            mgrad_dataset_shape(ds, &ndim, shape);
            ck_assert_int_eq(ndim, 2);
            ck_assert_int_eq(shape[0], 2);
            ck_assert_int_eq(shape[1], 2);
            ck_assert_int_eq(shape[2], 1);
            mgrad_dataset_num_classes(ds, &classes);
            ck_assert_int_eq(classes, 3);
            ck_assert_int_eq(mgrad_dataset_get_labels(ds, got, 3), MGRAD_OK);
            ck_assert_int_eq(got[0], 2);
            ck_assert_int_eq(got[1], 0);
            ck_assert_int_eq(got[2], 1);
            get_inputs(ds, x, 12);
            for (int i = 0; i < 12; i++)
                ck_assert_double_eq_tol(x[i], pixels[i] / 255.0, dt ? 1e-15 : 1e-7);
            mgrad_dataset_destroy(ds);
            /* explicit class count, no labels */
            ck_assert_int_eq(mgrad_dataset_load_idx(&ds, ctx, paths[gz][0], paths[gz][1], 10,
                                                    1.0), MGRAD_OK);
            mgrad_dataset_num_classes(ds, &classes);
            ck_assert_int_eq(classes, 10);
            mgrad_dataset_destroy(ds);
            ck_assert_int_eq(mgrad_dataset_load_idx(&ds, ctx, paths[gz][0], NULL, 0, 2.0),
                             MGRAD_OK);
            mgrad_dataset_num_classes(ds, &classes);
            ck_assert_int_eq(classes, 0);
            get_inputs(ds, x, 12);
            ck_assert_double_eq(x[11], 510.0);
            mgrad_dataset_destroy(ds);
        }
        ck_assert_uint_eq(ctx_bytes(ctx), 0);
        mgrad_context_destroy(ctx);
    }
}
END_TEST

START_TEST(test_idx_element_types)
{
    mgrad_context *ctx = new_ctx(MGRAD_DTYPE_F64);
    uint8_t buf[256];
    mgrad_dataset *ds = NULL;
    double x[8];
    int64_t shape[3];
    int32_t ndim;
    /* f32, rank 1: examples of shape {1} */
    uint8_t f32be[8] = {0x3f, 0xc0, 0, 0, 0xc1, 0x20, 0, 0}; /* 1.5, -10 */
    uint32_t d1[1] = {2};
    const char *p = write_file("f.idx", buf, make_idx(buf, 0x0D, 1, d1, f32be, 8));
    ck_assert_int_eq(mgrad_dataset_load_idx(&ds, ctx, p, NULL, 0, 1.0), MGRAD_OK);
    mgrad_dataset_shape(ds, &ndim, shape);
    ck_assert_int_eq(ndim, 1);
    ck_assert_int_eq(shape[0], 1);
    get_inputs(ds, x, 2);
    ck_assert_double_eq(x[0], 1.5);
    ck_assert_double_eq(x[1], -10.0);
    mgrad_dataset_destroy(ds);
    /* i16 and i8: signed */
    uint8_t i16be[4] = {0xff, 0xfe, 0x01, 0x00}; /* -2, 256 */
    p = write_file("s.idx", buf, make_idx(buf, 0x0B, 1, d1, i16be, 4));
    ck_assert_int_eq(mgrad_dataset_load_idx(&ds, ctx, p, NULL, 0, 1.0), MGRAD_OK);
    get_inputs(ds, x, 2);
    ck_assert_double_eq(x[0], -2.0);
    ck_assert_double_eq(x[1], 256.0);
    mgrad_dataset_destroy(ds);
    uint8_t i8[2] = {0x80, 0x7f};
    p = write_file("b.idx", buf, make_idx(buf, 0x09, 1, d1, i8, 2));
    ck_assert_int_eq(mgrad_dataset_load_idx(&ds, ctx, p, NULL, 0, 1.0), MGRAD_OK);
    get_inputs(ds, x, 2);
    ck_assert_double_eq(x[0], -128.0);
    ck_assert_double_eq(x[1], 127.0);
    mgrad_dataset_destroy(ds);
    /* f64 and i32 at rank 4: examples of shape {1, 1, 2} */
    uint8_t f64be[16] = {0x40, 0x09, 0x21, 0xfb, 0x54, 0x44, 0x2d, 0x18, /* pi */
                         0xbf, 0xf0, 0, 0, 0, 0, 0, 0};                   /* -1 */
    uint32_t d4[4] = {1, 1, 1, 2};
    p = write_file("d.idx", buf, make_idx(buf, 0x0E, 4, d4, f64be, 16));
    ck_assert_int_eq(mgrad_dataset_load_idx(&ds, ctx, p, NULL, 0, 1.0), MGRAD_OK);
    mgrad_dataset_shape(ds, &ndim, shape);
    ck_assert_int_eq(ndim, 3);
    ck_assert_int_eq(shape[2], 2);
    get_inputs(ds, x, 2);
    ck_assert_double_eq(x[0], 3.141592653589793);
    ck_assert_double_eq(x[1], -1.0);
    mgrad_dataset_destroy(ds);
    /* i32 labels */
    uint8_t img[64], lab[32];
    uint32_t di[3] = {3, 2, 2}, dl[1] = {3};
    uint8_t l32[12] = {0, 0, 0, 4, 0, 0, 0, 0, 0, 0, 0, 1};
    const char *pi = write_file("i.idx", img, make_idx(img, 0x08, 3, di, pixels, 12));
    const char *pl = write_file("l.idx", lab, make_idx(lab, 0x0C, 1, dl, l32, 12));
    ck_assert_int_eq(mgrad_dataset_load_idx(&ds, ctx, pi, pl, 0, 1.0), MGRAD_OK);
    int32_t classes;
    mgrad_dataset_num_classes(ds, &classes);
    ck_assert_int_eq(classes, 5);
    mgrad_dataset_destroy(ds);
    mgrad_context_destroy(ctx);
}
END_TEST

START_TEST(test_idx_errors)
{
    mgrad_context *ctx = new_ctx(MGRAD_DTYPE_F32);
    uint8_t img[64] = {0}, lab[32] = {0}, buf[64] = {0};
    uint32_t di[3] = {3, 2, 2}, dl[1] = {3}, dl4[1] = {4};
    uint8_t labels[4] = {2, 0, 1, 1};
    const char *pi = write_file("i.idx", img, make_idx(img, 0x08, 3, di, pixels, 12));
    const char *pl = write_file("l.idx", lab, make_idx(lab, 0x08, 1, dl, labels, 3));
    const char *missing = tmp_path("missing.idx");

    EXPECT_FAIL(ctx, MGRAD_ERR_NULL, "must not be NULL",
                mgrad_dataset_load_idx(NULL, ctx, pi, pl, 0, 1.0));
    EXPECT_FAIL(ctx, MGRAD_ERR_NULL, "must not be NULL",
                mgrad_dataset_load_idx(&out_, ctx, NULL, pl, 0, 1.0));
    ck_assert_int_eq(mgrad_dataset_load_idx(NULL, NULL, pi, pl, 0, 1.0), MGRAD_ERR_NULL);
    EXPECT_FAIL(ctx, MGRAD_ERR_INVALID, "scale",
                mgrad_dataset_load_idx(&out_, ctx, pi, pl, 0, 0.0));
    EXPECT_FAIL(ctx, MGRAD_ERR_INVALID, "scale",
                mgrad_dataset_load_idx(&out_, ctx, pi, pl, 0, NAN));
    EXPECT_FAIL(ctx, MGRAD_ERR_INVALID, "num_classes = 1",
                mgrad_dataset_load_idx(&out_, ctx, pi, pl, 1, 1.0));
    EXPECT_FAIL(ctx, MGRAD_ERR_INVALID, "num_classes = -3",
                mgrad_dataset_load_idx(&out_, ctx, pi, pl, -3, 1.0));
    /* a label >= num_classes names the file and the example */
    EXPECT_FAIL(ctx, MGRAD_ERR_INVALID, "label 2 of example 0 is outside [0, 2)",
                mgrad_dataset_load_idx(&out_, ctx, pi, pl, 2, 1.0));
    EXPECT_FAIL(ctx, MGRAD_ERR_IO, missing,
                mgrad_dataset_load_idx(&out_, ctx, missing, pl, 0, 1.0));
    EXPECT_FAIL(ctx, MGRAD_ERR_IO, "No such file",
                mgrad_dataset_load_idx(&out_, ctx, pi, missing, 0, 1.0));
    EXPECT_FAIL(ctx, MGRAD_ERR_IO, "not a regular file",
                mgrad_dataset_load_idx(&out_, ctx, tmpdir, NULL, 0, 1.0));
    const char *p4 = write_file("l4.idx", buf, make_idx(buf, 0x08, 1, dl4, labels, 4));
    EXPECT_FAIL(ctx, MGRAD_ERR_FORMAT, "holds 4 labels but",
                mgrad_dataset_load_idx(&out_, ctx, pi, p4, 0, 1.0));
    /* the images file passed as labels: rank 3 */
    EXPECT_FAIL(ctx, MGRAD_ERR_FORMAT, "labels have 3 dimensions",
                mgrad_dataset_load_idx(&out_, ctx, pi, pi, 0, 1.0));
    /* truncation by one byte, raw and gzip */
    size_t ni = make_idx(img, 0x08, 3, di, pixels, 12);
    const char *pt = write_file("t.idx", img, ni - 1);
    EXPECT_FAIL(ctx, MGRAD_ERR_FORMAT, "t.idx",
                mgrad_dataset_load_idx(&out_, ctx, pt, NULL, 0, 1.0));
    const char *pg = write_gz("t.idx.gz", img, ni - 1);
    EXPECT_FAIL(ctx, MGRAD_ERR_FORMAT, "truncated",
                mgrad_dataset_load_idx(&out_, ctx, pg, NULL, 0, 1.0));
    const char *pe = write_file("e.idx", img, ni + 1);
    EXPECT_FAIL(ctx, MGRAD_ERR_FORMAT, "unexpected bytes after the data",
                mgrad_dataset_load_idx(&out_, ctx, pe, NULL, 0, 1.0));
    /* scaling that overflows f32 */
    EXPECT_FAIL(ctx, MGRAD_ERR_NONFINITE, "not finite in f32",
                mgrad_dataset_load_idx(&out_, ctx, pi, NULL, 0, 1e38));
    mgrad_context_destroy(ctx);
}
END_TEST

/* ---- NPY --------------------------------------------------------------- */

START_TEST(test_npy_round_trip)
{
    mgrad_context *ctx = new_ctx(MGRAD_DTYPE_F64);
    uint8_t buf[512];
    mgrad_dataset *ds = NULL;
    double x[12];
    int64_t shape[3], n;
    int32_t ndim, classes, labels[3];

    float f4[6] = {1, 2, 3, 4, 5, 6.5f};
    const char *pin = write_file("a.npy", buf, make_npy(buf, 1,
        "{'descr': '<f4', 'fortran_order': False, 'shape': (3, 2), }", f4, sizeof f4));
    int64_t i8[3] = {2, 0, 7};
    const char *pl8 = write_file("l8.npy", buf, make_npy(buf, 2,
        "{\"shape\": (3,), \"fortran_order\": False, \"descr\": \"<i8\"}", i8, sizeof i8));
    ck_assert_int_eq(mgrad_dataset_load_npy(&ds, ctx, pin, pl8, 0), MGRAD_OK);
    mgrad_dataset_size(ds, &n);
    ck_assert_int_eq(n, 3);
    mgrad_dataset_shape(ds, &ndim, shape);
    ck_assert_int_eq(ndim, 1);
    ck_assert_int_eq(shape[0], 2);
    get_inputs(ds, x, 6);
    for (int i = 0; i < 6; i++) ck_assert_double_eq(x[i], f4[i]);
    mgrad_dataset_num_classes(ds, &classes);
    ck_assert_int_eq(classes, 8);
    mgrad_dataset_get_labels(ds, labels, 3);
    ck_assert_int_eq(labels[2], 7);
    mgrad_dataset_destroy(ds);

    /* v3, uint8, rank 4 -> examples {1, 2, 2}; u1 labels; gzip */
    uint8_t u1[12];
    for (int i = 0; i < 12; i++) u1[i] = (uint8_t)(i * 20);
    const char *pu = write_gz("u.npy.gz", buf, make_npy(buf, 3,
        "{'descr': '|u1', 'fortran_order': False, 'shape': (3, 1, 2, 2), }", u1, 12));
    uint8_t lu[3] = {1, 0, 1};
    const char *plu = write_file("lu.npy", buf, make_npy(buf, 1,
        "{'descr': '|u1', 'fortran_order': False, 'shape': (3,), }", lu, 3));
    ck_assert_int_eq(mgrad_dataset_load_npy(&ds, ctx, pu, plu, 4), MGRAD_OK);
    mgrad_dataset_shape(ds, &ndim, shape);
    ck_assert_int_eq(ndim, 3);
    ck_assert_int_eq(shape[0], 1);
    ck_assert_int_eq(shape[2], 2);
    get_inputs(ds, x, 12);
    ck_assert_double_eq(x[11], 220.0);
    mgrad_dataset_num_classes(ds, &classes);
    ck_assert_int_eq(classes, 4);
    mgrad_dataset_destroy(ds);

    /* f8 (N,) and i8 inputs */
    double f8[3] = {0.1, -2.5, 1e300};
    const char *pf8 = write_file("f8.npy", buf, make_npy(buf, 1,
        "{'descr': '<f8', 'fortran_order': False, 'shape': (3,), }", f8, sizeof f8));
    ck_assert_int_eq(mgrad_dataset_load_npy(&ds, ctx, pf8, NULL, 0), MGRAD_OK);
    get_inputs(ds, x, 3);
    ck_assert_double_eq(x[0], 0.1);
    ck_assert_double_eq(x[2], 1e300);
    mgrad_dataset_destroy(ds);
    const char *pi8 = write_file("i8.npy", buf, make_npy(buf, 1,
        "{'descr': '<i8', 'fortran_order': False, 'shape': (3, 1), }", i8, sizeof i8));
    ck_assert_int_eq(mgrad_dataset_load_npy(&ds, ctx, pi8, NULL, 0), MGRAD_OK);
    get_inputs(ds, x, 3);
    ck_assert_double_eq(x[2], 7.0);
    mgrad_dataset_destroy(ds);
    ck_assert_uint_eq(ctx_bytes(ctx), 0);
    mgrad_context_destroy(ctx);

    /* 1e300 does not fit f32 */
    ctx = new_ctx(MGRAD_DTYPE_F32);
    EXPECT_FAIL(ctx, MGRAD_ERR_NONFINITE, "f8.npy",
                mgrad_dataset_load_npy(&out_, ctx, pf8, NULL, 0));
    mgrad_context_destroy(ctx);
}
END_TEST

START_TEST(test_npy_errors)
{
    mgrad_context *ctx = new_ctx(MGRAD_DTYPE_F32);
    uint8_t buf[512];
    float f4[6] = {1, 2, 3, 4, 5, 6};
    const char *pin = write_file("a.npy", buf, make_npy(buf, 1,
        "{'descr': '<f4', 'fortran_order': False, 'shape': (3, 2), }", f4, sizeof f4));
    const char *p = write_file("fortran.npy", buf, make_npy(buf, 1,
        "{'descr': '<f4', 'fortran_order': True, 'shape': (3, 2), }", f4, sizeof f4));
    EXPECT_FAIL(ctx, MGRAD_ERR_UNSUPPORTED, "Fortran-order",
                mgrad_dataset_load_npy(&out_, ctx, p, NULL, 0));
    p = write_file("be.npy", buf, make_npy(buf, 1,
        "{'descr': '>f4', 'fortran_order': False, 'shape': (3, 2), }", f4, sizeof f4));
    EXPECT_FAIL(ctx, MGRAD_ERR_UNSUPPORTED, "big-endian",
                mgrad_dataset_load_npy(&out_, ctx, p, NULL, 0));
    p = write_file("c8.npy", buf, make_npy(buf, 1,
        "{'descr': '<c8', 'fortran_order': False, 'shape': (3,), }", f4, sizeof f4));
    EXPECT_FAIL(ctx, MGRAD_ERR_UNSUPPORTED, "dtype '<c8' is not supported",
                mgrad_dataset_load_npy(&out_, ctx, p, NULL, 0));
    p = write_file("key.npy", buf, make_npy(buf, 1,
        "{'descr': '<f4', 'fortran_order': False, 'shape': (3, 2), 'extra': 1}", f4,
        sizeof f4));
    EXPECT_FAIL(ctx, MGRAD_ERR_FORMAT, "unexpected or repeated key 'extra'",
                mgrad_dataset_load_npy(&out_, ctx, p, NULL, 0));
    p = write_file("short.npy", buf, make_npy(buf, 1,
        "{'descr': '<f4', 'fortran_order': False, 'shape': (3, 2), }", f4, sizeof f4 - 1));
    EXPECT_FAIL(ctx, MGRAD_ERR_FORMAT, "short.npy",
                mgrad_dataset_load_npy(&out_, ctx, p, NULL, 0));
    p = write_file("big.npy", buf, make_npy(buf, 1,
        "{'descr': '<f4', 'fortran_order': False, 'shape': (300000000, 2), }", f4,
        sizeof f4));
    EXPECT_FAIL(ctx, MGRAD_ERR_FORMAT, "cannot hold",
                mgrad_dataset_load_npy(&out_, ctx, p, NULL, 0));
    int64_t neg[3] = {0, -4, 1};
    p = write_file("neg.npy", buf, make_npy(buf, 1,
        "{'descr': '<i8', 'fortran_order': False, 'shape': (3,), }", neg, sizeof neg));
    EXPECT_FAIL(ctx, MGRAD_ERR_FORMAT, "label -4 of example 1 is negative",
                mgrad_dataset_load_npy(&out_, ctx, pin, p, 0));
    EXPECT_FAIL(ctx, MGRAD_ERR_FORMAT, "labels must be a 1-D integer array",
                mgrad_dataset_load_npy(&out_, ctx, pin, pin, 0));
    EXPECT_FAIL(ctx, MGRAD_ERR_NULL, "must not be NULL",
                mgrad_dataset_load_npy(&out_, ctx, NULL, NULL, 0));
    mgrad_context_destroy(ctx);
}
END_TEST

/* ---- CSV --------------------------------------------------------------- */

START_TEST(test_csv_round_trip)
{
    mgrad_context *ctx = new_ctx(MGRAD_DTYPE_F64);
    mgrad_dataset *ds = NULL;
    double x[8];
    int64_t n, f;
    int32_t classes, labels[3];
    /* header, label in the middle, spaces, CRLF, trailing empty lines */
    const char *p = write_text("a.csv", "a,label,b\r\n1.5, 2 ,-3\r\n 4e2,0,\t5\r\n0x10,1,6\r\n\r\n");
    ck_assert_int_eq(mgrad_dataset_load_csv(&ds, ctx, p, 1, 1, 0), MGRAD_OK);
    mgrad_dataset_size(ds, &n);
    mgrad_dataset_features(ds, &f);
    ck_assert_int_eq(n, 3);
    ck_assert_int_eq(f, 2);
    get_inputs(ds, x, 6);
    ck_assert_double_eq(x[0], 1.5);
    ck_assert_double_eq(x[1], -3.0);
    ck_assert_double_eq(x[2], 400.0);
    ck_assert_double_eq(x[3], 5.0);
    ck_assert_double_eq(x[4], 16.0);
    mgrad_dataset_num_classes(ds, &classes);
    ck_assert_int_eq(classes, 3);
    mgrad_dataset_get_labels(ds, labels, 3);
    ck_assert_int_eq(labels[0], 2);
    ck_assert_int_eq(labels[1], 0);
    mgrad_dataset_destroy(ds);
    /* no header, no labels, no final newline */
    p = write_text("b.csv", "1,2,3\n4,5,6");
    ck_assert_int_eq(mgrad_dataset_load_csv(&ds, ctx, p, -1, 0, 0), MGRAD_OK);
    get_inputs(ds, x, 6);
    ck_assert_double_eq(x[5], 6.0);
    mgrad_dataset_num_classes(ds, &classes);
    ck_assert_int_eq(classes, 0);
    mgrad_dataset_destroy(ds);
    /* gzip */
    const char *text = "y,a\n0,1\n1,2\n";
    p = write_gz("c.csv.gz", text, strlen(text));
    ck_assert_int_eq(mgrad_dataset_load_csv(&ds, ctx, p, 0, 1, 5), MGRAD_OK);
    mgrad_dataset_num_classes(ds, &classes);
    ck_assert_int_eq(classes, 5);
    mgrad_dataset_destroy(ds);
    ck_assert_uint_eq(ctx_bytes(ctx), 0);
    mgrad_context_destroy(ctx);
}
END_TEST

START_TEST(test_csv_errors)
{
    mgrad_context *ctx = new_ctx(MGRAD_DTYPE_F32);
    const char *p = write_text("bad.csv", "y,a,b\n1,2,3\n0,x7,4\n");
    EXPECT_FAIL(ctx, MGRAD_ERR_FORMAT, "bad.csv: line 3, column 2: 'x7' is not a number",
                mgrad_dataset_load_csv(&out_, ctx, p, 0, 1, 0));
    p = write_text("rag.csv", "1,2,3\n4,5\n");
    EXPECT_FAIL(ctx, MGRAD_ERR_FORMAT, "line 2 has 2 columns but line 1 has 3",
                mgrad_dataset_load_csv(&out_, ctx, p, -1, 0, 0));
    p = write_text("empty.csv", "1,,3\n");
    EXPECT_FAIL(ctx, MGRAD_ERR_FORMAT, "line 1, column 2: empty field",
                mgrad_dataset_load_csv(&out_, ctx, p, -1, 0, 0));
    p = write_text("lab.csv", "1,2\n0.5,3\n");
    EXPECT_FAIL(ctx, MGRAD_ERR_FORMAT, "line 2, column 1: label 0.5 is not a non-negative",
                mgrad_dataset_load_csv(&out_, ctx, p, 0, 0, 0));
    EXPECT_FAIL(ctx, MGRAD_ERR_INVALID, "label_column = 2 but the file has 2 columns",
                mgrad_dataset_load_csv(&out_, ctx, p, 2, 0, 0));
    EXPECT_FAIL(ctx, MGRAD_ERR_INVALID, "label_column = -2",
                mgrad_dataset_load_csv(&out_, ctx, p, -2, 0, 0));
    p = write_text("blank.csv", "1,2\n\n3,4\n");
    EXPECT_FAIL(ctx, MGRAD_ERR_FORMAT, "line 2 is empty",
                mgrad_dataset_load_csv(&out_, ctx, p, -1, 0, 0));
    p = write_text("q.csv", "1,\"2\"\n");
    EXPECT_FAIL(ctx, MGRAD_ERR_UNSUPPORTED, "quoted fields",
                mgrad_dataset_load_csv(&out_, ctx, p, -1, 0, 0));
    p = write_text("nan.csv", "1,nan\n");
    EXPECT_FAIL(ctx, MGRAD_ERR_NONFINITE, "line 1, column 2",
                mgrad_dataset_load_csv(&out_, ctx, p, -1, 0, 0));
    p = write_text("big.csv", "1,1e300\n");
    EXPECT_FAIL(ctx, MGRAD_ERR_NONFINITE, "overflows f32",
                mgrad_dataset_load_csv(&out_, ctx, p, -1, 0, 0));
    p = write_text("hdr.csv", "a,b\n");
    EXPECT_FAIL(ctx, MGRAD_ERR_INVALID, "no data rows",
                mgrad_dataset_load_csv(&out_, ctx, p, -1, 1, 0));
    mgrad_context_destroy(ctx);
}
END_TEST

/* ---- the corrupt corpus ------------------------------------------------ */

static const char *source_root(void)
{
    const char *root = getenv("MGRAD_SOURCE_ROOT");
    ck_assert_msg(root != NULL, "MGRAD_SOURCE_ROOT is not set (run through meson test)");
    return root;
}

START_TEST(test_corrupt_corpus)
{
    char dir[1024], partner_idx[1024], partner_npy[1024];
    snprintf(dir, sizeof dir, "%s/tests/data/corrupt", source_root());
    snprintf(partner_idx, sizeof partner_idx, "%s/tests/fuzz/seeds/idx/images-3x2x2.idx",
             source_root());
    snprintf(partner_npy, sizeof partner_npy, "%s/tests/fuzz/seeds/npy/inputs-f4-3x2.npy",
             source_root());
    mgrad_context *ctx = new_ctx(MGRAD_DTYPE_F32);
    /* The partners themselves load. */
    mgrad_dataset *ds = NULL;
    ck_assert_int_eq(mgrad_dataset_load_idx(&ds, ctx, partner_idx, NULL, 0, 1.0), MGRAD_OK);
    mgrad_dataset_destroy(ds);
    ck_assert_int_eq(mgrad_dataset_load_npy(&ds, ctx, partner_npy, NULL, 0), MGRAD_OK);
    mgrad_dataset_destroy(ds);

    DIR *d = opendir(dir);
    ck_assert_ptr_nonnull(d);
    struct dirent *e;
    int files = 0;
    while ((e = readdir(d)) != NULL) {
        const char *name = e->d_name;
        if (name[0] == '.') continue;
        char path[2048];
        snprintf(path, sizeof path, "%s/%s", dir, name);
        mgrad_dataset *const sentinel = (mgrad_dataset *)&files;
        mgrad_dataset *out = sentinel;
        uint64_t mem = ctx_bytes(ctx);
        int fd = lowest_fd();
        mgrad_status s;
        mgrad_context_clear_error(ctx);
        if (strncmp(name, "idx-img-", 8) == 0)
            s = mgrad_dataset_load_idx(&out, ctx, path, NULL, 0, 1.0);
        else if (strncmp(name, "idx-lab-", 8) == 0)
            s = mgrad_dataset_load_idx(&out, ctx, partner_idx, path, 0, 1.0);
        else if (strncmp(name, "npy-in-", 7) == 0)
            s = mgrad_dataset_load_npy(&out, ctx, path, NULL, 0);
        else if (strncmp(name, "npy-lab-", 8) == 0)
            s = mgrad_dataset_load_npy(&out, ctx, partner_npy, path, 0);
        else if (strncmp(name, "csv-", 4) == 0)
            s = mgrad_dataset_load_csv(&out, ctx, path, 0, 1, 0);
        else
            ck_abort_msg("corpus file %s has no known prefix", name);
        const char *msg = mgrad_context_last_error(ctx);
        ck_assert_msg(s != MGRAD_OK, "%s loaded", name);
        ck_assert_msg(s == MGRAD_ERR_FORMAT || s == MGRAD_ERR_UNSUPPORTED ||
                          s == MGRAD_ERR_INVALID || s == MGRAD_ERR_NONFINITE,
                      "%s: unexpected status %d: %s", name, (int)s, msg);
        /* the message names the file at fault (or both, for a count mismatch) */
        ck_assert_msg(strstr(msg, name) != NULL, "%s: message does not name it: %s", name,
                      msg);
        ck_assert_ptr_eq(out, sentinel);
        ck_assert_uint_eq(ctx_bytes(ctx), mem);
        ck_assert_int_eq(lowest_fd(), fd);
        files++;
    }
    closedir(d);
    ck_assert_int_ge(files, 80);
    mgrad_context_destroy(ctx);
}
END_TEST

/* ---- Fashion-MNIST ----------------------------------------------------- */

START_TEST(test_fashion_mnist_missing)
{
    mgrad_context *ctx = new_ctx(MGRAD_DTYPE_F32);
    EXPECT_FAIL(ctx, MGRAD_ERR_IO, "apt-get install dataset-fashion-mnist",
                mgrad_dataset_load_fashion_mnist(&out_, ctx, "train", tmpdir));
    EXPECT_FAIL(ctx, MGRAD_ERR_IO, "t10k-images-idx3-ubyte.gz",
                mgrad_dataset_load_fashion_mnist(&out_, ctx, "test", tmpdir));
    EXPECT_FAIL(ctx, MGRAD_ERR_INVALID, "neither \"train\" nor \"test\"",
                mgrad_dataset_load_fashion_mnist(&out_, ctx, "validation", NULL));
    EXPECT_FAIL(ctx, MGRAD_ERR_NULL, "must not be NULL",
                mgrad_dataset_load_fashion_mnist(&out_, ctx, NULL, NULL));
    /* uncompressed files under the same names are found too */
    uint8_t img[4 + 12 + 2 * 784], lab[4 + 4 + 2];
    uint32_t di[3] = {2, 28, 28}, dl[1] = {2};
    uint8_t px[2 * 784], labels[2] = {9, 3};
    for (int i = 0; i < 2 * 784; i++) px[i] = (uint8_t)(i % 256);
    write_file("t10k-images-idx3-ubyte", img, make_idx(img, 0x08, 3, di, px, sizeof px));
    write_file("t10k-labels-idx1-ubyte", lab, make_idx(lab, 0x08, 1, dl, labels, 2));
    mgrad_dataset *ds = NULL;
    ck_assert_int_eq(mgrad_dataset_load_fashion_mnist(&ds, ctx, "test", tmpdir), MGRAD_OK);
    int32_t ndim;
    int64_t shape[3];
    mgrad_dataset_shape(ds, &ndim, shape);
    ck_assert_int_eq(ndim, 3);
    ck_assert_int_eq(shape[0], 1);
    ck_assert_int_eq(shape[1], 28);
    ck_assert_int_eq(shape[2], 28);
    mgrad_dataset_destroy(ds);
    /* images that are not 28 x 28 */
    uint32_t d2[3] = {2, 784, 1};
    write_file("t10k-images-idx3-ubyte", img, make_idx(img, 0x08, 3, d2, px, sizeof px));
    EXPECT_FAIL(ctx, MGRAD_ERR_FORMAT, "not 28 x 28",
                mgrad_dataset_load_fashion_mnist(&out_, ctx, "test", tmpdir));
    mgrad_context_destroy(ctx);
}
END_TEST

static int fashion_mnist_installed(void)
{
    return access(MGRAD_FASHION_MNIST_DIR "/train-images-idx3-ubyte.gz", R_OK) == 0 &&
           access(MGRAD_FASHION_MNIST_DIR "/t10k-labels-idx1-ubyte.gz", R_OK) == 0;
}

START_TEST(test_fashion_mnist_real)
{
    static const char *const splits[2] = {"train", "test"};
    static const int64_t sizes[2] = {60000, 10000};
    mgrad_context *ctx = new_ctx(MGRAD_DTYPE_F32);
    for (int k = 0; k < 2; k++) {
        mgrad_dataset *ds = NULL;
        ck_assert_msg(mgrad_dataset_load_fashion_mnist(&ds, ctx, splits[k], NULL) ==
                          MGRAD_OK, "%s", mgrad_context_last_error(ctx));
        int64_t n, f;
        int32_t classes;
        mgrad_dataset_size(ds, &n);
        mgrad_dataset_features(ds, &f);
        mgrad_dataset_num_classes(ds, &classes);
        ck_assert_int_eq(n, sizes[k]);
        ck_assert_int_eq(f, 784);
        ck_assert_int_eq(classes, 10);
        int32_t *labels = malloc((size_t)n * sizeof *labels);
        ck_assert_int_eq(mgrad_dataset_get_labels(ds, labels, n), MGRAD_OK);
        int64_t count[10] = {0};
        for (int64_t i = 0; i < n; i++) {
            ck_assert(labels[i] >= 0 && labels[i] < 10);
            count[labels[i]]++;
        }
        for (int c = 0; c < 10; c++) ck_assert_int_eq(count[c], n / 10); /* balanced */
        free(labels);
        /* Stored compactly, each pixel byte b as (float)(b * (1 / 255.0)),
           the value the dense loader stored: one byte per value. */
        ck_assert_ptr_nonnull(ds->codes);
        ck_assert_ptr_null(ds->inputs);
        int64_t bytes = 0;
        ck_assert_int_eq(mgrad_dataset_compact(ds, &bytes), MGRAD_OK);
        ck_assert_int_eq(bytes, n * f + 256 * (int64_t)sizeof(float));
        float x[784];
        float lo = 1, hi = 0;
        double sum = 0;
        int64_t differ = 0; /* one assertion, not 47 million */
        for (int64_t r = 0; r < n; r++) {
            mgr_dataset_copy_row(ds, r, x); /* the context is f32 */
            for (int64_t j = 0; j < f; j++) {
                float want = (float)((double)ds->codes[r * f + j] * (1.0 / 255.0));
                differ += memcmp(&x[j], &want, sizeof want) != 0;
                lo = fminf(lo, x[j]);
                hi = fmaxf(hi, x[j]);
                sum += x[j];
            }
        }
        ck_assert_int_eq(differ, 0);
        ck_assert(lo == 0.0f && hi == 1.0f);
        /* the mean pixel of Fashion-MNIST is about 0.286 */
        ck_assert_double_eq_tol(sum / (double)(n * f), 0.286, 0.01);
        mgrad_dataset_destroy(ds);
    }
    ck_assert_uint_eq(ctx_bytes(ctx), 0);
    mgrad_context_destroy(ctx);
}
END_TEST

/* ---- helpers: normalise, scale, split, subset, getters ------------------ */

/* n examples of shape {2, 3} with x = row * 100 + feature, labels row % 3. */
static mgrad_dataset *ramp(mgrad_context *ctx, int64_t n)
{
    double *x = malloc((size_t)n * 6 * sizeof *x);
    int32_t *y = malloc((size_t)n * sizeof *y);
    for (int64_t r = 0; r < n; r++) {
        for (int j = 0; j < 6; j++) x[r * 6 + j] = (double)(r * 100 + j);
        y[r] = (int32_t)(r % 3);
    }
    int64_t shape[2] = {2, 3};
    mgrad_dataset *ds = NULL;
    ck_assert_int_eq(mgrad_dataset_create(&ds, ctx, n, 2, shape, MGRAD_DTYPE_F64, x),
                     MGRAD_OK);
    ck_assert_int_eq(mgrad_dataset_set_labels(ds, y, n, 3), MGRAD_OK);
    free(x);
    free(y);
    return ds;
}

START_TEST(test_normalize)
{
    mgrad_context *ctx = new_ctx(MGRAD_DTYPE_F64);
    double x[60];
    for (int mode = MGRAD_NORMALIZE_GLOBAL; mode <= MGRAD_NORMALIZE_PER_CHANNEL; mode++) {
        mgrad_dataset *ds = ramp(ctx, 10);
        ck_assert_int_eq(mgrad_dataset_normalize(ds, NULL, (mgrad_normalize)mode), MGRAD_OK);
        get_inputs(ds, x, 60);
        int groups = mode == MGRAD_NORMALIZE_GLOBAL ? 1
                     : mode == MGRAD_NORMALIZE_PER_FEATURE ? 6 : 2;
        int size = 6 / groups;
        for (int g = 0; g < groups; g++) {
            double s1 = 0, s2 = 0;
            for (int r = 0; r < 10; r++)
                for (int j = g * size; j < (g + 1) * size; j++) {
                    s1 += x[r * 6 + j];
                    s2 += x[r * 6 + j] * x[r * 6 + j];
                }
            double cnt = 10.0 * size;
            ck_assert_double_eq_tol(s1 / cnt, 0.0, 1e-12);
            ck_assert_double_eq_tol(s2 / cnt, 1.0, 1e-12);
        }
        mgrad_dataset_destroy(ds);
    }
    /* reference statistics: a copy normalised by the original equals the original */
    mgrad_dataset *a = ramp(ctx, 10), *b = ramp(ctx, 10);
    ck_assert_int_eq(mgrad_dataset_normalize(b, a, MGRAD_NORMALIZE_PER_FEATURE), MGRAD_OK);
    ck_assert_int_eq(mgrad_dataset_normalize(a, a, MGRAD_NORMALIZE_PER_FEATURE), MGRAD_OK);
    double y[60];
    get_inputs(a, x, 60);
    get_inputs(b, y, 60);
    for (int i = 0; i < 60; i++) ck_assert_double_eq_tol(x[i], y[i], 1e-12);
    /* a constant feature is centred, not blown up */
    double c[4] = {0.1, 0.1, 0.1, 0.1};
    int64_t one = 1;
    mgrad_dataset *k = NULL;
    ck_assert_int_eq(mgrad_dataset_create(&k, ctx, 4, 1, &one, MGRAD_DTYPE_F64, c), MGRAD_OK);
    ck_assert_int_eq(mgrad_dataset_normalize(k, NULL, MGRAD_NORMALIZE_GLOBAL), MGRAD_OK);
    get_inputs(k, x, 4);
    for (int i = 0; i < 4; i++) ck_assert_double_eq_tol(x[i], 0.0, 1e-15);
    /* errors */
    ck_assert_int_eq(mgrad_dataset_normalize(a, k, MGRAD_NORMALIZE_GLOBAL), MGRAD_ERR_SHAPE);
    ck_assert_int_eq(mgrad_dataset_normalize(a, NULL, (mgrad_normalize)9), MGRAD_ERR_INVALID);
    ck_assert_int_eq(mgrad_dataset_normalize(NULL, NULL, MGRAD_NORMALIZE_GLOBAL),
                     MGRAD_ERR_NULL);
    mgr_dataset_retain(a); /* as a run does */
    ck_assert_int_eq(mgrad_dataset_normalize(a, NULL, MGRAD_NORMALIZE_GLOBAL), MGRAD_ERR_ORDER);
    ck_assert_int_eq(mgrad_dataset_scale(a, 2.0, 0.0), MGRAD_ERR_ORDER);
    mgr_dataset_release(a);
    mgrad_dataset_destroy(a);
    mgrad_dataset_destroy(b);
    mgrad_dataset_destroy(k);
    ck_assert_uint_eq(ctx_bytes(ctx), 0);
    mgrad_context_destroy(ctx);
}
END_TEST

START_TEST(test_scale)
{
    mgrad_context *ctx = new_ctx(MGRAD_DTYPE_F32);
    mgrad_dataset *ds = ramp(ctx, 4);
    double x[24];
    ck_assert_int_eq(mgrad_dataset_scale(ds, 0.5, -1.0), MGRAD_OK);
    get_inputs(ds, x, 24);
    ck_assert_double_eq(x[7], 0.5 * 101 - 1.0);
    ck_assert_int_eq(mgrad_dataset_scale(ds, INFINITY, 0.0), MGRAD_ERR_INVALID);
    /* overflow in f32: refused, nothing changed */
    ck_assert_int_eq(mgrad_dataset_scale(ds, 1e38, 0.0), MGRAD_ERR_NONFINITE);
    double y[24];
    get_inputs(ds, y, 24);
    ck_assert(memcmp(x, y, sizeof x) == 0);
    mgrad_dataset_destroy(ds);
    mgrad_context_destroy(ctx);
}
END_TEST

START_TEST(test_split)
{
    mgrad_context *ctx = new_ctx(MGRAD_DTYPE_F64);
    mgrad_dataset *ds = ramp(ctx, 50);
    double w[50], t[100];
    for (int i = 0; i < 50; i++) {
        w[i] = i;
        t[2 * i] = i;
        t[2 * i + 1] = -i;
    }
    ck_assert_int_eq(mgrad_dataset_set_weights(ds, MGRAD_DTYPE_F64, w, 50), MGRAD_OK);
    ck_assert_int_eq(mgrad_dataset_set_targets(ds, MGRAD_DTYPE_F64, t, 50, 2), MGRAD_OK);
    mgrad_dataset *a = NULL, *b = NULL, *a2 = NULL, *b2 = NULL, *c = NULL, *d = NULL;
    ck_assert_int_eq(mgrad_dataset_split(&a, &b, ds, 35, 7), MGRAD_OK);
    ck_assert_int_eq(mgrad_dataset_split(&a2, &b2, ds, 35, 7), MGRAD_OK);
    ck_assert_int_eq(mgrad_dataset_split(&c, &d, ds, 35, 8), MGRAD_OK);
    int64_t na, nb;
    mgrad_dataset_size(a, &na);
    mgrad_dataset_size(b, &nb);
    ck_assert_int_eq(na, 35);
    ck_assert_int_eq(nb, 15);
    double xa[35 * 6], xb[15 * 6], xa2[35 * 6], xc[35 * 6];
    get_inputs(a, xa, 35 * 6);
    get_inputs(b, xb, 15 * 6);
    get_inputs(a2, xa2, 35 * 6);
    get_inputs(c, xc, 35 * 6);
    ck_assert(memcmp(xa, xa2, sizeof xa) == 0);  /* same seed, same split */
    ck_assert(memcmp(xa, xc, sizeof xa) != 0);   /* another seed, another split */
    int seen[50] = {0};
    int32_t la[35];
    mgrad_dataset_get_labels(a, la, 35);
    for (int i = 0; i < 35; i++) {
        int r = (int)(xa[i * 6] / 100);
        seen[r]++;
        ck_assert_int_eq(la[i], r % 3);                        /* labels travel */
        ck_assert_double_eq(((double *)a->weights)[i], r);     /* weights travel */
        ck_assert_double_eq(((double *)a->targets)[2 * i + 1], -r);
        if (i > 0) ck_assert(xa[i * 6] > xa[(i - 1) * 6]);     /* original order */
    }
    for (int i = 0; i < 15; i++) seen[(int)(xb[i * 6] / 100)]++;
    for (int r = 0; r < 50; r++) ck_assert_int_eq(seen[r], 1); /* a partition */

    mgrad_dataset *keep_a = a;
    ck_assert_int_eq(mgrad_dataset_split(&a, &b, ds, 0, 1), MGRAD_ERR_INVALID);
    ck_assert_int_eq(mgrad_dataset_split(&a, &b, ds, 50, 1), MGRAD_ERR_INVALID);
    ck_assert_int_eq(mgrad_dataset_split(&a, &a, ds, 5, 1), MGRAD_ERR_NULL);
    ck_assert_ptr_eq(a, keep_a);
    mgrad_dataset *all[] = {a, b, a2, b2, c, d, ds};
    for (int i = 0; i < 7; i++) mgrad_dataset_destroy(all[i]);
    ck_assert_uint_eq(ctx_bytes(ctx), 0);
    mgrad_context_destroy(ctx);
}
END_TEST

START_TEST(test_subset_and_getters)
{
    mgrad_context *ctx = new_ctx(MGRAD_DTYPE_F32);
    mgrad_dataset *ds = ramp(ctx, 5);
    int64_t rows[4] = {4, 0, 4, 2};
    mgrad_dataset *s = NULL;
    ck_assert_int_eq(mgrad_dataset_subset(&s, ds, rows, 4), MGRAD_OK);
    double x[24];
    int32_t y[4];
    get_inputs(s, x, 24);
    mgrad_dataset_get_labels(s, y, 4);
    for (int i = 0; i < 4; i++) {
        ck_assert_double_eq(x[i * 6 + 5], rows[i] * 100 + 5);
        ck_assert_int_eq(y[i], (int32_t)(rows[i] % 3));
    }
    int64_t bad[2] = {1, 5};
    EXPECT_FAIL(ctx, MGRAD_ERR_INVALID, "rows[1] = 5 is outside [0, 5)",
                mgrad_dataset_subset(&out_, ds, bad, 2));
    EXPECT_FAIL(ctx, MGRAD_ERR_INVALID, "n = 0",
                mgrad_dataset_subset(&out_, ds, rows, 0));
    ck_assert_int_eq(mgrad_dataset_get_inputs(s, MGRAD_DTYPE_F64, x, 23), MGRAD_ERR_SIZE);
    ck_assert_int_eq(mgrad_dataset_get_inputs(s, (mgrad_dtype)7, x, 24), MGRAD_ERR_DTYPE);
    ck_assert_int_eq(mgrad_dataset_get_labels(s, y, 3), MGRAD_ERR_SIZE);
    ck_assert_int_eq(mgrad_dataset_get_labels(NULL, y, 3), MGRAD_ERR_NULL);
    float xf[24];
    ck_assert_int_eq(mgrad_dataset_get_inputs(s, MGRAD_DTYPE_F32, xf, 24), MGRAD_OK);
    ck_assert_float_eq(xf[23], 205.0f);
    double one = 1.0;
    int64_t shape1 = 1;
    mgrad_dataset *nolab = NULL;
    ck_assert_int_eq(mgrad_dataset_create(&nolab, ctx, 1, 1, &shape1, MGRAD_DTYPE_F64, &one),
                     MGRAD_OK);
    ck_assert_int_eq(mgrad_dataset_get_labels(nolab, y, 1), MGRAD_ERR_ORDER);
    mgrad_dataset_destroy(nolab);
    mgrad_dataset_destroy(s);
    mgrad_dataset_destroy(ds);
    ck_assert_uint_eq(ctx_bytes(ctx), 0);
    mgrad_context_destroy(ctx);
}
END_TEST

/* ---- compact storage ------------------------------------------------------ */

/* A dataset [n, shape] of ctx's dtype whose value i is vals[(i * 13) % k]
   (every value appears once n * features >= k, 13 being prime to k). */
static mgrad_dataset *levels(mgrad_context *ctx, int64_t n, int32_t ndim, const int64_t *shape,
                             const double *vals, int k)
{
    int64_t f = 1;
    for (int32_t d = 0; d < ndim; d++) f *= shape[d];
    double *x = malloc((size_t)(n * f) * sizeof *x);
    int32_t *y = malloc((size_t)n * sizeof *y);
    for (int64_t i = 0; i < n * f; i++) x[i] = vals[(i * 13) % k];
    for (int64_t r = 0; r < n; r++) y[r] = (int32_t)(r % 3);
    mgrad_dataset *ds = NULL;
    ck_assert_int_eq(mgrad_dataset_create(&ds, ctx, n, ndim, shape, MGRAD_DTYPE_F64, x),
                     MGRAD_OK);
    ck_assert_int_eq(mgrad_dataset_set_labels(ds, y, n, 3), MGRAD_OK);
    free(x);
    free(y);
    return ds;
}

/* k grid values (q - k/2) * step, with -0.0 in place of the first. */
static void grid(double *vals, int k, double step)
{
    for (int q = 0; q < k; q++) vals[q] = (q - k / 2) * step;
    vals[0] = -0.0;
}

/* Both input buffers of a and b ([count] in dtype) are bitwise equal. */
static void same_inputs(const mgrad_dataset *a, const mgrad_dataset *b, mgrad_dtype dtype,
                        int64_t count)
{
    size_t bytes = (size_t)count * (dtype == MGRAD_DTYPE_F32 ? 4 : 8);
    void *xa = malloc(bytes), *xb = malloc(bytes);
    ck_assert_int_eq(mgrad_dataset_get_inputs(a, dtype, xa, count), MGRAD_OK);
    ck_assert_int_eq(mgrad_dataset_get_inputs(b, dtype, xb, count), MGRAD_OK);
    ck_assert_msg(memcmp(xa, xb, bytes) == 0, "inputs differ");
    free(xa);
    free(xb);
}

static mgrad_dataset *copy_of(const mgrad_dataset *ds)
{
    int64_t n = ds->n;
    int64_t *rows = malloc((size_t)n * sizeof *rows);
    for (int64_t i = 0; i < n; i++) rows[i] = i;
    mgrad_dataset *c = NULL;
    ck_assert_int_eq(mgrad_dataset_subset(&c, ds, rows, n), MGRAD_OK);
    free(rows);
    return c;
}

START_TEST(test_compact_round_trip)
{
    for (int dt = 0; dt < 2; dt++) {
        mgrad_dtype dtype = dt ? MGRAD_DTYPE_F64 : MGRAD_DTYPE_F32;
        int64_t es = dt ? 8 : 4;
        mgrad_context *ctx = new_ctx(dtype);
        /* 37 values, 0.0 and -0.0 among them: distinct bit patterns */
        double vals[300];
        grid(vals, 37, 0.3);
        ck_assert(vals[18] == 0.0 && !signbit(vals[18]) && signbit(vals[0]));
        int64_t shape[1] = {7};
        mgrad_dataset *ds = levels(ctx, 40, 1, shape, vals, 37);
        mgrad_dataset *dense = copy_of(ds);
        uint64_t before = ctx_bytes(ctx);
        int64_t bytes = -1;
        ck_assert_int_eq(mgrad_dataset_compact(ds, &bytes), MGRAD_OK);
        ck_assert_ptr_null(ds->inputs);
        ck_assert_ptr_nonnull(ds->codes);
        ck_assert_int_eq(ds->palette_len, 37);
        ck_assert_int_eq(bytes, 280 + 37 * es);
        ck_assert_uint_eq(before - ctx_bytes(ctx), (uint64_t)(280 * es - bytes));
        same_inputs(ds, dense, MGRAD_DTYPE_F32, 280);
        same_inputs(ds, dense, MGRAD_DTYPE_F64, 280);
        /* again: nothing to do, the same figure */
        ck_assert_int_eq(mgrad_dataset_compact(ds, NULL), MGRAD_OK);
        ck_assert_int_eq(mgrad_dataset_compact(ds, &bytes), MGRAD_OK);
        ck_assert_int_eq(bytes, 280 + 37 * es);
        mgrad_dataset_destroy(ds);
        mgrad_dataset_destroy(dense);

        /* exactly 256 distinct values: compact; 257: left dense */
        for (int k = 0; k < 300; k++) vals[k] = 0.5 * k - 64;
        int64_t one[1] = {1};
        ds = levels(ctx, 256, 1, one, vals, 256);
        ck_assert_int_eq(mgrad_dataset_compact(ds, &bytes), MGRAD_OK);
        ck_assert_int_eq(ds->palette_len, 256);
        ck_assert_int_eq(bytes, 256 + 256 * es);
        mgrad_dataset_destroy(ds);
        ds = levels(ctx, 1000, 1, one, vals, 257);
        dense = copy_of(ds);
        before = ctx_bytes(ctx);
        ck_assert_int_eq(mgrad_dataset_compact(ds, &bytes), MGRAD_OK);
        ck_assert_ptr_nonnull(ds->inputs);
        ck_assert_ptr_null(ds->codes);
        ck_assert_int_eq(bytes, 1000 * es);
        ck_assert_uint_eq(ctx_bytes(ctx), before);
        same_inputs(ds, dense, dtype, 1000);
        mgrad_dataset_destroy(ds);
        mgrad_dataset_destroy(dense);
        ck_assert_uint_eq(ctx_bytes(ctx), 0);
        mgrad_context_destroy(ctx);
    }
}
END_TEST

/* NaN payloads (which no public call stores, so written here through the
   internal view) and signed zeros are told apart bit for bit. */
START_TEST(test_compact_bitwise)
{
    for (int dt = 0; dt < 2; dt++) {
        mgrad_dtype dtype = dt ? MGRAD_DTYPE_F64 : MGRAD_DTYPE_F32;
        size_t es = dt ? 8 : 4;
        mgrad_context *ctx = new_ctx(dtype);
        double vals[2] = {1.0, 2.0};
        int64_t shape[1] = {4};
        mgrad_dataset *ds = levels(ctx, 3, 1, shape, vals, 2);
        uint64_t nan_a = dt ? 0x7ff8000000000001ull : 0x7fc00001u;
        uint64_t nan_b = dt ? 0xfff4000000000002ull : 0xff800002u; /* signalling */
        uint64_t neg_zero = dt ? 0x8000000000000000ull : 0x80000000u, zero = 0;
        const uint64_t put[6] = {nan_a, nan_b, nan_a, neg_zero, zero, neg_zero};
        for (int i = 0; i < 6; i++) {
            uint32_t u = (uint32_t)put[i];
            memcpy((char *)ds->inputs + (size_t)(2 * i) * es,
                   dt ? (const void *)&put[i] : (const void *)&u, es);
        }
        unsigned char before[12 * 8], after[12 * 8];
        for (int64_t r = 0; r < 3; r++) mgr_dataset_copy_row(ds, r, before + r * 4 * es);
        ck_assert_int_eq(mgrad_dataset_compact(ds, NULL), MGRAD_OK);
        ck_assert_ptr_nonnull(ds->codes);
        /* nan_a, nan_b, -0, 0, and 2.0 at the odd positions */
        ck_assert_int_eq(ds->palette_len, 5);
        for (int64_t r = 0; r < 3; r++) mgr_dataset_copy_row(ds, r, after + r * 4 * es);
        ck_assert(memcmp(before, after, 12 * es) == 0);
        ck_assert_int_eq(mgrad_dataset_get_inputs(ds, dtype, after, 12), MGRAD_OK);
        ck_assert(memcmp(before, after, 12 * es) == 0);
        mgrad_dataset_destroy(ds);
        mgrad_context_destroy(ctx);
    }
}
END_TEST

/* Call `call` on ds with allocation k failing, k = 0, 1, ...: each failure
   is NOMEM with a message and leaves ds as it was (storage, values,
   memory).  nfail: the number of failures before the call succeeded. */
#define EACH_ALLOC_FAILS(ctx, fa, ds, call, nfail)                                             \
    do {                                                                                       \
        mgrad_dataset *ref_ = copy_of(ds);                                                     \
        for (long k_ = 0;; k_++) {                                                             \
            int compact_ = (ds)->codes != NULL;                                                \
            uint64_t mem_ = ctx_bytes(ctx);                                                    \
            (fa)->fail_at = (fa)->attempts + k_;                                               \
            mgrad_context_clear_error(ctx);                                                    \
            mgrad_status s_ = (call);                                                          \
            (fa)->fail_at = -1;                                                                \
            if (s_ == MGRAD_OK) {                                                              \
                (nfail) = k_;                                                                  \
                break;                                                                         \
            }                                                                                  \
            ck_assert_int_eq(s_, MGRAD_ERR_NOMEM);                                             \
            ck_assert(mgrad_context_last_error(ctx)[0] != '\0');                               \
            ck_assert_int_eq((ds)->codes != NULL, compact_);                                   \
            ck_assert_uint_eq(ctx_bytes(ctx), mem_);                                           \
            same_inputs(ds, ref_, (ctx)->dtype, (ds)->n *(ds)->features);                      \
        }                                                                                      \
        mgrad_dataset_destroy(ref_);                                                           \
    } while (0)

START_TEST(test_compact_nomem)
{
    fail_alloc fa = {0, -1};
    mgrad_context_options o = MGRAD_CONTEXT_OPTIONS_INIT;
    o.dtype = MGRAD_DTYPE_F32;
    o.malloc_fn = fail_malloc;
    o.free_fn = fail_free;
    o.alloc_user_data = &fa;
    mgrad_context *ctx = NULL;
    ck_assert_int_eq(mgrad_context_create(&ctx, &o), MGRAD_OK);
    double vals[20];
    grid(vals, 20, 0.25);
    int64_t shape[2] = {2, 3};
    mgrad_dataset *ds = levels(ctx, 9, 2, shape, vals, 20);
    long nfail = -1;
    /* the table, the codes, the palette */
    EACH_ALLOC_FAILS(ctx, &fa, ds, mgrad_dataset_compact(ds, NULL), nfail);
    ck_assert_int_eq(nfail, 3);
    ck_assert_ptr_nonnull(ds->codes);
    /* a new palette */
    EACH_ALLOC_FAILS(ctx, &fa, ds, mgrad_dataset_scale(ds, 0.5, 1.0), nfail);
    ck_assert_int_eq(nfail, 1);
    ck_assert_ptr_nonnull(ds->codes);
    /* statistics, then the dense array */
    EACH_ALLOC_FAILS(ctx, &fa, ds,
                     mgrad_dataset_normalize(ds, NULL, MGRAD_NORMALIZE_PER_FEATURE), nfail);
    ck_assert_int_eq(nfail, 2);
    ck_assert_ptr_null(ds->codes);
    mgrad_dataset_destroy(ds);
    ck_assert_uint_eq(ctx_bytes(ctx), 0);
    mgrad_context_destroy(ctx);
}
END_TEST

/* Every transform on a compact dataset gives the bits it gives on the dense
   copy; those exact on the palette keep the dataset compact. */
START_TEST(test_compact_transforms)
{
    for (int dt = 0; dt < 2; dt++) {
        mgrad_dtype dtype = dt ? MGRAD_DTYPE_F64 : MGRAD_DTYPE_F32;
        mgrad_context *ctx = new_ctx(dtype);
        double vals[50];
        grid(vals, 50, 0.37);
        int64_t shapes[2][3] = {{2, 3, 2}, {1, 4, 3}};
        for (int sh = 0; sh < 2; sh++) {
            mgrad_dataset *d = levels(ctx, 30, 3, shapes[sh], vals, 50);
            mgrad_dataset *c = copy_of(d);
            int64_t count = 30 * 12;
            ck_assert_int_eq(mgrad_dataset_compact(c, NULL), MGRAD_OK);
            ck_assert_ptr_nonnull(c->codes);
            /* scale, global normalisation: on the palette */
            ck_assert_int_eq(mgrad_dataset_scale(d, 0.731, -1.09), MGRAD_OK);
            ck_assert_int_eq(mgrad_dataset_scale(c, 0.731, -1.09), MGRAD_OK);
            ck_assert_ptr_nonnull(c->codes);
            same_inputs(c, d, dtype, count);
            ck_assert_int_eq(mgrad_dataset_normalize(d, NULL, MGRAD_NORMALIZE_GLOBAL),
                             MGRAD_OK);
            ck_assert_int_eq(mgrad_dataset_normalize(c, NULL, MGRAD_NORMALIZE_GLOBAL),
                             MGRAD_OK);
            ck_assert_ptr_nonnull(c->codes);
            same_inputs(c, d, dtype, count);
            /* an overflow in f32 is refused alike, with the same message */
            if (!dt) {
                char msg[512];
                ck_assert_int_eq(mgrad_dataset_scale(d, 1e39, 0.0), MGRAD_ERR_NONFINITE);
                snprintf(msg, sizeof msg, "%s", mgrad_context_last_error(ctx));
                ck_assert_int_eq(mgrad_dataset_scale(c, 1e39, 0.0), MGRAD_ERR_NONFINITE);
                ck_assert_str_eq(mgrad_context_last_error(ctx), msg);
                same_inputs(c, d, dtype, count);
            }
            /* subset (with repeats) and split: compact, a copy of the palette */
            int64_t rows[5] = {29, 0, 7, 7, 12};
            mgrad_dataset *sd = NULL, *sc = NULL;
            ck_assert_int_eq(mgrad_dataset_subset(&sd, d, rows, 5), MGRAD_OK);
            ck_assert_int_eq(mgrad_dataset_subset(&sc, c, rows, 5), MGRAD_OK);
            ck_assert_ptr_nonnull(sc->codes);
            same_inputs(sc, sd, dtype, 5 * 12);
            mgrad_dataset *ad = NULL, *bd = NULL, *ac = NULL, *bc = NULL;
            ck_assert_int_eq(mgrad_dataset_split(&ad, &bd, d, 11, 3), MGRAD_OK);
            ck_assert_int_eq(mgrad_dataset_split(&ac, &bc, c, 11, 3), MGRAD_OK);
            ck_assert(ac->codes != NULL && bc->codes != NULL);
            same_inputs(ac, ad, dtype, 11 * 12);
            same_inputs(bc, bd, dtype, 19 * 12);
            int32_t la[19], lb[19];
            mgrad_dataset_get_labels(bc, la, 19);
            mgrad_dataset_get_labels(bd, lb, 19);
            ck_assert(memcmp(la, lb, sizeof la) == 0);
            /* statistics of a compact reference, applied to a dense set */
            ck_assert_int_eq(mgrad_dataset_normalize(sd, ad, MGRAD_NORMALIZE_PER_FEATURE),
                             MGRAD_OK);
            ck_assert_int_eq(mgrad_dataset_normalize(sc, ac, MGRAD_NORMALIZE_PER_FEATURE),
                             MGRAD_OK);
            same_inputs(sc, sd, dtype, 5 * 12);
            /* per channel: one map per channel, so dense unless one channel */
            ck_assert_int_eq(mgrad_dataset_normalize(bd, NULL, MGRAD_NORMALIZE_PER_CHANNEL),
                             MGRAD_OK);
            ck_assert_int_eq(mgrad_dataset_normalize(bc, NULL, MGRAD_NORMALIZE_PER_CHANNEL),
                             MGRAD_OK);
            ck_assert_int_eq(bc->codes != NULL, shapes[sh][0] == 1);
            same_inputs(bc, bd, dtype, 19 * 12);
            /* per feature: dense */
            ck_assert_int_eq(mgrad_dataset_normalize(d, NULL, MGRAD_NORMALIZE_PER_FEATURE),
                             MGRAD_OK);
            ck_assert_int_eq(mgrad_dataset_normalize(c, NULL, MGRAD_NORMALIZE_PER_FEATURE),
                             MGRAD_OK);
            ck_assert_ptr_null(c->codes);
            same_inputs(c, d, dtype, count);
            mgrad_dataset *all[] = {d, c, sd, sc, ad, bd, ac, bc};
            for (int i = 0; i < 8; i++) mgrad_dataset_destroy(all[i]);
        }
        ck_assert_uint_eq(ctx_bytes(ctx), 0);
        mgrad_context_destroy(ctx);
    }
}
END_TEST

/* Byte IDX images load compact, with the values the dense loader stored:
   (real)(b * scale) for byte b.  A palette entry that no pixel uses may be
   out of range without an error, as on the dense path. */
START_TEST(test_compact_idx_loader)
{
    for (int dt = 0; dt < 2; dt++) {
        mgrad_dtype dtype = dt ? MGRAD_DTYPE_F64 : MGRAD_DTYPE_F32;
        mgrad_context *ctx = new_ctx(dtype);
        uint8_t img[64];
        uint32_t di[3] = {3, 2, 2};
        for (int type = 0x08; type <= 0x09; type++) {
            const char *p =
                write_gz("c.idx.gz", img, make_idx(img, (uint8_t)type, 3, di, pixels, 12));
            mgrad_dataset *ds = NULL;
            ck_assert_int_eq(mgrad_dataset_load_idx(&ds, ctx, p, NULL, 0, 1.0 / 255.0),
                             MGRAD_OK);
            ck_assert_ptr_nonnull(ds->codes);
            int64_t bytes = 0;
            ck_assert_int_eq(mgrad_dataset_compact(ds, &bytes), MGRAD_OK);
            ck_assert_int_eq(bytes, 12 + 256 * (dt ? 8 : 4));
            double x[12];
            float xf[12];
            ck_assert_int_eq(
                mgrad_dataset_get_inputs(ds, dtype, dt ? (void *)x : (void *)xf, 12), MGRAD_OK);
            for (int i = 0; i < 12; i++) {
                double v = type == 0x08 ? (double)pixels[i] : (double)(int8_t)pixels[i];
                if (dt) {
                    double want = v * (1.0 / 255.0);
                    ck_assert(memcmp(&x[i], &want, sizeof want) == 0);
                } else {
                    float want = (float)(v * (1.0 / 255.0));
                    ck_assert(memcmp(&xf[i], &want, sizeof want) == 0);
                }
            }
            mgrad_dataset_destroy(ds);
        }
        if (!dt) {
            /* 255 * 3e36 overflows f32, 100 * 3e36 does not */
            uint8_t small[4] = {0, 100, 7, 100}, big[4] = {0, 100, 255, 1};
            uint32_t d1[1] = {4};
            const char *ps = write_file("s.idx", img, make_idx(img, 0x08, 1, d1, small, 4));
            mgrad_dataset *ds = NULL;
            ck_assert_int_eq(mgrad_dataset_load_idx(&ds, ctx, ps, NULL, 0, 3e36), MGRAD_OK);
            ck_assert_int_eq(mgrad_dataset_scale(ds, 1.1, 0.0), MGRAD_OK);
            float x[4];
            ck_assert_int_eq(mgrad_dataset_get_inputs(ds, MGRAD_DTYPE_F32, x, 4), MGRAD_OK);
            ck_assert_float_eq(x[1], (float)(1.1 * (double)(float)(100 * 3e36)));
            mgrad_dataset_destroy(ds);
            const char *pb = write_file("b.idx", img, make_idx(img, 0x08, 1, d1, big, 4));
            EXPECT_FAIL(ctx, MGRAD_ERR_NONFINITE, "value 2 (example 2) is 255",
                        mgrad_dataset_load_idx(&out_, ctx, pb, NULL, 0, 3e36));
        }
        ck_assert_uint_eq(ctx_bytes(ctx), 0);
        mgrad_context_destroy(ctx);
    }
}
END_TEST

/* ---- a whole run on compact data ---- */

enum { CW_F = 6, CW_C = 3, CW_T = 12, CW_B = 6, CW_NMETA = 4 };

typedef struct run_result {
    double phi, loss, acc;
    int64_t P;
    double *theta, *hu;
    double *grad[CW_NMETA], *value[CW_NMETA];
    int64_t len[CW_NMETA];
} run_result;

/* Train and reverse an MLP with fixed data weights and LR schedule, data
   weights, INPUTS and pool weight metaparameters; training, validation and
   pool sets compact or dense. */
static void compact_run(mgrad_dtype dtype, int compact, run_result *out)
{
    mgrad_context_options co = MGRAD_CONTEXT_OPTIONS_INIT;
    co.dtype = dtype;
    co.seed = 7;
    mgrad_context *ctx = NULL;
    ck_assert_int_eq(mgrad_context_create(&ctx, &co), MGRAD_OK);
    int64_t shape[1] = {CW_F};
    mgrad_model *model = NULL;
    ck_assert_int_eq(mgrad_model_create(&model, ctx, 1, shape), MGRAD_OK);
    ck_assert_int_eq(mgrad_model_add_dense(model, 8, MGRAD_INIT_DEFAULT), MGRAD_OK);
    ck_assert_int_eq(mgrad_model_add_activation(model, MGRAD_ACTIVATION_TANH), MGRAD_OK);
    ck_assert_int_eq(mgrad_model_add_dense(model, CW_C, MGRAD_INIT_DEFAULT), MGRAD_OK);
    double vals[11];
    grid(vals, 11, 0.3);
    mgrad_dataset *train = levels(ctx, 24, 1, shape, vals, 11);
    mgrad_dataset *val = levels(ctx, 16, 1, shape, vals, 7);
    mgrad_dataset *pool = levels(ctx, 10, 1, shape, vals + 2, 9);
    double w[24];
    for (int i = 0; i < 24; i++) w[i] = 0.5 + 0.1 * (i % 7);
    ck_assert_int_eq(mgrad_dataset_set_weights(train, MGRAD_DTYPE_F64, w, 24), MGRAD_OK);
    if (compact) {
        mgrad_dataset *sets[3] = {train, val, pool};
        for (int i = 0; i < 3; i++) {
            ck_assert_int_eq(mgrad_dataset_compact(sets[i], NULL), MGRAD_OK);
            ck_assert_ptr_nonnull(sets[i]->codes);
        }
    }
    mgrad_run_options o = MGRAD_RUN_OPTIONS_INIT;
    o.steps = CW_T;
    o.batch_size = CW_B;
    o.shuffle_seed = 5;
    o.lr = 0.2;
    o.momentum = 0.9;
    o.weight_decay = 0.01;
    o.validation = val;
    mgrad_run *run = NULL;
    ck_assert_int_eq(mgrad_run_create(&run, model, train, &o), MGRAD_OK);
    /* in use: read-only */
    EXPECT_FAIL(ctx, MGRAD_ERR_ORDER, "in use", mgrad_dataset_compact(train, NULL));
    EXPECT_FAIL(ctx, MGRAD_ERR_ORDER, "in use", mgrad_dataset_compact(val, NULL));
    static const mgrad_meta_kind kinds[CW_NMETA] = {MGRAD_META_LR_SCHEDULE,
                                                    MGRAD_META_DATA_WEIGHTS, MGRAD_META_INPUTS,
                                                    MGRAD_META_POOL_WEIGHTS};
    static const int64_t rows[3] = {3, 17, 8};
    mgrad_meta *metas[CW_NMETA];
    for (int k = 0; k < CW_NMETA; k++) {
        mgrad_meta_options mo = MGRAD_META_OPTIONS_INIT;
        mo.step_begin = 2;
        mo.step_end = 9;
        mo.rows = rows;
        mo.num_rows = 3;
        mo.step = 7;
        mo.pool = pool;
        if (kinds[k] != MGRAD_META_DATA_WEIGHTS) mo.step_begin = mo.step_end = 0;
        if (kinds[k] != MGRAD_META_INPUTS) {
            mo.rows = NULL;
            mo.num_rows = 0;
        }
        if (kinds[k] != MGRAD_META_POOL_WEIGHTS) {
            mo.step = 0;
            mo.pool = NULL;
        }
        ck_assert_int_eq(mgrad_run_add_meta(&metas[k], run, kinds[k], &mo), MGRAD_OK);
    }
    double lr[CW_T];
    for (int t = 0; t < CW_T; t++) lr[t] = 0.25 - 0.01 * t;
    ck_assert_int_eq(mgrad_meta_set_value(metas[0], MGRAD_DTYPE_F64, lr, CW_T), MGRAD_OK);
    for (int k = 0; k < CW_NMETA; k++) {
        ck_assert_int_eq(mgrad_meta_size(metas[k], &out->len[k]), MGRAD_OK);
        out->value[k] = malloc((size_t)out->len[k] * sizeof(double));
        out->grad[k] = malloc((size_t)out->len[k] * sizeof(double));
        /* the INPUTS metaparameter starts from the dataset's rows */
        ck_assert_int_eq(
            mgrad_meta_get_value(metas[k], MGRAD_DTYPE_F64, out->value[k], out->len[k]),
            MGRAD_OK);
    }
    ck_assert_int_eq(mgrad_run_train(run, &out->phi), MGRAD_OK);
    ck_assert_int_eq(mgrad_run_reverse(run), MGRAD_OK);
    for (int k = 0; k < CW_NMETA; k++)
        ck_assert_int_eq(
            mgrad_meta_get_grad(metas[k], MGRAD_DTYPE_F64, out->grad[k], out->len[k]),
            MGRAD_OK);
    ck_assert_int_eq(mgrad_run_num_params(run, &out->P), MGRAD_OK);
    out->theta = malloc((size_t)out->P * sizeof(double));
    out->hu = malloc((size_t)out->P * sizeof(double));
    double *u = malloc((size_t)out->P * sizeof(double));
    uint64_t st = 99;
    tu_fill(u, (size_t)out->P, &st, 1.0);
    ck_assert_int_eq(mgrad_run_get_params(run, MGRAD_DTYPE_F64, out->theta, out->P), MGRAD_OK);
    ck_assert_int_eq(mgrad_run_hvp(run, MGRAD_DTYPE_F64, u, out->hu, out->P), MGRAD_OK);
    ck_assert_int_eq(mgrad_run_evaluate(run, val, &out->loss, &out->acc), MGRAD_OK);
    free(u);
    mgrad_run_destroy(run);
    /* the caller's handle alone again: writable */
    ck_assert_int_eq(mgrad_dataset_compact(train, NULL), MGRAD_OK);
    mgrad_dataset_destroy(train);
    mgrad_dataset_destroy(val);
    mgrad_dataset_destroy(pool);
    mgrad_model_destroy(model);
    ck_assert_uint_eq(ctx_bytes(ctx), 0);
    mgrad_context_destroy(ctx);
}

static void free_result(run_result *r)
{
    free(r->theta);
    free(r->hu);
    for (int k = 0; k < CW_NMETA; k++) {
        free(r->grad[k]);
        free(r->value[k]);
    }
}

#define SAME_BITS(a, b, n, what)                                                               \
    ck_assert_msg(memcmp((a), (b), (size_t)(n) * sizeof(double)) == 0, "%s differs", what)

START_TEST(test_compact_training_identical)
{
    for (int dt = 0; dt < 2; dt++) {
        run_result d, c;
        memset(&d, 0, sizeof d);
        memset(&c, 0, sizeof c);
        compact_run(dt ? MGRAD_DTYPE_F64 : MGRAD_DTYPE_F32, 0, &d);
        compact_run(dt ? MGRAD_DTYPE_F64 : MGRAD_DTYPE_F32, 1, &c);
        ck_assert(isfinite(d.phi));
        SAME_BITS(&d.phi, &c.phi, 1, "phi");
        SAME_BITS(&d.loss, &c.loss, 1, "validation loss");
        SAME_BITS(&d.acc, &c.acc, 1, "validation accuracy");
        ck_assert_int_eq(d.P, c.P);
        SAME_BITS(d.theta, c.theta, d.P, "theta_T");
        SAME_BITS(d.hu, c.hu, d.P, "H u");
        for (int k = 0; k < CW_NMETA; k++) {
            ck_assert_int_eq(d.len[k], c.len[k]);
            SAME_BITS(d.value[k], c.value[k], d.len[k], "a metaparameter's initial value");
            SAME_BITS(d.grad[k], c.grad[k], d.len[k], "a metagradient");
            double norm = 0;
            for (int64_t i = 0; i < d.len[k]; i++) norm += fabs(d.grad[k][i]);
            ck_assert_msg(norm > 0, "metagradient %d is zero", k);
        }
        free_result(&d);
        free_result(&c);
    }
}
END_TEST

Suite *make_suite(void)
{
    Suite *s = suite_create("data");
    TCase *tc = tcase_create("loaders");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_idx_round_trip);
    tcase_add_test(tc, test_idx_element_types);
    tcase_add_test(tc, test_idx_errors);
    tcase_add_test(tc, test_npy_round_trip);
    tcase_add_test(tc, test_npy_errors);
    tcase_add_test(tc, test_csv_round_trip);
    tcase_add_test(tc, test_csv_errors);
    tcase_add_test(tc, test_corrupt_corpus);
    tcase_add_test(tc, test_fashion_mnist_missing);
    suite_add_tcase(s, tc);

    TCase *fm = tcase_create("fashion_mnist");
    if (fashion_mnist_installed())
        tcase_add_test(fm, test_fashion_mnist_real);
    else
        fprintf(stderr, "test_data: Fashion-MNIST not installed in %s; skipping the "
                "real-data test (apt-get install dataset-fashion-mnist)\n",
                MGRAD_FASHION_MNIST_DIR);
    suite_add_tcase(s, fm);

    TCase *tr = tcase_create("transforms");
    tcase_add_test(tr, test_normalize);
    tcase_add_test(tr, test_scale);
    tcase_add_test(tr, test_split);
    tcase_add_test(tr, test_subset_and_getters);
    suite_add_tcase(s, tr);

    TCase *cp = tcase_create("compact");
    tcase_add_checked_fixture(cp, setup, teardown);
    tcase_add_test(cp, test_compact_round_trip);
    tcase_add_test(cp, test_compact_bitwise);
    tcase_add_test(cp, test_compact_nomem);
    tcase_add_test(cp, test_compact_transforms);
    tcase_add_test(cp, test_compact_idx_loader);
    tcase_add_test(cp, test_compact_training_identical);
    suite_add_tcase(s, cp);
    return s;
}
