/*
 * fashion_mnist.c - Fashion-MNIST from the Debian package
 * dataset-fashion-mnist, which installs
 *   /usr/share/datasets/fashion-mnist/{train,t10k}-{images-idx3,labels-idx1}-ubyte.gz
 */
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "data/io.h"
#include "metagrad/data.h"

#define FMNIST_SIDE 28
#define FMNIST_CLASSES 10

/* dir/<prefix>-<kind>-ubyte.gz, or the same without .gz when only that
   exists.  Returns 0 when neither exists (buf then holds the .gz name). */
static int find_file(char *buf, size_t cap, const char *dir, const char *prefix,
                     const char *kind)
{
    int n = snprintf(buf, cap, "%s/%s-%s-ubyte.gz", dir, prefix, kind);
    if (n < 0 || (size_t)n >= cap) return 0;
    if (access(buf, F_OK) == 0) return 1;
    buf[n - 3] = '\0';
    if (access(buf, F_OK) == 0) return 1;
    buf[n - 3] = '.';
    return 0;
}

mgrad_status mgrad_dataset_load_fashion_mnist(mgrad_dataset **out, mgrad_context *ctx,
                                              const char *split, const char *dir)
{
    static const char fn[] = "mgrad_dataset_load_fashion_mnist";
    if (ctx == NULL) return MGRAD_ERR_NULL;
    MGRAD_RETURN_IF(ctx, out == NULL || split == NULL, MGRAD_ERR_NULL,
                    "%s: out and split must not be NULL", fn);
    const char *prefix = strcmp(split, "train") == 0 ? "train"
                         : strcmp(split, "test") == 0 ? "t10k" : NULL;
    MGRAD_RETURN_IF(ctx, prefix == NULL, MGRAD_ERR_INVALID,
                    "%s: split \"%.32s\" is neither \"train\" nor \"test\"", fn, split);
    if (dir == NULL) dir = MGRAD_FASHION_MNIST_DIR;
    MGRAD_RETURN_IF(ctx, strlen(dir) > 4000, MGRAD_ERR_INVALID, "%s: dir is too long", fn);

    char images[4096 + 64], labels[4096 + 64];
    int have_images = find_file(images, sizeof images, dir, prefix, "images-idx3");
    int have_labels = find_file(labels, sizeof labels, dir, prefix, "labels-idx1");
    MGRAD_RETURN_IF(ctx, !have_images || !have_labels, MGRAD_ERR_IO,
                    "%s: Fashion-MNIST not found: %s is missing; install it with "
                    "`apt-get install dataset-fashion-mnist` (files in %s) or pass the "
                    "directory that holds the IDX files", fn,
                    !have_images ? images : labels, MGRAD_FASHION_MNIST_DIR);

    mgrad_dataset *ds = NULL;
    MGRAD_FORWARD(mgr_load_idx(&ds, ctx, fn, images, labels, FMNIST_CLASSES, 1.0 / 255.0));
    if (ds->ndim != 2 || ds->shape[0] != FMNIST_SIDE || ds->shape[1] != FMNIST_SIDE) {
        mgrad_dataset_destroy(ds);
        return mgr_error(ctx, MGRAD_ERR_FORMAT, "%s: %s: images are not 28 x 28", fn,
                         images);
    }
    /* One channel, for convolutions: {C, H, W}. */
    ds->ndim = 3;
    ds->shape[0] = 1;
    ds->shape[1] = FMNIST_SIDE;
    ds->shape[2] = FMNIST_SIDE;
    *out = ds;
    return MGRAD_OK;
}
