/*
 * metagrad/common.h - status codes, dtypes, version and export macros.
 *
 * Part of libmetagrad's public API.  C89-clean; safe to include alone.
 */
#ifndef METAGRAD_COMMON_H
#define METAGRAD_COMMON_H

#include <stddef.h>
#include <stdint.h>

#if defined(_WIN32) && defined(MGRAD_BUILDING_DLL)
#define MGRAD_API __declspec(dllexport)
#elif defined(__GNUC__) && __GNUC__ >= 4
#define MGRAD_API __attribute__((visibility("default")))
#else
#define MGRAD_API
#endif

#ifdef __cplusplus
extern "C" {
#endif

#define MGRAD_VERSION_MAJOR 0
#define MGRAD_VERSION_MINOR 2
#define MGRAD_VERSION_PATCH 0
/** Version as one number: major * 10000 + minor * 100 + patch. */
#define MGRAD_VERSION_NUMBER \
    (MGRAD_VERSION_MAJOR * 10000 + MGRAD_VERSION_MINOR * 100 + MGRAD_VERSION_PATCH)

/**
 * Status returned by every fallible call.  0 is success; errors are fixed
 * negative numbers that are never reused.  The context that the call worked
 * on keeps a message saying what to fix (mgrad_context_last_error).
 */
typedef enum mgrad_status {
    MGRAD_OK = 0,
    MGRAD_ERR_NULL = -1,        /**< a required pointer argument was NULL */
    MGRAD_ERR_INVALID = -2,     /**< an argument value is out of range */
    MGRAD_ERR_SIZE = -3,        /**< a count or buffer size does not match */
    MGRAD_ERR_SHAPE = -4,       /**< tensor shapes do not chain */
    MGRAD_ERR_ORDER = -5,       /**< call made in the wrong order */
    MGRAD_ERR_NONFINITE = -6,   /**< NaN or Inf appeared (message names the step) */
    MGRAD_ERR_NOMEM = -7,       /**< an allocation failed */
    MGRAD_ERR_DTYPE = -8,       /**< unknown or unsupported dtype */
    MGRAD_ERR_BUDGET = -9,      /**< memory budget too small (message gives the minimum) */
    MGRAD_ERR_IO = -10,         /**< reading or writing a file failed */
    MGRAD_ERR_CALLBACK = -11,   /**< a caller callback reported failure */
    MGRAD_ERR_CANCELLED = -12,  /**< a progress callback asked to stop */
    MGRAD_ERR_UNSUPPORTED = -13,/**< valid request this build cannot serve */
    MGRAD_ERR_FORMAT = -14,     /**< a file or buffer is malformed */
    MGRAD_ERR_VERSION = -15,    /**< options struct version unknown to this library */
    MGRAD_ERR_INTERNAL = -16    /**< a bug in libmetagrad; please report it */
} mgrad_status;

/** Element type of a context's computations, and of buffers at the API. */
typedef enum mgrad_dtype {
    MGRAD_DTYPE_F32 = 1,
    MGRAD_DTYPE_F64 = 2
} mgrad_dtype;

/* The loss, optimizer and checkpoint kinds live here rather than in run.h
   because the library's internal modules (optimizers, store, graph) need
   them without the run API. */
typedef enum mgrad_loss {
    MGRAD_LOSS_CROSS_ENTROPY = 1,  /**< softmax cross-entropy on labels */
    MGRAD_LOSS_SQUARED_ERROR = 2,  /**< ½‖f(x) − y‖² on real targets */
    /** Sequence models: the inputs are L + 1 token ids, the model's output
        [L, V] logits (a sequence, metagrad/model.h); ℓ = the mean over
        positions p < L of the softmax cross-entropy of token p + 1.  The
        dataset needs no labels. */
    MGRAD_LOSS_NEXT_TOKEN = 3
} mgrad_loss;

typedef enum mgrad_optimizer {
    MGRAD_OPTIMIZER_SGD = 1,   /**< momentum, Nesterov, coupled weight decay */
    MGRAD_OPTIMIZER_ADAM = 2,  /**< coupled weight decay (torch.optim.Adam) */
    MGRAD_OPTIMIZER_ADAMW = 3  /**< decoupled weight decay (torch.optim.AdamW) */
} mgrad_optimizer;

/** How optimizer states are kept for the reverse pass (docs/checkpointing.md). */
typedef enum mgrad_checkpoint {
    MGRAD_CHECKPOINT_STORE_ALL = 0, /**< keep every state: no recomputation */
    MGRAD_CHECKPOINT_REPLAY = 1,    /**< the paper's lazy k-ary tree */
    MGRAD_CHECKPOINT_BINOMIAL = 2,  /**< Revolve-optimal for the given slots */
    MGRAD_CHECKPOINT_AUTO = 3       /**< cheapest that fits the budget */
} mgrad_checkpoint;

/** A short, static, English description of a status.  Never NULL. */
MGRAD_API const char *mgrad_status_string(mgrad_status status);

/** The library's version string, e.g. "0.2.0".  Static; never NULL. */
MGRAD_API const char *mgrad_version_string(void);

/** The library's MGRAD_VERSION_NUMBER (compare with the header's). */
MGRAD_API int32_t mgrad_version_number(void);

#ifdef __cplusplus
}
#endif

#endif /* METAGRAD_COMMON_H */
