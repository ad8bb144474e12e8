// callback_model.cpp - bring your own model: a hand-written C++ model trained
// by libmetagrad through callbacks (metagrad/callback.h).
//
// The model is multinomial logistic regression, o = W x + b with softmax
// cross-entropy, written below with its gradient and its exact
// forward-over-reverse product (H u, the per-example loss tangents and the
// input-gradient tangents).  The library runs 100 steps of SGD with momentum
// over it, then gives dφ/dw_i for every training example's weight: the
// examples whose up-weighting would lower the validation loss φ the most.
// A second run without the hvp callback uses the library's approximate mode
// (central differences of gradients) and is compared with the exact one.
//
// Build against an installed library (only the public header and pkg-config;
// from examples/, with common/flags.c, the examples' command line, here only
// --help, compiled as C++):
//     c++ -std=c++11 callback_model.cpp -x c++ common/flags.c
//         $(pkg-config --cflags --libs metagrad)        (one command line)
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <numeric>
#include <random>
#include <stdexcept>
#include <vector>

#include <metagrad.h>

#include "common/flags.h"

namespace {

const int kFeatures = 10, kClasses = 3, kTrain = 240, kVal = 120, kSteps = 100, kBatch = 24;

// W [classes, features] row-major, then b [classes]: P = C F + C.
struct LinearSoftmax {
    int F, C;
    long long loss_calls;
    long long calls_in[4];  // loss_grad calls by mgrad_callback_phase
    LinearSoftmax(int f, int c) : F(f), C(c), loss_calls(0), calls_in{0, 0, 0, 0} {}
    int64_t num_params() const { return (int64_t)C * F + C; }

    void logits(const double *th, const double *x, double *o) const {
        for (int c = 0; c < C; c++) {
            double v = th[C * F + c];
            for (int j = 0; j < F; j++) v += th[c * F + j] * x[j];
            o[c] = v;
        }
    }
    // p = softmax(o); returns log Σ e^o − o_y
    double softmax_ce(const double *o, int y, double *p) const {
        double m = *std::max_element(o, o + C), s = 0;
        for (int c = 0; c < C; c++) s += std::exp(o[c] - m);
        double lz = m + std::log(s);
        for (int c = 0; c < C; c++) p[c] = std::exp(o[c] - lz);
        return lz - o[y];
    }

    void loss_grad(const double *th, int64_t rows, const double *X, const int32_t *y,
                   const double *w, double scale, double *loss, double *grad,
                   double *ell) {
        if (y == nullptr) throw std::invalid_argument("this model needs class labels");
        loss_calls++;
        std::vector<double> o(C), p(C);
        double total = 0;
        for (int64_t i = 0; i < rows; i++) {
            const double *x = X + i * F;
            logits(th, x, o.data());
            double li = softmax_ce(o.data(), y[i], p.data());
            if (ell) ell[i] = li;
            total += w[i] * li;
            if (!grad) continue;
            for (int c = 0; c < C; c++) {
                double d = scale * w[i] * (p[c] - (c == y[i]));  // ∂L/∂o_c
                for (int j = 0; j < F; j++) grad[c * F + j] += d * x[j];
                grad[C * F + c] += d;
            }
        }
        *loss = scale * total;
    }

    // Along u = (U, v):  ȯ = U x + v,  ℓ̇ = ⟨p − e_y, ȯ⟩,  ṗ = p ⊙ (ȯ − ⟨p, ȯ⟩);
    // with d = s w (p − e_y):  H u = Σ s w ṗ xᵀ (and ṗ for b);
    // (x̄)˙ = Uᵀ d + Wᵀ (s w ṗ).
    void hvp(const double *th, const double *u, int64_t rows, const double *X,
             const int32_t *y, const double *w, double scale, double *hu, double *ld,
             double *xd) const {
        std::vector<double> o(C), p(C), od(C);
        for (int64_t i = 0; i < rows; i++) {
            const double *x = X + i * F;
            logits(th, x, o.data());
            softmax_ce(o.data(), y[i], p.data());
            logits(u, x, od.data());  // ȯ = U x + v: the same affine map
            double pod = 0, lt = 0;
            for (int c = 0; c < C; c++) {
                pod += p[c] * od[c];
                lt += (p[c] - (c == y[i])) * od[c];
            }
            ld[i] = lt;
            if (xd) std::fill(xd + i * F, xd + (i + 1) * F, 0.0);
            for (int c = 0; c < C; c++) {
                double sw = scale * w[i];
                double dd = sw * p[c] * (od[c] - pod);  // (∂L/∂o_c)˙
                double d = sw * (p[c] - (c == y[i]));
                if (hu) {
                    for (int j = 0; j < F; j++) hu[c * F + j] += dd * x[j];
                    hu[C * F + c] += dd;
                }
                if (xd)
                    for (int j = 0; j < F; j++)
                        xd[i * F + j] += u[c * F + j] * d + th[c * F + j] * dd;
            }
        }
    }
};

// C++ exceptions must not cross into the C library: every callback catches
// everything and reports failure with a nonzero return instead.
template <class F>
int guarded(F &&f) {
    try {
        f();
        return 0;
    } catch (const std::exception &e) {
        std::fprintf(stderr, "callback failed: %s\n", e.what());
        return 1;
    } catch (...) {
        return 2;
    }
}

// Each callback gets the chunk (rows, inputs, labels, weights, scale, and
// where the library is: chunk->phase, chunk->step) and fills an output
// struct; both are versioned, so the library can append fields without
// breaking this code.
extern "C" int cb_loss_grad(const mgrad_chunk *chunk, const void *theta,
                            mgrad_loss_grad_out *out, void *user_data) {
    auto *m = static_cast<LinearSoftmax *>(user_data);
    // a library newer than this program may report phases it does not know
    if (chunk->phase >= 0 && chunk->phase < 4) m->calls_in[chunk->phase]++;
    return guarded([&] {
        m->loss_grad(static_cast<const double *>(theta), chunk->rows,
                     static_cast<const double *>(chunk->inputs), chunk->labels,
                     static_cast<const double *>(chunk->weights), chunk->scale, &out->loss,
                     static_cast<double *>(out->grad),
                     static_cast<double *>(out->example_losses));
    });
}

extern "C" int cb_hvp(const mgrad_chunk *chunk, const void *theta, const void *u,
                      mgrad_hvp_out *out, void *user_data) {
    auto *m = static_cast<LinearSoftmax *>(user_data);
    return guarded([&] {
        m->hvp(static_cast<const double *>(theta), static_cast<const double *>(u), chunk->rows,
               static_cast<const double *>(chunk->inputs), chunk->labels,
               static_cast<const double *>(chunk->weights), chunk->scale,
               static_cast<double *>(out->hu), static_cast<double *>(out->loss_tangents),
               static_cast<double *>(out->input_grad_tangents));
    });
}

extern "C" int cb_outputs(const mgrad_chunk *chunk, const void *theta, void *outputs,
                          void *user_data) {
    auto *m = static_cast<LinearSoftmax *>(user_data);
    return guarded([&] {
        for (int64_t i = 0; i < chunk->rows; i++)
            m->logits(static_cast<const double *>(theta),
                      static_cast<const double *>(chunk->inputs) + i * m->F,
                      static_cast<double *>(outputs) + i * m->C);
    });
}

// Labels from a fixed random linear teacher; 10% of the training labels
// are flipped, which the data-weight metagradient should point out.
void make_data(std::mt19937_64 &rng, int n, double flip, std::vector<double> &x,
               std::vector<int32_t> &y, std::vector<char> &flipped) {
    std::normal_distribution<double> g(0, 1);
    std::uniform_real_distribution<double> u(0, 1);
    std::mt19937_64 teacher_rng(1234);
    std::vector<double> teacher(kClasses * kFeatures);
    for (double &t : teacher) t = g(teacher_rng);
    x.resize((size_t)n * kFeatures);
    y.resize(n);
    flipped.assign(n, 0);
    for (int i = 0; i < n; i++) {
        int best = 0;
        double best_v = -1e300;
        for (int j = 0; j < kFeatures; j++) x[i * kFeatures + j] = g(rng);
        for (int c = 0; c < kClasses; c++) {
            double v = 0;
            for (int j = 0; j < kFeatures; j++) v += teacher[c * kFeatures + j] * x[i * kFeatures + j];
            if (v > best_v) best_v = v, best = c;
        }
        y[i] = best;
        if (u(rng) < flip) {
            y[i] = (best + 1) % kClasses;
            flipped[i] = 1;
        }
    }
}

struct Check {
    mgrad_context *ctx;
    void operator()(mgrad_status s, const char *what) const {
        if (s == MGRAD_OK) return;
        std::fprintf(stderr, "%s failed: %s (%s)\n", what, mgrad_status_string(s),
                     mgrad_context_last_error(ctx));
        std::exit(EXIT_FAILURE);
    }
};

}  // namespace

int main(int argc, char **argv)
{
    const app_cmdline cmd = {"Train a hand-written C++ model through callbacks and rank the "
                             "training examples by the metagradient of the validation loss.",
                             nullptr, 0, nullptr, 0};
    int rc = app_parse_flags(&cmd, argc, argv);
    if (rc != APP_FLAGS_RUN) return rc;
    mgrad_context *ctx = nullptr;
    mgrad_context_options co = MGRAD_CONTEXT_OPTIONS_INIT;
    co.dtype = MGRAD_DTYPE_F64;  // the callbacks above compute in double
    if (mgrad_context_create(&ctx, &co) != MGRAD_OK) return EXIT_FAILURE;
    Check check{ctx};

    std::mt19937_64 rng(42);
    std::vector<double> xtr, xva;
    std::vector<int32_t> ytr, yva;
    std::vector<char> flipped, unused;
    make_data(rng, kTrain, 0.1, xtr, ytr, flipped);
    make_data(rng, kVal, 0.0, xva, yva, unused);
    int64_t shape[1] = {kFeatures};
    mgrad_dataset *train = nullptr, *val = nullptr;
    check(mgrad_dataset_create(&train, ctx, kTrain, 1, shape, MGRAD_DTYPE_F64, xtr.data()),
          "train set");
    check(mgrad_dataset_set_labels(train, ytr.data(), kTrain, kClasses), "train labels");
    check(mgrad_dataset_create(&val, ctx, kVal, 1, shape, MGRAD_DTYPE_F64, xva.data()),
          "validation set");
    check(mgrad_dataset_set_labels(val, yva.data(), kVal, kClasses), "validation labels");

    LinearSoftmax model{kFeatures, kClasses};
    mgrad_callback_model cb = MGRAD_CALLBACK_MODEL_INIT;
    cb.num_params = model.num_params();
    cb.ndim = 1;
    cb.input_shape = shape;  // copied by mgrad_run_create_callback
    cb.num_outputs = kClasses;
    cb.loss_grad = cb_loss_grad;
    cb.hvp = cb_hvp;
    cb.input_tangents = 1;
    cb.outputs = cb_outputs;
    cb.user_data = &model;
    std::vector<double> theta0((size_t)model.num_params(), 0.0);

    mgrad_run_options o = MGRAD_RUN_OPTIONS_INIT;
    o.steps = kSteps;
    o.batch_size = kBatch;
    o.lr = 0.1;
    o.momentum = 0.5;
    o.validation = val;
    o.checkpoint = MGRAD_CHECKPOINT_BINOMIAL;  // recomputes steps: callbacks must be pure
    o.checkpoint_slots = 4;

    std::vector<double> wgrad[2], lrgrad[2];
    for (int approx = 0; approx < 2; approx++) {
        cb.hvp = approx ? nullptr : cb_hvp;
        cb.input_tangents = approx ? 0 : 1;
        mgrad_run *run = nullptr;
        check(mgrad_run_create_callback(&run, ctx, &cb, theta0.data(), train, &o), "run");
        mgrad_meta *w = nullptr, *lr = nullptr;
        check(mgrad_run_add_meta(&w, run, MGRAD_META_DATA_WEIGHTS, nullptr), "weights");
        check(mgrad_run_add_meta(&lr, run, MGRAD_META_LR_SCHEDULE, nullptr), "LR schedule");
        double phi = 0, acc = 0;
        check(mgrad_run_train(run, &phi), "train");
        check(mgrad_run_reverse(run), "reverse");
        check(mgrad_run_evaluate(run, val, nullptr, &acc), "evaluate");
        wgrad[approx].resize(kTrain);
        lrgrad[approx].resize(kSteps);
        check(mgrad_meta_get_grad(w, MGRAD_DTYPE_F64, wgrad[approx].data(), kTrain), "grad");
        check(mgrad_meta_get_grad(lr, MGRAD_DTYPE_F64, lrgrad[approx].data(), kSteps), "grad");
        mgrad_run_stats st = MGRAD_RUN_STATS_INIT;
        check(mgrad_run_get_stats(run, &st), "stats");
        std::printf("%s mode: φ = %.6f, validation accuracy %.3f, %lld steps recomputed, "
                    "approximate = %d\n", approx ? "approximate" : "exact", phi, acc,
                    (long long)st.steps_recomputed, (int)st.approximate);
        mgrad_run_destroy(run);
    }

    // Up-weighting example i changes φ by dφ/dw_i: the largest positive
    // entries are the examples that hurt; flipped labels should lead.
    std::vector<int> order(kTrain);
    std::iota(order.begin(), order.end(), 0);
    std::sort(order.begin(), order.end(),
              [&](int a, int b) { return wgrad[0][a] > wgrad[0][b]; });
    int nflipped = 0, hits = 0;
    for (int i = 0; i < kTrain; i++) nflipped += flipped[i];
    for (int r = 0; r < nflipped; r++) hits += flipped[order[r]];
    std::printf("the %d most harmful examples by dφ/dw include %d of the %d flipped labels\n",
                nflipped, hits, nflipped);

    // max |approximate − exact| / max |exact|, over both metaparameters
    auto max_rel = [](const std::vector<double> &a, const std::vector<double> &b) {
        double d = 0, m = 0;
        for (size_t i = 0; i < a.size(); i++) {
            d = std::max(d, std::fabs(a[i] - b[i]));
            m = std::max(m, std::fabs(b[i]));
        }
        return d / m;
    };
    double rel = std::max(max_rel(wgrad[1], wgrad[0]), max_rel(lrgrad[1], lrgrad[0]));
    std::printf("approximate vs exact metagradients: max relative difference %.1e\n", rel);
    std::printf("(%lld loss_grad calls in all: %lld in training steps, %lld in reverse "
                "steps, %lld for the output function, %lld in evaluation)\n",
                model.loss_calls, model.calls_in[MGRAD_CALLBACK_PHASE_TRAIN],
                model.calls_in[MGRAD_CALLBACK_PHASE_REVERSE],
                model.calls_in[MGRAD_CALLBACK_PHASE_OUTPUT],
                model.calls_in[MGRAD_CALLBACK_PHASE_EVAL]);

    mgrad_dataset_destroy(train);
    mgrad_dataset_destroy(val);
    mgrad_context_destroy(ctx);
    // Fail (for CI) if the example stops making sense.
    return hits * 2 >= nflipped && rel < 1e-5 ? EXIT_SUCCESS : EXIT_FAILURE;
}
