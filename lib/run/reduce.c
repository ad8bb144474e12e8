/*
 * reduce.c - scale-out over MPI (docs/scale-out.md): the reduction seam of
 * the engine (mgr_shard, mgr_reduce_sum, mgr_reduce_finish) and the public
 * API of metagrad/mpi.h.  Untyped: buffers are in the context's dtype.
 *
 * The reduction.  Ranks form a binomial tree rooted at rank 0: at level
 * m = 1, 2, 4, ... a rank r with r & m sends its partial sum to r − m and
 * leaves; a rank with r + m < P receives that partial sum and adds it after
 * its own, buf ← buf + recv.  Rank 0 then broadcasts the result.  The
 * association is a function of P only (P = 4: (a0 + a1) + (a2 + a3)), so the
 * result is bit-identical across repeated runs on P ranks and the same on
 * every rank; MPI_Allreduce is not used because the standard leaves its
 * order of evaluation open.
 *
 * Failures.  Every message of the tree starts with a header that carries the
 * sender's status; data follows only when it is MGRAD_OK.  A failed rank
 * still receives (and drops) its children's data, and passes on the
 * failure; the broadcast header tells every rank the first failing rank,
 * which then broadcasts its message.  Because every collective of a run
 * speaks this one protocol, a rank that failed outside a reduction (a
 * spill-file error) joins whichever reduction the others are in, via
 * mgr_reduce_finish, and the call fails on every rank instead of hanging.
 */
#include <string.h>

#include "graph/graph.h"
#include "mgrad_config.h"
#include "metagrad/mpi.h"
#include "run/run_internal.h"

#if MGRAD_HAVE_MPI
#include <mpi.h>
#endif

#define MGR_REDUCE_EXTRA 4
/* Data travels in pieces of at most this many bytes (pipelining, and MPI
   counts are int). */
#define MGR_PIECE_BYTES ((size_t)4 << 20)
#define MGR_TAG 0x6d67

struct mgr_comm {
#if MGRAD_HAVE_MPI
    MPI_Comm comm;          /* the run's duplicate */
#endif
    int rank, size;
    void *tmp;              /* [MGR_PIECE_BYTES] receive buffer */
    int shared_failure;     /* a failure was exchanged in the current call */
    mgrad_mpi_info info;
};

void mgr_shard(const mgrad_run *run, size_t count, size_t *lo, size_t *hi)
{
    const struct mgr_comm *c = run->comm;
    if (c == NULL) {
        *lo = 0;
        *hi = count;
        return;
    }
    *lo = count * (size_t)c->rank / (size_t)c->size;
    *hi = count * (size_t)(c->rank + 1) / (size_t)c->size;
}

int32_t mgrad_mpi_available(void)
{
    return MGRAD_HAVE_MPI;
}

mgrad_status mgrad_run_mpi_info(const mgrad_run *run, mgrad_mpi_info *out)
{
    if (run == NULL) return MGRAD_ERR_NULL;
    MGRAD_RETURN_IF(run->ctx, out == NULL, MGRAD_ERR_NULL,
                    "mgrad_run_mpi_info: out must not be NULL");
    MGRAD_RETURN_IF(run->ctx, out->version != MGRAD_MPI_INFO_VERSION, MGRAD_ERR_VERSION,
                    "mgrad_run_mpi_info: info version %u unknown; initialise with "
                    "MGRAD_MPI_INFO_INIT", (unsigned)out->version);
    if (run->comm != NULL) {
        *out = run->comm->info;
        return MGRAD_OK;
    }
    mgrad_mpi_info d = MGRAD_MPI_INFO_INIT;
    *out = d;
    return MGRAD_OK;
}

static int is_per_example(mgrad_meta_kind k)
{
    return k == MGRAD_META_DATA_WEIGHTS || k == MGRAD_META_POOL_WEIGHTS ||
           k == MGRAD_META_INPUTS || k == MGRAD_META_SOFT_LABELS;
}

#if MGRAD_HAVE_MPI

typedef struct hdr {
    int32_t status;   /* MGRAD_OK, or the failure of the first failing rank below */
    int32_t rank;     /* that rank */
    int64_t n;        /* values that follow (when status is MGRAD_OK) */
    int64_t nextra;
    double extra[MGR_REDUCE_EXTRA];
} hdr;

static void add_piece(mgrad_dtype dt, void *dst, const void *src, size_t count)
{
    if (dt == MGRAD_DTYPE_F32) {
        float *d = dst;
        const float *s = src;
        for (size_t i = 0; i < count; i++) d[i] += s[i];
    } else {
        double *d = dst;
        const double *s = src;
        for (size_t i = 0; i < count; i++) d[i] += s[i];
    }
}

mgrad_status mgr_reduce_sum(mgrad_run *run, void *buf, size_t n, double *extra,
                            size_t nextra, mgrad_status local)
{
    struct mgr_comm *c = run->comm;
    if (c == NULL) return local;
    double t0 = mgr_seconds();
    mgrad_dtype dt = run->ctx->dtype;
    size_t es = mgr_dtype_size(dt);
    size_t per = MGR_PIECE_BYTES / es; /* values per piece */
    hdr me;
    memset(&me, 0, sizeof me);
    me.status = local;
    me.rank = local == MGRAD_OK ? -1 : c->rank;
    me.n = local == MGRAD_OK ? (int64_t)n : 0;
    me.nextra = (int64_t)nextra;
    for (size_t i = 0; i < nextra && i < MGR_REDUCE_EXTRA; i++) me.extra[i] = extra[i];
    if (local == MGRAD_OK && nextra > MGR_REDUCE_EXTRA) {
        me.status = mgr_error(run->ctx, MGRAD_ERR_INTERNAL,
                              "mgr_reduce_sum: %zu extra values (at most %d)", nextra,
                              MGR_REDUCE_EXTRA);
        me.rank = c->rank;
    }
    for (int m = 1; m < c->size; m <<= 1) {
        if (c->rank & m) {
            int parent = c->rank - m;
            MPI_Send(&me, (int)sizeof me, MPI_BYTE, parent, MGR_TAG, c->comm);
            c->info.bytes_sent += sizeof me;
            if (me.status == MGRAD_OK) {
                for (size_t at = 0; at < n; at += per) {
                    size_t k = n - at < per ? n - at : per;
                    MPI_Send((const char *)buf + at * es, (int)(k * es), MPI_BYTE, parent,
                             MGR_TAG, c->comm);
                }
                c->info.bytes_sent += n * es;
            }
            break;
        }
        int child = c->rank + m;
        if (child >= c->size) continue;
        hdr h;
        MPI_Recv(&h, (int)sizeof h, MPI_BYTE, child, MGR_TAG, c->comm, MPI_STATUS_IGNORE);
        if (h.status != MGRAD_OK) {
            if (me.status == MGRAD_OK || h.rank < me.rank) {
                me.status = h.status;
                me.rank = h.rank;
            }
            continue; /* a failed subtree sends no data */
        }
        if (me.status == MGRAD_OK && (h.n != me.n || h.nextra != me.nextra)) {
            me.status = mgr_error(run->ctx, MGRAD_ERR_INTERNAL,
                                  "mismatched collectives: rank %d reduces %lld values, "
                                  "rank %d reduces %lld", c->rank, (long long)me.n, child,
                                  (long long)h.n);
            me.rank = c->rank;
        }
        size_t hn = (size_t)h.n;
        for (size_t at = 0; at < hn; at += per) {
            size_t k = hn - at < per ? hn - at : per;
            MPI_Recv(c->tmp, (int)(k * es), MPI_BYTE, child, MGR_TAG, c->comm,
                     MPI_STATUS_IGNORE);
            if (me.status == MGRAD_OK) add_piece(dt, (char *)buf + at * es, c->tmp, k);
        }
        if (me.status == MGRAD_OK)
            for (size_t i = 0; i < nextra; i++) me.extra[i] += h.extra[i];
    }
    MPI_Bcast(&me, (int)sizeof me, MPI_BYTE, 0, c->comm);
    mgrad_status result = (mgrad_status)me.status;
    if (result == MGRAD_OK) {
        for (size_t at = 0; at < n; at += per) {
            size_t k = n - at < per ? n - at : per;
            MPI_Bcast((char *)buf + at * es, (int)(k * es), MPI_BYTE, 0, c->comm);
        }
        for (size_t i = 0; i < nextra; i++) extra[i] = me.extra[i];
    } else {
        /* The first failing rank tells the others what happened. */
        char msg[MGRAD_ERROR_CAPACITY];
        if (c->rank == me.rank) {
            strncpy(msg, run->ctx->last_error, sizeof msg - 1);
            msg[sizeof msg - 1] = '\0';
        }
        MPI_Bcast(msg, (int)sizeof msg, MPI_CHAR, me.rank, c->comm);
        msg[sizeof msg - 1] = '\0';
        c->shared_failure = 1;
        if (local == MGRAD_OK)
            result = mgr_error(run->ctx, result, "rank %d of %d failed: %s", me.rank,
                               c->size, msg);
        else
            result = local; /* keep this rank's own failure and message */
    }
    c->info.reductions++;
    c->info.bytes_reduced += n * es;
    c->info.seconds += mgr_seconds() - t0;
    return result;
}

mgrad_status mgr_reduce_finish(mgrad_run *run, mgrad_status s)
{
    struct mgr_comm *c = run->comm;
    if (c == NULL) return s;
    if (c->shared_failure) {
        c->shared_failure = 0;
        return s;
    }
    s = mgr_reduce_sum(run, NULL, 0, NULL, 0, s);
    c->shared_failure = 0;
    return s;
}

void mgr_comm_free(mgrad_run *run)
{
    struct mgr_comm *c = run->comm;
    if (c == NULL) return;
    int finalized = 0;
    MPI_Finalized(&finalized);
    if (!finalized) MPI_Comm_free(&c->comm);
    mgr_free(run->ctx, c->tmp);
    mgr_free(run->ctx, c);
    run->comm = NULL;
}

/* What the ranks' runs must agree on. */
enum { FP_LEN = 16 };
static void fingerprint(const mgrad_run *run, int64_t fp[FP_LEN])
{
    const mgr_run_model *mo = &run->model;
    const mgr_run_config *cf = &run->config;
    int64_t kinds = 0;
    for (int i = 0; i < run->metas.count; i++)
        kinds += (int64_t)1 << (4 * (int)run->metas.all[i]->kind % 60);
    int64_t v[FP_LEN] = {run->ctx->dtype, mo->num_params, cf->steps, cf->batch,
                         cf->train->n, cf->val->n, mo->classes, mo->features,
                         cf->opts.optimizer, cf->opts.loss, run->metas.count, kinds,
                         (int64_t)cf->state_len, mo->kind == MGR_MODEL_CALLBACK,
                         cf->policy, cf->slots};
    memcpy(fp, v, sizeof v);
}

static mgrad_status set_comm(mgrad_run *run, MPI_Comm comm, const char *fn)
{
    mgrad_context *ctx = run->ctx;
    int inited = 0, finalized = 0;
    MPI_Initialized(&inited);
    MPI_Finalized(&finalized);
    MGRAD_RETURN_IF(ctx, !inited || finalized, MGRAD_ERR_UNSUPPORTED,
                    "%s: MPI is not initialised (call MPI_Init first)", fn);
    int size = 0, rank = 0;
    MPI_Comm_size(comm, &size);
    MPI_Comm_rank(comm, &rank);
    /* Local refusals first, then one exchange so that all ranks agree. */
    mgrad_status s = MGRAD_OK;
    if (size > 1 && run->model.kind != MGR_MODEL_CALLBACK)
        for (int32_t k = 0; k < run->model.graph.num_nodes && s == MGRAD_OK; k++)
            if (run->model.graph.nodes[k].kind == MGR_OP_BATCH_NORM)
                s = mgr_error(ctx, MGRAD_ERR_UNSUPPORTED,
                              "%s: the model has batch norm, which couples the rows of a "
                              "batch; data-parallel runs over %d ranks would change its "
                              "statistics (use layer norm, or one rank)", fn, size);
    int64_t fp[FP_LEN], lo[FP_LEN + 1], hi[FP_LEN + 1], mine[FP_LEN + 1];
    fingerprint(run, fp);
    memcpy(mine, fp, sizeof fp);
    mine[FP_LEN] = s == MGRAD_OK ? 0 : 1; /* local refusal anywhere fails everywhere */
    /* integer min/max: exact whatever the order */
    MPI_Allreduce(mine, lo, FP_LEN + 1, MPI_INT64_T, MPI_MIN, comm);
    MPI_Allreduce(mine, hi, FP_LEN + 1, MPI_INT64_T, MPI_MAX, comm);
    if (s != MGRAD_OK) return s;
    MGRAD_RETURN_IF(ctx, hi[FP_LEN] != 0, MGRAD_ERR_UNSUPPORTED,
                    "%s: another rank refused the communicator (see its message)", fn);
    MGRAD_RETURN_IF(ctx, memcmp(lo, hi, sizeof fp) != 0, MGRAD_ERR_INVALID,
                    "%s: the runs of the %d ranks differ (sizes, steps, batch, dtype, "
                    "optimizer, loss, metaparameters or checkpointing); every rank must "
                    "create the same run", fn, size);
    struct mgr_comm *c = NULL;
    MGRAD_FORWARD(mgr_alloc_or_fail(ctx, (void **)&c, 1, sizeof *c, "the communicator"));
    s = mgr_alloc_or_fail(ctx, &c->tmp, MGR_PIECE_BYTES, 1, "the reduction buffer");
    /* Allocation failures must not leave the ranks disagreeing. */
    int bad = s != MGRAD_OK, any_bad = 0;
    MPI_Allreduce(&bad, &any_bad, 1, MPI_INT, MPI_MAX, comm);
    if (any_bad) {
        mgr_free(ctx, c->tmp);
        mgr_free(ctx, c);
        return s != MGRAD_OK ? s : mgr_error(ctx, MGRAD_ERR_NOMEM,
                                             "%s: another rank ran out of memory", fn);
    }
    MPI_Comm_dup(comm, &c->comm);
    c->rank = rank;
    c->size = size;
    mgrad_mpi_info d = MGRAD_MPI_INFO_INIT;
    c->info = d;
    c->info.rank = rank;
    c->info.size = size;
    mgr_comm_free(run);
    run->comm = c;
    mgr_run_invalidate(run, MGR_STALE_COMMUNICATOR);
    return MGRAD_OK;
}

mgrad_status mgrad_run_set_communicator(mgrad_run *run, const void *mpi_comm)
{
    if (run == NULL) return MGRAD_ERR_NULL;
    if (mpi_comm == NULL) {
        mgr_comm_free(run);
        mgr_run_invalidate(run, MGR_STALE_COMMUNICATOR);
        return MGRAD_OK;
    }
    return set_comm(run, *(const MPI_Comm *)mpi_comm, "mgrad_run_set_communicator");
}

mgrad_status mgrad_run_set_communicator_fortran(mgrad_run *run, int64_t fortran_handle)
{
    if (run == NULL) return MGRAD_ERR_NULL;
    int inited = 0;
    MPI_Initialized(&inited);
    MGRAD_RETURN_IF(run->ctx, !inited, MGRAD_ERR_UNSUPPORTED,
                    "mgrad_run_set_communicator_fortran: MPI is not initialised (call "
                    "MPI_Init first)");
    MPI_Comm comm = MPI_Comm_f2c((MPI_Fint)fortran_handle);
    return set_comm(run, comm, "mgrad_run_set_communicator_fortran");
}

#else /* !MGRAD_HAVE_MPI */

mgrad_status mgr_reduce_sum(mgrad_run *run, void *buf, size_t n, double *extra,
                            size_t nextra, mgrad_status local)
{
    (void)run;
    (void)buf;
    (void)n;
    (void)extra;
    (void)nextra;
    return local;
}

mgrad_status mgr_reduce_finish(mgrad_run *run, mgrad_status s)
{
    (void)run;
    return s;
}

void mgr_comm_free(mgrad_run *run)
{
    (void)run;
}

mgrad_status mgrad_run_set_communicator(mgrad_run *run, const void *mpi_comm)
{
    if (run == NULL) return MGRAD_ERR_NULL;
    if (mpi_comm == NULL) return MGRAD_OK; /* detaching: nothing attached */
    return mgr_error(run->ctx, MGRAD_ERR_UNSUPPORTED,
                     "mgrad_run_set_communicator: this libmetagrad was built without MPI "
                     "(configure with -Dmpi=enabled)");
}

mgrad_status mgrad_run_set_communicator_fortran(mgrad_run *run, int64_t fortran_handle)
{
    (void)fortran_handle;
    if (run == NULL) return MGRAD_ERR_NULL;
    return mgr_error(run->ctx, MGRAD_ERR_UNSUPPORTED,
                     "mgrad_run_set_communicator_fortran: this libmetagrad was built "
                     "without MPI (configure with -Dmpi=enabled)");
}

#endif

mgrad_status mgrad_meta_gather_grad(const mgrad_meta *meta, int32_t root, mgrad_dtype dtype,
                                    void *out, int64_t count)
{
    if (meta == NULL) return MGRAD_ERR_NULL;
    mgrad_run *run = meta->run;
    mgrad_context *ctx = run->ctx;
    const char *fn = "mgrad_meta_gather_grad";
    int rank = 0, size = 1;
#if MGRAD_HAVE_MPI
    if (run->comm != NULL) {
        rank = run->comm->rank;
        size = run->comm->size;
    }
#endif
    MGRAD_RETURN_IF(ctx, root < -1 || root >= size, MGRAD_ERR_INVALID,
                    "%s: root %d is not a rank of the communicator (size %d) nor -1", fn,
                    (int)root, size);
    int writes = root == -1 || root == rank;
    MGRAD_RETURN_IF(ctx, writes && out == NULL, MGRAD_ERR_NULL, "%s: out is NULL", fn);
    MGRAD_RETURN_IF(ctx, dtype != MGRAD_DTYPE_F32 && dtype != MGRAD_DTYPE_F64,
                    MGRAD_ERR_DTYPE, "%s: unknown dtype %d", fn, (int)dtype);
    MGRAD_RETURN_IF(ctx, count != meta->size, MGRAD_ERR_SIZE,
                    "%s: count = %lld but the metaparameter has %lld values", fn,
                    (long long)count, (long long)meta->size);
    MGRAD_RETURN_IF(ctx, run->traj.phase != MGR_PHASE_REVERSED, MGRAD_ERR_ORDER,
                    "%s: no gradient for the current values; did you forget "
                    "mgrad_run_train and mgrad_run_reverse?", fn);
    if (run->comm == NULL) {
        if (writes) mgr_convert(out, dtype, meta->grad, ctx->dtype, (size_t)count, 0);
        return MGRAD_OK;
    }
    if (!is_per_example(meta->kind)) {
        /* identical on every rank: a status exchange keeps the call collective */
        MGRAD_FORWARD(mgr_reduce_finish(run, MGRAD_OK));
        if (writes) mgr_convert(out, dtype, meta->grad, ctx->dtype, (size_t)count, 0);
        return MGRAD_OK;
    }
    void *tmp = NULL;
    mgrad_status s = mgr_alloc_or_fail(ctx, &tmp, (size_t)count, mgr_dtype_size(ctx->dtype),
                                       "the gathered gradient");
    if (s == MGRAD_OK)
        memcpy(tmp, meta->grad, (size_t)count * mgr_dtype_size(ctx->dtype));
    s = mgr_reduce_sum(run, tmp, (size_t)count, NULL, 0, s);
    run->comm->shared_failure = 0;
    if (s == MGRAD_OK && writes) mgr_convert(out, dtype, tmp, ctx->dtype, (size_t)count, 0);
    mgr_free(ctx, tmp);
    return s;
}
