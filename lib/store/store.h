/*
 * store.h - the snapshot store: numbered slots of equal size holding full
 * optimizer states (and the step each belongs to).  Slots are allocated on
 * first use; the store reports peak bytes.  When a RAM budget is set and a
 * spill directory given, slots beyond the budget live in one file there
 * (removed by mgr_store_destroy).
 */
#ifndef MGRAD_STORE_H
#define MGRAD_STORE_H

#include <stddef.h>
#include <stdint.h>

#include "base/base.h"

typedef struct mgr_store mgr_store;

/* ram_budget_bytes 0 = unlimited; spill_dir NULL = never spill (then a
   budget smaller than slots * slot_bytes is MGRAD_ERR_BUDGET). */
mgrad_status mgr_store_create(mgrad_context *ctx, int64_t slots, size_t slot_bytes,
                              uint64_t ram_budget_bytes, const char *spill_dir,
                              mgr_store **out);
void mgr_store_destroy(mgr_store *store);
mgrad_status mgr_store_save(mgr_store *store, int64_t slot, int64_t step,
                            const void *state);
/* MGRAD_ERR_INTERNAL if the slot was never saved. */
mgrad_status mgr_store_load(mgr_store *store, int64_t slot, int64_t *step, void *state);
uint64_t mgr_store_peak_bytes(const mgr_store *store);
uint64_t mgr_store_spilled_bytes(const mgr_store *store);

#endif /* MGRAD_STORE_H */
