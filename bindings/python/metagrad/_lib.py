"""The C ABI of libmetagrad through ctypes: finding the library, the enums,
the options structs, and one declarative prototype table.

Nothing here is Pythonic on purpose; metagrad._api builds the classes.
Every struct below mirrors include/metagrad/*.h field by field, in order
(tests/test_lib.py compares the offsets with the C compiler's).
"""

import ctypes
import ctypes.util
import enum
import glob
import os

from ._errors import make_error

# The libmetagrad version these bindings were written against.  The library's
# mgrad_version_number() must equal it (the ABI is not stable before 1.0).
VERSION = "0.2.0"
_MAJOR, _MINOR, _PATCH = (int(p) for p in VERSION.split("."))
VERSION_NUMBER = _MAJOR * 10000 + _MINOR * 100 + _PATCH


# ---------------------------------------------------------------- enums

class Status(enum.IntEnum):
    OK = 0
    ERR_NULL = -1
    ERR_INVALID = -2
    ERR_SIZE = -3
    ERR_SHAPE = -4
    ERR_ORDER = -5
    ERR_NONFINITE = -6
    ERR_NOMEM = -7
    ERR_DTYPE = -8
    ERR_BUDGET = -9
    ERR_IO = -10
    ERR_CALLBACK = -11
    ERR_CANCELLED = -12
    ERR_UNSUPPORTED = -13
    ERR_FORMAT = -14
    ERR_VERSION = -15
    ERR_INTERNAL = -16


class Dtype(enum.IntEnum):
    F32 = 1
    F64 = 2


class LogLevel(enum.IntEnum):
    DEBUG = 0
    INFO = 1
    WARNING = 2
    ERROR = 3


class Init(enum.IntEnum):
    DEFAULT = 0
    KAIMING_UNIFORM = 1
    KAIMING_NORMAL = 2
    XAVIER_UNIFORM = 3
    XAVIER_NORMAL = 4
    ORTHOGONAL = 5
    ZEROS = 6


class Activation(enum.IntEnum):
    TANH = 1
    SIGMOID = 2
    RELU = 3
    GELU = 4
    SOFTPLUS = 5


class Loss(enum.IntEnum):
    CROSS_ENTROPY = 1
    SQUARED_ERROR = 2
    NEXT_TOKEN = 3


class Optimizer(enum.IntEnum):
    SGD = 1
    ADAM = 2
    ADAMW = 3


class Checkpoint(enum.IntEnum):
    STORE_ALL = 0
    REPLAY = 1
    BINOMIAL = 2
    AUTO = 3


class Normalize(enum.IntEnum):
    GLOBAL = 1
    PER_FEATURE = 2
    PER_CHANNEL = 3


class MgdMethod(enum.IntEnum):
    SIGN = 1
    ADAM = 2
    SGD = 3
    EXCHANGE = 4
    KEEP_DROP = 5


class MgdLrSchedule(enum.IntEnum):
    """mgrad_mgd_lr_schedule (metagrad/mgd.h): schedules of the meta step."""
    CONSTANT = 0
    COSINE = 1
    STEP = 2
    INV_SQRT = 3


class MgdMap(enum.IntEnum):
    """mgrad_mgd_map (metagrad/mgd.h): parametrisations z = map(c)."""
    IDENTITY = 0
    EXP = 1
    COSINE = 2
    ONE_CYCLE = 3


class Projection(enum.IntEnum):
    NONE = 0
    BOX = 1
    NONNEGATIVE = 2
    FIXED_SUM = 3
    TOP_K = 4


class MgdParam(enum.IntEnum):
    """mgrad_mgd_param (metagrad/mgd.h): the scalar settings of an MGD."""
    LR = 1
    MASK_PROB = 2
    BETA1 = 3
    BETA2 = 4
    EPS = 5
    EXCHANGE = 6
    MAXIMIZE = 7
    RESHUFFLE = 8
    BEST_ORDERS = 9


class MetaKind(enum.IntEnum):
    DATA_WEIGHTS = 1
    POOL_WEIGHTS = 2
    INPUTS = 3
    SOFT_LABELS = 4
    LR_SCHEDULE = 5
    WEIGHT_DECAY = 6
    MOMENTUM = 7
    BETA2 = 8
    INITIAL_PARAMS = 9


class CallbackPhase(enum.IntEnum):
    """mgrad_callback_phase (metagrad/callback.h): mgrad_chunk.phase."""
    TRAIN = 0
    REVERSE = 1
    OUTPUT = 2
    EVAL = 3


# ---------------------------------------------------------------- structs

c_enum = ctypes.c_int  # every mgrad enum fits in an int

# typedef void *(*mgrad_malloc_fn)(size_t size, void *user_data);
MallocFn = ctypes.CFUNCTYPE(ctypes.c_void_p, ctypes.c_size_t, ctypes.c_void_p)
# typedef void (*mgrad_free_fn)(void *ptr, void *user_data);
FreeFn = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_void_p)
# typedef void (*mgrad_log_fn)(mgrad_log_level level, const char *message, void *user_data);
LogFn = ctypes.CFUNCTYPE(None, c_enum, ctypes.c_char_p, ctypes.c_void_p)

# typedef int (*mgrad_mgd_progress_fn)(int64_t step, double phi, double score,
#                                      double seconds, void *user_data);
ProgressFn = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_int64, ctypes.c_double, ctypes.c_double,
                              ctypes.c_double, ctypes.c_void_p)
# metagrad/callback.h.  Every buffer is a void pointer (its element type is the
# context's dtype); labels too, so that all arrive as plain addresses.


class Chunk(ctypes.Structure):
    """struct mgrad_chunk (metagrad/callback.h): what every callback is
    passed; fields are only ever appended (read one added in version v only
    when `version` >= v)."""
    _fields_ = [
        ("version", ctypes.c_uint32),
        ("rows", ctypes.c_int64),
        ("inputs", ctypes.c_void_p),
        ("labels", ctypes.c_void_p),
        ("targets", ctypes.c_void_p),
        ("weights", ctypes.c_void_p),
        ("scale", ctypes.c_double),
        ("phase", c_enum),
        ("step", ctypes.c_int64),
    ]


class LossGradOut(ctypes.Structure):
    """struct mgrad_loss_grad_out (metagrad/callback.h)."""
    _fields_ = [
        ("version", ctypes.c_uint32),
        ("loss", ctypes.c_double),
        ("grad", ctypes.c_void_p),
        ("example_losses", ctypes.c_void_p),
    ]


class HvpOut(ctypes.Structure):
    """struct mgrad_hvp_out (metagrad/callback.h)."""
    _fields_ = [
        ("version", ctypes.c_uint32),
        ("hu", ctypes.c_void_p),
        ("loss_tangents", ctypes.c_void_p),
        ("input_grad_tangents", ctypes.c_void_p),
    ]


# typedef int (*mgrad_loss_grad_fn)(const mgrad_chunk *chunk, const void *theta,
#     mgrad_loss_grad_out *out, void *user_data);
LossGradFn = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(Chunk), ctypes.c_void_p,
                              ctypes.POINTER(LossGradOut), ctypes.c_void_p)
# typedef int (*mgrad_hvp_fn)(const mgrad_chunk *chunk, const void *theta, const void *u,
#     mgrad_hvp_out *out, void *user_data);
HvpFn = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(Chunk), ctypes.c_void_p,
                         ctypes.c_void_p, ctypes.POINTER(HvpOut), ctypes.c_void_p)
# typedef int (*mgrad_outputs_fn)(const mgrad_chunk *chunk, const void *theta,
#     void *outputs, void *user_data);
OutputsFn = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(Chunk), ctypes.c_void_p,
                             ctypes.c_void_p, ctypes.c_void_p)

CONTEXT_OPTIONS_VERSION = 1
RUN_OPTIONS_VERSION = 1
RUN_STATS_VERSION = 3
META_OPTIONS_VERSION = 1
MGD_PARAM_INFO_VERSION = 1
TRUST_REPORT_VERSION = 1
CALLBACK_MODEL_VERSION = 2
CHUNK_VERSION = 1
LOSS_GRAD_OUT_VERSION = 1
HVP_OUT_VERSION = 1


class ContextOptions(ctypes.Structure):
    """struct mgrad_context_options (metagrad/context.h)."""
    _fields_ = [
        ("version", ctypes.c_uint32),
        ("dtype", c_enum),
        ("threads", ctypes.c_int32),
        ("seed", ctypes.c_uint64),
        ("malloc_fn", MallocFn),
        ("free_fn", FreeFn),
        ("alloc_user_data", ctypes.c_void_p),
        ("log_fn", LogFn),
        ("log_user_data", ctypes.c_void_p),
        ("log_level", c_enum),
    ]


# typedef int (*mgrad_output_fn)(const void *theta, int64_t count, double *value,
#                                void *grad, void *user_data);
OutputFn = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_void_p, ctypes.c_int64,
                            ctypes.POINTER(ctypes.c_double), ctypes.c_void_p, ctypes.c_void_p)

OUTPUT_VERSION = 1


class OutputTerm(ctypes.Structure):
    """struct mgrad_output_term (metagrad/run.h)."""
    _fields_ = [
        ("kind", ctypes.c_int),
        ("dataset", ctypes.c_void_p),
        ("weight", ctypes.c_double),
        ("rows", ctypes.POINTER(ctypes.c_int64)),
        ("num_rows", ctypes.c_int64),
        ("classes", ctypes.POINTER(ctypes.c_int32)),
        ("num_classes", ctypes.c_int64),
    ]


class Output(ctypes.Structure):
    """struct mgrad_output (metagrad/run.h)."""
    _fields_ = [
        ("version", ctypes.c_uint32),
        ("terms", ctypes.POINTER(OutputTerm)),
        ("num_terms", ctypes.c_int64),
        ("fn", OutputFn),
        ("user_data", ctypes.c_void_p),
        ("last_k", ctypes.c_int64),
    ]


class RunOptions(ctypes.Structure):
    """struct mgrad_run_options (metagrad/run.h)."""
    _fields_ = [
        ("version", ctypes.c_uint32),
        ("steps", ctypes.c_int64),
        ("batch_size", ctypes.c_int64),
        ("batches", ctypes.POINTER(ctypes.c_int64)),
        ("shuffle_seed", ctypes.c_uint64),
        ("loss", c_enum),
        ("label_smoothing", ctypes.c_double),
        ("optimizer", c_enum),
        ("lr", ctypes.c_double),
        ("lr_schedule", ctypes.POINTER(ctypes.c_double)),
        ("momentum", ctypes.c_double),
        ("nesterov", ctypes.c_int32),
        ("weight_decay", ctypes.c_double),
        ("beta1", ctypes.c_double),
        ("beta2", ctypes.c_double),
        ("eps", ctypes.c_double),
        ("eps_root", ctypes.c_double),
        ("validation", ctypes.c_void_p),
        ("checkpoint", c_enum),
        ("checkpoint_slots", ctypes.c_int64),
        ("checkpoint_k", ctypes.c_int64),
        ("checkpoint_budget_bytes", ctypes.c_uint64),
        ("spill_dir", ctypes.c_char_p),
    ]


class RunStats(ctypes.Structure):
    """struct mgrad_run_stats (metagrad/run.h)."""
    _fields_ = [
        ("version", ctypes.c_uint32),
        ("steps_run", ctypes.c_int64),
        ("steps_recomputed", ctypes.c_int64),
        ("reverse_steps", ctypes.c_int64),
        ("peak_state_bytes", ctypes.c_uint64),
        ("seconds_forward", ctypes.c_double),
        ("seconds_reverse", ctypes.c_double),
        ("checkpoint", c_enum),
        ("checkpoint_slots", ctypes.c_int64),
        ("spilled_bytes", ctypes.c_int64),
        # version 2
        ("approximate", ctypes.c_int32),
        # version 3
        ("memo_bytes", ctypes.c_int64),
        ("memo_hits", ctypes.c_int64),
    ]

class MpiInfo(ctypes.Structure):
    """struct mgrad_mpi_info (metagrad/mpi.h)."""
    _fields_ = [
        ("version", ctypes.c_uint32),
        ("rank", ctypes.c_int32),
        ("size", ctypes.c_int32),
        ("reductions", ctypes.c_int64),
        ("bytes_sent", ctypes.c_uint64),
        ("bytes_reduced", ctypes.c_uint64),
        ("seconds", ctypes.c_double),
    ]


MPI_INFO_VERSION = 1

#: Fields each mgrad_run_stats version adds (a library of version 1 is asked
#: for version 1 and writes only its fields).
RUN_STATS_V2_FIELDS = ("approximate",)
RUN_STATS_V3_FIELDS = ("memo_bytes", "memo_hits")


class MetaOptions(ctypes.Structure):
    """struct mgrad_meta_options (metagrad/meta.h)."""
    _fields_ = [
        ("version", ctypes.c_uint32),
        ("step_begin", ctypes.c_int64),
        ("step_end", ctypes.c_int64),
        ("step", ctypes.c_int64),
        ("pool", ctypes.c_void_p),
        ("rows", ctypes.POINTER(ctypes.c_int64)),
        ("num_rows", ctypes.c_int64),
    ]


class TrustReport(ctypes.Structure):
    """struct mgrad_trust_report (metagrad/mgd.h)."""
    _fields_ = [
        ("version", ctypes.c_uint32),
        ("h", ctypes.c_double),
        ("S", ctypes.c_double),
        ("curvature", ctypes.c_double),
        ("rel_diff", ctypes.c_double),
        ("cosine", ctypes.c_double),
        ("smooth_ok", ctypes.c_int32),
        ("precision_ok", ctypes.c_int32),
        ("trusted", ctypes.c_int32),
    ]


class ScoreSetting(ctypes.Structure):
    """struct mgrad_score_setting (metagrad/score.h)."""
    _fields_ = [
        ("kind", c_enum),
        ("options", ctypes.POINTER(MetaOptions)),
        ("dtype", c_enum),
        ("values", ctypes.c_void_p),
        ("count", ctypes.c_int64),
    ]


class ScoreOptions(ctypes.Structure):
    """struct mgrad_score_options (metagrad/score.h)."""
    _fields_ = [
        ("version", ctypes.c_uint32),
        ("seeds", ctypes.c_int32),
        ("first_seed", ctypes.c_uint64),
        ("seed_list", ctypes.POINTER(ctypes.c_uint64)),
        ("redraw_init", ctypes.c_int32),
        ("redraw_order", ctypes.c_int32),
        ("settings", ctypes.POINTER(ScoreSetting)),
        ("num_settings", ctypes.c_int32),
    ]


class Score(ctypes.Structure):
    """struct mgrad_score (metagrad/score.h)."""
    _fields_ = [
        ("version", ctypes.c_uint32),
        ("n", ctypes.c_int32),
        ("loss_mean", ctypes.c_double),
        ("loss_std", ctypes.c_double),
        ("accuracy_mean", ctypes.c_double),
        ("accuracy_std", ctypes.c_double),
    ]


SCORE_OPTIONS_VERSION = 1
SCORE_VERSION = 1
#: MGRAD_SCORE_SHUFFLE_MIX: XORed into a retraining's seed for its batch order.
SCORE_SHUFFLE_MIX = 0x5bd1e995


class MgdParamInfo(ctypes.Structure):
    """struct mgrad_mgd_param_info (metagrad/mgd.h)."""
    _fields_ = [
        ("version", ctypes.c_uint32),
        ("name", ctypes.c_char_p),
        ("is_int", ctypes.c_int32),
        ("applies", ctypes.c_int32),
        ("min", ctypes.c_double),
        ("max", ctypes.c_double),
        ("min_open", ctypes.c_int32),
        ("max_open", ctypes.c_int32),
        ("default_value", ctypes.c_double),
    ]


class CallbackModel(ctypes.Structure):
    """struct mgrad_callback_model (metagrad/callback.h)."""
    _fields_ = [
        ("version", ctypes.c_uint32),
        ("num_params", ctypes.c_int64),
        ("ndim", ctypes.c_int32),
        ("input_shape", ctypes.POINTER(ctypes.c_int64)),
        ("num_outputs", ctypes.c_int64),
        ("loss_grad", LossGradFn),
        ("hvp", HvpFn),
        ("input_tangents", ctypes.c_int32),
        ("outputs", OutputsFn),
        ("user_data", ctypes.c_void_p),
    ]


# ---------------------------------------------------------------- prototypes

def _check_status(result, func, args):
    """errcheck of every call returning mgrad_status: raise on failure.

    The message is the status description; metagrad._api replaces it with the
    context's last error, which only the caller's object knows how to reach.
    """
    if result != 0:
        raise make_error(result, _status_string(result), func.__name__)
    return result


def _status_string(status):
    try:
        s = lib.mgrad_status_string(status)
        return s.decode("utf-8", "replace") if s else "status %d" % status
    except Exception:  # the table is not bound yet
        return "status %d" % status


_vp = ctypes.c_void_p
_pp = ctypes.POINTER(ctypes.c_void_p)
_i32, _i64, _u32, _u64 = ctypes.c_int32, ctypes.c_int64, ctypes.c_uint32, ctypes.c_uint64
_dbl, _pdbl = ctypes.c_double, ctypes.POINTER(ctypes.c_double)
_pi32, _pi64, _pu64 = (ctypes.POINTER(ctypes.c_int32), ctypes.POINTER(ctypes.c_int64),
                       ctypes.POINTER(ctypes.c_uint64))
_ccp = ctypes.c_char_p
_st = _check_status

# (name, argtypes, restype, errcheck): the whole exported API, header order.
# Handles travel as void pointers; bulk buffers as void pointers too, since
# their element type is given by a dtype argument.
FUNCTIONS = [
    # metagrad/common.h
    ("mgrad_status_string", [c_enum], ctypes.c_char_p, None),
    ("mgrad_version_string", [], ctypes.c_char_p, None),
    ("mgrad_version_number", [], _i32, None),
    # metagrad/context.h
    ("mgrad_context_options_init", [ctypes.POINTER(ContextOptions), _u32], c_enum, _st),
    ("mgrad_context_create", [_pp, ctypes.POINTER(ContextOptions)], c_enum, _st),
    ("mgrad_context_destroy", [_vp], None, None),
    ("mgrad_context_last_error", [_vp], ctypes.c_char_p, None),
    ("mgrad_context_clear_error", [_vp], None, None),
    ("mgrad_context_dtype", [_vp], c_enum, None),
    ("mgrad_context_memory", [_vp, _pu64, _pu64], c_enum, _st),
    # metagrad/model.h
    ("mgrad_model_create", [_pp, _vp, _i32, _pi64], c_enum, _st),
    ("mgrad_model_destroy", [_vp], None, None),
    ("mgrad_model_add_dense", [_vp, _i64, c_enum], c_enum, _st),
    ("mgrad_model_add_activation", [_vp, c_enum], c_enum, _st),
    ("mgrad_model_add_scale", [_vp, _dbl], c_enum, _st),
    ("mgrad_model_mark", [_vp, _pi32], c_enum, _st),
    ("mgrad_model_add_residual", [_vp, _i32], c_enum, _st),
    ("mgrad_model_num_params", [_vp, _pi64], c_enum, _st),
    ("mgrad_model_output_size", [_vp, _pi64], c_enum, _st),
    ("mgrad_model_get_params", [_vp, c_enum, _vp, _i64], c_enum, _st),
    ("mgrad_model_set_params", [_vp, c_enum, _vp, _i64], c_enum, _st),
    ("mgrad_model_init_params", [_vp, _u64], c_enum, _st),
    ("mgrad_model_add_conv2d", [_vp, _i64, _i32, _i32, _i32, c_enum], c_enum, _st),
    ("mgrad_model_add_avg_pool", [_vp, _i32, _i32], c_enum, _st),
    ("mgrad_model_add_max_pool", [_vp, _i32, _i32], c_enum, _st),
    ("mgrad_model_add_global_avg_pool", [_vp], c_enum, _st),
    ("mgrad_model_add_batch_norm", [_vp, _dbl], c_enum, _st),
    ("mgrad_model_add_layer_norm", [_vp, _dbl], c_enum, _st),
    ("mgrad_model_add_dropout", [_vp, _dbl], c_enum, _st),
    ("mgrad_model_add_flatten", [_vp], c_enum, _st),
    ("mgrad_model_add_resnet_block", [_vp, _i64, _i32], c_enum, _st),
    ("mgrad_model_add_token_embedding", [_vp, _i64, _i64, _i64], c_enum, _st),
    ("mgrad_model_add_positional_embedding", [_vp], c_enum, _st),
    ("mgrad_model_add_causal_self_attention", [_vp, _i32, _dbl], c_enum, _st),
    ("mgrad_model_add_transformer_block", [_vp, _i32, _i32, _dbl], c_enum, _st),
    ("mgrad_model_create_gpt", [_pp, _vp, _i64, _i64, _i64, _i32, _i32], c_enum, _st),
    # metagrad/dataset.h
    ("mgrad_dataset_create", [_pp, _vp, _i64, _i32, _pi64, c_enum, _vp], c_enum, _st),
    ("mgrad_dataset_destroy", [_vp], None, None),
    ("mgrad_dataset_set_labels", [_vp, _pi32, _i64, _i32], c_enum, _st),
    ("mgrad_dataset_set_targets", [_vp, c_enum, _vp, _i64, _i64], c_enum, _st),
    ("mgrad_dataset_set_weights", [_vp, c_enum, _vp, _i64], c_enum, _st),
    ("mgrad_dataset_size", [_vp, _pi64], c_enum, _st),
    ("mgrad_dataset_features", [_vp, _pi64], c_enum, _st),
    ("mgrad_dataset_compact", [_vp, _pi64], c_enum, _st),
    ("mgrad_dataset_create_tokens", [_pp, _vp, _i64, _i64, _pi32, _i32], c_enum, _st),
    ("mgrad_dataset_vocab", [_vp, _pi32], c_enum, _st),
    ("mgrad_dataset_get_tokens", [_vp, _pi32, _i64], c_enum, _st),
    # metagrad/run.h
    ("mgrad_run_options_init", [ctypes.POINTER(RunOptions), _u32], c_enum, _st),
    ("mgrad_run_create", [_pp, _vp, _vp, ctypes.POINTER(RunOptions)], c_enum, _st),
    ("mgrad_run_destroy", [_vp], None, None),
    ("mgrad_run_train", [_vp, _pdbl], c_enum, _st),
    ("mgrad_run_reverse", [_vp], c_enum, _st),
    ("mgrad_run_num_params", [_vp, _pi64], c_enum, _st),
    ("mgrad_run_get_params", [_vp, c_enum, _vp, _i64], c_enum, _st),
    ("mgrad_run_evaluate", [_vp, _vp, _pdbl, _pdbl], c_enum, _st),
    ("mgrad_run_example_losses", [_vp, _vp, c_enum, _vp, _i64], c_enum, _st),
    ("mgrad_run_set_shuffle_seed", [_vp, ctypes.c_uint64], c_enum, _st),
    ("mgrad_run_context", [_vp, _pp], c_enum, _st),
    ("mgrad_run_has_batches", [_vp, _pi32], c_enum, _st),
    ("mgrad_run_check_dataset", [_vp, _vp], c_enum, _st),
    ("mgrad_output_init", [ctypes.POINTER(Output), _u32], c_enum, _st),
    ("mgrad_run_set_output", [_vp, ctypes.POINTER(Output)], c_enum, _st),
    # metagrad/mpi.h
    ("mgrad_mpi_available", [], ctypes.c_int32, None),
    ("mgrad_run_set_communicator", [_vp, _vp], c_enum, _st),
    ("mgrad_run_set_communicator_fortran", [_vp, _i64], c_enum, _st),
    ("mgrad_run_mpi_info", [_vp, _vp], c_enum, _st),
    ("mgrad_meta_gather_grad", [_vp, ctypes.c_int32, c_enum, _vp, _i64], c_enum, _st),
    ("mgrad_run_get_stats", [_vp, ctypes.POINTER(RunStats)], c_enum, _st),
    # metagrad/meta.h
    ("mgrad_meta_options_init", [ctypes.POINTER(MetaOptions), _u32], c_enum, _st),
    ("mgrad_run_add_meta", [_pp, _vp, c_enum, ctypes.POINTER(MetaOptions)], c_enum, _st),
    ("mgrad_meta_kind_of", [_vp, ctypes.POINTER(c_enum)], c_enum, _st),
    ("mgrad_meta_size", [_vp, _pi64], c_enum, _st),
    ("mgrad_meta_run", [_vp, _pp], c_enum, _st),
    ("mgrad_meta_get_value", [_vp, c_enum, _vp, _i64], c_enum, _st),
    ("mgrad_meta_set_value", [_vp, c_enum, _vp, _i64], c_enum, _st),
    ("mgrad_meta_get_grad", [_vp, c_enum, _vp, _i64], c_enum, _st),
    # metagrad/callback.h
    ("mgrad_callback_model_init", [ctypes.POINTER(CallbackModel), _u32], c_enum, _st),
    ("mgrad_run_create_callback", [_pp, _vp, ctypes.POINTER(CallbackModel), _pdbl, _vp,
                                   ctypes.POINTER(RunOptions)], c_enum, _st),
    # metagrad/mgd.h
    ("mgrad_mgd_create", [_pp, _vp, c_enum], c_enum, _st),
    ("mgrad_mgd_destroy", [_vp], None, None),
    ("mgrad_mgd_method_of", [_vp, ctypes.POINTER(c_enum)], c_enum, _st),
    ("mgrad_mgd_get_param_info", [_vp, c_enum, ctypes.POINTER(MgdParamInfo)], c_enum, _st),
    ("mgrad_mgd_set_real", [_vp, c_enum, _dbl], c_enum, _st),
    ("mgrad_mgd_get_real", [_vp, c_enum, _pdbl], c_enum, _st),
    ("mgrad_mgd_set_int", [_vp, c_enum, _i64], c_enum, _st),
    ("mgrad_mgd_get_int", [_vp, c_enum, _pi64], c_enum, _st),
    ("mgrad_mgd_set_seed", [_vp, _u64], c_enum, _st),
    ("mgrad_mgd_get_seed", [_vp, _pu64], c_enum, _st),
    ("mgrad_mgd_set_projection", [_vp, c_enum, _pdbl, _i64], c_enum, _st),
    ("mgrad_mgd_get_projection", [_vp, ctypes.POINTER(c_enum), _pdbl, _i64], c_enum, _st),
    ("mgrad_mgd_set_gradient_from", [_vp, _vp], c_enum, _st),
    ("mgrad_mgd_set_heldout", [_vp, _vp], c_enum, _st),
    ("mgrad_mgd_set_progress", [_vp, ProgressFn, _vp], c_enum, _st),
    ("mgrad_mgd_set_basis", [_vp, _pdbl, _i64, _pdbl], c_enum, _st),
    ("mgrad_mgd_step", [_vp, _pdbl], c_enum, _st),
    ("mgrad_mgd_run", [_vp, _i64], c_enum, _st),
    ("mgrad_mgd_best", [_vp, c_enum, _vp, _i64, _pdbl], c_enum, _st),
    ("mgrad_mgd_steps", [_vp, _pi64], c_enum, _st),
    ("mgrad_mgd_set_lr_schedule", [_vp, c_enum, _pdbl, _i64], c_enum, _st),
    ("mgrad_mgd_get_lr_schedule", [_vp, ctypes.POINTER(c_enum), _pdbl, _i64], c_enum, _st),
    ("mgrad_mgd_step_size", [_vp, _pdbl], c_enum, _st),
    ("mgrad_mgd_set_map", [_vp, c_enum, _pdbl, _i64], c_enum, _st),
    ("mgrad_mgd_get_map", [_vp, ctypes.POINTER(c_enum), _pi64], c_enum, _st),
    ("mgrad_mgd_trust_check", [_vp, _vp, _dbl, _u64, ctypes.POINTER(TrustReport)], c_enum, _st),
    # metagrad/data.h
    ("mgrad_dataset_load_idx", [_pp, _vp, _ccp, _ccp, _i32, _dbl], c_enum, _st),
    ("mgrad_dataset_load_npy", [_pp, _vp, _ccp, _ccp, _i32], c_enum, _st),
    ("mgrad_dataset_load_csv", [_pp, _vp, _ccp, _i32, _i32, _i32], c_enum, _st),
    ("mgrad_dataset_load_fashion_mnist", [_pp, _vp, _ccp, _ccp], c_enum, _st),
    ("mgrad_dataset_normalize", [_vp, _vp, c_enum], c_enum, _st),
    ("mgrad_dataset_scale", [_vp, _dbl, _dbl], c_enum, _st),
    ("mgrad_dataset_split", [_pp, _pp, _vp, _i64, _u64], c_enum, _st),
    ("mgrad_dataset_subset", [_pp, _vp, _pi64, _i64], c_enum, _st),
    ("mgrad_dataset_shape", [_vp, _pi32, _pi64], c_enum, _st),
    ("mgrad_dataset_num_classes", [_vp, _pi32], c_enum, _st),
    ("mgrad_dataset_get_inputs", [_vp, c_enum, _vp, _i64], c_enum, _st),
    ("mgrad_dataset_get_labels", [_vp, _pi32, _i64], c_enum, _st),
    ("mgrad_text_corpus_create", [_pp, _vp], c_enum, _st),
    ("mgrad_text_corpus_destroy", [_vp], None, None),
    ("mgrad_text_corpus_add_file", [_vp, _ccp, c_enum, _i32, _pi64], c_enum, _st),
    ("mgrad_text_corpus_add_glob", [_vp, _ccp, _ccp, c_enum, _i32, _pi64], c_enum, _st),
    ("mgrad_text_corpus_size", [_vp, _pi64, _pi64], c_enum, _st),
    ("mgrad_text_corpus_document", [_vp, _i64, ctypes.POINTER(ctypes.c_char_p), _pi64, _pi32,
                                    ctypes.POINTER(ctypes.c_void_p), _pi64], c_enum, _st),
    ("mgrad_text_corpus_count_examples", [_vp, _pi64, _i64, _i64, _i64, _pi64], c_enum, _st),
    ("mgrad_text_corpus_examples", [_pp, _vp, _pi64, _i64, _i64, _i64, _pi64, _i64], c_enum,
     _st),
    # metagrad/smooth.h
    ("mgrad_meta_metasmoothness", [_vp, _pdbl, _u64, _dbl, _pdbl, _pdbl], c_enum, _st),
    ("mgrad_run_hvp", [_vp, c_enum, _vp, _vp, _i64], c_enum, _st),
    ("mgrad_run_hessian_spectrum", [_vp, _pdbl, _i64], c_enum, _st),
    ("mgrad_run_hessian_lanczos", [_vp, _i64, _u64, _pdbl], c_enum, _st),
    # metagrad/score.h
    ("mgrad_score_options_init", [ctypes.POINTER(ScoreOptions), _u32], c_enum, _st),
    ("mgrad_score_run", [_vp, _vp, ctypes.POINTER(RunOptions), ctypes.POINTER(ScoreOptions),
                         _pp, _i32, ctypes.POINTER(Score), _pdbl], c_enum, _st),
]


# ---------------------------------------------------------------- discovery

_PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__))
_REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(_PACKAGE_DIR)))


def _installed_candidates():
    """Where `meson install` put the library, as recorded beside the package
    (metagrad/_installed.py, written at configure time; absent in a wheel and
    in the source tree): the absolute libdir, then the same place relative to
    the package, which holds when the whole prefix was moved."""
    try:
        from . import _installed
    except ImportError:
        return
    yield "meson install libdir", os.path.join(_installed.LIBDIR, _installed.SONAME)
    yield "meson install libdir, relative to the package", os.path.normpath(
        os.path.join(_PACKAGE_DIR, _installed.LIBDIR_FROM_PACKAGE, _installed.SONAME))


def _candidates():
    """(description, path or soname) pairs, in the order they are tried."""
    env = os.environ.get("METAGRAD_LIBRARY")
    if env:
        yield "METAGRAD_LIBRARY=%s" % env, env
        return  # an explicit choice is never silently replaced
    build_dir = os.environ.get("METAGRAD_BUILD_DIR")
    if build_dir:
        found = False
        for pattern in ("lib/libmetagrad.so*", "libmetagrad.so*"):
            for path in sorted(glob.glob(os.path.join(build_dir, pattern)), key=len):
                found = True
                yield "METAGRAD_BUILD_DIR", path
        if not found:
            yield "METAGRAD_BUILD_DIR", os.path.join(build_dir, "lib", "libmetagrad.so")
    # Bundled in the package: a wheel built by `pip install .` (meson-python).
    for path in sorted(glob.glob(os.path.join(_PACKAGE_DIR, "libmetagrad.so*")), key=len):
        yield "bundled with the package", path
    # Installed by `meson install` together with this package.
    for how, path in _installed_candidates():
        yield how, path
    # A source checkout: bindings/python/metagrad/_lib.py under the repo root.
    if os.path.exists(os.path.join(_REPO_ROOT, "include", "metagrad.h")):
        pattern = os.path.join(_REPO_ROOT, "build*", "lib", "libmetagrad.so*")
        paths = glob.glob(pattern)
        # newest build first; within one build, the plain .so first
        paths.sort(key=lambda p: (-os.path.getmtime(os.path.dirname(p)), len(p)))
        if not paths:
            yield "build directory", pattern
        for path in paths:
            yield "build directory", path
    yield "ctypes.util.find_library('metagrad')", ctypes.util.find_library("metagrad")
    yield "system loader", "libmetagrad.so.0"


def _load():
    tried = []
    for how, path in _candidates():
        if path is None:
            tried.append("%s: not found" % how)
            continue
        if os.sep in path and not os.path.exists(path):
            tried.append("%s: %s (no such file)" % (how, path))
            continue
        try:
            return ctypes.CDLL(path), path
        except OSError as e:
            tried.append("%s: %s (%s)" % (how, path, e))
    raise ImportError(
        "metagrad: cannot find libmetagrad.  Tried, in order:\n  " + "\n  ".join(tried) +
        "\nInstall the package with its library (pip install . from the libmetagrad "
        "source tree), install libmetagrad (meson install), or point METAGRAD_LIBRARY "
        "at libmetagrad.so (docs/install.md).")


class _Lib:
    """The bound functions, as attributes named like the C functions."""

    def __init__(self, cdll, path):
        self._cdll = cdll
        self.path = path
        missing = []
        for name, argtypes, restype, errcheck in FUNCTIONS:
            try:
                fn = getattr(cdll, name)
            except AttributeError:
                missing.append(name)
                continue
            fn.argtypes = argtypes
            fn.restype = restype
            if errcheck is not None:
                fn.errcheck = errcheck
            setattr(self, name, fn)
        if missing:
            raise ImportError("metagrad: %s lacks %s; it is not a libmetagrad these "
                              "bindings (%s) can use" % (path, ", ".join(missing), VERSION))


def _bind():
    cdll, path = _load()
    bound = _Lib(cdll, path)
    number = bound.mgrad_version_number()
    if number != VERSION_NUMBER:
        raise ImportError(
            "metagrad: version mismatch: the Python package is %s (%d) but %s is %s (%d). "
            "Use the bindings from the same libmetagrad release, or set METAGRAD_LIBRARY "
            "to a matching library." % (VERSION, VERSION_NUMBER, path,
                                        bound.mgrad_version_string().decode(), number))
    return bound


lib = _bind()
