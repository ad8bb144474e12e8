/*
 * smooth.c - the public API of metagrad/smooth.h: empirical metasmoothness
 * from three training runs, and Hessian diagnostics at θ_T built on the
 * typed H u sessions of hessian.c.  Arithmetic here is in double.
 */
#include <lapacke.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "base/rng.h"
#include "metagrad/smooth.h"
#include "run/hessian.h"

/* Stream of the random directions and start vectors (rng.h's user range). */
#define SMOOTH_STREAM (MGR_STREAM_USER + (0x5300ull << 8))

/* Record `status` with `what` and the message the failing call left. */
static mgrad_status wrap_error(mgrad_context *ctx, mgrad_status status, const char *fn,
                               const char *what)
{
    char inner[MGRAD_ERROR_CAPACITY];
    snprintf(inner, sizeof inner, "%s", mgrad_context_last_error(ctx));
    return mgr_error(ctx, status, "%s: %s: %s", fn, what, inner);
}

/* x[n] = a random unit vector (normalised standard normal draws). */
static void random_unit(uint64_t seed, size_t n, double *x)
{
    double norm2 = 0;
    for (size_t i = 0; i < n; i++) {
        x[i] = mgr_rng_normal(seed, SMOOTH_STREAM, (uint64_t)i);
        norm2 += x[i] * x[i];
    }
    double inv = norm2 > 0 ? 1.0 / sqrt(norm2) : 0;
    if (norm2 == 0) x[0] = 1, inv = 1;
    for (size_t i = 0; i < n; i++) x[i] *= inv;
}

static double sign_of(double x) { return (double)((x > 0) - (x < 0)); }

/* ---- metasmoothness ------------------------------------------------------ */

/* Set the value (double), train, copy θ_T; *phi = φ. */
static mgrad_status train_at(mgrad_meta *meta, const double *value, const char *where,
                             double *theta, double *phi)
{
    static const char fn[] = "mgrad_meta_metasmoothness";
    mgrad_run *run = meta->run;
    mgrad_status s = mgrad_meta_set_value(meta, MGRAD_DTYPE_F64, value, meta->size);
    if (s == MGRAD_ERR_INVALID) {
        char what[96];
        snprintf(what, sizeof what, "%s is out of the metaparameter's range (use a smaller "
                 "h or another direction)", where);
        return wrap_error(run->ctx, s, fn, what);
    }
    if (s != MGRAD_OK) return wrap_error(run->ctx, s, fn, where);
    s = mgr_run_train_value(run, phi);
    if (s != MGRAD_OK) {
        char what[96];
        snprintf(what, sizeof what, "training at %s failed", where);
        return wrap_error(run->ctx, s, fn, what);
    }
    return mgrad_run_get_params(run, MGRAD_DTYPE_F64, theta, run->model.num_params);
}

mgrad_status mgrad_meta_metasmoothness(mgrad_meta *meta, const double *direction,
                                       uint64_t seed, double h, double *out_S,
                                       double *out_curvature)
{
    static const char fn[] = "mgrad_meta_metasmoothness";
    if (meta == NULL) return MGRAD_ERR_NULL;
    mgrad_run *run = meta->run;
    mgrad_context *ctx = run->ctx;
    MGRAD_RETURN_IF(ctx, !(h > 0 && isfinite(h)), MGRAD_ERR_INVALID,
                    "%s: h = %g must be finite and > 0", fn, h);
    size_t n = (size_t)meta->size, P = (size_t)run->model.num_params;
    size_t esize = mgr_dtype_size(ctx->dtype);
    double *buf = NULL;
    void *saved = NULL;
    /* z, v, z + hv, z + 2hv [n]; θ_0, θ_h, θ_2h [P] */
    MGRAD_FORWARD(mgr_alloc_or_fail(ctx, (void **)&buf, 4 * n + 3 * P, sizeof(double),
                                    "metasmoothness buffers"));
    mgrad_status s = mgr_alloc_or_fail(ctx, &saved, n, esize, "a copy of the value");
    if (s != MGRAD_OK) {
        mgr_free(ctx, buf);
        return s;
    }
    double *z = buf, *v = z + n, *z1 = v + n, *z2 = z1 + n;
    double *th0 = z2 + n, *thh = th0 + P, *th2 = thh + P;
    memcpy(saved, meta->value, n * esize);   /* restored bit for bit */
    mgr_convert(z, MGRAD_DTYPE_F64, meta->value, ctx->dtype, n, 0);
    double phi0 = 0, phih = 0, phi2 = 0;
    if (direction != NULL) {
        double norm2 = 0;
        for (size_t i = 0; i < n; i++) norm2 += direction[i] * direction[i];
        if (!(norm2 > 0 && isfinite(norm2))) {
            s = mgr_error(ctx, MGRAD_ERR_INVALID, "%s: the direction must be finite and "
                          "nonzero", fn);
            goto done;
        }
        memcpy(v, direction, n * sizeof(double));
    } else {
        random_unit(seed, n, v);
    }
    for (size_t i = 0; i < n; i++) {
        z1[i] = z[i] + h * v[i];
        z2[i] = z[i] + 2 * h * v[i];
        if (!isfinite(z2[i])) {
            s = mgr_error(ctx, MGRAD_ERR_INVALID, "%s: z + 2hv is not finite at entry %lld "
                          "(h = %g too large?)", fn, (long long)i, h);
            goto done;
        }
    }
    /* z + 2hv first: the range check fails before any training, and the
       last run is the one at z, so the run ends where it was. */
    s = train_at(meta, z2, "z + 2hv", th2, &phi2);
    if (s == MGRAD_OK) s = train_at(meta, z1, "z + hv", thh, &phih);
    if (s != MGRAD_OK) goto done;
    memcpy(meta->value, saved, n * esize);
    mgr_run_invalidate(run, MGR_STALE_VALUE_SET);
    s = mgr_run_train_value(run, &phi0);
    if (s != MGRAD_OK) {
        s = wrap_error(ctx, s, fn, "training at z failed");
        goto done;
    }
    s = mgrad_run_get_params(run, MGRAD_DTYPE_F64, th0, (int64_t)P);
    if (s != MGRAD_OK) goto done;

    double num = 0, den = 0;
    for (size_t i = 0; i < P; i++) {
        double d = fabs(th2[i] - th0[i]);
        num += d * sign_of(thh[i] - th0[i]) * sign_of(th2[i] - thh[i]);
        den += d;
    }
    if (out_S != NULL) *out_S = den > 0 ? num / den : 1.0;
    if (out_curvature != NULL) *out_curvature = fabs(phi2 - 2 * phih + phi0) / (h * h);
done:
    if (s != MGRAD_OK) {
        memcpy(meta->value, saved, n * esize);
        mgr_run_invalidate(run, MGR_STALE_VALUE_SET);
    }
    mgr_free(ctx, saved);
    mgr_free(ctx, buf);
    return s;
}

/* ---- Hessian diagnostics -------------------------------------------------- */

static mgrad_status check_trained(const mgrad_run *run, const char *fn)
{
    MGRAD_FORWARD(mgr_run_need_trajectory(run, fn));
    /* H u takes the training set in chunks (hessian.h) */
    return mgr_run_check_norm_rows(run, fn, "the training set", run->config.train->n, 1);
}

/* Products in double through a session in the context's dtype. */
typedef struct hvp_d {
    mgrad_run *run;
    const mgr_hvp_vt *vt;
    void *session;
    void *u, *hu;    /* [P] in the context's dtype */
} hvp_d;

static void hvp_d_close(hvp_d *hd)
{
    mgrad_context *ctx = hd->run->ctx;
    if (hd->vt != NULL) hd->vt->destroy(hd->run, hd->session);
    mgr_free(ctx, hd->u);
    mgr_free(ctx, hd->hu);
    memset(hd, 0, sizeof *hd);
}

static mgrad_status hvp_d_open(hvp_d *hd, mgrad_run *run)
{
    size_t P = (size_t)run->model.num_params, esize = mgr_dtype_size(run->ctx->dtype);
    memset(hd, 0, sizeof *hd);
    hd->run = run;
    mgrad_status s = mgr_alloc_or_fail(run->ctx, &hd->u, P, esize, "H u buffers");
    if (s == MGRAD_OK) s = mgr_alloc_or_fail(run->ctx, &hd->hu, P, esize, "H u buffers");
    if (s == MGRAD_OK) s = mgr_hvp_of(run)->create(run, &hd->session);
    if (s == MGRAD_OK) hd->vt = mgr_hvp_of(run);
    if (s != MGRAD_OK) hvp_d_close(hd);
    return s;
}

static mgrad_status hvp_d_apply(hvp_d *hd, const double *u, double *hu)
{
    mgrad_dtype dt = hd->run->ctx->dtype;
    size_t P = (size_t)hd->run->model.num_params;
    mgr_convert(hd->u, dt, u, MGRAD_DTYPE_F64, P, 0);
    MGRAD_FORWARD(hd->vt->apply(hd->run, hd->session, hd->u, hd->hu));
    mgr_convert(hu, MGRAD_DTYPE_F64, hd->hu, dt, P, 0);
    return MGRAD_OK;
}

mgrad_status mgrad_run_hvp(mgrad_run *run, mgrad_dtype dtype, const void *u, void *out,
                           int64_t count)
{
    static const char fn[] = "mgrad_run_hvp";
    if (run == NULL) return MGRAD_ERR_NULL;
    mgrad_context *ctx = run->ctx;
    MGRAD_RETURN_IF(ctx, u == NULL || out == NULL, MGRAD_ERR_NULL,
                    "%s: u and out must not be NULL", fn);
    MGRAD_RETURN_IF(ctx, dtype != MGRAD_DTYPE_F32 && dtype != MGRAD_DTYPE_F64,
                    MGRAD_ERR_DTYPE, "%s: unknown dtype %d", fn, (int)dtype);
    MGRAD_RETURN_IF(ctx, count != run->model.num_params, MGRAD_ERR_SIZE,
                    "%s: count = %lld but the model has %lld parameters", fn,
                    (long long)count, (long long)run->model.num_params);
    MGRAD_FORWARD(check_trained(run, fn));
    hvp_d hd;
    MGRAD_FORWARD(hvp_d_open(&hd, run));
    size_t P = (size_t)count;
    mgrad_status s = MGRAD_OK;
    int64_t bad = mgr_convert(hd.u, ctx->dtype, u, dtype, P, 1);
    if (bad >= 0)
        s = mgr_error(ctx, MGRAD_ERR_NONFINITE, "%s: u[%lld] is NaN or Inf", fn,
                      (long long)bad);
    if (s == MGRAD_OK) s = hd.vt->apply(run, hd.session, hd.u, hd.hu);
    if (s == MGRAD_OK) mgr_convert(out, dtype, hd.hu, ctx->dtype, P, 0);
    hvp_d_close(&hd);
    return s;
}

mgrad_status mgrad_run_hessian_spectrum(mgrad_run *run, double *eigenvalues, int64_t count)
{
    static const char fn[] = "mgrad_run_hessian_spectrum";
    if (run == NULL) return MGRAD_ERR_NULL;
    mgrad_context *ctx = run->ctx;
    MGRAD_RETURN_IF(ctx, eigenvalues == NULL, MGRAD_ERR_NULL,
                    "%s: eigenvalues must not be NULL", fn);
    MGRAD_RETURN_IF(ctx, count != run->model.num_params, MGRAD_ERR_SIZE,
                    "%s: count = %lld but the model has %lld parameters", fn,
                    (long long)count, (long long)run->model.num_params);
    MGRAD_RETURN_IF(ctx, count > MGRAD_HESSIAN_DENSE_MAX, MGRAD_ERR_UNSUPPORTED,
                    "%s: %lld parameters is more than the dense limit %d; use "
                    "mgrad_run_hessian_lanczos", fn, (long long)count,
                    MGRAD_HESSIAN_DENSE_MAX);
    MGRAD_FORWARD(check_trained(run, fn));
    size_t P = (size_t)count;
    double *H = NULL, *e = NULL;
    MGRAD_FORWARD(mgr_alloc_or_fail(ctx, (void **)&H, P * P, sizeof(double),
                                    "the dense Hessian"));
    mgrad_status s = mgr_alloc_or_fail(ctx, (void **)&e, 2 * P, sizeof(double),
                                       "Hessian columns");
    hvp_d hd;
    memset(&hd, 0, sizeof hd);
    if (s == MGRAD_OK) s = hvp_d_open(&hd, run);
    if (s != MGRAD_OK) goto done;
    double *col = e + P;
    memset(e, 0, P * sizeof(double));
    /* Row-major H: column j is H e_j. */
    for (size_t j = 0; j < P && s == MGRAD_OK; j++) {
        e[j] = 1;
        s = hvp_d_apply(&hd, e, col);
        e[j] = 0;
        for (size_t i = 0; i < P; i++) H[i * P + j] = col[i];
    }
    if (s != MGRAD_OK) goto done;
    for (size_t i = 0; i < P; i++)
        for (size_t j = i + 1; j < P; j++) {
            double m = 0.5 * (H[i * P + j] + H[j * P + i]);
            H[i * P + j] = H[j * P + i] = m;
        }
    lapack_int info = LAPACKE_dsyev(LAPACK_COL_MAJOR, 'N', 'U', (lapack_int)P, H,
                                    (lapack_int)P, eigenvalues);
    if (info != 0)
        s = mgr_error(ctx, info < 0 ? MGRAD_ERR_INTERNAL : MGRAD_ERR_NONFINITE,
                      "%s: LAPACKE_dsyev failed (info %d)", fn, (int)info);
done:
    if (hd.run != NULL) hvp_d_close(&hd);
    mgr_free(ctx, e);
    mgr_free(ctx, H);
    return s;
}

mgrad_status mgrad_run_hessian_lanczos(mgrad_run *run, int64_t iterations, uint64_t seed,
                                       double *out)
{
    static const char fn[] = "mgrad_run_hessian_lanczos";
    if (run == NULL) return MGRAD_ERR_NULL;
    mgrad_context *ctx = run->ctx;
    MGRAD_RETURN_IF(ctx, out == NULL, MGRAD_ERR_NULL, "%s: out must not be NULL", fn);
    MGRAD_RETURN_IF(ctx, iterations < 1, MGRAD_ERR_INVALID,
                    "%s: iterations = %lld must be >= 1", fn, (long long)iterations);
    MGRAD_FORWARD(check_trained(run, fn));
    size_t P = (size_t)run->model.num_params;
    size_t m = iterations < run->model.num_params ? (size_t)iterations : P;
    double *V = NULL, *w = NULL;
    /* V: the Lanczos basis [m, P]; w [P]; alpha, beta [m] */
    MGRAD_FORWARD(mgr_alloc_or_fail(ctx, (void **)&V, m, P * sizeof(double),
                                    "the Lanczos basis"));
    mgrad_status s = mgr_alloc_or_fail(ctx, (void **)&w, P + 2 * m, sizeof(double),
                                       "Lanczos vectors");
    hvp_d hd;
    memset(&hd, 0, sizeof hd);
    if (s == MGRAD_OK) s = hvp_d_open(&hd, run);
    if (s != MGRAD_OK) goto done;
    double *alpha = w + P, *beta = alpha + m;
    random_unit(seed, P, V);
    size_t k = 0;
    double scale = 0;   /* largest |α|, β so far: the scale of H seen */
    for (;;) {
        const double *vk = V + k * P;
        s = hvp_d_apply(&hd, vk, w);
        if (s != MGRAD_OK) goto done;
        double a = 0;
        for (size_t i = 0; i < P; i++) a += w[i] * vk[i];
        alpha[k] = a;
        /* Full reorthogonalisation, twice ("twice is enough"): w ⟂ v_0..v_k.
           It subsumes the three-term recurrence's α v_k + β v_{k-1}. */
        for (int pass = 0; pass < 2; pass++)
            for (size_t j = 0; j <= k; j++) {
                const double *vj = V + j * P;
                double c = 0;
                for (size_t i = 0; i < P; i++) c += w[i] * vj[i];
                for (size_t i = 0; i < P; i++) w[i] -= c * vj[i];
            }
        double b = 0;
        for (size_t i = 0; i < P; i++) b += w[i] * w[i];
        b = sqrt(b);
        if (fabs(a) > scale) scale = fabs(a);
        if (b > scale) scale = b;
        k++;
        /* an invariant Krylov space: its Ritz values are exact eigenvalues */
        if (k == m || b <= 1e-12 * scale || b == 0) break;
        beta[k - 1] = b;
        double *vn = V + k * P;
        for (size_t i = 0; i < P; i++) vn[i] = w[i] / b;
    }
    lapack_int info = LAPACKE_dstev(LAPACK_COL_MAJOR, 'N', (lapack_int)k, alpha, beta, NULL,
                                    1);
    if (info != 0) {
        s = mgr_error(ctx, info < 0 ? MGRAD_ERR_INTERNAL : MGRAD_ERR_NONFINITE,
                      "%s: LAPACKE_dstev failed (info %d)", fn, (int)info);
        goto done;
    }
    /* dstev leaves the eigenvalues in ascending order */
    out[0] = alpha[0];
    out[1] = alpha[k - 1];
done:
    if (hd.run != NULL) hvp_d_close(&hd);
    mgr_free(ctx, w);
    mgr_free(ctx, V);
    return s;
}
