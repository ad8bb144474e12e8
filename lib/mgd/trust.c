/*
 * trust.c - the trust check before MGD (mgrad_mgd_trust_check in
 * include/metagrad/mgd.h): the empirical metasmoothness along a random
 * direction with a default step per kind, and the agreement of the
 * metagradient with that of a twin run in the other precision.
 *
 * Public API only, like mgd.c.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "base/base.h"
#include "metagrad/mgd.h"
#include "metagrad/smooth.h"

/* Thresholds (docs/smoothness.md gives the measurements behind them). */
#define TRUST_MIN_S 0.6
#define TRUST_MAX_REL_DIFF 0.2

/* The metagradient of `meta` at its current value, in double. */
static mgrad_status grad_at(mgrad_meta *meta, double *g, int64_t n)
{
    mgrad_run *run = NULL;
    MGRAD_FORWARD(mgrad_meta_run(meta, &run));
    MGRAD_FORWARD(mgrad_run_train(run, NULL));
    MGRAD_FORWARD(mgrad_run_reverse(run));
    return mgrad_meta_get_grad(meta, MGRAD_DTYPE_F64, g, n);
}

mgrad_status mgrad_mgd_trust_check(mgrad_meta *meta, mgrad_meta *twin, double h, uint64_t seed,
                                   mgrad_trust_report *out)
{
    if (meta == NULL) return MGRAD_ERR_NULL;
    mgrad_run *run = NULL, *trun = NULL;
    mgrad_context *ctx = NULL, *tctx = NULL;
    int64_t n = 0, tn = 0;
    mgrad_meta_kind kind = 0, tkind = 0;
    MGRAD_FORWARD(mgrad_meta_run(meta, &run));
    MGRAD_FORWARD(mgrad_run_context(run, &ctx));
    MGRAD_FORWARD(mgrad_meta_size(meta, &n));
    MGRAD_FORWARD(mgrad_meta_kind_of(meta, &kind));
    const char *fn = "mgrad_mgd_trust_check";
    MGRAD_RETURN_IF(ctx, out == NULL, MGRAD_ERR_NULL, "%s: out is NULL", fn);
    MGRAD_RETURN_IF(ctx, out->version != MGRAD_TRUST_REPORT_VERSION, MGRAD_ERR_VERSION,
                    "%s: out->version = %u unknown; initialise with MGRAD_TRUST_REPORT_INIT",
                    fn, (unsigned)out->version);
    MGRAD_RETURN_IF(ctx, !(h >= 0 && isfinite(h)), MGRAD_ERR_INVALID,
                    "%s: h = %g must be finite and >= 0 (0: the default)", fn, h);
    if (twin != NULL) {
        MGRAD_FORWARD(mgrad_meta_run(twin, &trun));
        MGRAD_FORWARD(mgrad_run_context(trun, &tctx));
        MGRAD_FORWARD(mgrad_meta_size(twin, &tn));
        MGRAD_FORWARD(mgrad_meta_kind_of(twin, &tkind));
        MGRAD_RETURN_IF(ctx, tkind != kind || tn != n, MGRAD_ERR_INVALID,
                        "%s: the twin must be a metaparameter of the same kind and size (%lld "
                        "values)",
                        fn, (long long)n);
        MGRAD_RETURN_IF(ctx, mgrad_context_dtype(tctx) == mgrad_context_dtype(ctx),
                        MGRAD_ERR_INVALID,
                        "%s: the twin's run must use the other dtype (f32 against f64)", fn);
    }
    double *z = NULL, *g = NULL, *gt = NULL;
    MGRAD_FORWARD(mgr_alloc_or_fail(ctx, (void **)&z, (size_t)n, sizeof(double), "trust check"));
    mgrad_status s = mgr_alloc_or_fail(ctx, (void **)&g, (size_t)n, sizeof(double), "trust check");
    if (s == MGRAD_OK)
        s = mgr_alloc_or_fail(ctx, (void **)&gt, (size_t)n, sizeof(double), "trust check");
    mgrad_trust_report r = *out;
    if (s == MGRAD_OK) s = mgrad_meta_get_value(meta, MGRAD_DTYPE_F64, z, n);
    if (s == MGRAD_OK && h == 0) {
        /* 10% of the value's Euclidean norm: along a unit direction, each
           entry moves by 10% of the value's RMS (for an LR schedule of
           constant η over T steps: 0.1 η √T); 0.01 for a zero value */
        double norm = 0;
        for (int64_t i = 0; i < n; i++) norm += z[i] * z[i];
        h = norm > 0 ? 0.1 * sqrt(norm) : 0.01;
    }
    r.h = h;
    if (s == MGRAD_OK) s = mgrad_meta_metasmoothness(meta, NULL, seed, h, &r.S, &r.curvature);
    r.rel_diff = NAN;
    r.cosine = NAN;
    if (s == MGRAD_OK && twin != NULL) {
        s = mgrad_meta_set_value(twin, MGRAD_DTYPE_F64, z, n);
        if (s == MGRAD_OK) s = grad_at(meta, g, n);
        if (s == MGRAD_OK) s = grad_at(twin, gt, n);
        if (s == MGRAD_OK) {
            /* relative to the f64 metagradient */
            const double *ref = mgrad_context_dtype(ctx) == MGRAD_DTYPE_F64 ? g : gt;
            double dd = 0, rr = 0, gg = 0, tt = 0, gtd = 0;
            for (int64_t i = 0; i < n; i++) {
                dd += (g[i] - gt[i]) * (g[i] - gt[i]);
                rr += ref[i] * ref[i];
                gg += g[i] * g[i];
                tt += gt[i] * gt[i];
                gtd += g[i] * gt[i];
            }
            r.rel_diff = rr > 0 ? sqrt(dd / rr) : (dd > 0 ? INFINITY : 0);
            r.cosine = gg > 0 && tt > 0 ? gtd / sqrt(gg * tt) : (gg == tt ? 1 : 0);
        }
    }
    if (s == MGRAD_OK) {
        r.smooth_ok = r.S >= TRUST_MIN_S;
        r.precision_ok = twin == NULL || r.rel_diff <= TRUST_MAX_REL_DIFF;
        r.trusted = r.smooth_ok && r.precision_ok;
        if (!r.smooth_ok)
            mgr_log(ctx, MGRAD_LOG_WARNING,
                    "%s: metasmoothness S = %.3f < %.1f at h = %g: training is not metasmooth "
                    "along this metaparameter, its metagradients may not point downhill "
                    "(docs/smoothness.md)",
                    fn, r.S, TRUST_MIN_S, h);
        if (!r.precision_ok)
            mgr_log(ctx, MGRAD_LOG_WARNING,
                    "%s: the f32 and f64 metagradients differ by %.0f%% (cosine %.3f): in f32 "
                    "they are mostly rounding noise here; use an f64 context "
                    "(docs/smoothness.md)",
                    fn, 100 * r.rel_diff, r.cosine);
        *out = r;
    }
    mgr_free(ctx, z);
    mgr_free(ctx, g);
    mgr_free(ctx, gt);
    return s;
}
