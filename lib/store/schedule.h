/*
 * schedule.h - checkpoint schedules as pure action generators.
 *
 * A schedule drives the run's reverse driver through one train + reverse:
 *     ADVANCE n    run n forward steps from the current state
 *     SAVE s       copy the current state into slot s
 *     RESTORE s    make the state saved in slot s current
 *     REVERSE      reverse one step: the current state must be s_t where t
 *                  is the next step to reverse (T-1 first, then T-2, ...)
 * The driver starts with s_0 current.  The forward phase ends when the
 * current state is s_T (then φ is evaluated); every action after that is the
 * reverse phase.  Schedules know nothing of models: tests simulate them.
 */
#ifndef MGRAD_SCHEDULE_H
#define MGRAD_SCHEDULE_H

#include <stdint.h>

#include "base/base.h"
#include "metagrad/common.h"

typedef enum mgr_action_kind {
    MGR_ACTION_ADVANCE = 1,
    MGR_ACTION_SAVE = 2,
    MGR_ACTION_RESTORE = 3,
    MGR_ACTION_REVERSE = 4
} mgr_action_kind;

typedef struct mgr_action {
    mgr_action_kind kind;
    int64_t count;   /* ADVANCE: steps */
    int64_t slot;    /* SAVE / RESTORE */
} mgr_action;

typedef struct mgr_schedule mgr_schedule;

/* Resolve a policy for T steps: the slots it uses and (AUTO) the concrete
   policy.  `max_slots` is what the budget allows (0 = unlimited); `slots`
   the caller's request (0 = choose); k the REPLAY branching factor.
   MGRAD_ERR_BUDGET, naming the minimum, when nothing fits. */
mgrad_status mgr_schedule_plan(mgrad_context *ctx, mgrad_checkpoint policy,
                               int64_t steps, int64_t slots, int64_t max_slots,
                               int64_t k, mgrad_checkpoint *out_policy,
                               int64_t *out_slots);

mgrad_status mgr_schedule_create(mgrad_context *ctx, mgrad_checkpoint policy,
                                 int64_t steps, int64_t slots, int64_t k,
                                 mgr_schedule **out);
void mgr_schedule_destroy(mgrad_context *ctx, mgr_schedule *s);
/* Next action into *out; returns 0 when the schedule is finished. */
int mgr_schedule_next(mgr_schedule *s, mgr_action *out);
/* Start again from the beginning (same plan). */
void mgr_schedule_reset(mgr_schedule *s);

#endif /* MGRAD_SCHEDULE_H */
