/*
 * fuzz_idx.c - libFuzzer target for mgrad_dataset_load_idx.  The input is
 * tried as an images file (no labels) and as the labels file of a valid
 * 3-image file.
 */
#include "fuzz_common.h"

typedef struct idx_args { const char *images, *labels; } idx_args;

static mgrad_status load(mgrad_dataset **out, mgrad_context *ctx, const void *arg)
{
    const idx_args *a = arg;
    return mgrad_dataset_load_idx(out, ctx, a->images, a->labels, 0, 1.0 / 255.0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* 3 images of 2 x 2 u8, kept open for the process's life. */
    static const uint8_t partner[] = {0, 0, 8, 3, 0, 0, 0, 3, 0, 0, 0, 2, 0, 0, 0, 2,
                                      1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12};
    static char partner_path[64];
    if (partner_path[0] == '\0')
        fuzz_memfile(partner, sizeof partner, partner_path, sizeof partner_path);
    char path[64];
    int fd = fuzz_memfile(data, size, path, sizeof path);
    idx_args as_images = {path, NULL}, as_labels = {partner_path, path};
    fuzz_run(load, &as_images);
    fuzz_run(load, &as_labels);
    close(fd);
    return 0;
}
