/*
 * schedule.c - checkpoint schedules as lazy action generators.
 *
 * Every schedule is a small state machine over an explicit stack, so a run
 * of T = 1e6 steps costs a few hundred bytes of schedule state rather than a
 * list of tens of millions of actions.  mgr_schedule_next() drains a short
 * queue of pending actions and refills it by popping one stack frame.
 *
 * Slots keep their contents after RESTORE (restore is a copy): both tree
 * schedules restore the same segment start several times.
 *
 * Cost model.  Let an ADVANCE of n steps cost n.  The forward phase costs T;
 * "steps recomputed" is everything advanced beyond that.
 *
 *   store-all   T slots, 0 recomputed.
 *   REPLAY(k)   the paper's lazy k-ary tree (see replay_* below);
 *               1 + E(T) slots with E(n) = (min(k,n) - 1) + E(ceil(n/k)),
 *               E(1) = 0, i.e. 1 + (k-1)·log_k T when T is a power of k.
 *   binomial    Griewank–Walther optimal for s slots.  Our driver must reach
 *               s_T (to evaluate φ) before reversing step T-1, which is
 *               exactly GW's model for l = T+1 steps whose last "step" is φ
 *               (reversing it is free).  So the total advanced is
 *                   t(T+1, s) = r·(T+1) − β(s+1, r−1),
 *               β(s, r) = C(s+r, s), r minimal with β(s, r) >= T+1,
 *               and steps recomputed = t(T+1, s) − T.
 */
#include "store/schedule.h"

#include <stdint.h>
#include <string.h>

/* ------------------------------------------------------------------------ */
/* Binomial coefficients, saturating: only comparisons against step counts
   (< INT64_MAX / 2) matter once they get large. */

#define BETA_SAT (INT64_MAX / 2)

static int64_t mul_sat(int64_t a, int64_t b)
{
    if (a == 0 || b == 0) return 0;
    if (a > BETA_SAT / b) return BETA_SAT;
    return a * b;
}

/* β(c, r) = C(c + r, c), saturated at BETA_SAT; 0 for r < 0 or c < 0. */
static int64_t beta(int64_t c, int64_t r)
{
    if (c < 0 || r < 0) return 0;
    int64_t lo = c < r ? c : r, hi = c < r ? r : c;
    int64_t b = 1;
    for (int64_t j = 1; j <= lo; j++) {
        /* b = C(hi + j - 1, j - 1); C(hi + j, j) = b·(hi + j)/j exactly, and
           splitting b by j keeps the intermediate in range. */
        int64_t q = mul_sat(b / j, hi + j);
        int64_t rem = mul_sat(b % j, hi + j) / j;
        if (q >= BETA_SAT || rem >= BETA_SAT || q > BETA_SAT - rem) return BETA_SAT;
        b = q + rem;
    }
    return b;
}

/* Repetition number: the least r >= 0 with β(c, r) >= l (c >= 1, l >= 1). */
static int64_t repetitions(int64_t l, int64_t c)
{
    int64_t r = 0, b = 1; /* b = β(c, r) */
    while (b < l) {
        r++;
        int64_t q = mul_sat(b / r, c + r);
        int64_t rem = mul_sat(b % r, c + r) / r;
        b = (q >= BETA_SAT || rem >= BETA_SAT || q > BETA_SAT - rem) ? BETA_SAT : q + rem;
    }
    return r;
}

/* ------------------------------------------------------------------------ */
/* REPLAY slot count. */

static int64_t ceil_div(int64_t a, int64_t b) { return a / b + (a % b != 0); }

/* Slots a lazy k-ary tree over n steps holds beyond its start state.  The
   last segment is the longest (ceil(n/k)) and is entered while all the other
   segment starts are held, so it sets the maximum. */
static int64_t replay_extra_slots(int64_t n, int64_t k)
{
    int64_t extra = 0;
    while (n > 1) {
        int64_t p = n < k ? n : k;
        extra += p - 1;
        n = ceil_div(n, k);
    }
    return extra;
}

#define REPLAY_MAX_K (1 << 20)

/* a + floor(i·n/p), the i-th of p segment boundaries of [a, a + n), without
   forming i·n: (n mod p)·i < p² fits for p <= REPLAY_MAX_K. */
static int64_t boundary(int64_t a, int64_t n, int64_t p, int64_t i)
{
    return a + (n / p) * i + ((n % p) * i) / p;
}

/* ------------------------------------------------------------------------ */
/* Plan. */

static const char *policy_name(mgrad_checkpoint p)
{
    switch (p) {
    case MGRAD_CHECKPOINT_STORE_ALL: return "store-all";
    case MGRAD_CHECKPOINT_REPLAY: return "REPLAY";
    case MGRAD_CHECKPOINT_BINOMIAL: return "binomial";
    case MGRAD_CHECKPOINT_AUTO: return "auto";
    }
    return "unknown";
}

mgrad_status mgr_schedule_plan(mgrad_context *ctx, mgrad_checkpoint policy,
                               int64_t steps, int64_t slots, int64_t max_slots,
                               int64_t k, mgrad_checkpoint *out_policy,
                               int64_t *out_slots)
{
    MGRAD_RETURN_IF(ctx, out_policy == NULL || out_slots == NULL, MGRAD_ERR_NULL,
                    "mgr_schedule_plan: NULL output");
    MGRAD_RETURN_IF(ctx, steps < 1 || steps > BETA_SAT / 2, MGRAD_ERR_INVALID,
                    "options.steps = %lld is out of range (1 .. %lld)",
                    (long long)steps, (long long)(BETA_SAT / 2));
    MGRAD_RETURN_IF(ctx, slots < 0, MGRAD_ERR_INVALID,
                    "options.checkpoint_slots = %lld must be >= 0 (0: from the budget)",
                    (long long)slots);
    MGRAD_RETURN_IF(ctx, max_slots < 0, MGRAD_ERR_INVALID,
                    "checkpoint budget of %lld slots must be >= 0 (0: unlimited)",
                    (long long)max_slots);
    /* The cap keeps segment arithmetic (i·(n mod k) < k²) in range; a tree
       that wide would need a million slots per level anyway. */
    MGRAD_RETURN_IF(ctx, k == 1 || k < 0 || k > REPLAY_MAX_K, MGRAD_ERR_INVALID,
                    "options.checkpoint_k = %lld must be in 2 .. %d (0: default 4)",
                    (long long)k, REPLAY_MAX_K);

    /* More slots than steps can never be used: store-all needs exactly T. */
    int64_t useful = slots < steps ? slots : steps;
    switch (policy) {
    case MGRAD_CHECKPOINT_STORE_ALL:
        /* checkpoint_slots is documented as BINOMIAL/REPLAY only. */
        MGRAD_RETURN_IF(ctx, max_slots > 0 && max_slots < steps, MGRAD_ERR_BUDGET,
                        "store-all needs %lld state slots (one per step) but the "
                        "budget holds %lld; use MGRAD_CHECKPOINT_AUTO, BINOMIAL or "
                        "REPLAY, or raise options.checkpoint_budget_bytes",
                        (long long)steps, (long long)max_slots);
        *out_policy = policy;
        *out_slots = steps;
        return MGRAD_OK;

    case MGRAD_CHECKPOINT_REPLAY: {
        int64_t kk = k == 0 ? 4 : k;
        int64_t need = 1 + replay_extra_slots(steps, kk);
        MGRAD_RETURN_IF(ctx, slots > 0 && slots < need, MGRAD_ERR_BUDGET,
                        "REPLAY with k = %lld over %lld steps needs at least %lld "
                        "state slots; options.checkpoint_slots = %lld",
                        (long long)kk, (long long)steps, (long long)need,
                        (long long)slots);
        MGRAD_RETURN_IF(ctx, max_slots > 0 && max_slots < need, MGRAD_ERR_BUDGET,
                        "REPLAY with k = %lld over %lld steps needs at least %lld "
                        "state slots but the budget holds %lld; use "
                        "MGRAD_CHECKPOINT_BINOMIAL (needs 1) or raise "
                        "options.checkpoint_budget_bytes",
                        (long long)kk, (long long)steps, (long long)need,
                        (long long)max_slots);
        *out_policy = policy;
        *out_slots = need;
        return MGRAD_OK;
    }

    case MGRAD_CHECKPOINT_BINOMIAL: {
        int64_t s = useful;
        if (s == 0) s = (max_slots > 0 && max_slots < steps) ? max_slots : steps;
        MGRAD_RETURN_IF(ctx, max_slots > 0 && s > max_slots, MGRAD_ERR_BUDGET,
                        "binomial with options.checkpoint_slots = %lld needs %lld "
                        "state slots but the budget holds %lld (the minimum is 1)",
                        (long long)slots, (long long)s, (long long)max_slots);
        *out_policy = policy;
        *out_slots = s;
        return MGRAD_OK;
    }

    case MGRAD_CHECKPOINT_AUTO: {
        /* Binomial is optimal for any slot count and degenerates to
           store-all at T slots, so "cheapest that fits" is: store-all when
           T slots fit, else binomial with every slot that fits. */
        int64_t cap = max_slots > 0 ? max_slots : steps;
        if (useful > 0 && useful < cap) cap = useful;
        if (cap >= steps) {
            *out_policy = MGRAD_CHECKPOINT_STORE_ALL;
            *out_slots = steps;
        } else {
            *out_policy = MGRAD_CHECKPOINT_BINOMIAL;
            *out_slots = cap;
        }
        return MGRAD_OK;
    }
    }
    return mgr_error(ctx, MGRAD_ERR_INVALID,
                     "options.checkpoint = %d is not a mgrad_checkpoint value",
                     (int)policy);
}

/* ------------------------------------------------------------------------ */
/* Generator state. */

enum frame_kind {
    /* binomial */
    F_BIN_SOLVE = 1,   /* s_a current and in slot nslots - c; reverse [a, a+l) */
    F_BIN_RESOLVE,     /* as F_BIN_SOLVE after restoring that slot */
    F_BIN_LINEAR,      /* one slot left: advance j from s_a, reverse a+j */
    /* REPLAY */
    F_REP_SPLIT,       /* s_a current and in slot x; reverse [a, b) */
    F_REP_FORWARD,     /* advance to boundary i of [a, b) and save it */
    F_REP_SEGMENT      /* reverse segment i of [a, b), restoring its start */
};

typedef struct frame {
    enum frame_kind kind;
    int top;           /* REPLAY: on the path to s_T (forward phase) */
    int64_t a, b;      /* interval [a, b) */
    int64_t c;         /* binomial: slots available including a's */
    int64_t x;         /* REPLAY: slot holding s_a */
    int64_t base;      /* REPLAY: first slot this level allocates */
    int64_t i;         /* LINEAR: offset j; REPLAY: boundary/segment index */
    int first;         /* no RESTORE needed: s_a (or s_{a_i}) is current */
} frame;

#define QUEUE_CAP 4

struct mgr_schedule {
    mgrad_context *ctx;
    mgrad_checkpoint policy; /* the generator: binomial with T slots is store-all */
    int64_t steps, slots, k;
    /* store-all: position in the two phases */
    int64_t pos;
    /* tree schedules */
    frame *stack;
    int64_t depth, capacity;
    int started;
    mgr_action queue[QUEUE_CAP];
    int qhead, qlen;
};

static void emit(mgr_schedule *s, mgr_action_kind kind, int64_t count, int64_t slot)
{
    /* Frames emit at most 3 actions into an empty queue. */
    mgr_action *a = &s->queue[(s->qhead + s->qlen) % QUEUE_CAP];
    a->kind = kind;
    a->count = count;
    a->slot = slot;
    s->qlen++;
}

static void emit_reverse(mgr_schedule *s, int64_t t)
{
    /* Step T is the binomial model's stand-in for φ, evaluated by the driver
       on reaching s_T; there is nothing to reverse. */
    if (t < s->steps) emit(s, MGR_ACTION_REVERSE, 0, 0);
}

static void push(mgr_schedule *s, frame f)
{
    /* capacity is sized in mgr_schedule_create to bound the depth. */
    s->stack[s->depth++] = f;
}

/* Optimal first checkpoint offset m for reversing l >= 2 steps with c >= 2
   slots: any m with m ∈ [β(c, r−2), β(c, r−1)] and l − m ∈ [β(c−1, r−1),
   β(c−1, r)] attains t(l, c) = m + t(l−m, c−1) + t(m, c), because t(·, c) is
   linear with slope r−1 on the first range and t(·, c−1) with slope r on the
   second.  Taking the smallest such m keeps early checkpoints close. */
static int64_t binomial_split(int64_t l, int64_t c)
{
    int64_t r = repetitions(l, c);
    int64_t m = beta(c, r - 2);
    int64_t alt = l - beta(c - 1, r);
    if (alt > m) m = alt;
    if (m < 1) m = 1;
    if (m > l - 1) m = l - 1;
    return m;
}

static void step_binomial(mgr_schedule *s, frame f)
{
    int64_t slot = s->slots - f.c;
    switch (f.kind) {
    case F_BIN_RESOLVE:
        emit(s, MGR_ACTION_RESTORE, 0, slot);
        /* fall through */
    case F_BIN_SOLVE: {
        int64_t l = f.b - f.a;
        if (l == 1) {
            emit_reverse(s, f.a);
        } else if (f.c == 1) {
            frame g = f;
            g.kind = F_BIN_LINEAR;
            g.i = l - 1;
            g.first = 1;
            push(s, g);
        } else {
            int64_t m = binomial_split(l, f.c);
            emit(s, MGR_ACTION_ADVANCE, m, 0);
            emit(s, MGR_ACTION_SAVE, 0, slot + 1);
            frame later = f;   /* [a, a+m) with the same slots, after */
            later.kind = F_BIN_RESOLVE;
            later.b = f.a + m;
            push(s, later);
            frame now = f;     /* [a+m, b) with one slot fewer, first */
            now.kind = F_BIN_SOLVE;
            now.a = f.a + m;
            now.c = f.c - 1;
            push(s, now);
        }
        break;
    }
    case F_BIN_LINEAR:
        if (!f.first) emit(s, MGR_ACTION_RESTORE, 0, slot);
        if (f.i > 0) emit(s, MGR_ACTION_ADVANCE, f.i, 0);
        emit_reverse(s, f.a + f.i);
        if (f.i > 0) {
            f.i--;
            f.first = 0;
            push(s, f);
        }
        break;
    default:
        break;
    }
}

/*
 * REPLAY: split [a, b) into p = min(k, b−a) segments at a + floor(i·n/p),
 * advance through them saving each start, then reverse the segments last to
 * first, each by the same procedure from its saved start.  Only the states on
 * the way down are stored ("lazy": a segment is subdivided only when it is
 * about to be reversed).  The one refinement over the paper's description:
 * the forward phase passes through the last segment of every level anyway,
 * so it subdivides that spine on the way to s_T instead of replaying it
 * later; this uses no slot the reverse phase would not hold anyway.
 */
static void step_replay(mgr_schedule *s, frame f)
{
    int64_t n = f.b - f.a;
    int64_t p = n < s->k ? n : s->k;
    switch (f.kind) {
    case F_REP_SPLIT:
        if (n == 1) {
            if (f.top) {
                /* s_{T-1} is in slot x; step into s_T for φ, then back. */
                emit(s, MGR_ACTION_ADVANCE, 1, 0);
                emit(s, MGR_ACTION_RESTORE, 0, f.x);
            }
            emit(s, MGR_ACTION_REVERSE, 0, 0);
        } else {
            f.kind = F_REP_FORWARD;
            f.i = 1;
            push(s, f);
        }
        break;
    case F_REP_FORWARD: {
        int64_t prev = boundary(f.a, n, p, f.i - 1), cur = boundary(f.a, n, p, f.i);
        emit(s, MGR_ACTION_ADVANCE, cur - prev, 0);
        emit(s, MGR_ACTION_SAVE, 0, f.base + f.i - 1);
        if (f.i < p - 1) {
            f.i++;
        } else {
            f.kind = F_REP_SEGMENT;
            f.first = 1;
        }
        push(s, f);
        break;
    }
    case F_REP_SEGMENT: {
        int64_t i = f.i;
        int64_t start_slot = i == 0 ? f.x : f.base + i - 1;
        if (!f.first) emit(s, MGR_ACTION_RESTORE, 0, start_slot);
        if (i > 0) {
            frame rest = f;
            rest.i = i - 1;
            rest.first = 0;
            push(s, rest);
        }
        frame child;
        memset(&child, 0, sizeof child);
        child.kind = F_REP_SPLIT;
        child.top = f.top && i == p - 1;
        child.a = boundary(f.a, n, p, i);
        child.b = boundary(f.a, n, p, i + 1);
        child.x = start_slot;
        child.base = f.base + i; /* this level holds starts 1..i */
        push(s, child);
        break;
    }
    default:
        break;
    }
}

/* Fill the queue with the next actions; leave it empty when done. */
static void refill(mgr_schedule *s)
{
    if (!s->started) {
        s->started = 1;
        if (s->policy != MGRAD_CHECKPOINT_STORE_ALL) {
            /* The tree schedules begin by keeping s_0 in slot 0. */
            emit(s, MGR_ACTION_SAVE, 0, 0);
            return;
        }
    }
    if (s->policy == MGRAD_CHECKPOINT_STORE_ALL) {
        int64_t T = s->steps;
        if (s->pos < T) {
            emit(s, MGR_ACTION_SAVE, 0, s->pos);
            emit(s, MGR_ACTION_ADVANCE, 1, 0);
        } else if (s->pos < 2 * T) {
            emit(s, MGR_ACTION_RESTORE, 0, 2 * T - 1 - s->pos);
            emit(s, MGR_ACTION_REVERSE, 0, 0);
        }
        s->pos++;
        return;
    }
    while (s->qlen == 0 && s->depth > 0) {
        frame f = s->stack[--s->depth];
        if (s->policy == MGRAD_CHECKPOINT_BINOMIAL)
            step_binomial(s, f);
        else
            step_replay(s, f);
    }
}

static void schedule_rewind(mgr_schedule *s)
{
    s->pos = 0;
    s->depth = 0;
    s->started = 0;
    s->qhead = s->qlen = 0;
    frame f;
    memset(&f, 0, sizeof f);
    if (s->policy == MGRAD_CHECKPOINT_BINOMIAL) {
        f.kind = F_BIN_SOLVE;
        f.a = 0;
        f.b = s->steps + 1; /* + the φ pseudo-step */
        f.c = s->slots;
        push(s, f);
    } else if (s->policy == MGRAD_CHECKPOINT_REPLAY) {
        f.kind = F_REP_SPLIT;
        f.top = 1;
        f.a = 0;
        f.b = s->steps;
        f.x = 0;
        f.base = 1;
        push(s, f);
    }
}

mgrad_status mgr_schedule_create(mgrad_context *ctx, mgrad_checkpoint policy,
                                 int64_t steps, int64_t slots, int64_t k,
                                 mgr_schedule **out)
{
    MGRAD_RETURN_IF(ctx, out == NULL, MGRAD_ERR_NULL, "mgr_schedule_create: NULL out");
    *out = NULL;
    mgrad_checkpoint resolved = MGRAD_CHECKPOINT_STORE_ALL;
    int64_t nslots = 0;
    MGRAD_FORWARD(mgr_schedule_plan(ctx, policy, steps, slots, 0, k, &resolved, &nslots));

    int64_t capacity = 0;
    if (resolved == MGRAD_CHECKPOINT_BINOMIAL) {
        /* A pending RESOLVE per slot given up on the current path, plus the
           frame being expanded. */
        capacity = nslots + 2;
    } else if (resolved == MGRAD_CHECKPOINT_REPLAY) {
        /* Two frames (pending segments + the child) per tree level. */
        int64_t levels = 0, kk = k == 0 ? 4 : k;
        for (int64_t n = steps; n > 1; n = ceil_div(n, kk)) levels++;
        capacity = 2 * levels + 4;
    }

    /* Binomial with a slot per step is store-all, action for action; the
       flat generator avoids a stack as deep as T. */
    mgrad_checkpoint gen = resolved;
    if (resolved == MGRAD_CHECKPOINT_BINOMIAL && nslots >= steps) {
        gen = MGRAD_CHECKPOINT_STORE_ALL;
        capacity = 0;
    }

    mgr_schedule *s = mgr_alloc(ctx, sizeof *s);
    MGRAD_RETURN_IF(ctx, s == NULL, MGRAD_ERR_NOMEM,
                    "out of memory allocating a %s checkpoint schedule",
                    policy_name(resolved));
    memset(s, 0, sizeof *s);
    s->ctx = ctx;
    s->policy = gen;
    s->steps = steps;
    s->slots = nslots;
    s->k = k == 0 ? 4 : k;
    s->capacity = capacity;
    if (capacity > 0) {
        s->stack = mgr_alloc(ctx, (size_t)capacity * sizeof *s->stack);
        if (s->stack == NULL) {
            mgr_free(ctx, s);
            return mgr_error(ctx, MGRAD_ERR_NOMEM,
                             "out of memory allocating a %s schedule stack of %lld frames",
                             policy_name(resolved), (long long)capacity);
        }
    }
    schedule_rewind(s);
    *out = s;
    return MGRAD_OK;
}

void mgr_schedule_destroy(mgrad_context *ctx, mgr_schedule *s)
{
    if (s == NULL) return;
    mgr_free(ctx, s->stack);
    mgr_free(ctx, s);
}

int mgr_schedule_next(mgr_schedule *s, mgr_action *out)
{
    if (s == NULL || out == NULL) return 0;
    if (s->qlen == 0) refill(s);
    if (s->qlen == 0) return 0;
    *out = s->queue[s->qhead];
    s->qhead = (s->qhead + 1) % QUEUE_CAP;
    s->qlen--;
    return 1;
}

void mgr_schedule_reset(mgr_schedule *s)
{
    if (s != NULL) schedule_rewind(s);
}
