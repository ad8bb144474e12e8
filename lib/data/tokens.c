/*
 * tokens.c - token datasets: examples that are fixed-length sequences of
 * integer ids, stored exactly (one byte per id for vocabularies of at most
 * 256, the identity palette 0..vocab-1).
 */
#include <string.h>

#include "data/io.h"
#include "metagrad/data.h"

/* The largest vocabulary whose ids a dtype holds exactly: every integer up
   to 2^24 is a float, and ids are int32 (so below 2^31) in f64. */
static int32_t max_vocab(mgrad_dtype dtype)
{
    return dtype == MGRAD_DTYPE_F32 ? (int32_t)1 << 24 : INT32_MAX;
}

mgrad_status mgrad_dataset_create_tokens(mgrad_dataset **out, mgrad_context *ctx, int64_t n,
                                         int64_t length, const int32_t *tokens,
                                         int32_t vocab)
{
    static const char fn[] = "mgrad_dataset_create_tokens";
    if (ctx == NULL) return MGRAD_ERR_NULL;
    MGRAD_RETURN_IF(ctx, out == NULL || tokens == NULL, MGRAD_ERR_NULL,
                    "%s: out and tokens must not be NULL", fn);
    MGRAD_RETURN_IF(ctx, n < 1, MGRAD_ERR_INVALID, "%s: n = %lld, need at least 1 example",
                    fn, (long long)n);
    MGRAD_RETURN_IF(ctx, length < 2, MGRAD_ERR_INVALID,
                    "%s: length = %lld; an example holds L + 1 >= 2 tokens (the model "
                    "reads the first L and predicts each next one)", fn, (long long)length);
    MGRAD_RETURN_IF(ctx, n > INT64_MAX / length, MGRAD_ERR_INVALID,
                    "%s: %lld examples of %lld tokens overflow", fn, (long long)n,
                    (long long)length);
    int32_t top = max_vocab(ctx->dtype);
    MGRAD_RETURN_IF(ctx, vocab < 2 || vocab > top, MGRAD_ERR_INVALID,
                    "%s: vocab = %d; need 2 to %d (the most ids %s holds exactly)", fn,
                    (int)vocab, (int)top, mgr_dtype_name(ctx->dtype));
    /* Every id checked before anything is allocated: a failure leaves
       nothing behind and names the first bad id. */
    int64_t count = n * length;
    for (int64_t i = 0; i < count; i++)
        MGRAD_RETURN_IF(ctx, tokens[i] < 0 || tokens[i] >= vocab, MGRAD_ERR_INVALID,
                        "%s: token %d at example %lld, position %lld is outside [0, %d)",
                        fn, (int)tokens[i], (long long)(i / length),
                        (long long)(i % length), (int)vocab);

    int64_t shape[1] = {length};
    mgrad_dataset *ds = NULL;
    if (vocab <= 256) {
        /* The code is the id and the palette the identity, so a byte-level
           vocabulary costs one byte per token. */
        MGRAD_FORWARD(mgr_dataset_alloc_compact(ctx, fn, n, 1, shape, 0, vocab, &ds));
        for (int32_t c = 0; c < vocab; c++) mgr_put_real(ds->palette, ctx->dtype, (size_t)c, c);
        for (int64_t i = 0; i < count; i++) ds->codes[i] = (uint8_t)tokens[i];
    } else {
        MGRAD_FORWARD(mgr_dataset_alloc(ctx, fn, n, 1, shape, 0, &ds));
        for (int64_t i = 0; i < count; i++)
            mgr_put_real(ds->inputs, ctx->dtype, (size_t)i, (double)tokens[i]);
    }
    ds->vocab = vocab;
    *out = ds;
    return MGRAD_OK;
}

mgrad_status mgrad_dataset_vocab(const mgrad_dataset *ds, int32_t *out)
{
    if (ds == NULL) return MGRAD_ERR_NULL;
    MGRAD_RETURN_IF(ds->ctx, out == NULL, MGRAD_ERR_NULL,
                    "mgrad_dataset_vocab: out must not be NULL");
    *out = ds->vocab;
    return MGRAD_OK;
}

mgrad_status mgrad_dataset_get_tokens(const mgrad_dataset *ds, int32_t *out, int64_t count)
{
    static const char fn[] = "mgrad_dataset_get_tokens";
    if (ds == NULL) return MGRAD_ERR_NULL;
    mgrad_context *ctx = ds->ctx;
    MGRAD_RETURN_IF(ctx, out == NULL, MGRAD_ERR_NULL, "%s: out must not be NULL", fn);
    MGRAD_RETURN_IF(ctx, ds->vocab == 0, MGRAD_ERR_ORDER,
                    "%s: the dataset holds no tokens (create it with "
                    "mgrad_dataset_create_tokens or the text loader)", fn);
    MGRAD_RETURN_IF(ctx, count != ds->n * ds->features, MGRAD_ERR_SIZE,
                    "%s: count = %lld but the dataset holds %lld tokens", fn,
                    (long long)count, (long long)(ds->n * ds->features));
    /* The values are integers in [0, vocab) (transforms refuse token
       datasets), so the conversion back is exact. */
    if (ds->codes != NULL) {
        int32_t id[256];
        for (int32_t c = 0; c < ds->palette_len; c++)
            id[c] = (int32_t)mgr_get_real(ds->palette, ctx->dtype, (size_t)c);
        for (int64_t i = 0; i < count; i++) out[i] = id[ds->codes[i]];
    } else {
        for (int64_t i = 0; i < count; i++)
            out[i] = (int32_t)mgr_get_real(ds->inputs, ctx->dtype, (size_t)i);
    }
    return MGRAD_OK;
}
