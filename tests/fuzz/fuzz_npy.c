/*
 * fuzz_npy.c - libFuzzer target for mgrad_dataset_load_npy.  The input is
 * tried as an inputs file (no labels) and as the labels file of a valid
 * (3, 2) float32 file.
 */
#include "fuzz_common.h"

typedef struct npy_args { const char *inputs, *labels; } npy_args;

static mgrad_status load(mgrad_dataset **out, mgrad_context *ctx, const void *arg)
{
    const npy_args *a = arg;
    return mgrad_dataset_load_npy(out, ctx, a->inputs, a->labels, 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static char partner_path[64];
    if (partner_path[0] == '\0') {
        static const char header[] =
            "\x93NUMPY\x01\x00\x76\x00{'descr': '<f4', 'fortran_order': False, "
            "'shape': (3, 2), }";
        uint8_t file[128 + 24];
        memset(file, ' ', sizeof file);
        memcpy(file, header, sizeof header - 1);
        file[127] = '\n';
        memset(file + 128, 0, 24); /* six zeros */
        fuzz_memfile(file, sizeof file, partner_path, sizeof partner_path);
    }
    char path[64];
    int fd = fuzz_memfile(data, size, path, sizeof path);
    npy_args as_inputs = {path, NULL}, as_labels = {partner_path, path};
    fuzz_run(load, &as_inputs);
    fuzz_run(load, &as_labels);
    close(fd);
    return 0;
}
