/*
 * test_mpi.c - data-parallel runs over MPI (metagrad/mpi.h) against the
 * single-process run, under `mpirun -np P` for P = 1, 2, 3
 * (tests/mpi/meson.build).
 *
 * Every rank trains the same run twice: once alone (no communicator, the
 * reference) and once data-parallel over MPI_COMM_WORLD, with every
 * metaparameter kind registered at once, for SGD + momentum (store-all),
 * Adam (binomial checkpointing), SGD with dropout and binomial checkpoints,
 * and AdamW in f32.  Checks, on every rank:
 *   - φ, θ_T and the gathered metagradient of every kind agree with the
 *     reference to 1e-12 relative (f64; max-norm over the vector), and are
 *     bit-identical to it on P = 1;
 *   - φ, θ_T and the global kinds' metagradients are bit-identical across
 *     ranks; the per-example kinds' local parts sum to the gathered sum;
 *   - a second data-parallel run, and a second reverse of the same run, are
 *     bit-identical to the first (determinism on a fixed P);
 * and the failure paths: a batch-norm model and runs that differ between
 * ranks are refused on every rank; a callback that fails on the last rank
 * only (in the forward pass, in the reverse pass) and a NaN loss on the last
 * rank only make the call fail on every rank, with no hang, and the run is
 * usable afterwards.
 * Exit status 0 when every check passes; messages name the failing check.
 */
#include <math.h>
#include <mpi.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fixtures.h"
#include "metagrad.h"

enum { NTRAIN = 40, NVAL = 23, NPOOL = 13, F = 6, C = 3, T = 10, B = 7, MAXMETA = 12 };

static int g_rank, g_size, g_failures;

#define CHECK(cond, ...)                                                         \
    do {                                                                         \
        if (!(cond)) {                                                           \
            g_failures++;                                                        \
            fprintf(stderr, "[rank %d/%d] FAIL %s:%d: ", g_rank, g_size, __FILE__, \
                    __LINE__);                                                   \
            fprintf(stderr, __VA_ARGS__);                                        \
            fprintf(stderr, "\n");                                               \
        }                                                                        \
    } while (0)

#define OK(call, ctx)                                                            \
    do {                                                                         \
        mgrad_status s_ = (call);                                                \
        CHECK(s_ == MGRAD_OK, "%s -> %d: %s", #call, (int)s_,                    \
              mgrad_context_last_error(ctx));                                    \
        if (s_ != MGRAD_OK) {                                                    \
            fflush(stderr);                                                      \
            MPI_Abort(MPI_COMM_WORLD, 2);                                        \
        }                                                                        \
    } while (0)

static double urand(uint64_t *s)
{
    *s = *s * 6364136223846793005ULL + 1442695040888963407ULL;
    return (double)(*s >> 11) / 9007199254740992.0 * 2 - 1;
}

typedef struct config {
    const char *name;
    mgrad_dtype dtype;
    mgrad_optimizer opt;
    double lr, momentum, weight_decay;
    double dropout;
    mgrad_checkpoint checkpoint;
    int64_t slots;
    double tol;
} config;

static const config CONFIGS[] = {
    {"sgd-momentum", MGRAD_DTYPE_F64, MGRAD_OPTIMIZER_SGD, 0.2, 0.9, 0.01, 0,
     MGRAD_CHECKPOINT_STORE_ALL, 0, 1e-12},
    {"adam-binomial", MGRAD_DTYPE_F64, MGRAD_OPTIMIZER_ADAM, 0.02, 0.9, 0.01, 0,
     MGRAD_CHECKPOINT_BINOMIAL, 3, 1e-12},
    {"sgd-dropout-binomial", MGRAD_DTYPE_F64, MGRAD_OPTIMIZER_SGD, 0.2, 0.5, 0.01, 0.2,
     MGRAD_CHECKPOINT_BINOMIAL, 2, 1e-12},
    {"adamw-f32", MGRAD_DTYPE_F32, MGRAD_OPTIMIZER_ADAMW, 0.02, 0.9, 0.05, 0,
     MGRAD_CHECKPOINT_STORE_ALL, 0, 2e-4},
};
#define NCONFIGS ((int)(sizeof CONFIGS / sizeof CONFIGS[0]))

typedef struct world {
    mgrad_context *ctx;
    mgrad_model *model;
    mgrad_dataset *train, *val, *pool;
} world;

static mgrad_dataset *make_data(mgrad_context *ctx, int n, uint64_t seed)
{
    double x[NTRAIN * F];
    int32_t labels[NTRAIN];
    uint64_t s = seed;
    for (int i = 0; i < n * F; i++) x[i] = 1.5 * urand(&s);
    for (int i = 0; i < n; i++) labels[i] = (int32_t)((urand(&s) + 1) * 1.5) % C;
    int64_t shape[1] = {F};
    mgrad_dataset *d = NULL;
    OK(mgrad_dataset_create(&d, ctx, n, 1, shape, MGRAD_DTYPE_F64, x), ctx);
    OK(mgrad_dataset_set_labels(d, labels, n, C), ctx);
    return d;
}

static void world_create(world *w, const config *cfg, int batch_norm)
{
    mgrad_context_options co = MGRAD_CONTEXT_OPTIONS_INIT;
    co.dtype = cfg->dtype;
    co.seed = 7;
    if (mgrad_context_create(&w->ctx, &co) != MGRAD_OK) MPI_Abort(MPI_COMM_WORLD, 2);
    int64_t shape[1] = {F};
    OK(mgrad_model_create(&w->model, w->ctx, 1, shape), w->ctx);
    OK(mgrad_model_add_dense(w->model, 8, MGRAD_INIT_DEFAULT), w->ctx);
    if (batch_norm) OK(mgrad_model_add_batch_norm(w->model, 1e-5), w->ctx);
    OK(mgrad_model_add_activation(w->model, MGRAD_ACTIVATION_TANH), w->ctx);
    if (cfg->dropout > 0) OK(mgrad_model_add_dropout(w->model, cfg->dropout), w->ctx);
    OK(mgrad_model_add_dense(w->model, 8, MGRAD_INIT_XAVIER_NORMAL), w->ctx);
    OK(mgrad_model_add_activation(w->model, MGRAD_ACTIVATION_GELU), w->ctx);
    OK(mgrad_model_add_dense(w->model, C, MGRAD_INIT_DEFAULT), w->ctx);
    w->train = make_data(w->ctx, NTRAIN, 11);
    w->val = make_data(w->ctx, NVAL, 23);
    w->pool = make_data(w->ctx, NPOOL, 37);
}

static void world_destroy(world *w)
{
    mgrad_dataset_destroy(w->train);
    mgrad_dataset_destroy(w->val);
    mgrad_dataset_destroy(w->pool);
    mgrad_model_destroy(w->model);
    mgrad_context_destroy(w->ctx);
}

typedef struct built {
    mgrad_run *run;
    int nmeta;
    mgrad_meta *meta[MAXMETA];
    const char *name[MAXMETA];
} built;

static void add(built *b, mgrad_context *ctx, mgrad_meta_kind kind, const char *name,
                const mgrad_meta_options *mo)
{
    mgrad_meta *m = NULL;
    OK(mgrad_run_add_meta(&m, b->run, kind, mo), ctx);
    b->meta[b->nmeta] = m;
    b->name[b->nmeta++] = name;
}

/* The run with every metaparameter kind; identical values on every rank. */
static built build(world *w, const config *cfg, int steps, MPI_Comm *comm)
{
    built b;
    memset(&b, 0, sizeof b);
    mgrad_run_options o = MGRAD_RUN_OPTIONS_INIT;
    o.steps = steps;
    o.batch_size = B;
    o.shuffle_seed = 5;
    tf_optimizer(&o, cfg->opt, cfg->lr, cfg->momentum, 0, cfg->weight_decay,
                 cfg->opt == MGRAD_OPTIMIZER_SGD ? 0 : 1e-4);
    o.validation = w->val;
    o.checkpoint = cfg->checkpoint;
    o.checkpoint_slots = cfg->slots;
    OK(mgrad_run_create(&b.run, w->model, w->train, &o), w->ctx);
    mgrad_meta_options mo = MGRAD_META_OPTIONS_INIT;
    mo.step_begin = 2;
    mo.step_end = 8;
    add(&b, w->ctx, MGRAD_META_DATA_WEIGHTS, "data_weights[2,8)", &mo);
    mo = (mgrad_meta_options)MGRAD_META_OPTIONS_INIT;
    mo.step = 4;
    mo.pool = w->pool;
    add(&b, w->ctx, MGRAD_META_POOL_WEIGHTS, "pool_weights@4", &mo);
    mo = (mgrad_meta_options)MGRAD_META_OPTIONS_INIT;
    mo.step = 6; /* pool = the training set: INPUTS apply to it */
    add(&b, w->ctx, MGRAD_META_POOL_WEIGHTS, "pool_weights@6(train)", &mo);
    static const int64_t rows[4] = {3, 17, 8, 30};
    mo = (mgrad_meta_options)MGRAD_META_OPTIONS_INIT;
    mo.rows = rows;
    mo.num_rows = 4;
    add(&b, w->ctx, MGRAD_META_INPUTS, "inputs[4 rows]", &mo);
    add(&b, w->ctx, MGRAD_META_SOFT_LABELS, "soft_labels", NULL);
    add(&b, w->ctx, MGRAD_META_LR_SCHEDULE, "lr_schedule", NULL);
    add(&b, w->ctx, MGRAD_META_WEIGHT_DECAY, "weight_decay", NULL);
    add(&b, w->ctx, MGRAD_META_MOMENTUM, "momentum/beta1", NULL);
    if (cfg->opt != MGRAD_OPTIMIZER_SGD) add(&b, w->ctx, MGRAD_META_BETA2, "beta2", NULL);
    add(&b, w->ctx, MGRAD_META_INITIAL_PARAMS, "initial_params", NULL);
    /* non-trivial values for the weights */
    for (int k = 0; k < b.nmeta; k++) {
        mgrad_meta_kind kind;
        mgrad_meta_kind_of(b.meta[k], &kind);
        if (kind != MGRAD_META_DATA_WEIGHTS && kind != MGRAD_META_POOL_WEIGHTS) continue;
        int64_t n = 0;
        mgrad_meta_size(b.meta[k], &n);
        double v[NTRAIN];
        uint64_t s = 99 + (uint64_t)k;
        for (int64_t i = 0; i < n; i++) v[i] = 0.75 + 0.5 * urand(&s);
        OK(mgrad_meta_set_value(b.meta[k], MGRAD_DTYPE_F64, v, n), w->ctx);
    }
    if (comm != NULL) OK(mgrad_run_set_communicator(b.run, comm), w->ctx);
    return b;
}

/* Everything a run produced, in f64. */
typedef struct result {
    double phi;
    int64_t np;
    double *theta;
    int nmeta;
    int64_t size[MAXMETA];
    double *grad[MAXMETA];  /* gathered sums */
    double *local[MAXMETA]; /* mgrad_meta_get_grad on this rank */
} result;

static result collect(world *w, built *b, double phi)
{
    result r;
    memset(&r, 0, sizeof r);
    r.phi = phi;
    OK(mgrad_run_num_params(b->run, &r.np), w->ctx);
    r.theta = malloc((size_t)r.np * sizeof(double));
    OK(mgrad_run_get_params(b->run, MGRAD_DTYPE_F64, r.theta, r.np), w->ctx);
    r.nmeta = b->nmeta;
    for (int k = 0; k < b->nmeta; k++) {
        mgrad_meta_size(b->meta[k], &r.size[k]);
        r.grad[k] = malloc((size_t)r.size[k] * sizeof(double));
        r.local[k] = malloc((size_t)r.size[k] * sizeof(double));
        OK(mgrad_meta_gather_grad(b->meta[k], -1, MGRAD_DTYPE_F64, r.grad[k], r.size[k]),
           w->ctx);
        OK(mgrad_meta_get_grad(b->meta[k], MGRAD_DTYPE_F64, r.local[k], r.size[k]), w->ctx);
    }
    return r;
}

static void result_free(result *r)
{
    free(r->theta);
    for (int k = 0; k < r->nmeta; k++) {
        free(r->grad[k]);
        free(r->local[k]);
    }
}

static result train_reverse(world *w, built *b)
{
    double phi = 0;
    OK(mgrad_run_train(b->run, &phi), w->ctx);
    OK(mgrad_run_reverse(b->run), w->ctx);
    return collect(w, b, phi);
}

static double rel_err(const double *a, const double *ref, int64_t n)
{
    double d = 0, m = 0;
    for (int64_t i = 0; i < n; i++) {
        double e = fabs(a[i] - ref[i]);
        if (!(e <= d)) d = e; /* NaN wins */
        if (fabs(ref[i]) > m) m = fabs(ref[i]);
    }
    return m > 0 ? d / m : d;
}

static int same_bits(const double *a, const double *b, int64_t n)
{
    return memcmp(a, b, (size_t)n * sizeof(double)) == 0;
}

/* Bit-identical on every rank: compare with rank 0's copy. */
static int same_on_all_ranks(const double *a, int64_t n)
{
    double *r0 = malloc((size_t)n * sizeof(double));
    memcpy(r0, a, (size_t)n * sizeof(double));
    MPI_Bcast(r0, (int)n, MPI_DOUBLE, 0, MPI_COMM_WORLD);
    int mine = same_bits(a, r0, n), all = 0;
    MPI_Allreduce(&mine, &all, 1, MPI_INT, MPI_MIN, MPI_COMM_WORLD);
    free(r0);
    return all;
}

static int is_per_example(mgrad_meta *m)
{
    mgrad_meta_kind k;
    mgrad_meta_kind_of(m, &k);
    return k == MGRAD_META_DATA_WEIGHTS || k == MGRAD_META_POOL_WEIGHTS ||
           k == MGRAD_META_INPUTS || k == MGRAD_META_SOFT_LABELS;
}

static void check_config(const config *cfg)
{
    world w;
    world_create(&w, cfg, 0);
    /* the reference: this rank alone */
    built ref_b = build(&w, cfg, T, NULL);
    result ref = train_reverse(&w, &ref_b);
    /* data-parallel over the world */
    MPI_Comm comm = MPI_COMM_WORLD;
    built par_b = build(&w, cfg, T, &comm);
    result par = train_reverse(&w, &par_b);
    double worst = fabs(par.phi - ref.phi) / fabs(ref.phi);
    CHECK(worst <= cfg->tol, "%s: phi %.17g vs %.17g", cfg->name, par.phi, ref.phi);
    double e = rel_err(par.theta, ref.theta, ref.np);
    CHECK(e <= cfg->tol, "%s: theta_T rel err %.3g", cfg->name, e);
    if (e > worst) worst = e;
    CHECK(same_on_all_ranks(&par.phi, 1), "%s: phi differs between ranks", cfg->name);
    CHECK(same_on_all_ranks(par.theta, par.np), "%s: theta_T differs between ranks",
          cfg->name);
    if (g_size == 1) {
        CHECK(par.phi == ref.phi && same_bits(par.theta, ref.theta, ref.np),
              "%s: P = 1 is not bit-identical to the single process (phi, theta)", cfg->name);
    }
    char line[2048];
    int at = snprintf(line, sizeof line, "  %-22s P=%d phi %.3g theta %.1e", cfg->name,
                      g_size, fabs(par.phi - ref.phi) / fabs(ref.phi), e);
    for (int k = 0; k < par.nmeta; k++) {
        double ek = rel_err(par.grad[k], ref.grad[k], ref.size[k]);
        CHECK(ek <= cfg->tol, "%s: %s metagradient rel err %.3g (tol %.1g)", cfg->name,
              par_b.name[k], ek, cfg->tol);
        if (ek > worst) worst = ek;
        at += snprintf(line + at, sizeof line - (size_t)at, " | %s %.1e", par_b.name[k], ek);
        if (g_size == 1)
            CHECK(same_bits(par.grad[k], ref.grad[k], ref.size[k]),
                  "%s: %s: P = 1 not bit-identical to the single process", cfg->name,
                  par_b.name[k]);
        if (!is_per_example(par_b.meta[k])) {
            CHECK(same_bits(par.local[k], par.grad[k], par.size[k]),
                  "%s: %s: global kind's local gradient differs from the gathered one",
                  cfg->name, par_b.name[k]);
            CHECK(same_on_all_ranks(par.local[k], par.size[k]),
                  "%s: %s: global kind differs between ranks", cfg->name, par_b.name[k]);
        } else {
            /* the ranks' parts sum to the gathered sum (to rounding) */
            double *sum = malloc((size_t)par.size[k] * sizeof(double));
            MPI_Allreduce(par.local[k], sum, (int)par.size[k], MPI_DOUBLE, MPI_SUM,
                          MPI_COMM_WORLD);
            double es = rel_err(sum, par.grad[k], par.size[k]);
            CHECK(es <= 1e-13 || (cfg->dtype == MGRAD_DTYPE_F32 && es <= 1e-5),
                  "%s: %s: local parts do not sum to the gathered gradient (%.3g)",
                  cfg->name, par_b.name[k], es);
            CHECK(same_on_all_ranks(par.grad[k], par.size[k]),
                  "%s: %s: gathered gradient differs between ranks", cfg->name,
                  par_b.name[k]);
            free(sum);
        }
    }
    /* determinism: a second reverse of the same run (replays the forward
       phase), and a second data-parallel run */
    OK(mgrad_run_reverse(par_b.run), w.ctx);
    result again = collect(&w, &par_b, par.phi);
    built par2_b = build(&w, cfg, T, &comm);
    result par2 = train_reverse(&w, &par2_b);
    CHECK(par2.phi == par.phi && same_bits(par2.theta, par.theta, par.np),
          "%s: a second run on P = %d is not bit-identical (phi, theta)", cfg->name, g_size);
    for (int k = 0; k < par.nmeta; k++) {
        CHECK(same_bits(par2.grad[k], par.grad[k], par.size[k]) &&
              same_bits(par2.local[k], par.local[k], par.size[k]),
              "%s: %s: a second run on P = %d is not bit-identical", cfg->name,
              par_b.name[k], g_size);
        CHECK(same_bits(again.grad[k], par.grad[k], par.size[k]),
              "%s: %s: a second reverse is not bit-identical", cfg->name, par_b.name[k]);
    }
    /* per-rank peak memory of the checkpoint store, and the traffic */
    mgrad_run_stats st = MGRAD_RUN_STATS_INIT;
    OK(mgrad_run_get_stats(par_b.run, &st), w.ctx);
    mgrad_mpi_info info = MGRAD_MPI_INFO_INIT;
    OK(mgrad_run_mpi_info(par_b.run, &info), w.ctx);
    CHECK(info.rank == g_rank && info.size == g_size, "%s: mpi info rank/size", cfg->name);
    if (g_rank == 0) {
        printf("%s\n", line);
        printf("  %-22s worst rel err %.2e; rank 0: %lld reductions, %llu bytes reduced, "
               "%llu bytes sent, %.3f s; peak state bytes %llu, %lld steps recomputed\n",
               cfg->name, worst, (long long)info.reductions,
               (unsigned long long)info.bytes_reduced, (unsigned long long)info.bytes_sent,
               info.seconds, (unsigned long long)st.peak_state_bytes,
               (long long)st.steps_recomputed);
        fflush(stdout);
    }
    /* evaluate and example losses are collective too, and agree */
    double l1 = 0, a1 = 0, l2 = 0, a2 = 0;
    OK(mgrad_run_evaluate(ref_b.run, w.val, &l1, &a1), w.ctx);
    OK(mgrad_run_evaluate(par_b.run, w.val, &l2, &a2), w.ctx);
    CHECK(fabs(l1 - l2) <= cfg->tol * fabs(l1) && a1 == a2, "%s: evaluate %.17g/%g vs %.17g/%g",
          cfg->name, l2, a2, l1, a1);
    double ell1[NTRAIN], ell2[NTRAIN];
    OK(mgrad_run_example_losses(ref_b.run, w.train, MGRAD_DTYPE_F64, ell1, NTRAIN), w.ctx);
    OK(mgrad_run_example_losses(par_b.run, w.train, MGRAD_DTYPE_F64, ell2, NTRAIN), w.ctx);
    CHECK(rel_err(ell2, ell1, NTRAIN) <= cfg->tol, "%s: example losses", cfg->name);
    CHECK(same_on_all_ranks(ell2, NTRAIN), "%s: example losses differ between ranks",
          cfg->name);

    result_free(&ref);
    result_free(&par);
    result_free(&again);
    result_free(&par2);
    mgrad_run_destroy(ref_b.run);
    mgrad_run_destroy(par_b.run);
    mgrad_run_destroy(par2_b.run);
    world_destroy(&w);
}

/* ---- refusals ----------------------------------------------------------- */

static void check_refusals(void)
{
    const config *cfg = &CONFIGS[0];
    MPI_Comm comm = MPI_COMM_WORLD;
    /* batch norm couples the rows of a batch: refused on P > 1 */
    world w;
    world_create(&w, cfg, 1);
    built b = build(&w, cfg, T, NULL);
    mgrad_status s = mgrad_run_set_communicator(b.run, &comm);
    if (g_size > 1)
        CHECK(s == MGRAD_ERR_UNSUPPORTED, "batch norm on %d ranks: status %d", g_size, (int)s);
    else
        CHECK(s == MGRAD_OK, "batch norm on one rank: status %d: %s", (int)s,
              mgrad_context_last_error(w.ctx));
    mgrad_run_destroy(b.run);
    world_destroy(&w);
    /* runs that differ between ranks: refused on every rank */
    if (g_size > 1) {
        world_create(&w, cfg, 0);
        b = build(&w, cfg, g_rank == g_size - 1 ? T + 1 : T, NULL);
        s = mgrad_run_set_communicator(b.run, &comm);
        CHECK(s == MGRAD_ERR_INVALID, "differing runs: status %d", (int)s);
        /* still usable alone */
        double phi = 0;
        CHECK(mgrad_run_train(b.run, &phi) == MGRAD_OK, "differing runs: train alone");
        mgrad_run_destroy(b.run);
        world_destroy(&w);
    }
}

/* ---- failures on one rank: a callback model -------------------------------
   A linear model with squared error, o = W x; ℓ_i = ½ ‖o_i − y_i‖².  Its
   loss_grad fails (or returns a NaN loss) on the last rank only, at its
   fail_at-th call. */

typedef struct lin {
    int64_t calls, fail_at;
    int nan; /* return a NaN loss instead of failing */
} lin;

static int lin_loss_grad(const mgrad_chunk *chunk, const void *theta_,
                         mgrad_loss_grad_out *out, void *user)
{
    lin *L = user;
    L->calls++;
    int bad = g_rank == g_size - 1 && L->fail_at > 0 && L->calls == L->fail_at;
    if (bad && !L->nan) return 7;
    const double *W = theta_, *x = chunk->inputs, *y = chunk->targets, *wt = chunk->weights;
    double *grad = out->grad, *ell = out->example_losses, scale = chunk->scale;
    int64_t rows = chunk->rows;
    double total = 0;
    for (int64_t r = 0; r < rows; r++) {
        double li = 0, d[C];
        for (int c = 0; c < C; c++) {
            double o = 0;
            for (int f = 0; f < F; f++) o += W[c * F + f] * x[r * F + f];
            d[c] = o - y[r * C + c];
            li += 0.5 * d[c] * d[c];
        }
        if (ell != NULL) ell[r] = li;
        total += wt[r] * li;
        if (grad != NULL)
            for (int c = 0; c < C; c++)
                for (int f = 0; f < F; f++)
                    grad[c * F + f] += scale * wt[r] * d[c] * x[r * F + f];
    }
    out->loss = bad ? NAN : scale * total;
    return 0;
}

static void check_failures(void)
{
    mgrad_context *ctx = NULL;
    mgrad_context_options co = MGRAD_CONTEXT_OPTIONS_INIT;
    co.dtype = MGRAD_DTYPE_F64; /* the callback reads doubles */
    if (mgrad_context_create(&ctx, &co) != MGRAD_OK) MPI_Abort(MPI_COMM_WORLD, 2);
    double x[NTRAIN * F], y[NTRAIN * C];
    uint64_t s = 3;
    for (int i = 0; i < NTRAIN * F; i++) x[i] = urand(&s);
    for (int i = 0; i < NTRAIN * C; i++) y[i] = urand(&s);
    int64_t shape[1] = {F};
    mgrad_dataset *train = NULL;
    OK(mgrad_dataset_create(&train, ctx, NTRAIN, 1, shape, MGRAD_DTYPE_F64, x), ctx);
    OK(mgrad_dataset_set_targets(train, MGRAD_DTYPE_F64, y, NTRAIN, C), ctx);
    lin L = {0, 0, 0};
    mgrad_callback_model cb = MGRAD_CALLBACK_MODEL_INIT;
    cb.num_params = C * F;
    const int64_t input_shape[1] = {F};
    cb.ndim = 1;
    cb.input_shape = input_shape;
    cb.num_outputs = C;
    cb.loss_grad = lin_loss_grad;
    cb.user_data = &L;
    double theta0[C * F] = {0};
    mgrad_run_options o = MGRAD_RUN_OPTIONS_INIT;
    o.steps = T;
    o.batch_size = B;
    o.loss = MGRAD_LOSS_SQUARED_ERROR;
    o.lr = 0.1;
    o.momentum = 0.5;
    o.validation = train;
    mgrad_run *run = NULL;
    OK(mgrad_run_create_callback(&run, ctx, &cb, theta0, train, &o), ctx);
    mgrad_meta *lr = NULL;
    OK(mgrad_run_add_meta(&lr, run, MGRAD_META_LR_SCHEDULE, NULL), ctx);
    MPI_Comm comm = MPI_COMM_WORLD;
    OK(mgrad_run_set_communicator(run, &comm), ctx);
    /* a clean run counts the calls of the forward phase on this rank */
    double phi = 0;
    L.calls = 0;
    OK(mgrad_run_train(run, &phi), ctx);
    int64_t train_calls = L.calls;
    OK(mgrad_run_reverse(run), ctx);
    struct { const char *what; int64_t at; int nan; mgrad_status want; } cases[] = {
        {"callback failure in the forward pass", 3, 0, MGRAD_ERR_CALLBACK},
        {"callback failure in the output function", train_calls, 0, MGRAD_ERR_CALLBACK},
        {"callback failure in the reverse pass", train_calls + 5, 0, MGRAD_ERR_CALLBACK},
        {"NaN loss in the forward pass", 2, 1, MGRAD_ERR_NONFINITE},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        L.calls = 0;
        L.fail_at = cases[i].at;
        L.nan = cases[i].nan;
        mgrad_status st = mgrad_run_train(run, &phi);
        if (st == MGRAD_OK) st = mgrad_run_reverse(run);
        const char *msg = mgrad_context_last_error(ctx);
        CHECK(st == cases[i].want, "%s: status %d (want %d): %s", cases[i].what, (int)st,
              (int)cases[i].want, msg);
        if (g_rank != g_size - 1 && !cases[i].nan)
            CHECK(strstr(msg, "rank") != NULL, "%s: message does not name the rank: %s",
                  cases[i].what, msg);
        if (g_rank == 0) {
            printf("  failure on rank %d (%s): every rank returned %s; rank 0 says: %.150s\n",
                   g_size - 1, cases[i].what, mgrad_status_string(st), msg);
            fflush(stdout);
        }
        /* the run stays usable on every rank */
        L.fail_at = 0;
        OK(mgrad_run_train(run, &phi), ctx);
        OK(mgrad_run_reverse(run), ctx);
    }
    mgrad_run_destroy(run);
    mgrad_dataset_destroy(train);
    mgrad_context_destroy(ctx);
}

int main(int argc, char **argv)
{
    MPI_Init(&argc, &argv);
    MPI_Comm_rank(MPI_COMM_WORLD, &g_rank);
    MPI_Comm_size(MPI_COMM_WORLD, &g_size);
    if (!mgrad_mpi_available()) {
        if (g_rank == 0) printf("libmetagrad built without MPI\n");
        MPI_Finalize();
        return 1;
    }
    if (g_rank == 0) printf("test_mpi on %d rank(s): max-norm relative error vs one process\n",
                            g_size);
    for (int i = 0; i < NCONFIGS; i++) check_config(&CONFIGS[i]);
    check_refusals();
    check_failures();
    int total = 0;
    MPI_Allreduce(&g_failures, &total, 1, MPI_INT, MPI_SUM, MPI_COMM_WORLD);
    if (g_rank == 0) printf("test_mpi on %d rank(s): %s (%d failed checks)\n", g_size,
                            total == 0 ? "OK" : "FAILED", total);
    MPI_Finalize();
    return total == 0 ? 0 : 1;
}
