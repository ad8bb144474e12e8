/*
 * fuzz_csv.c - libFuzzer target for mgrad_dataset_load_csv.  The input is
 * tried without a header or labels, and with a header and labels in
 * column 0.
 */
#include "fuzz_common.h"

typedef struct csv_args { const char *path; int32_t label_column, has_header; } csv_args;

static mgrad_status load(mgrad_dataset **out, mgrad_context *ctx, const void *arg)
{
    const csv_args *a = arg;
    return mgrad_dataset_load_csv(out, ctx, a->path, a->label_column, a->has_header, 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char path[64];
    int fd = fuzz_memfile(data, size, path, sizeof path);
    csv_args plain = {path, -1, 0}, labelled = {path, 0, 1};
    fuzz_run(load, &plain);
    fuzz_run(load, &labelled);
    close(fd);
    return 0;
}
