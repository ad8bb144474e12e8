/*
 * store.c - snapshot slots in RAM, with the overflow spilled to one file.
 *
 * Slots [0, ram_slots) live in RAM, allocated on first save and kept until
 * destroy (schedules reuse slots constantly; freeing would only churn).  The
 * low slots stay in RAM because every schedule numbers its long-lived
 * checkpoints (s_0 first) from 0.  Slots [ram_slots, slots) live at fixed
 * offsets of one spill file.  The file is unlinked as soon as it is created:
 * it then disappears when the store closes it, even if the process dies
 * first, so a crashed run never leaves gigabytes behind in spill_dir.
 *
 * Bytes go to disk and back verbatim, so results with and without spill
 * are identical.
 *
 * Accounting: peak bytes are the RAM held by slot buffers (what the budget
 * limits); spilled bytes are the size of the spill file, i.e. the disk the
 * run occupies, not the write traffic.
 */
#include "store/store.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <unistd.h>

#include "base/pool.h"

typedef struct slot_info {
    int64_t step;
    int64_t memo_step; /* the step the memo holds, -1: none */
    int saved;
    void *ram;        /* RAM slots: NULL until first save; the memo follows
                         the state's slot_bytes */
} slot_info;

struct mgr_store {
    mgrad_context *ctx;
    int64_t slots, ram_slots;
    size_t slot_bytes, memo_bytes;
    slot_info *info;
    int fd;                  /* spill file, -1 when none */
    char *spill_path;        /* for messages; the file itself is unlinked */
    uint64_t ram_bytes, peak_bytes;
    uint64_t spill_extent;   /* bytes of the spill file in use (high water) */
};

mgrad_status mgr_store_create(mgrad_context *ctx, int64_t slots, size_t slot_bytes,
                              size_t memo_bytes, uint64_t ram_budget_bytes,
                              const char *spill_dir, mgr_store **out)
{
    MGRAD_RETURN_IF(ctx, out == NULL, MGRAD_ERR_NULL, "mgr_store_create: NULL out");
    *out = NULL;
    MGRAD_RETURN_IF(ctx, slots < 1, MGRAD_ERR_INVALID,
                    "checkpoint store needs at least 1 slot (got %lld)", (long long)slots);
    MGRAD_RETURN_IF(ctx, slot_bytes == 0, MGRAD_ERR_INVALID,
                    "checkpoint store: state size of 0 bytes");
    MGRAD_RETURN_IF(ctx, (uint64_t)slots > SIZE_MAX / sizeof(slot_info), MGRAD_ERR_INVALID,
                    "checkpoint store: %lld slots is too many", (long long)slots);

    MGRAD_RETURN_IF(ctx, memo_bytes > SIZE_MAX - slot_bytes, MGRAD_ERR_INVALID,
                    "checkpoint store: slot of %zu + %zu bytes is too large", slot_bytes,
                    memo_bytes);
    uint64_t ram_slot_bytes = (uint64_t)slot_bytes + memo_bytes;
    int64_t ram_slots = slots;
    if (ram_budget_bytes > 0 && ram_budget_bytes / ram_slot_bytes < (uint64_t)slots)
        ram_slots = (int64_t)(ram_budget_bytes / ram_slot_bytes);
    if (ram_slots < slots && spill_dir == NULL) {
        return mgr_error(ctx, MGRAD_ERR_BUDGET,
                         "the checkpoint schedule needs %lld state slots of %zu bytes "
                         "(%.0f bytes) but options.checkpoint_budget_bytes = %llu holds %lld; "
                         "raise the budget, use fewer slots, or set options.spill_dir",
                         (long long)slots, (size_t)ram_slot_bytes,
                         (double)slots * (double)ram_slot_bytes,
                         (unsigned long long)ram_budget_bytes, (long long)ram_slots);
    }
    /* off_t must hold the whole spill file. */
    int64_t spill_slots = slots - ram_slots;
    MGRAD_RETURN_IF(ctx, spill_slots > 0 && (uint64_t)spill_slots > (uint64_t)INT64_MAX / slot_bytes,
                    MGRAD_ERR_INVALID, "checkpoint store: spill file of %lld x %zu bytes is too large",
                    (long long)spill_slots, slot_bytes);

    mgr_store *s = mgr_alloc(ctx, sizeof *s);
    MGRAD_RETURN_IF(ctx, s == NULL, MGRAD_ERR_NOMEM, "out of memory allocating the checkpoint store");
    memset(s, 0, sizeof *s);
    s->ctx = ctx;
    s->slots = slots;
    s->ram_slots = ram_slots;
    s->slot_bytes = slot_bytes;
    s->memo_bytes = memo_bytes;
    s->fd = -1;
    s->info = mgr_calloc(ctx, (size_t)slots, sizeof *s->info);
    if (s->info == NULL) {
        mgr_free(ctx, s);
        return mgr_error(ctx, MGRAD_ERR_NOMEM,
                         "out of memory allocating %lld checkpoint slot records", (long long)slots);
    }

    if (spill_slots > 0) {
        /* Create the file now, so an unusable directory fails the run's
           creation rather than its reverse pass. */
        static const char name[] = "/metagrad-spill-XXXXXX";
        size_t dlen = strlen(spill_dir);
        s->spill_path = mgr_alloc(ctx, dlen + sizeof name);
        if (s->spill_path == NULL) {
            mgr_store_destroy(s);
            return mgr_error(ctx, MGRAD_ERR_NOMEM, "out of memory for the spill file name");
        }
        memcpy(s->spill_path, spill_dir, dlen);
        memcpy(s->spill_path + dlen, name, sizeof name);
        s->fd = mkstemp(s->spill_path);
        if (s->fd < 0) {
            int e = errno;
            mgrad_status st = mgr_error(ctx, MGRAD_ERR_IO,
                                        "cannot create a spill file in options.spill_dir "
                                        "\"%s\": %s", spill_dir, strerror(e));
            mgr_store_destroy(s);
            return st;
        }
        if (unlink(s->spill_path) != 0) {
            int e = errno;
            mgrad_status st = mgr_error(ctx, MGRAD_ERR_IO, "cannot unlink spill file \"%s\": %s",
                                        s->spill_path, strerror(e));
            mgr_store_destroy(s);
            return st;
        }
    }
    *out = s;
    return MGRAD_OK;
}

void mgr_store_destroy(mgr_store *store)
{
    if (store == NULL) return;
    mgrad_context *ctx = store->ctx;
    if (store->info != NULL) {
        for (int64_t i = 0; i < store->ram_slots; i++) mgr_free(ctx, store->info[i].ram);
        mgr_free(ctx, store->info);
    }
    /* The file was unlinked at creation; closing it frees its blocks. */
    if (store->fd >= 0) close(store->fd);
    mgr_free(ctx, store->spill_path);
    mgr_free(ctx, store);
}

static mgrad_status check_slot(mgr_store *store, int64_t slot, const void *state)
{
    MGRAD_RETURN_IF(store->ctx, state == NULL, MGRAD_ERR_NULL, "checkpoint store: NULL state");
    MGRAD_RETURN_IF(store->ctx, slot < 0 || slot >= store->slots, MGRAD_ERR_INTERNAL,
                    "checkpoint slot %lld outside the store's %lld slots", (long long)slot,
                    (long long)store->slots);
    return MGRAD_OK;
}

static off_t spill_offset(const mgr_store *store, int64_t slot)
{
    return (off_t)((slot - store->ram_slots) * (int64_t)store->slot_bytes);
}

mgrad_status mgr_store_save(mgr_store *store, int64_t slot, int64_t step, const void *state)
{
    if (store == NULL) return MGRAD_ERR_NULL;
    MGRAD_FORWARD(check_slot(store, slot, state));
    slot_info *si = &store->info[slot];

    if (slot < store->ram_slots) {
        if (si->ram == NULL) {
            size_t bytes = store->slot_bytes + store->memo_bytes;
            si->ram = mgr_alloc(store->ctx, bytes);
            MGRAD_RETURN_IF(store->ctx, si->ram == NULL, MGRAD_ERR_NOMEM,
                            "out of memory for a checkpoint state of %zu bytes", bytes);
            store->ram_bytes += bytes;
            if (store->ram_bytes > store->peak_bytes) store->peak_bytes = store->ram_bytes;
        }
        mgr_pool_memcpy(mgr_context_pool(store->ctx), si->ram, state, store->slot_bytes);
    } else {
        const char *p = state;
        off_t off = spill_offset(store, slot);
        size_t left = store->slot_bytes;
        /* A failed save leaves the slot unsaved: loading it must not return
           a torn state. */
        si->saved = 0;
        while (left > 0) {
            ssize_t n = pwrite(store->fd, p, left, off);
            if (n < 0 && errno == EINTR) continue;
            if (n <= 0) {
                int e = n < 0 ? errno : ENOSPC;
                return mgr_error(store->ctx, MGRAD_ERR_IO,
                                 "writing checkpoint slot %lld (%zu bytes) to spill file "
                                 "\"%s\" failed: %s", (long long)slot, store->slot_bytes,
                                 store->spill_path, strerror(e));
            }
            p += n;
            off += n;
            left -= (size_t)n;
        }
        uint64_t end = (uint64_t)spill_offset(store, slot) + store->slot_bytes;
        if (end > store->spill_extent) store->spill_extent = end;
    }
    si->step = step;
    si->memo_step = -1;
    si->saved = 1;
    return MGRAD_OK;
}

mgrad_status mgr_store_load(mgr_store *store, int64_t slot, int64_t *step, void *state)
{
    if (store == NULL) return MGRAD_ERR_NULL;
    MGRAD_FORWARD(check_slot(store, slot, state));
    slot_info *si = &store->info[slot];
    MGRAD_RETURN_IF(store->ctx, !si->saved, MGRAD_ERR_INTERNAL,
                    "checkpoint slot %lld restored before it was saved", (long long)slot);

    if (slot < store->ram_slots) {
        mgr_pool_memcpy(mgr_context_pool(store->ctx), state, si->ram, store->slot_bytes);
    } else {
        char *p = state;
        off_t off = spill_offset(store, slot);
        size_t left = store->slot_bytes;
        while (left > 0) {
            ssize_t n = pread(store->fd, p, left, off);
            if (n < 0 && errno == EINTR) continue;
            if (n <= 0) {
                /* n == 0: the file is shorter than what we wrote. */
                return mgr_error(store->ctx, MGRAD_ERR_IO,
                                 "reading checkpoint slot %lld (%zu bytes) from spill file "
                                 "\"%s\" failed: %s", (long long)slot, store->slot_bytes,
                                 store->spill_path,
                                 n < 0 ? strerror(errno) : "unexpected end of file");
            }
            p += n;
            off += n;
            left -= (size_t)n;
        }
    }
    if (step != NULL) *step = si->step;
    return MGRAD_OK;
}

void *mgr_store_memo(mgr_store *store, int64_t slot, int64_t *step)
{
    *step = -1;
    if (store == NULL || store->memo_bytes == 0 || slot < 0 || slot >= store->ram_slots)
        return NULL;
    slot_info *si = &store->info[slot];
    if (!si->saved) return NULL;
    *step = si->memo_step;
    return (char *)si->ram + store->slot_bytes;
}

void mgr_store_memo_set(mgr_store *store, int64_t slot, int64_t step)
{
    if (store != NULL && slot >= 0 && slot < store->ram_slots) store->info[slot].memo_step = step;
}

uint64_t mgr_store_peak_bytes(const mgr_store *store)
{
    return store != NULL ? store->peak_bytes : 0;
}

uint64_t mgr_store_spilled_bytes(const mgr_store *store)
{
    return store != NULL ? store->spill_extent : 0;
}
