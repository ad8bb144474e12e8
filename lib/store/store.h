/*
 * store.h - the snapshot store: numbered slots of equal size holding full
 * optimizer states (and the step each belongs to).  Slots are allocated on
 * first use; the store reports peak bytes.  When a RAM budget is set and a
 * spill directory given, slots beyond the budget live in one file there
 * (removed by mgr_store_destroy).
 *
 * A RAM slot can also carry a memo of memo_bytes: bytes the engine derives
 * from the slot's state (the forward values of the step that starts from it,
 * docs/architecture.md "Forward memo"), tagged with the step they belong to.
 * Saving a slot invalidates its memo; spilled slots have none.  Memo bytes
 * count in the RAM budget and in the peak.
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
                              size_t memo_bytes, uint64_t ram_budget_bytes,
                              const char *spill_dir, mgr_store **out);
void mgr_store_destroy(mgr_store *store);
mgrad_status mgr_store_save(mgr_store *store, int64_t slot, int64_t step,
                            const void *state);
/* MGRAD_ERR_INTERNAL if the slot was never saved. */
mgrad_status mgr_store_load(mgr_store *store, int64_t slot, int64_t *step, void *state);
/* The memo of a saved RAM slot (NULL: spilled, never saved, or no memos)
   and, in *step, the step it holds (-1: none since the last save). */
void *mgr_store_memo(mgr_store *store, int64_t slot, int64_t *step);
/* Record that the memo of `slot` now holds step `step`'s values. */
void mgr_store_memo_set(mgr_store *store, int64_t slot, int64_t step);
uint64_t mgr_store_peak_bytes(const mgr_store *store);
uint64_t mgr_store_spilled_bytes(const mgr_store *store);

#endif /* MGRAD_STORE_H */
