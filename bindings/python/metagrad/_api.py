"""The Pythonic API: Context, Model, Dataset, Run, Meta and MGD over the C
handles, and CallbackModel (Python callables as a run's model).

Ownership mirrors the C library.  Every handle class frees its C object
exactly once: on close(), on leaving a ``with`` block, or when collected.
Every object made from a Context holds a reference on the C context (counted
here, in _ContextCore), so the context's error messages and log callback stay
valid for as long as any of them is open, whatever order they are closed in.
A Meta keeps its Run (its C parent) alive; an MGD keeps its Meta.
Python callables that C may call (log, progress, callback models) are held
as CFUNCTYPE objects by the object whose C side calls them, until it is
freed; exceptions raised in them never cross into C (see _Pending).

Threads (docs/python.md "Threads").  The C library lets one thread at a time
use a context and everything made from it, and different contexts run in
parallel; ctypes releases the GIL during every call.  So each C context has
one lock, _Guard, and every call into C goes through _invoke, which holds
the lock of the handles' context for the whole call: calls on objects of
one context are serialised (a second thread waits), calls on different
contexts run in parallel.  The lock is re-entrant, so callables that C
calls back (progress, callback models, log) may call into the library on
their own thread; there a call that would modify an object in use by the
call in progress below it raises BusyError, while read-only calls (those
whose C function takes the object as const: getters, value, grad, stats,
...) are allowed.  close() and collection never block and never free under
a running call: the handle is closed at once, and its C object is freed
when no call of its context is in flight (at once when none is, else by the
thread whose outermost call ends).
"""

import collections
import ctypes
import os
import threading

from . import _buffers as B
from ._errors import (BusyError, ClosedError, InvalidError, MetagradError, SizeError,
                      VersionError, make_error)
from ._lib import (Activation, CallbackModel as _CallbackModelStruct, Checkpoint,
                   ContextOptions, Dtype, HvpFn, Init, LogFn, LogLevel, Loss, LossGradFn,
                   MetaKind, MetaOptions, MgdLrSchedule, MgdMap, MgdMethod, MgdParam,
                   MgdParamInfo, Normalize, Optimizer, TrustReport, TRUST_REPORT_VERSION,
                   OutputsFn, Output as _OutputStruct, OutputFn,
                   OutputTerm as _OutputTermStruct, OUTPUT_VERSION, ProgressFn, Projection, RunOptions, RunStats, MpiInfo, lib,
                   CALLBACK_MODEL_VERSION, CONTEXT_OPTIONS_VERSION, META_OPTIONS_VERSION,
                   MGD_PARAM_INFO_VERSION, MPI_INFO_VERSION, RUN_OPTIONS_VERSION,
                   SCORE_OPTIONS_VERSION, SCORE_VERSION, Score as _ScoreStruct,
                   ScoreOptions, ScoreSetting,
                   RUN_STATS_V2_FIELDS, RUN_STATS_V3_FIELDS,
                   RUN_STATS_VERSION)

__all__ = ["Context", "Model", "Dataset", "Run", "Meta", "CallbackModel", "MGD", "Score",
           "score"]

_get_ident = threading.get_ident


def _enum(cls, value, what):
    """An enum member from a member, its number or its name ('adamw', 'store-all')."""
    if isinstance(value, cls):
        return value
    if isinstance(value, str):
        key = value.strip().upper().replace("-", "_")
        if key in cls.__members__:
            return cls[key]
    elif isinstance(value, int) and not isinstance(value, bool):
        try:
            return cls(value)
        except ValueError:
            pass
    choices = ", ".join(repr(n.lower()) for n in cls.__members__)
    raise InvalidError("%s: unknown value %r; choose one of %s" % (what, value, choices))


_DTYPE_NAMES = {"f32": Dtype.F32, "float32": Dtype.F32, "f64": Dtype.F64, "float64": Dtype.F64}


def _dtype(value):
    if isinstance(value, Dtype):
        return value
    if B.HAVE_NUMPY and not isinstance(value, str):
        try:
            value = B.np.dtype(value).name
        except TypeError:
            pass
    if isinstance(value, str) and value.lower() in _DTYPE_NAMES:
        return _DTYPE_NAMES[value.lower()]
    from ._errors import DtypeError
    raise DtypeError("dtype: expected 'f32' or 'f64', got %r" % (value,), status=-8)


# ---------------------------------------------------------------- threads

class _Guard:
    """The lock of one C context: re-entrant, with frees deferred to the end
    of the outermost call.

    Only the thread that holds the lock changes `_owner`, `_depth` or any
    handle's `_busy` count, so reading them needs no further lock.  Frees
    (close() and __del__) never wait: `defer` queues them, and they run
    under the lock when nobody else holds it, either at once or when the
    holder's outermost call ends; that covers a __del__ run by the garbage
    collector on the holder's own thread in the middle of a call."""
    __slots__ = ("_lock", "_owner", "_depth", "_deferred", "_count_lock", "waiting")

    def __init__(self):
        self._lock = threading.RLock()
        self._owner = None
        self._depth = 0
        self._deferred = collections.deque()
        self._count_lock = threading.Lock()
        self.waiting = 0  # threads blocked in __enter__ (tests wait on it)

    def __enter__(self):
        if not self._lock.acquire(False):
            with self._count_lock:
                self.waiting += 1
            try:
                self._lock.acquire()
            finally:
                with self._count_lock:
                    self.waiting -= 1
        self._depth += 1
        if self._depth == 1:
            self._owner = _get_ident()
            if self._deferred:
                self._drain()
        return self

    def __exit__(self, *exc):
        if self._depth > 1:
            self._depth -= 1
            self._lock.release()
            return
        try:
            if self._deferred:
                self._drain()
        finally:
            self._depth = 0
            self._owner = None
            self._lock.release()
        # A free queued by another thread between our drain and our release
        # found the lock taken: run it now unless somebody else holds it.
        while self._deferred and self._take_idle():
            self.__exit__()

    def _take_idle(self):
        """Take the lock when no thread holds it (this one included)."""
        if self._owner == _get_ident() or not self._lock.acquire(False):
            return False
        self._owner = _get_ident()
        self._depth = 1
        return True

    def _drain(self):
        while self._deferred:
            action = self._deferred.popleft()
            try:
                action()
            except Exception:  # a destroy function returns nothing; never lose the lock
                pass

    def defer(self, action):
        """Run `action` (a free) under the lock, now when no call of the
        context is in flight, else when the outermost one ends."""
        self._deferred.append(action)
        if self._take_idle():
            self.__exit__()


class _ContextCore:
    """The C context, its lock and its log callback, freed when the last
    user releases it.  acquire() and release() are called under the lock."""
    __slots__ = ("ptr", "refs", "log_callback", "guard")
    _destroy = staticmethod(lib.mgrad_context_destroy)
    _last_error = staticmethod(lib.mgrad_context_last_error)

    def __init__(self, ptr, log_callback):
        self.ptr = ptr
        self.refs = 1
        self.log_callback = log_callback  # C may call it until the context is freed
        self.guard = _Guard()

    def acquire(self):
        self.refs += 1
        return self

    def release(self):
        self.refs -= 1
        if self.refs == 0 and self.ptr is not None:
            ptr, self.ptr = self.ptr, None
            self._destroy(ptr)
            self.log_callback = None

    def last_error(self):
        if self.ptr is None:
            return ""
        msg = self._last_error(self.ptr)
        return msg.decode("utf-8", "replace") if msg else ""


# C functions that take every handle they are given as const (the headers):
# allowed on an object in use by the call in progress below a callback.
_READ_ONLY = frozenset((
    "mgrad_context_dtype", "mgrad_context_last_error", "mgrad_context_clear_error",
    "mgrad_context_memory",
    "mgrad_model_mark", "mgrad_model_num_params", "mgrad_model_output_size",
    "mgrad_model_get_params",
    "mgrad_dataset_size", "mgrad_dataset_features", "mgrad_dataset_shape",
    "mgrad_dataset_num_classes", "mgrad_dataset_get_inputs", "mgrad_dataset_get_labels",
    "mgrad_dataset_vocab", "mgrad_dataset_get_tokens",
    "mgrad_text_corpus_size", "mgrad_text_corpus_document",
    "mgrad_run_num_params", "mgrad_run_get_params", "mgrad_run_get_stats",
    "mgrad_run_mpi_info",
    "mgrad_meta_kind_of", "mgrad_meta_size", "mgrad_meta_get_value", "mgrad_meta_get_grad",
    "mgrad_meta_gather_grad",
    "mgrad_mgd_best", "mgrad_mgd_steps", "mgrad_mgd_method_of", "mgrad_mgd_get_param_info",
    "mgrad_mgd_get_real", "mgrad_mgd_get_int", "mgrad_mgd_get_seed",
    "mgrad_mgd_get_projection"))

# Positions (in the C argument list) of the const handles of functions that
# modify their other handles.
_CONST_ARGS = {
    "mgrad_dataset_normalize": (1,), "mgrad_dataset_split": (2,), "mgrad_dataset_subset": (1,),
    "mgrad_run_evaluate": (1,), "mgrad_run_example_losses": (1,),
    "mgrad_mgd_set_gradient_from": (1,), "mgrad_mgd_set_heldout": (1,),
}


def _core_of(obj):
    core = obj._core
    if core is None:
        raise ClosedError("%s is closed" % type(obj).__name__, status=-5)
    return core


# id(C function) -> (function, name, read-only, positions of const handles);
# ctypes functions are not hashable, and the function itself is kept so its
# id cannot be reused
_FN_INFO = {}


def _fn_info(fn):
    info = _FN_INFO.get(id(fn))
    if info is None or info[0] is not fn:
        name = getattr(fn, "__name__", "?")
        info = _FN_INFO[id(fn)] = (fn, name, name in _READ_ONLY, _CONST_ARGS.get(name, ()))
    return info


def _invoke(core, fn, args, uses=(), pending=(), check=None):
    """The one way into C for the objects of a context: call `fn(*args)`
    holding the context's lock, and raise for a failed status with the
    context's message (read before anyone else can overwrite it).

    Handles (_Guarded) among `args` are replaced by their pointers, checked
    open under the lock: a handle closed by another thread while this one
    waited raises ClosedError instead of reaching C.  `uses`: further
    handles the call reads through an options struct (checked the same way).
    A call from a callback that would modify a handle in use by the call in
    progress below it raises BusyError (see _READ_ONLY).  `pending`: pairs
    (owning handle, _Pending) of the callbacks this call may run, in the
    order of _raise_from_c's arguments; an exception one of them raised is
    re-raised.  `check`: a further test run under the lock."""
    _, name, read_only, const_at = _fn_info(fn)
    with core.guard:
        if check is not None:
            check()
        cargs = list(args)
        targets = []
        for i, a in enumerate(args):
            if isinstance(a, _Guarded):
                cargs[i] = a._handle()
                if a._core is not core:
                    _other_context(a, name)
                t = a._busy_target()
                if t is not None:
                    if t._busy and not read_only and i not in const_at:
                        _busy_error(t, name)
                    targets.append(t)
        for h in uses:
            if h is not None:
                h._handle()
                if h._core is not core:
                    _other_context(h, name)
                t = h._busy_target()
                if t is not None:
                    targets.append(t)
        mine = ()
        if pending and not read_only:  # read-only functions call no callback
            # a nested call must not clear or steal what the outer call's
            # callbacks left pending
            mine = [p if p is not None and not owner._busy else None for owner, p in pending]
            for p in mine:
                if p is not None:
                    p.exc = None
        for t in targets:
            t._busy += 1
        try:
            return fn(*cargs)
        except MetagradError as e:
            err = make_error(e.status, core.last_error() or e.message, e.function)
            taken = [p.take() if p is not None else None for p in mine]
        finally:
            for t in targets:
                t._busy -= 1
    _raise_from_c(err, *taken)


def _other_context(h, name):
    raise InvalidError("%s: the %s comes from another context" % (name, type(h).__name__))


def _busy_error(target, name):
    raise BusyError("%s: the %s is in use by the call in progress on this thread (this call "
                    "came from a callback inside it); only read-only calls are allowed here"
                    % (name, type(target).__name__), function=name)


def _create(core, fn, args, uses=(), count=1):
    """Call a C constructor `fn(&out_1 .. &out_count, *args)` under the lock;
    each new C object holds a reference on `core`.  Returns the pointers."""
    ptrs = [ctypes.c_void_p() for _ in range(count)]
    with core.guard:
        _invoke(core, fn, tuple(ctypes.byref(p) for p in ptrs) + tuple(args), uses=uses)
        for _ in ptrs:
            core.acquire()
    return ptrs


# close() takes the pointer out of the handle under this lock, so that two
# threads closing one handle cannot both free it.  Re-entrant: a __del__ run
# by the collector while this thread holds it closes another handle.
_TAKE = threading.RLock()


class _Guarded:
    """What _invoke accepts as a handle argument."""
    _busy = 0       # calls in progress that use it (changed under the lock)

    def _busy_target(self):
        return self


class _Handle(_Guarded):
    """Base of the handle classes: close() once, context manager, safe __del__."""
    _ptr = None
    _core = None
    _destroy = None  # staticmethod of the C destroy function

    def _handle(self):
        ptr = self._ptr
        if ptr is None:
            raise ClosedError("%s is closed" % type(self).__name__, status=-5)
        return ptr

    def _call(self, fn, *args, uses=(), pending=(), check=None):
        """Call a C function on this handle's context (see _invoke); pass
        handles, not pointers, among `args`."""
        core = self._core
        if core is None:
            self._handle()  # raises ClosedError
        return _invoke(core, fn, args, uses, pending, check)

    @property
    def closed(self):
        return self._ptr is None

    def _keep_until_freed(self):
        """Objects C may still call until the C object is freed; the handle
        drops them (override)."""
        return None

    def close(self):
        """Free the C object.  Idempotent; never blocks: called while a call
        of the same context is in flight (another thread's, or from a
        callback), the handle is closed at once and the C object is freed
        when that call has returned."""
        with _TAKE:
            ptr, self._ptr = self._ptr, None
            core, self._core = self._core, None
            keep = self._keep_until_freed()
        if core is None:
            return
        destroy = self._destroy

        def free(keep=keep):
            if ptr is not None and destroy is not None:
                destroy(ptr)
            core.release()
        core.guard.defer(free)

    def __enter__(self):
        self._handle()
        return self

    def __exit__(self, *exc):
        self.close()

    def __del__(self):
        try:
            self.close()
        except Exception:  # interpreter shutdown: nothing sensible left to do
            pass


# ---------------------------------------------------------------- Context

class Context(_Handle):
    """dtype, threads, seed, logging and the last error message.

    Args:
        dtype:     'f32' (default) or 'f64', the computation dtype.
        threads:   the library's own threads (0 or 1: the calling thread
                   alone; at most 256); results are the same bits for every
                   value.  BLAS is left as configured (OPENBLAS_NUM_THREADS).
        seed:      default seed of initialisers and shuffles.
        log:       optional callable(level: str, message: str); exceptions it
                   raises are swallowed (they cannot cross into C).
        log_level: least severe level passed to `log`: 'debug', 'info',
                   'warning' (default) or 'error'.

    Threads: the context and every object made from it share one lock;
    calls from two threads on them run one after the other, while
    different contexts run in parallel (docs/python.md, "Threads").
    """

    def __init__(self, dtype="f32", threads=0, seed=0, log=None, log_level="warning"):
        opts = ContextOptions()
        lib.mgrad_context_options_init(ctypes.byref(opts), CONTEXT_OPTIONS_VERSION)
        opts.dtype = _dtype(dtype)
        opts.threads = B.int_scalar(threads, "threads", 32)
        opts.seed = B.int_scalar(seed, "seed", 64, unsigned=True)
        callback = None
        if log is not None:
            if not callable(log):
                raise TypeError("log: expected a callable(level, message)")

            def trampoline(level, message, user_data, _log=log):
                try:
                    try:
                        name = LogLevel(level).name.lower()
                    except ValueError:
                        name = str(level)
                    _log(name, message.decode("utf-8", "replace") if message else "")
                except BaseException:  # never unwind through C
                    pass
            callback = LogFn(trampoline)
            opts.log_fn = callback
            opts.log_level = _enum(LogLevel, log_level, "log_level")
        ptr = ctypes.c_void_p()
        lib.mgrad_context_create(ctypes.byref(ptr), ctypes.byref(opts))
        self._core = _ContextCore(ptr, callback)
        self._ptr = ptr

    def close(self):
        """Release the Context.  Objects made from it stay usable; the C
        context is freed when the last of them is closed.  Idempotent; never
        blocks (see _Handle.close)."""
        super().close()

    def _busy_target(self):
        return None  # creating objects from a context never conflicts with a call

    @property
    def dtype(self):
        """'f32' or 'f64'."""
        return "f64" if self._call(lib.mgrad_context_dtype, self) == Dtype.F64 else "f32"

    @property
    def last_error(self):
        """The message of the last failed call on this context or its objects
        (in any thread: read it in the thread that made the call, before
        another call of the context runs, or catch the exception, which
        carries it)."""
        msg = self._call(lib.mgrad_context_last_error, self)
        return msg.decode("utf-8", "replace") if msg else ""

    def clear_error(self):
        self._call(lib.mgrad_context_clear_error, self)

    def memory(self):
        """(current, peak) bytes allocated through the context."""
        cur, peak = ctypes.c_uint64(), ctypes.c_uint64()
        self._call(lib.mgrad_context_memory, self, ctypes.byref(cur), ctypes.byref(peak))
        return cur.value, peak.value

    def __repr__(self):
        if self.closed:
            return "<metagrad.Context closed>"
        return "<metagrad.Context dtype=%s>" % self.dtype


# ---------------------------------------------------------------- Model

def _shape_arg(shape, name):
    if isinstance(shape, int) and not isinstance(shape, bool):
        shape = (shape,)
    try:
        shape = tuple(B.int_scalar(d, name) for d in shape)
    except TypeError:
        raise InvalidError("%s: expected an int or a tuple of ints" % name) from None
    if not 1 <= len(shape) <= 3:
        raise InvalidError("%s: 1 to 3 dimensions, got %d" % (name, len(shape)))
    return shape


class Model(_Handle):
    """A sequence of layers with residual connections, and its θ0.

    Builder methods return the model, so calls chain:
        Model(ctx, 16).dense(32).activation('tanh').dense(4)
    """
    _destroy = staticmethod(lib.mgrad_model_destroy)

    def __init__(self, ctx, input_shape):
        if not isinstance(ctx, Context):
            raise TypeError("ctx: expected a metagrad.Context")
        self.input_shape = _shape_arg(input_shape, "input_shape")
        dims = (ctypes.c_int64 * len(self.input_shape))(*self.input_shape)
        core = _core_of(ctx)
        ptr, = _create(core, lib.mgrad_model_create, (ctx, len(self.input_shape), dims))
        self._core, self._ptr = core, ptr

    def dense(self, units, init="default"):
        """Append y = x Wᵀ + b with `units` outputs; init: 'default',
        'kaiming_uniform', 'kaiming_normal', 'xavier_uniform', 'xavier_normal',
        'orthogonal' or 'zeros'."""
        init = _enum(Init, init, "init")
        self._call(lib.mgrad_model_add_dense, self, B.int_scalar(units, "units"), init)
        return self

    def activation(self, name):
        """Append 'tanh', 'sigmoid', 'relu', 'gelu' or 'softplus'."""
        act = _enum(Activation, name, "activation")
        self._call(lib.mgrad_model_add_activation, self, act)
        return self

    def scale(self, factor):
        """Append y = factor * x."""
        self._call(lib.mgrad_model_add_scale, self, B.finite_real(factor, "factor"))
        return self

    def mark(self):
        """The id of the current output, for residual()."""
        out = ctypes.c_int32()
        self._call(lib.mgrad_model_mark, self, ctypes.byref(out))
        return out.value

    def residual(self, from_id):
        """Append y = x + (output of node `from_id`)."""
        self._call(lib.mgrad_model_add_residual, self,
                   B.int_scalar(from_id, "from_id", 32))
        return self

    # ---- convolutional layers (metagrad/model.h); image features are
    # [channels, height, width]: create the model with a 3-D input shape.

    def conv2d(self, out_channels, kernel, stride=1, padding=0, init="default"):
        """Append a 2-D convolution (torch.nn.Conv2d, groups 1, with bias):
        [C, H, W] -> [out_channels, OH, OW]; padding in [0, kernel − 1]."""
        init = _enum(Init, init, "init")
        self._call(lib.mgrad_model_add_conv2d, self,
                   B.int_scalar(out_channels, "out_channels"), B.int_scalar(kernel, "kernel", 32),
                   B.int_scalar(stride, "stride", 32), B.int_scalar(padding, "padding", 32), init)
        return self

    def avg_pool(self, kernel, stride=0):
        """Append average pooling over kernel x kernel windows (stride 0:
        stride = kernel, torch's default)."""
        self._call(lib.mgrad_model_add_avg_pool, self,
                   B.int_scalar(kernel, "kernel", 32), B.int_scalar(stride, "stride", 32))
        return self

    def max_pool(self, kernel, stride=0):
        """Append max pooling (stride 0: stride = kernel)."""
        self._call(lib.mgrad_model_add_max_pool, self,
                   B.int_scalar(kernel, "kernel", 32), B.int_scalar(stride, "stride", 32))
        return self

    def global_avg_pool(self):
        """Append global average pooling: [C, H, W] (or [C, L]) -> [C]."""
        self._call(lib.mgrad_model_add_global_avg_pool, self)
        return self

    def batch_norm(self, eps=1e-5):
        """Append batch normalisation in training mode (learnable γ, β per
        channel; statistics of the chunk, no running averages)."""
        self._call(lib.mgrad_model_add_batch_norm, self, B.real_scalar(eps, "eps"))
        return self

    def layer_norm(self, eps=1e-5):
        """Append layer normalisation over each whole example."""
        self._call(lib.mgrad_model_add_layer_norm, self, B.real_scalar(eps, "eps"))
        return self

    def dropout(self, p):
        """Append inverted dropout with drop probability p in [0, 1) (identity
        outside training steps; the masks replay exactly)."""
        self._call(lib.mgrad_model_add_dropout, self, B.real_scalar(p, "p"))
        return self

    def flatten(self):
        """Append a flatten: [C, H, W] -> [C H W]."""
        self._call(lib.mgrad_model_add_flatten, self)
        return self

    def resnet_block(self, channels, stride=1):
        """Append a ResNet BasicBlock (two 3x3 conv + batch norm, relu, a
        projection shortcut when the shape changes)."""
        self._call(lib.mgrad_model_add_resnet_block, self,
                   B.int_scalar(channels, "channels"), B.int_scalar(stride, "stride", 32))
        return self

    # ---- sequence models (metagrad/model.h): an example is L + 1 token ids;
    # on a sequence [L, d], dense() and layer_norm() apply to every position.

    def token_embedding(self, vocab, width, context):
        """Append a token embedding (the first layer): ids [0, vocab) at the
        first `context` inputs -> a sequence [context, width]; E ~ N(0, 1)."""
        self._call(lib.mgrad_model_add_token_embedding, self, B.int_scalar(vocab, "vocab"),
                   B.int_scalar(width, "width"), B.int_scalar(context, "context"))
        return self

    def positional_embedding(self):
        """Append y = x + P, P [L, d] learned (N(0, 1) at first)."""
        self._call(lib.mgrad_model_add_positional_embedding, self)
        return self

    def causal_self_attention(self, heads, dropout=0.0):
        """Append causal multi-head self-attention (QKV projection, softmax
        of Q Kᵀ/√e over j <= i, attention dropout, output projection)."""
        self._call(lib.mgrad_model_add_causal_self_attention, self,
                   B.int_scalar(heads, "heads", 32), B.real_scalar(dropout, "dropout"))
        return self

    def transformer_block(self, heads, mlp_ratio=4, dropout=0.0):
        """Append a pre-norm block: x + attn(LN(x)), then h + MLP(LN(h)) with
        MLP = dense(mlp_ratio d), GELU, dense(d)."""
        self._call(lib.mgrad_model_add_transformer_block, self,
                   B.int_scalar(heads, "heads", 32), B.int_scalar(mlp_ratio, "mlp_ratio", 32),
                   B.real_scalar(dropout, "dropout"))
        return self

    @classmethod
    def gpt(cls, ctx, vocab, context, width, layers, heads):
        """A small GPT for loss='next_token': input context + 1 token ids,
        token and positional embeddings, `layers` transformer blocks (MLP
        ratio 4, no dropout), final layer norm, dense to vocab per position."""
        if not isinstance(ctx, Context):
            raise TypeError("ctx: expected a metagrad.Context")
        args = (ctx, B.int_scalar(vocab, "vocab"), B.int_scalar(context, "context"),
                B.int_scalar(width, "width"), B.int_scalar(layers, "layers", 32),
                B.int_scalar(heads, "heads", 32))
        self = cls.__new__(cls)
        core = _core_of(ctx)
        ptr, = _create(core, lib.mgrad_model_create_gpt, args)
        self._core, self._ptr = core, ptr
        self.input_shape = (int(context) + 1,)
        return self

    @property
    def num_params(self):
        out = ctypes.c_int64()
        self._call(lib.mgrad_model_num_params, self, ctypes.byref(out))
        return out.value

    @property
    def output_size(self):
        out = ctypes.c_int64()
        self._call(lib.mgrad_model_output_size, self, ctypes.byref(out))
        return out.value

    @property
    def params(self):
        """θ0 as float64 [num_params] (a copy)."""
        n = self.num_params
        out = B.RealOut((n,))
        self._call(lib.mgrad_model_get_params, self, Dtype.F64, out.ptr, n)
        return out.result()

    @params.setter
    def params(self, values):
        n = self.num_params
        buf = B.real_in(values, "params", (n,))
        self._call(lib.mgrad_model_set_params, self, buf.dtype, buf.ptr, buf.count)

    def init_params(self, seed):
        """Redraw every layer's parameters from `seed`."""
        self._call(lib.mgrad_model_init_params, self,
                   B.int_scalar(seed, "seed", 64, unsigned=True))
        return self

    def __repr__(self):
        if self.closed:
            return "<metagrad.Model closed>"
        return "<metagrad.Model input_shape=%s params=%d>" % (self.input_shape, self.num_params)


def _path(value, name):
    """A file or directory argument as bytes, or None."""
    if value is None:
        return None
    try:
        return os.fsencode(value)
    except TypeError:
        raise B.DtypeError("%s: expected a path, got %s" % (name, type(value).__name__)) from None


# ---------------------------------------------------------------- Dataset

class Dataset(_Handle):
    """Examples inputs [N, *shape] (shape of 1 to 3 dims) with integer labels
    (cross-entropy) or real targets [N, dim] (squared error), and optional
    per-example weights [N].  All data is copied in.

    num_classes defaults to max(labels) + 1; give it explicitly when a set
    may lack the last class (a validation set, say).
    """
    _destroy = staticmethod(lib.mgrad_dataset_destroy)

    def __init__(self, ctx, inputs, labels=None, num_classes=None, targets=None, weights=None):
        if not isinstance(ctx, Context):
            raise TypeError("ctx: expected a metagrad.Context")
        if labels is not None and targets is not None:
            raise InvalidError("Dataset: give labels or targets, not both")
        buf = B.real_in(inputs, "inputs", min_ndim=2)
        if len(buf.shape) > 4:
            raise B.ShapeError("inputs: expected [N, d1 (, d2 (, d3))], got %d dimensions"
                               % len(buf.shape))
        n = int(buf.shape[0])
        self.shape = tuple(int(d) for d in buf.shape[1:])
        dims = (ctypes.c_int64 * len(self.shape))(*self.shape)
        core = _core_of(ctx)
        ptr, = _create(core, lib.mgrad_dataset_create,
                       (ctx, n, len(self.shape), dims, buf.dtype, buf.ptr))
        self._core, self._ptr = core, ptr
        self._n = n
        if labels is not None:
            self.set_labels(labels, num_classes)
        elif num_classes is not None:
            raise InvalidError("num_classes: only meaningful with labels")
        if targets is not None:
            self.set_targets(targets)
        if weights is not None:
            self.set_weights(weights)

    def set_labels(self, labels, num_classes=None):
        """Class labels [N] in [0, num_classes)."""
        buf = B.int_in(labels, "labels", 32, (self._n,))
        if num_classes is None:
            top = B.int_max(buf)
            num_classes = 1 if top is None else top + 1
        num_classes = B.int_scalar(num_classes, "num_classes", 32)
        self._call(lib.mgrad_dataset_set_labels, self, buf.ptr, buf.count, num_classes)
        return self

    def set_targets(self, targets):
        """Real targets [N, dim] (or [N] for dim 1)."""
        buf = B.real_in(targets, "targets")
        if len(buf.shape) not in (1, 2) or buf.shape[0] != self._n:
            raise B.ShapeError("targets: expected shape (%d, dim) or (%d,), got %s"
                               % (self._n, self._n, B._shape_str(buf.shape)))
        dim = 1 if len(buf.shape) == 1 else int(buf.shape[1])
        if dim < 1:
            raise B.ShapeError("targets: dimension 0")
        self._call(lib.mgrad_dataset_set_targets, self, buf.dtype, buf.ptr,
                   self._n, dim)
        return self

    def set_weights(self, weights):
        """Fixed per-example loss weights [N] (default 1)."""
        buf = B.real_in(weights, "weights", (self._n,))
        self._call(lib.mgrad_dataset_set_weights, self, buf.dtype, buf.ptr, self._n)
        return self

    @property
    def size(self):
        """Number of examples."""
        out = ctypes.c_int64()
        self._call(lib.mgrad_dataset_size, self, ctypes.byref(out))
        return out.value

    def __len__(self):
        return self.size

    @property
    def features(self):
        """Values per example (the product of the shape)."""
        out = ctypes.c_int64()
        self._call(lib.mgrad_dataset_features, self, ctypes.byref(out))
        return out.value

    def compact(self):
        """Store the inputs as one byte per value and a palette of their
        distinct values when there are at most 256 of them (bit for bit in the
        context's dtype), else leave them as they are.  Exact: every value
        reads back unchanged, so runs give the same bits.  Byte IDX files and
        Fashion-MNIST load compact already.  Returns the bytes the inputs now
        occupy.  OrderError while a run uses the dataset."""
        out = ctypes.c_int64()
        self._call(lib.mgrad_dataset_compact, self, ctypes.byref(out))
        return out.value

    # ---- metagrad/data.h: loaders, transforms, splits, reading back

    @classmethod
    def _adopt(cls, core, ptr):
        """A Dataset over a C dataset just made (the caller's reference on
        `core` passes to it)."""
        self = cls.__new__(cls)
        self._core = core
        self._ptr = ptr
        try:
            n = ctypes.c_int64()
            self._call(lib.mgrad_dataset_size, self, ctypes.byref(n))
            ndim = ctypes.c_int32()
            dims = (ctypes.c_int64 * 3)()
            self._call(lib.mgrad_dataset_shape, self, ctypes.byref(ndim), dims)
        except BaseException:
            self.close()
            raise
        self._n = n.value
        self.shape = tuple(int(dims[i]) for i in range(ndim.value))
        return self

    @classmethod
    def _load(cls, ctx, fn, *args):
        if not isinstance(ctx, Context):
            raise TypeError("ctx: expected a metagrad.Context")
        core = _core_of(ctx)
        ptr, = _create(core, fn, (ctx,) + args)
        return cls._adopt(core, ptr)

    @classmethod
    def load_idx(cls, ctx, images, labels=None, num_classes=0, scale=1.0):
        """Load an IDX pair (the MNIST format; gzip or plain): images [N, ...]
        of any IDX element type, each value multiplied by `scale` (1/255 maps
        u8 pixels to [0, 1]), and optional labels [N].  num_classes 0: the
        largest label + 1."""
        return cls._load(ctx, lib.mgrad_dataset_load_idx, _path(images, "images"),
                         _path(labels, "labels"), B.int_scalar(num_classes, "num_classes", 32),
                         B.real_scalar(scale, "scale"))

    @classmethod
    def load_npy(cls, ctx, inputs, labels=None, num_classes=0):
        """Load NPY files (gzip or plain): inputs (N, ...) of dtype <f4, <f8,
        |u1 or <i8 (values as they are), optional labels (N,) of <i8, <i4 or |u1."""
        return cls._load(ctx, lib.mgrad_dataset_load_npy, _path(inputs, "inputs"),
                         _path(labels, "labels"), B.int_scalar(num_classes, "num_classes", 32))

    @classmethod
    def load_csv(cls, ctx, path, label_column=-1, has_header=False, num_classes=0):
        """Load a numeric CSV file, one example per line; label_column: the
        0-based column of the integer label, or -1 for none."""
        return cls._load(ctx, lib.mgrad_dataset_load_csv, _path(path, "path"),
                         B.int_scalar(label_column, "label_column", 32), 1 if has_header else 0,
                         B.int_scalar(num_classes, "num_classes", 32))

    @classmethod
    def load_fashion_mnist(cls, ctx, split="train", dir=None):
        """Fashion-MNIST ('train': 60000, 'test': 10000 examples of shape
        (1, 28, 28), pixels in [0, 1], 10 classes) from `dir`, by default
        /usr/share/datasets/fashion-mnist (Debian's dataset-fashion-mnist)."""
        if not isinstance(split, str):
            raise B.DtypeError("split: expected 'train' or 'test', got %r" % (split,))
        return cls._load(ctx, lib.mgrad_dataset_load_fashion_mnist, split.encode(),
                         _path(dir, "dir"))

    @classmethod
    def tokens(cls, ctx, tokens, vocab):
        """A token dataset: N sequences of L + 1 integer ids in [0, vocab)
        (a list of equal-length lists, or an [N, L + 1] integer array), for
        sequence models whose next-token loss predicts id p + 1 from position
        p (no labels needed).  Stored exactly; one byte per token when vocab
        <= 256.  InvalidError names the first id out of range."""
        buf = B.int_in(tokens, "tokens", 32)
        if len(buf.shape) != 2:
            raise B.ShapeError("tokens: expected [N, L + 1] ids, got shape %s"
                               % B._shape_str(buf.shape))
        n, length = int(buf.shape[0]), int(buf.shape[1])
        return cls._load(ctx, lib.mgrad_dataset_create_tokens, n, length, buf.ptr,
                         B.int_scalar(vocab, "vocab", 32))

    @classmethod
    def load_text(cls, ctx, paths, length, stride=0, split="file", domain=0, exclude=None):
        """Read text files (plain or gzip; a path with *, ? or [ is a glob)
        into documents (split 'file', 'percent' for fortune files or
        'headword' for dictd dictionaries) and cut them into byte sequences
        of `length` = L + 1 bytes, `stride` apart (0: L).  Returns
        (dataset, documents): a token dataset (vocabulary 256) and, per
        example, the index of its document (int64).  For several domains or
        the documents' names, use TextCorpus."""
        with TextCorpus(ctx) as corpus:
            if isinstance(paths, (str, bytes, os.PathLike)):
                paths = [paths]
            for p in paths:
                corpus.add(p, split=split, domain=domain, exclude=exclude)
            return corpus.examples(length, stride)

    @property
    def vocab(self):
        """The vocabulary of a token dataset; 0 for any other dataset."""
        out = ctypes.c_int32()
        self._call(lib.mgrad_dataset_vocab, self, ctypes.byref(out))
        return out.value

    def get_tokens(self):
        """A copy of a token dataset's ids, [N, L + 1] int32 (nested lists
        without numpy); OrderError for other datasets."""
        self._handle()
        count = self._n * self.shape[0]
        out = B.Int32Out(count)
        self._call(lib.mgrad_dataset_get_tokens, self, out.ptr, count)
        flat = out.result()
        if B.HAVE_NUMPY:
            return flat.reshape(self._n, self.shape[0])
        return [flat[i * self.shape[0]:(i + 1) * self.shape[0]] for i in range(self._n)]

    def normalize(self, reference=None, mode="global"):
        """Standardise the inputs in place with the means and deviations of
        `reference` (default: this set); mode 'global', 'per_feature' or
        'per_channel'.  Returns the dataset."""
        mode = _enum(Normalize, mode, "mode")
        if reference is not None and not isinstance(reference, Dataset):
            raise TypeError("reference: expected a metagrad.Dataset")
        self._call(lib.mgrad_dataset_normalize, self, reference, mode)
        return self

    def scale(self, factor, offset=0.0):
        """x <- factor * x + offset for every input value, in place.  Returns
        the dataset."""
        self._call(lib.mgrad_dataset_scale, self, B.real_scalar(factor, "factor"),
                   B.real_scalar(offset, "offset"))
        return self

    def split(self, n_first, seed=0):
        """(first, second): n_first rows drawn by a seeded permutation, and the
        rest, each in their original order."""
        n_first = B.int_scalar(n_first, "n_first")
        seed = B.int_scalar(seed, "seed", 64, unsigned=True)
        core = _core_of(self)
        a, b = _create(core, lib.mgrad_dataset_split, (self, n_first, seed), count=2)
        first = Dataset._adopt(core, a)
        return first, Dataset._adopt(core, b)

    def subset(self, rows):
        """A new dataset of the given rows, in that order (repeats allowed)."""
        self._handle()
        buf = B.int_in(rows, "rows", 64)
        if len(buf.shape) != 1:
            raise B.ShapeError("rows: expected a 1-D sequence of row indices, got shape %s"
                               % B._shape_str(buf.shape))
        core = _core_of(self)
        out, = _create(core, lib.mgrad_dataset_subset, (self, buf.ptr, buf.count))
        return Dataset._adopt(core, out)

    @property
    def num_classes(self):
        """The number of classes; 0 without labels."""
        out = ctypes.c_int32()
        self._call(lib.mgrad_dataset_num_classes, self, ctypes.byref(out))
        return out.value

    def get_inputs(self, dtype="f64"):
        """A copy of the inputs, [N, *shape]: a numpy array of `dtype`
        (float64 by default, or 'f32'), or nested lists without numpy."""
        self._handle()
        out = B.RealOut((self._n,) + tuple(self.shape), _dtype(dtype))
        self._call(lib.mgrad_dataset_get_inputs, self, out.dtype, out.ptr, out.count)
        return out.result()

    def get_labels(self):
        """A copy of the labels [N] (int32 array, or a list); OrderError
        without labels."""
        self._handle()
        out = B.Int32Out(self._n)
        self._call(lib.mgrad_dataset_get_labels, self, out.ptr, self._n)
        return out.result()

    def __repr__(self):
        if self.closed:
            return "<metagrad.Dataset closed>"
        return "<metagrad.Dataset n=%d shape=%s>" % (self._n, self.shape)


# ---------------------------------------------------------------- TextCorpus

_TEXT_SPLITS = {"file": 1, "percent": 2, "fortune": 2, "headword": 3, "dict": 3}


def _int64_array(count):
    """(buffer, pointer) of `count` int64 for C to fill."""
    if B.HAVE_NUMPY:
        arr = B.np.empty(count, dtype=B.np.int64)
        return arr, arr.ctypes.data_as(ctypes.POINTER(ctypes.c_int64))
    arr = (ctypes.c_int64 * max(count, 1))()
    return arr, ctypes.cast(arr, ctypes.POINTER(ctypes.c_int64))


class TextCorpus(_Handle):
    """Documents of bytes read from text files (plain or gzip), each with a
    domain label, cut into token datasets whose examples remember their
    document (metagrad/data.h, mgrad_text_corpus_*).

        corpus = TextCorpus(ctx)
        corpus.add("/usr/share/man/man2/*.gz", domain=0)
        corpus.add("/usr/share/games/fortunes/[a-z]*", split="percent",
                   exclude="*.dat", domain=1)
        data, doc = corpus.examples(65)        # L = 64
        corpus.domains()[doc]                  # each example's domain
    """
    _destroy = staticmethod(lib.mgrad_text_corpus_destroy)

    def __init__(self, ctx):
        if not isinstance(ctx, Context):
            raise TypeError("ctx: expected a metagrad.Context")
        core = _core_of(ctx)
        ptr, = _create(core, lib.mgrad_text_corpus_create, (ctx,))
        self._core, self._ptr = core, ptr

    def add(self, path, split="file", domain=0, exclude=None):
        """Add a file, or every regular file a glob pattern (a path with *, ?
        or [) matches, in byte order, skipping names that match `exclude`.
        split: 'file' (one document), 'percent' (fortune's % lines) or
        'headword' (dictd entries).  A file already in the corpus is skipped.
        Returns the number of documents added; a failure adds nothing."""
        if split not in _TEXT_SPLITS:
            raise InvalidError("split: expected one of %s, got %r"
                               % (", ".join(sorted(_TEXT_SPLITS)), split))
        code = _TEXT_SPLITS[split]
        domain = B.int_scalar(domain, "domain", 32)
        raw = _path(path, "path")
        added = ctypes.c_int64()
        if any(ch in raw for ch in (b"*", b"?", b"[")):
            self._call(lib.mgrad_text_corpus_add_glob, self, raw, _path(exclude, "exclude"),
                       code, domain, ctypes.byref(added))
        else:
            if exclude is not None:
                raise InvalidError("exclude: only meaningful with a glob pattern")
            self._call(lib.mgrad_text_corpus_add_file, self, raw, code, domain,
                       ctypes.byref(added))
        return added.value

    def __len__(self):
        out = ctypes.c_int64()
        self._call(lib.mgrad_text_corpus_size, self, ctypes.byref(out), None)
        return out.value

    @property
    def bytes(self):
        """The total length of the documents."""
        out = ctypes.c_int64()
        self._call(lib.mgrad_text_corpus_size, self, None, ctypes.byref(out))
        return out.value

    def document(self, index):
        """Document `index`: a dict with path (str), part (its index in its
        file), domain and text (bytes)."""
        path, text = ctypes.c_char_p(), ctypes.c_void_p()
        part, size, domain = ctypes.c_int64(), ctypes.c_int64(), ctypes.c_int32()
        core = _core_of(self)
        with core.guard:  # the text pointer stays valid until the lock is released
            self._call(lib.mgrad_text_corpus_document, self, B.int_scalar(index, "index"),
                       ctypes.byref(path), ctypes.byref(part), ctypes.byref(domain),
                       ctypes.byref(text), ctypes.byref(size))
            data = ctypes.string_at(text.value, size.value)
        return {"path": os.fsdecode(path.value), "part": part.value, "domain": domain.value,
                "text": data}

    def domains(self):
        """The domain of every document (int32 array, or a list)."""
        n = len(self)
        out = B.Int32Out(max(n, 1))
        d = ctypes.c_int32()
        for i in range(n):
            self._call(lib.mgrad_text_corpus_document, self, i, None, None, ctypes.byref(d),
                       None, None)
            out._arr[i] = d.value
        res = out.result()
        return res[:n]

    def count_examples(self, length, stride=0, documents=None):
        """The examples examples() would make (0 when no document is long
        enough)."""
        sel, ptr, nsel = self._selection(documents)
        out = ctypes.c_int64()
        self._call(lib.mgrad_text_corpus_count_examples, self, ptr, nsel,
                   B.int_scalar(length, "length"), B.int_scalar(stride, "stride"),
                   ctypes.byref(out))
        return out.value

    def examples(self, length, stride=0, documents=None):
        """(dataset, document): the documents (all, or the given indices in
        that order) cut into token examples of `length` = L + 1 bytes
        starting every `stride` bytes (0: L, so consecutive examples share
        one byte); short documents and tails give nothing.  `document`
        (int64) holds each example's document index."""
        length = B.int_scalar(length, "length")
        stride = B.int_scalar(stride, "stride")
        sel, ptr, nsel = self._selection(documents)
        core = _core_of(self)
        with core.guard:
            n = self.count_examples(length, stride, documents)
            doc, doc_ptr = _int64_array(n)
            out, = _create(core, lib.mgrad_text_corpus_examples,
                           (self, ptr, nsel, length, stride, doc_ptr if n > 0 else None, n))
        ds = Dataset._adopt(core, out)
        return ds, (doc if B.HAVE_NUMPY else list(doc)[:n])

    @staticmethod
    def _selection(documents):
        if documents is None:
            return None, None, 0
        buf = B.int_in(documents, "documents", 64)
        if len(buf.shape) != 1:
            raise B.ShapeError("documents: expected a 1-D sequence of document indices")
        return buf, buf.ptr, buf.count

    def __repr__(self):
        if self.closed:
            return "<metagrad.TextCorpus closed>"
        return "<metagrad.TextCorpus documents=%d bytes=%d>" % (len(self), self.bytes)


# ---------------------------------------------------------------- Run

def _run_options(validation, steps, batch_size, optimizer=None, lr=None, lr_schedule=None,
                 momentum=None, nesterov=None, weight_decay=None, beta1=None, beta2=None,
                 eps=None, eps_root=None, loss=None, label_smoothing=None, batches=None,
                 shuffle_seed=None, checkpoint=None, checkpoint_slots=None, checkpoint_k=None,
                 checkpoint_budget_bytes=None, spill_dir=None):
    """(mgrad_run_options, buffers to keep alive during the create call)."""
    o = RunOptions()
    lib.mgrad_run_options_init(ctypes.byref(o), RUN_OPTIONS_VERSION)
    o.steps = B.int_scalar(steps, "steps")
    o.batch_size = B.int_scalar(batch_size, "batch_size")
    # checked again under the lock (uses); None: a plain run
    o.validation = validation._handle() if validation is not None else None
    keep = []
    if optimizer is not None:
        o.optimizer = _enum(Optimizer, optimizer, "optimizer")
    if loss is not None:
        o.loss = _enum(Loss, loss, "loss")
    if checkpoint is not None:
        o.checkpoint = _enum(Checkpoint, checkpoint, "checkpoint")
    for name, value in (("lr", lr), ("momentum", momentum), ("weight_decay", weight_decay),
                        ("beta1", beta1), ("beta2", beta2), ("eps", eps),
                        ("eps_root", eps_root), ("label_smoothing", label_smoothing)):
        if value is not None:
            setattr(o, name, B.real_scalar(value, name))
    if nesterov is not None:
        o.nesterov = 1 if nesterov else 0
    if shuffle_seed is not None:
        o.shuffle_seed = B.int_scalar(shuffle_seed, "shuffle_seed", 64, unsigned=True)
    for name, value in (("checkpoint_slots", checkpoint_slots),
                        ("checkpoint_k", checkpoint_k)):
        if value is not None:
            setattr(o, name, B.int_scalar(value, name))
    if checkpoint_budget_bytes is not None:
        o.checkpoint_budget_bytes = B.int_scalar(checkpoint_budget_bytes,
                                                 "checkpoint_budget_bytes", 64, unsigned=True)
    if spill_dir is not None:
        o.spill_dir = os.fsencode(spill_dir)
        keep.append(o.spill_dir)
    # C reads `steps` values and `steps * batch_size` indices through
    # these pointers without knowing their length: check them here.
    if lr_schedule is not None:
        buf = B.real_in(lr_schedule, "lr_schedule")
        if len(buf.shape) != 1 or buf.count != o.steps:
            raise SizeError("lr_schedule: expected %d values (steps), got shape %s"
                            % (o.steps, B._shape_str(buf.shape)))
        if buf.dtype != Dtype.F64:
            buf = B.real_in([float(x) for x in _tolist(buf)], "lr_schedule")
        o.lr_schedule = ctypes.cast(buf.ptr, ctypes.POINTER(ctypes.c_double))
        keep.append(buf)
    if batches is not None:
        buf = B.int_in(batches, "batches", 64)
        if buf.count != o.steps * o.batch_size or len(buf.shape) not in (1, 2) or (
                len(buf.shape) == 2 and tuple(buf.shape) != (o.steps, o.batch_size)):
            raise SizeError("batches: expected shape (%d, %d) (steps, batch_size) or %d "
                            "values, got shape %s" % (o.steps, o.batch_size,
                                                      o.steps * o.batch_size,
                                                      B._shape_str(buf.shape)))
        o.batches = buf.ptr
        keep.append(buf)
    return o, keep


class _Pending:
    """An exception raised inside a callback, kept until the C call that
    made the callback has returned (exceptions cannot cross C frames)."""
    __slots__ = ("exc",)

    def __init__(self):
        self.exc = None

    def take(self):
        exc, self.exc = self.exc, None
        return exc


def _raise_from_c(err, callback_exc=None, progress_exc=None):
    """Raise for a failed C call `err` (made with the context's message),
    given the exceptions callbacks left pending (taken from _Pending).

    A progress callback's exception is re-raised as it is.  A model
    callback's exception becomes the cause of the CallbackError (whose
    message says where the library called it); KeyboardInterrupt and other
    non-Exception BaseExceptions are re-raised as they are."""
    if progress_exc is not None:
        raise progress_exc
    if callback_exc is not None:
        if not isinstance(callback_exc, Exception):
            raise callback_exc
        raise err from callback_exc
    raise err


class Run(_Handle):
    """A training run and its reverse pass.  See docs/python.md.

    Required: model, train, validation (None: a plain run, without an output
    function until set_output), steps, batch_size.  Every other option
    left at None keeps the library's default (mgrad_run_options_init):
    optimizer, lr, lr_schedule, momentum, nesterov, weight_decay, beta1,
    beta2, eps, eps_root, loss, label_smoothing, batches, shuffle_seed,
    checkpoint, checkpoint_slots, checkpoint_k, checkpoint_budget_bytes,
    spill_dir.  The run copies what it needs: model and datasets may be closed
    afterwards.  Run.from_callbacks makes a run whose model is Python code.
    Threads: calls on a run (and on anything of its context) from another
    thread wait for the call in progress; close() does not wait, and frees
    the run when that call has returned (docs/python.md, "Threads").
    """
    _destroy = staticmethod(lib.mgrad_run_destroy)
    _pending = None     # _Pending of a callback run
    _callbacks = None   # CFUNCTYPE objects C may call while the run lives

    def __init__(self, model, train, *, validation, steps, batch_size, **options):
        if not isinstance(model, Model):
            raise TypeError("model: expected a metagrad.Model")
        _check_sets(train, validation)
        model._handle()
        if model._core is not train._core or (validation is not None and
                                              model._core is not validation._core):
            raise InvalidError("Run: the model and datasets come from different contexts")
        o, keep = _run_options(validation, steps, batch_size, **options)
        core = _core_of(model)
        classes, features = model.output_size, train.features
        ptr, = _create(core, lib.mgrad_run_create, (model, train, ctypes.byref(o)),
                       uses=(validation,) if validation is not None else ())
        del keep
        self._adopt(core, ptr, o, train, classes, features)

    def _adopt(self, core, ptr, o, train, classes, features):
        self._core, self._ptr = core, ptr
        self.steps = o.steps
        self.batch_size = o.batch_size
        self._features = features
        self._train_n = train._n
        self._classes = classes
        self._trained = False
        self._dtype = Dtype.F64 if self._call(lib.mgrad_context_dtype,
                                              self._run_ctx()) == Dtype.F64 else Dtype.F32

    def _run_ctx(self):
        out = ctypes.c_void_p()
        self._call(lib.mgrad_run_context, self, ctypes.byref(out))
        return out.value

    @classmethod
    def from_callbacks(cls, ctx, model, theta0, train, *, validation, steps, batch_size,
                       **options):
        """A run whose model and loss are the Python callables of `model` (a
        CallbackModel), from initial parameters theta0 [num_params], with the
        options of Run().  See CallbackModel and docs/python.md."""
        if not isinstance(ctx, Context):
            raise TypeError("ctx: expected a metagrad.Context")
        if not isinstance(model, CallbackModel):
            raise TypeError("model: expected a metagrad.CallbackModel")
        ctx._handle()
        _check_sets(train, validation)
        if train._core is not ctx._core or (validation is not None and
                                            validation._core is not ctx._core):
            raise InvalidError("Run.from_callbacks: the datasets come from another context")
        theta = B.f64_in(theta0, "theta0")
        if len(theta.shape) != 1 or theta.count != model.num_params:
            raise SizeError("theta0: expected %d values (num_params), got shape %s"
                            % (model.num_params, B._shape_str(theta.shape)))
        o, keep = _run_options(validation, steps, batch_size, **options)
        dtype = Dtype.F64 if ctx.dtype == "f64" else Dtype.F32
        features = train.features
        pending = _Pending()
        cm, callbacks = model._struct(dtype, pending)
        core = _core_of(ctx)
        self = cls.__new__(cls)
        self._pending = pending
        self._callbacks = callbacks  # set first: __del__ may never see them half-made
        ptr, = _create(core, lib.mgrad_run_create_callback,
                       (ctx, ctypes.byref(cm), B.as_pointer(theta), train, ctypes.byref(o)),
                       uses=(validation,) if validation is not None else ())
        del keep
        self._adopt(core, ptr, o, train, model.num_outputs, features)
        return self

    def close(self):
        """Free the C run (and, for a callback run, release its callables
        once C can no longer call them).  Idempotent; never blocks: closed
        while a call of its context is in flight (in another thread, or
        from a callback), the run is freed when that call has returned, and
        a train() or reverse() in progress completes normally."""
        super().close()

    def _keep_until_freed(self):
        callbacks, self._callbacks = self._callbacks, None
        return callbacks

    def _call(self, fn, *args, uses=(), check=None):
        """As _Handle._call, raising what a callback left pending."""
        return _invoke(_core_of(self), fn, args, uses, ((self, self._pending),), check)

    def set_output(self, terms=None, fn=None, last_k=0):
        """Set the output function φ (mgrad_run_set_output; formulas in
        docs/api.md, "Output functions"):
            φ = (1/K) Σ_{t=T−K+1}^{T} ψ(θ_t),  ψ = Σ_k weight_k φ_k + fn,
        K = last_k (0: 1).  `terms`: a list of dicts with keys
            dataset (required), weight (default 1.0; −1 maximises the term),
            kind ("loss", default, or "margin"), rows (row indices; default
            all), classes (keep rows with these labels; default all).
        `fn`: a Python callable fn(theta) -> (value, grad) with theta a
        read-only float array [num_params] (the context's dtype) and grad
        array-like [num_params] (read only when the library needs the
        gradient); an exception in it fails train()/reverse() with a
        CallbackError caused by it.  set_output() with neither terms nor fn
        restores the default (the validation loss; none on a plain run).
        Invalidates the trajectory: train() again."""
        if terms is None and fn is None:
            self._call(lib.mgrad_run_set_output, self, None)
            self._output_keep = None
            return
        terms = list(terms or [])
        arr = (_OutputTermStruct * max(len(terms), 1))()
        keep, uses = [], []
        kinds = {"loss": 0, "margin": 1}
        for k, t in enumerate(terms):
            if not isinstance(t, dict):
                raise TypeError("terms[%d]: expected a dict with key 'dataset'" % k)
            unknown = set(t) - {"dataset", "weight", "kind", "rows", "classes"}
            if unknown:
                raise TypeError("terms[%d]: unknown keys %s" % (k, sorted(unknown)))
            ds = t.get("dataset")
            if not isinstance(ds, Dataset):
                raise TypeError("terms[%d]['dataset']: expected a metagrad.Dataset" % k)
            kind = t.get("kind", "loss")
            if kind not in kinds:
                raise InvalidError("terms[%d]['kind']: 'loss' or 'margin', not %r" % (k, kind))
            arr[k].kind = kinds[kind]
            # arr[k].dataset: the handle, taken under the lock (fill_handles)
            arr[k].weight = B.real_scalar(t.get("weight", 1.0), "terms[%d]['weight']" % k)
            if t.get("rows") is not None:
                rb = B.int_in(t["rows"], "terms[%d]['rows']" % k, 64)
                keep.append(rb)
                arr[k].rows = ctypes.cast(rb.ptr, ctypes.POINTER(ctypes.c_int64))
                arr[k].num_rows = rb.count
            if t.get("classes") is not None:
                cb = B.int_in(t["classes"], "terms[%d]['classes']" % k, 32)
                keep.append(cb)
                arr[k].classes = ctypes.cast(cb.ptr, ctypes.POINTER(ctypes.c_int32))
                arr[k].num_classes = cb.count
            uses.append(ds)
        out = _OutputStruct()
        lib.mgrad_output_init(ctypes.byref(out), OUTPUT_VERSION)
        out.terms = arr
        out.num_terms = len(terms)
        out.last_k = B.int_scalar(last_k, "last_k")
        cfn = None
        if fn is not None:
            if not callable(fn):
                raise TypeError("fn: expected a callable fn(theta) -> (value, grad)")
            if self._pending is None:
                self._pending = _Pending()
            pending, P, dtype, view = self._pending, self.num_params, self._dtype, B.view

            def t_output(theta, count, value, grad, user_data, _fn=fn):
                try:
                    v, g = _fn(view(theta, (P,), dtype, False))
                    value[0] = float(v)
                    if grad:  # NULL when only the value is needed
                        src = (B.np.asarray(g, dtype=B.np.float64).reshape(-1)
                               if B.HAVE_NUMPY else B._flatten(g, "fn's gradient")[0])
                        if len(src) != P:
                            raise SizeError("the gradient returned by fn: expected %d "
                                            "values (num_params), got %d" % (P, len(src)))
                        dst = view(grad, (P,), dtype, True)
                        if B.HAVE_NUMPY:
                            dst[:] = src
                        else:
                            for i in range(P):
                                dst[i] = src[i]
                    return 0
                except BaseException as e:  # never unwind through C
                    pending.exc = e
                    return 1

            cfn = OutputFn(t_output)
            out.fn = cfn

        def fill_handles():
            for k, ds in enumerate(uses):
                arr[k].dataset = ds._handle()

        self._call(lib.mgrad_run_set_output, self, ctypes.byref(out), uses=tuple(uses),
                   check=fill_handles)
        # C calls fn until the output changes or the run is freed
        self._output_keep = cfn
        if cfn is not None:
            self._callbacks = (self._callbacks or ()) + (cfn,)

    def train(self):
        """Run the T steps from θ0 and return φ (the validation loss at θ_T,
        or the output set by set_output; NaN on a plain run)."""
        phi = ctypes.c_double()
        self._call(lib.mgrad_run_train, self, ctypes.byref(phi))
        return phi.value

    def reverse(self):
        """Fill dφ/dz of every metaparameter (after train(); may be repeated)."""
        self._call(lib.mgrad_run_reverse, self)

    @property
    def num_params(self):
        out = ctypes.c_int64()
        self._call(lib.mgrad_run_num_params, self, ctypes.byref(out))
        return out.value

    @property
    def params(self):
        """θ_T as float64 [num_params] (after train())."""
        n = self.num_params
        out = B.RealOut((n,))
        self._call(lib.mgrad_run_get_params, self, Dtype.F64, out.ptr, n)
        return out.result()

    def evaluate(self, dataset):
        """(mean loss, accuracy) of θ_T on `dataset`; accuracy is NaN for
        squared error."""
        if not isinstance(dataset, Dataset):
            raise TypeError("dataset: expected a metagrad.Dataset")
        loss, acc = ctypes.c_double(), ctypes.c_double()
        self._call(lib.mgrad_run_evaluate, self, dataset, ctypes.byref(loss),
                   ctypes.byref(acc))
        return loss.value, acc.value

    def set_communicator(self, comm):
        """Make the run data-parallel over an mpi4py communicator (or an
        integer Fortran handle, MPI_Comm_c2f).  Collective; raises
        UnsupportedError when the library was built without MPI."""
        handle = comm.py2f() if hasattr(comm, "py2f") else comm
        self._call(lib.mgrad_run_set_communicator_fortran, self,
                   B.int_scalar(handle, "comm", 64))

    @property
    def mpi_info(self):
        """This rank's view of the run's communicator, as a dict."""
        info = MpiInfo()
        info.version = MPI_INFO_VERSION
        self._call(lib.mgrad_run_mpi_info, self, ctypes.byref(info))
        return {name: getattr(info, name) for name, _ in MpiInfo._fields_ if name != "version"}

    def set_shuffle_seed(self, seed):
        """Reseed the epoch shuffles (runs without explicit batches); the
        trajectory must be trained again."""
        self._call(lib.mgrad_run_set_shuffle_seed, self,
                   B.int_scalar(seed, "seed", 64, unsigned=True))

    def example_losses(self, dataset):
        """Per-example losses ℓ_i(θ_T) of `dataset` (unweighted), float64 [N]."""
        if not isinstance(dataset, Dataset):
            raise TypeError("dataset: expected a metagrad.Dataset")
        self._handle()
        out = B.RealOut((dataset.size,))
        self._call(lib.mgrad_run_example_losses, self, dataset, Dtype.F64, out.ptr, out.count)
        return out.result()

    # ---- metagrad/smooth.h: the Hessian of the training loss at θ_T

    def hvp(self, u):
        """H u, H the Hessian of the training loss (1/N) Σ w_i ℓ_i at θ_T (after
        train()), as float64 [num_params]."""
        self._handle()
        n = self.num_params
        buf = B.f64_in(u, "u", (n,))
        out = B.RealOut((n,))
        self._call(lib.mgrad_run_hvp, self, Dtype.F64, buf.ptr, out.ptr, n)
        return out.result()

    def hessian_spectrum(self):
        """All eigenvalues of that Hessian, ascending, float64 [num_params]
        (small models: at most 4096 parameters)."""
        self._handle()
        n = self.num_params
        out = B.RealOut((n,))
        self._call(lib.mgrad_run_hessian_spectrum, self, B.as_pointer(out), n)
        return out.result()

    def hessian_lanczos(self, iterations, seed=0):
        """(smallest, largest) Ritz values of that Hessian after `iterations`
        Lanczos steps from a random start drawn from `seed`."""
        self._handle()
        out = (ctypes.c_double * 2)()
        self._call(lib.mgrad_run_hessian_lanczos, self, B.int_scalar(iterations, "iterations"),
                   B.int_scalar(seed, "seed", 64, unsigned=True), out)
        return out[0], out[1]

    @property
    def stats(self):
        """What the last train and reverse did, as a dict."""
        self._handle()
        st = RunStats()
        st.version = RUN_STATS_VERSION
        skip = {"version"}
        # Ask for the newest version first; an older library refuses it, and
        # the fields it does not know are left out.
        for version, newer in ((RUN_STATS_VERSION, ()), (2, RUN_STATS_V3_FIELDS),
                               (1, RUN_STATS_V2_FIELDS + RUN_STATS_V3_FIELDS)):
            st.version = version
            try:
                self._call(lib.mgrad_run_get_stats, self, ctypes.byref(st))
            except VersionError:
                continue
            skip.update(newer)
            break
        else:
            self._call(lib.mgrad_run_get_stats, self, ctypes.byref(st))  # raise with message
        out = {name: getattr(st, name) for name, _ in RunStats._fields_ if name not in skip}
        if "approximate" in out:
            out["approximate"] = bool(out["approximate"])
        try:
            out["checkpoint"] = Checkpoint(out["checkpoint"]).name.lower()
        except ValueError:
            pass
        return out

    def add_meta(self, kind, *, step_begin=None, step_end=None, step=None, pool=None,
                 rows=None):
        """Register a metaparameter and return its Meta.

        kind: 'data_weights' (step_begin, step_end), 'pool_weights' (step,
        pool), 'inputs' (rows), 'soft_labels', 'lr_schedule', 'weight_decay',
        'momentum', 'beta2' or 'initial_params'.
        """
        kind = _enum(MetaKind, kind, "kind")
        self._handle()
        mo, keep = _meta_options(step_begin, step_end, step, pool, rows)
        ptr = ctypes.c_void_p()
        self._call(lib.mgrad_run_add_meta, ctypes.byref(ptr), self, kind, ctypes.byref(mo),
                   uses=(pool,))
        return Meta(self, ptr)

    def __repr__(self):
        if self.closed:
            return "<metagrad.Run closed>"
        return "<metagrad.Run steps=%d batch_size=%d>" % (self.steps, self.batch_size)


def _meta_options(step_begin=None, step_end=None, step=None, pool=None, rows=None):
    """(mgrad_meta_options, the rows buffer to keep alive during the call);
    a pool is checked again under the lock (pass it in `uses`)."""
    mo = MetaOptions()
    lib.mgrad_meta_options_init(ctypes.byref(mo), META_OPTIONS_VERSION)
    if step_begin is not None:
        mo.step_begin = B.int_scalar(step_begin, "step_begin")
    if step_end is not None:
        mo.step_end = B.int_scalar(step_end, "step_end")
    if step is not None:
        mo.step = B.int_scalar(step, "step")
    if pool is not None:
        if not isinstance(pool, Dataset):
            raise TypeError("pool: expected a metagrad.Dataset")
        mo.pool = pool._handle()
    keep = None
    if rows is not None:
        keep = B.int_in(rows, "rows", 64)
        if len(keep.shape) != 1:
            raise B.ShapeError("rows: expected a 1-D sequence of row indices")
        mo.rows = keep.ptr
        mo.num_rows = keep.count
    return mo, keep


def _check_sets(train, validation):
    for name, ds in (("train", train), ("validation", validation)):
        if ds is None and name == "validation":
            continue  # a plain run
        if not isinstance(ds, Dataset):
            raise TypeError("%s: expected a metagrad.Dataset" % name)
        ds._handle()


def _tolist(buf):
    if B.HAVE_NUMPY:
        return buf.keep.ravel().tolist()
    return list(buf.keep)


# ---------------------------------------------------------------- Meta

_SCALAR_KINDS = (MetaKind.WEIGHT_DECAY, MetaKind.MOMENTUM, MetaKind.BETA2)


class Meta(_Guarded):
    """A metaparameter z of a run: `.value` (get/set) and `.grad` = dφ/dz.

    It belongs to its run (which it keeps alive) and has no close() of its
    own; once the run is closed every access raises ClosedError.  Scalar
    kinds (weight_decay, momentum, beta2) read and write plain floats.
    Threads: as its run (a call in progress on the run makes `value = ...`
    from a callback raise BusyError; `value` and `grad` may be read).
    """

    def __init__(self, run, ptr):
        self._run = run
        self._ptr = ptr
        k = ctypes.c_int()
        run._call(lib.mgrad_meta_kind_of, self, ctypes.byref(k))
        self._kind = MetaKind(k.value)
        n = ctypes.c_int64()
        run._call(lib.mgrad_meta_size, self, ctypes.byref(n))
        self.size = n.value
        if self._kind == MetaKind.INPUTS:
            self.shape = (self.size // run._features, run._features)
        elif self._kind == MetaKind.SOFT_LABELS:
            self.shape = (self.size // run._classes, run._classes)
        else:
            self.shape = (self.size,)

    def _handle(self):
        if self._run.closed:
            raise ClosedError("Meta: its Run is closed", status=-5)
        return self._ptr

    @property
    def _core(self):
        return self._run._core

    def _busy_target(self):
        return self._run  # the C metaparameter is part of its run

    @property
    def kind(self):
        """'data_weights', 'lr_schedule', ..."""
        return self._kind.name.lower()

    @property
    def run(self):
        return self._run

    def _get(self, fn):
        self._handle()
        out = B.RealOut(self.shape)
        self._run._call(fn, self, Dtype.F64, out.ptr, self.size)
        result = out.result()
        if self._kind in _SCALAR_KINDS:
            return float(result[0])
        return result

    @property
    def value(self):
        """The current value z (a copy)."""
        return self._get(lib.mgrad_meta_get_value)

    @value.setter
    def value(self, values):
        self._handle()
        if self._kind in _SCALAR_KINDS and not hasattr(values, "__len__") and not (
                B.HAVE_NUMPY and isinstance(values, B.np.ndarray)):
            values = [B.real_scalar(values, "value")]
        buf = B.real_in(values, "value")
        if tuple(buf.shape) != tuple(self.shape) and tuple(buf.shape) != (self.size,):
            raise B.ShapeError("value: expected shape %s, got %s"
                               % (B._shape_str(self.shape), B._shape_str(buf.shape)))
        self._run._call(lib.mgrad_meta_set_value, self, buf.dtype, buf.ptr, buf.count)

    @property
    def grad(self):
        """dφ/dz from the last Run.reverse()."""
        return self._get(lib.mgrad_meta_get_grad)

    def gather_grad(self, root=-1):
        """dφ/dz summed over the ranks of the run's communicator, on `root`
        (or on every rank with -1); the plain gradient without one."""
        self._handle()
        out = B.RealOut(self.shape)
        self._run._call(lib.mgrad_meta_gather_grad, self, B.int_scalar(root, "root", 32),
                        Dtype.F64, out.ptr, self.size)
        result = out.result()
        if self._kind in _SCALAR_KINDS:
            return float(result[0])
        return result

    def _flat_f64(self, values, name):
        """values of this metaparameter's shape (or flat; a float for a scalar
        kind) as a float64 buffer of `size` values."""
        if self._kind in _SCALAR_KINDS and not hasattr(values, "__len__") and not (
                B.HAVE_NUMPY and isinstance(values, B.np.ndarray)):
            values = [B.real_scalar(values, name)]
        buf = B.f64_in(values, name)
        if tuple(buf.shape) != tuple(self.shape) and tuple(buf.shape) != (self.size,):
            raise B.ShapeError("%s: expected shape %s, got %s"
                               % (name, B._shape_str(self.shape), B._shape_str(buf.shape)))
        return buf

    def metasmoothness(self, h, direction=None, seed=0):
        """(S, curvature): the empirical metasmoothness Ŝ ∈ [−1, 1] of the run
        along `direction` (default: a random unit direction drawn from `seed`)
        with step h, and |φ(z+2hv) − 2φ(z+hv) + φ(z)| / h² (metagrad/smooth.h).
        Trains the run three times; afterwards the value is z again and the run
        is trained at z."""
        self._handle()
        h = B.real_scalar(h, "h")
        seed = B.int_scalar(seed, "seed", 64, unsigned=True)
        dptr = None
        if direction is not None:
            buf = self._flat_f64(direction, "direction")
            dptr = B.as_pointer(buf)
        S, curv = ctypes.c_double(), ctypes.c_double()
        self._run._call(lib.mgrad_meta_metasmoothness, self, dptr, seed, h, ctypes.byref(S),
                        ctypes.byref(curv))
        return S.value, curv.value

    def __repr__(self):
        return "<metagrad.Meta %s size=%d>" % (self.kind, self.size)


# ---------------------------------------------------------------- callback models

def _callback_shape(shape):
    """input_shape of a CallbackModel: an int or a sequence of one or more
    ints (no cap on the rank: the library needs only their product)."""
    if isinstance(shape, int) and not isinstance(shape, bool):
        shape = (shape,)
    try:
        shape = tuple(B.int_scalar(d, "input_shape") for d in shape)
    except TypeError:
        raise InvalidError("input_shape: expected an int or a tuple of ints") from None
    if not shape:
        raise InvalidError("input_shape: at least one dimension")
    return shape


class CallbackModel:
    """A model given by Python callables (metagrad/callback.h), for
    Run.from_callbacks.  It owns no C object.

    Args:
        num_params:   P, the length of θ.
        input_shape:  one example's shape (an int or a tuple of 1 or more ints;
                      the datasets' examples must hold their product of values).
        num_outputs:  classes (cross-entropy) or target size (squared error).
        loss_grad:    required: loss_grad(theta, inputs, labels, targets,
                      weights, scale, grad, example_losses) -> float, the
                      chunk loss L = scale Σ_i weights[i] ℓ_i(theta); when grad
                      is not None, ADD ∇_θ L to it; when example_losses is not
                      None, SET it to the unweighted ℓ_i.
        hvp:          optional (None: approximate mode by finite differences):
                      hvp(theta, u, inputs, labels, targets, weights, scale, hu,
                      loss_tangents, input_grad_tangents) -> None; ADD H u to hu
                      when not None; SET loss_tangents[i] = <∇_θ ℓ_i, u>; SET
                      input_grad_tangents (when not None) to
                      scale w_i ∂<∇_θ ℓ_i, u>/∂x_i.
        outputs:      optional: outputs(theta, inputs, out) -> None, SET out
                      [rows, num_outputs] to the logits (for evaluate's accuracy).
        input_tangents: True when hvp fills input_grad_tangents (INPUTS
                      metaparameters need it).

    Buffers are the library's memory, valid only during the call, in the
    context's dtype: numpy arrays without copies (the inputs read-only) when
    numpy is present, else ctypes arrays (nested for 2-D).  Shapes: theta, u,
    grad, hu [P]; inputs, input_grad_tangents [rows, *input_shape]; labels
    [rows] int32 (cross-entropy runs, else None); targets [rows, num_outputs]
    (squared-error runs, else None); weights, example_losses, loss_tangents
    [rows].  An exception in a callable makes it return nonzero to C; the call
    into the library then raises CallbackError from that exception.
    Callables must be pure functions of their arguments (checkpointing
    recomputes steps and relies on the same bits).  They run on the thread
    of the call into the library, which holds the context's lock: they may
    make read-only calls on the run (params, stats, Meta.value, ...); calls
    that modify it raise BusyError.
    """

    def __init__(self, num_params, input_shape, num_outputs, loss_grad, hvp=None,
                 outputs=None, input_tangents=False):
        self.num_params = B.int_scalar(num_params, "num_params")
        self.input_shape = _callback_shape(input_shape)
        self.num_outputs = B.int_scalar(num_outputs, "num_outputs")
        for name, fn, required in (("loss_grad", loss_grad, True), ("hvp", hvp, False),
                                   ("outputs", outputs, False)):
            if (fn is not None or required) and not callable(fn):
                raise TypeError("%s: expected a callable" % name)
        self.loss_grad, self.hvp, self.outputs = loss_grad, hvp, outputs
        self.input_tangents = bool(input_tangents)

    def _struct(self, dtype, pending):
        """(mgrad_callback_model, the CFUNCTYPE objects to keep alive)."""
        cm = _CallbackModelStruct()
        lib.mgrad_callback_model_init(ctypes.byref(cm), CALLBACK_MODEL_VERSION)
        cm.num_params = self.num_params
        cm.ndim = len(self.input_shape)
        c_shape = (ctypes.c_int64 * len(self.input_shape))(*self.input_shape)
        cm.input_shape = c_shape  # C copies it when the run is created
        cm.num_outputs = self.num_outputs
        cm.input_tangents = 1 if self.input_tangents else 0
        P, K, shape = self.num_params, self.num_outputs, self.input_shape
        view = B.view

        # The trampolines unpack the library's mgrad_chunk and output structs
        # (metagrad/callback.h) into the callables' positional arguments.
        def chunk(c):
            rows = c.rows
            return rows, (view(c.inputs, (rows,) + shape, dtype, False),
                          view(c.labels, (rows,), "i32", False),
                          view(c.targets, (rows, K), dtype, False),
                          view(c.weights, (rows,), dtype, False), c.scale)

        def t_loss_grad(c, theta, out, user_data, _fn=self.loss_grad):
            try:
                rows, (x, y, t, w, scale) = chunk(c.contents)
                o = out.contents
                value = _fn(view(theta, (P,), dtype, False), x, y, t, w, scale,
                            view(o.grad, (P,), dtype, True),
                            view(o.example_losses, (rows,), dtype, True))
                o.loss = float(value)
                return 0
            except BaseException as e:  # never unwind through C
                pending.exc = e
                return 1

        def t_hvp(c, theta, u, out, user_data, _fn=self.hvp):
            try:
                rows, (x, y, t, w, scale) = chunk(c.contents)
                o = out.contents
                _fn(view(theta, (P,), dtype, False), view(u, (P,), dtype, False), x, y, t, w,
                    scale, view(o.hu, (P,), dtype, True),
                    view(o.loss_tangents, (rows,), dtype, True),
                    view(o.input_grad_tangents, (rows,) + shape, dtype, True))
                return 0
            except BaseException as e:
                pending.exc = e
                return 1

        def t_outputs(c, theta, outputs, user_data, _fn=self.outputs):
            try:
                rows = c.contents.rows
                _fn(view(theta, (P,), dtype, False),
                    view(c.contents.inputs, (rows,) + shape, dtype, False),
                    view(outputs, (rows, K), dtype, True))
                return 0
            except BaseException as e:
                pending.exc = e
                return 1

        keep = [c_shape, LossGradFn(t_loss_grad)]
        cm.loss_grad = keep[1]
        if self.hvp is not None:
            keep.append(HvpFn(t_hvp))
            cm.hvp = keep[-1]
        if self.outputs is not None:
            keep.append(OutputsFn(t_outputs))
            cm.outputs = keep[-1]
        return cm, tuple(keep)

    def __repr__(self):
        return "<metagrad.CallbackModel params=%d input_shape=%s outputs=%d%s>" % (
            self.num_params, self.input_shape, self.num_outputs,
            "" if self.hvp is not None else " approximate")


# ---------------------------------------------------------------- MGD

# The settings of MGD.set / get: keys of mgrad_mgd_set_real / _int, and the
# parameters of each projection (mgrad_mgd_set_projection) with their defaults.
_MGD_REAL = {"lr": MgdParam.LR, "mask_prob": MgdParam.MASK_PROB, "beta1": MgdParam.BETA1,
             "beta2": MgdParam.BETA2, "eps": MgdParam.EPS}
_MGD_INT = {"exchange": MgdParam.EXCHANGE, "maximize": MgdParam.MAXIMIZE,
            "reshuffle": MgdParam.RESHUFFLE, "best_orders": MgdParam.BEST_ORDERS}
_SCHEDULE_PARAMS = {MgdLrSchedule.COSINE: 2, MgdLrSchedule.STEP: 2, MgdLrSchedule.INV_SQRT: 1}
_PROJ_PARAMS = {Projection.BOX: ("lo", "hi"), Projection.FIXED_SUM: ("sum",),
                Projection.TOP_K: ("k",)}
_PROJ_DEFAULTS = {"lo": 0.0, "hi": 1.0, "sum": 1.0, "k": 1}
_KEEP = object()  # MGD.set: leave this setting as it is


class MGD(_Handle):
    """Metagradient descent on a metaparameter (metagrad/mgd.h): each step
    trains, scores, keeps the best iterate, takes dφ/dz and updates z.

    Args:
        meta:          the Meta to optimise (MGD keeps it, and its run, alive).
        method:        'sign' (default), 'adam', 'sgd', 'exchange' (counts, a
                       multiset) or 'keep_drop' (a 0/1 selection of exactly K
                       distinct examples); fixed for the optimiser's life.
        lr, mask_prob, beta1, beta2, eps, seed: the update's settings
                       (mask_prob: 'sign' only; beta1, beta2, eps: 'adam' only).
        projection:    'none' (default), 'box' (lo, hi), 'nonnegative',
                       'fixed_sum' (sum) or 'top_k' (k).
        exchange:      'exchange' and 'keep_drop': pairs exchanged per step.
        lr_schedule, lr_schedule_params: the schedule of the meta step
                       ('constant', 'cosine' (total, floor), 'step' (every,
                       gamma), 'inv_sqrt' (k0)); params None: its defaults.
        best_orders:   with reshuffle, score every iterate on this many fixed
                       batch orders (that many extra trainings per step).
        map, map_coefficients: optimise c in z = map(c): 'exp' (log scale;
                       coefficients None: log of the current value),
                       'cosine' (peak, floor, warmup), 'one_cycle' (peak,
                       start, end, pct); before the first step.
        gradient_from: another Meta of the same run and size whose gradient
                       drives the update (data selection: POOL_WEIGHTS).
        heldout:       a Dataset scoring each iterate (default: φ); it must stay
                       open while the MGD is used.
        progress:      callable(step, phi, score, seconds) -> bool, called by
                       run() after every step; a true result stops run() with
                       CancelledError; an exception it raises stops run() and
                       is re-raised.  It may make read-only calls (meta.value,
                       run.params, best(), get(), ...); calls that modify the
                       run or this MGD (set() too) raise BusyError there.
        maximize:      True to maximise φ.
        basis, coefficients: optimise c in z = basis · c, basis [size, dim],
                       starting from coefficients [dim].
        reshuffle:     True to train every meta-step with a new batch order.
    Options left at None keep the library's defaults.  A setting the method
    does not read (beta1 with 'sign', say), or a projection parameter of
    another projection, raises InvalidError.  set() changes settings between
    steps; get() and param_info() read them.
    """
    _destroy = staticmethod(lib.mgrad_mgd_destroy)
    _progress_cb = None
    _progress_fn = None

    def __init__(self, meta, method=None, lr=None, mask_prob=None, beta1=None, beta2=None,
                 eps=None, seed=None, projection=None, lo=None, hi=None, sum=None, k=None,
                 exchange=None, gradient_from=None, heldout=None, progress=None,
                 maximize=False, basis=None, coefficients=None, reshuffle=False,
                 lr_schedule=None, lr_schedule_params=None, best_orders=None, map=None,
                 map_coefficients=None):
        if not isinstance(meta, Meta):
            raise TypeError("meta: expected a metagrad.Meta")
        meta._handle()
        m = MgdMethod.SIGN if method is None else _enum(MgdMethod, method, "method")
        core = _core_of(meta)
        self._meta = meta
        self._gradient_from = None
        self._heldout = None
        self._basis = None  # (basis, coefficients) as given to C, for set()'s undo
        self._map = None  # (kind, coefficients or None) as given to C, for set()'s undo
        self._progress_pending = _Pending()
        ptr, = _create(core, lib.mgrad_mgd_create, (meta, int(m)))
        self._core, self._ptr = core, ptr
        try:
            self.set(lr=lr, mask_prob=mask_prob, beta1=beta1, beta2=beta2, eps=eps, seed=seed,
                     projection=projection, lo=lo, hi=hi, sum=sum, k=k, exchange=exchange,
                     maximize=True if maximize else None, reshuffle=True if reshuffle else None,
                     gradient_from=_KEEP if gradient_from is None else gradient_from,
                     heldout=_KEEP if heldout is None else heldout,
                     progress=_KEEP if progress is None else progress,
                     basis=basis, coefficients=coefficients, lr_schedule=lr_schedule,
                     lr_schedule_params=lr_schedule_params, best_orders=best_orders, map=map,
                     map_coefficients=map_coefficients)
        except BaseException:
            self.close()
            raise

    def set(self, lr=None, mask_prob=None, beta1=None, beta2=None, eps=None, seed=None,
            projection=None, lo=None, hi=None, sum=None, k=None, exchange=None, maximize=None,
            reshuffle=None, gradient_from=_KEEP, heldout=_KEEP, progress=_KEEP, basis=None,
            coefficients=None, lr_schedule=None, lr_schedule_params=None, best_orders=None,
            map=None, map_coefficients=None):
        """Change settings (the keywords of the constructor) between steps;
        the next step uses them, and the state is kept as metagrad/mgd.h
        says: Adam's moments, the step count, the best iterate (forgotten
        when heldout or maximize change: its score does not compare).
        Keywords left at None are unchanged; gradient_from, heldout and
        progress given as None are removed.  lo, hi, sum, k alone change the
        current projection's parameters.  basis: before the first step only.
        All or nothing: when one setting is refused, none is changed."""
        self._handle()
        reals = [(_MGD_REAL[n], B.real_scalar(v, n)) for n, v in (
            ("lr", lr), ("mask_prob", mask_prob), ("beta1", beta1), ("beta2", beta2),
            ("eps", eps)) if v is not None]
        ints = [(MgdParam.EXCHANGE, B.int_scalar(exchange, "exchange"))] \
            if exchange is not None else []
        if reshuffle is not None:
            ints.append((MgdParam.RESHUFFLE, 1 if reshuffle else 0))
        if best_orders is not None:
            # on before best_orders needs it; best_orders off before reshuffle goes off
            item = (MgdParam.BEST_ORDERS, B.int_scalar(best_orders, "best_orders"))
            if reshuffle is not None and not reshuffle:
                ints.insert(0, item)
            else:
                ints.append(item)
        sched = None
        if lr_schedule is not None or lr_schedule_params is not None:
            kind = _enum(MgdLrSchedule, "constant" if lr_schedule is None else lr_schedule,
                         "lr_schedule")
            vals = None if lr_schedule_params is None else \
                [B.real_scalar(v, "lr_schedule_params") for v in lr_schedule_params]
            sched = (kind, vals)
        new_map = None
        if map is not None or map_coefficients is not None:
            kind = _enum(MgdMap, "identity" if map is None else map, "map")
            mc = None if map_coefficients is None else B.f64_in(map_coefficients,
                                                                "map_coefficients")
            new_map = (kind, mc)
        if seed is not None:
            seed = B.int_scalar(seed, "seed", 64, unsigned=True)
        proj = None
        given = {n: v for n, v in (("lo", lo), ("hi", hi), ("sum", sum), ("k", k))
                 if v is not None}
        if projection is not None or given:
            given = {n: B.int_scalar(v, n) if n == "k" else B.real_scalar(v, n)
                     for n, v in given.items()}
            cur_kind, cur = self._projection()
            kind = cur_kind if projection is None else _enum(Projection, projection,
                                                             "projection")
            names = _PROJ_PARAMS.get(kind, ())
            for n in given:
                if n not in names:
                    raise InvalidError("MGD: %s is not a parameter of projection '%s'"
                                       % (n, kind.name.lower()))
            proj = (kind, [float(given.get(n, cur[n] if kind == cur_kind else _PROJ_DEFAULTS[n]))
                           for n in names])
        if gradient_from is not _KEEP and gradient_from is not None and \
                not isinstance(gradient_from, Meta):
            raise TypeError("gradient_from: expected a metagrad.Meta")
        if heldout is not _KEEP and heldout is not None and not isinstance(heldout, Dataset):
            raise TypeError("heldout: expected a metagrad.Dataset")
        callback = None
        if progress is not _KEEP and progress is not None:
            if not callable(progress):
                raise TypeError("progress: expected a callable(step, phi, score, seconds)")

            def trampoline(step, phi, score, seconds, user_data, _fn=progress,
                           _pending=self._progress_pending):
                try:
                    return 1 if _fn(int(step), phi, score, seconds) else 0
                except BaseException as e:  # never unwind through C: cancel, re-raise later
                    _pending.exc = e
                    return 1
            callback = ProgressFn(trampoline)
        new_basis = None
        if (basis is None) != (coefficients is None):
            raise InvalidError("MGD: give basis and coefficients together")
        if basis is not None:
            meta = self._meta
            bb = B.f64_in(basis, "basis")
            if len(bb.shape) != 2 or bb.shape[0] != meta.size or bb.shape[1] < 1:
                raise B.ShapeError("basis: expected shape (%d, dim) (the metaparameter's "
                                   "size, basis dimension), got %s"
                                   % (meta.size, B._shape_str(bb.shape)))
            cb = B.f64_in(coefficients, "coefficients", (int(bb.shape[1]),))
            new_basis = (bb, cb)

        # Apply, the fallible ones first and the held-out set last of them;
        # on a refusal undo what was applied (none of it touches the best
        # iterate), so that a failed set() changes nothing.
        undo = []
        try:
            if new_basis is not None:
                old = self._basis
                self._set_basis(new_basis)
                undo.append(lambda: self._set_basis(old))
            if new_map is not None:
                old_m = self._map
                self._set_map(new_map)
                undo.append(lambda: self._set_map(old_m))
            if sched is not None:
                old_k = self._schedule()
                self._set_schedule(*sched)
                undo.append(lambda: self._set_schedule(*old_k))
            for key, v in reals:
                old_r = self._get(lib.mgrad_mgd_get_real, key, ctypes.c_double)
                self._call(lib.mgrad_mgd_set_real, self, int(key), v)
                undo.append(lambda key=key, o=old_r: self._call(lib.mgrad_mgd_set_real, self,
                                                                int(key), o))
            for key, v in ints:
                old_i = self._get(lib.mgrad_mgd_get_int, key, ctypes.c_int64)
                self._call(lib.mgrad_mgd_set_int, self, int(key), v)
                undo.append(lambda key=key, o=old_i: self._call(lib.mgrad_mgd_set_int, self,
                                                                int(key), o))
            if seed is not None:
                old_s = ctypes.c_uint64()
                self._call(lib.mgrad_mgd_get_seed, self, ctypes.byref(old_s))
                self._call(lib.mgrad_mgd_set_seed, self, seed)
                undo.append(lambda o=old_s.value: self._call(lib.mgrad_mgd_set_seed, self, o))
            if proj is not None:
                old_p = self._projection()
                self._set_projection(*proj)
                undo.append(lambda: self._set_projection(
                    old_p[0], [old_p[1][n] for n in _PROJ_PARAMS.get(old_p[0], ())]))
            if gradient_from is not _KEEP:
                old_g = self._gradient_from
                self._call(lib.mgrad_mgd_set_gradient_from, self, gradient_from)
                self._gradient_from = gradient_from
                undo.append(lambda: (self._call(lib.mgrad_mgd_set_gradient_from, self, old_g),
                                     setattr(self, "_gradient_from", old_g)))
            if heldout is not _KEEP:
                self._call(lib.mgrad_mgd_set_heldout, self, heldout)
                self._heldout = heldout
        except BaseException:
            for fn in reversed(undo):
                try:
                    fn()
                except MetagradError:
                    pass
            raise
        # these cannot be refused
        if maximize is not None:
            self._call(lib.mgrad_mgd_set_int, self, int(MgdParam.MAXIMIZE), 1 if maximize else 0)
        if progress is not _KEEP:
            # the old callable is no longer called once this returns
            self._call(lib.mgrad_mgd_set_progress, self, callback, None)
            self._progress_cb = callback  # C may call it while the optimiser lives
            self._progress_fn = progress

    def _get(self, fn, key, ctype):
        out = ctype()
        self._call(fn, self, int(key), ctypes.byref(out))
        return out.value

    def _projection(self):
        """(kind, {parameter name: value}) of the current projection."""
        kind, values = ctypes.c_int(), (ctypes.c_double * 2)()
        self._call(lib.mgrad_mgd_get_projection, self, ctypes.byref(kind), values, 2)
        kind = Projection(kind.value)
        params = {n: values[i] for i, n in enumerate(_PROJ_PARAMS.get(kind, ()))}
        if "k" in params:
            params["k"] = int(params["k"])
        return kind, params

    def _set_projection(self, kind, values):
        buf = (ctypes.c_double * max(1, len(values)))(*values)
        self._call(lib.mgrad_mgd_set_projection, self, int(kind), buf, len(values))

    def _set_basis(self, arrays):
        if arrays is None:
            self._call(lib.mgrad_mgd_set_basis, self, None, 0, None)
        else:
            bb, cb = arrays
            self._call(lib.mgrad_mgd_set_basis, self, B.as_pointer(bb), int(bb.shape[1]),
                       B.as_pointer(cb))
        self._basis = arrays

    def _set_map(self, m):
        if m is None:
            m = (MgdMap.IDENTITY, None)
        kind, mc = m
        if mc is None:
            self._call(lib.mgrad_mgd_set_map, self, int(kind), None, 0)
        else:
            self._call(lib.mgrad_mgd_set_map, self, int(kind), B.as_pointer(mc), int(mc.count))
        self._map = None if kind == MgdMap.IDENTITY else m

    def _schedule(self):
        """(kind, [parameters]) of the schedule of the meta step."""
        kind, values = ctypes.c_int(), (ctypes.c_double * 2)()
        self._call(lib.mgrad_mgd_get_lr_schedule, self, ctypes.byref(kind), values, 2)
        kind = MgdLrSchedule(kind.value)
        return kind, [values[i] for i in range(_SCHEDULE_PARAMS.get(kind, 0))]

    def _set_schedule(self, kind, values):
        if values is None:
            self._call(lib.mgrad_mgd_set_lr_schedule, self, int(kind), None, 0)
        else:
            buf = (ctypes.c_double * max(1, len(values)))(*values)
            self._call(lib.mgrad_mgd_set_lr_schedule, self, int(kind), buf, len(values))

    @staticmethod
    def trust_check(meta, twin=None, h=0.0, seed=0):
        """mgrad_mgd_trust_check: Ŝ of `meta` at its value along a random
        direction (h 0: the default 0.1‖z‖), and with `twin` (the same run
        built in a Context of the other dtype, a Meta of the same kind) the
        agreement of the two metagradients.  Returns a dict: h, S,
        curvature, rel_diff, cosine (NaN without twin), smooth_ok,
        precision_ok, trusted.  Failed checks are also logged as warnings
        through the Context's log callable."""
        if not isinstance(meta, Meta) or (twin is not None and not isinstance(twin, Meta)):
            raise TypeError("trust_check: expected metagrad.Meta objects")
        r = TrustReport()
        r.version = TRUST_REPORT_VERSION
        h = B.real_scalar(h, "h")
        seed = B.int_scalar(seed, "seed", 64, unsigned=True)
        run = meta._run
        core = _core_of(meta)
        pending = ((run, run._pending),)
        if twin is None:
            _invoke(core, lib.mgrad_mgd_trust_check, (meta, None, h, seed, ctypes.byref(r)),
                    pending=pending)
        else:
            tcore = _core_of(twin)
            if tcore is core:
                raise InvalidError("trust_check: the twin must come from a Context of the "
                                   "other dtype")
            # the twin's context stays locked while C trains its run
            with tcore.guard:
                _invoke(core, lib.mgrad_mgd_trust_check,
                        (meta, twin._handle(), h, seed, ctypes.byref(r)), pending=pending)
        return {"h": r.h, "S": r.S, "curvature": r.curvature, "rel_diff": r.rel_diff,
                "cosine": r.cosine, "smooth_ok": bool(r.smooth_ok),
                "precision_ok": bool(r.precision_ok), "trusted": bool(r.trusted)}

    def get(self, name):
        """One setting by its keyword: 'method', 'lr', 'mask_prob', 'beta1',
        'beta2', 'eps', 'exchange', 'maximize', 'reshuffle', 'best_orders',
        'lr_schedule' (kind), 'lr_schedule_params', 'step_size' (the next
        step's LR · f(k)), 'map' (kind), 'seed',
        'projection', a parameter of the current projection ('lo', 'hi',
        'sum', 'k'), 'gradient_from', 'heldout' or 'progress'."""
        self._handle()
        if name == "method":
            out = ctypes.c_int()
            self._call(lib.mgrad_mgd_method_of, self, ctypes.byref(out))
            return MgdMethod(out.value)
        if name in _MGD_REAL:
            return self._get(lib.mgrad_mgd_get_real, _MGD_REAL[name], ctypes.c_double)
        if name in _MGD_INT:
            v = self._get(lib.mgrad_mgd_get_int, _MGD_INT[name], ctypes.c_int64)
            return v if name in ("exchange", "best_orders") else bool(v)
        if name in ("lr_schedule", "lr_schedule_params"):
            kind, vals = self._schedule()
            return kind if name == "lr_schedule" else vals
        if name == "step_size":
            out = ctypes.c_double()
            self._call(lib.mgrad_mgd_step_size, self, ctypes.byref(out))
            return out.value
        if name == "map":
            kind = ctypes.c_int()
            self._call(lib.mgrad_mgd_get_map, self, ctypes.byref(kind), None)
            return MgdMap(kind.value)
        if name == "seed":
            out = ctypes.c_uint64()
            self._call(lib.mgrad_mgd_get_seed, self, ctypes.byref(out))
            return out.value
        if name in ("projection", "lo", "hi", "sum", "k"):
            kind, params = self._projection()
            if name == "projection":
                return kind
            if name not in params:
                raise InvalidError("MGD: %s is not a parameter of projection '%s'"
                                   % (name, kind.name.lower()))
            return params[name]
        if name == "gradient_from":
            return self._gradient_from
        if name == "heldout":
            return self._heldout
        if name == "progress":
            return self._progress_fn
        raise InvalidError("MGD: no setting called %r" % (name,))

    def param_info(self, name):
        """What mgrad_mgd_get_param_info says about a numeric setting ('lr',
        ..., 'reshuffle'): a dict with min, max, min_open, max_open (the
        accepted range), default, is_int and applies (whether this MGD's
        method reads it)."""
        key = _MGD_REAL.get(name, _MGD_INT.get(name))
        if key is None:
            raise InvalidError("MGD: %r is not a numeric setting" % (name,))
        info = MgdParamInfo()
        info.version = MGD_PARAM_INFO_VERSION
        self._call(lib.mgrad_mgd_get_param_info, self, int(key), ctypes.byref(info))
        return {"min": info.min, "max": info.max, "min_open": bool(info.min_open),
                "max_open": bool(info.max_open), "default": info.default_value,
                "is_int": bool(info.is_int), "applies": bool(info.applies)}

    def _check_heldout(self):
        if self._heldout is not None and self._heldout.closed:
            raise ClosedError("MGD: its heldout Dataset is closed", status=-5)

    def _train(self, fn, *args):
        """A call that trains the run: checks (under the lock) that the
        metaparameter's run and the held-out set are still open, since the C
        optimiser holds plain pointers to them, and raises what the run's
        callbacks or the progress callable left pending."""
        run = self._meta._run
        return _invoke(_core_of(self), fn, (self,) + args,
                       uses=(self._meta, self._gradient_from, self._heldout),
                       pending=((run, run._pending), (self, self._progress_pending)),
                       check=self._check_heldout)

    @property
    def meta(self):
        return self._meta

    def step(self):
        """One meta-step; returns φ of the iterate before the update.  (The
        progress callable is called by run() only.)"""
        phi = ctypes.c_double()
        self._train(lib.mgrad_mgd_step, ctypes.byref(phi))
        return phi.value

    def run(self, steps):
        """`steps` meta-steps with the progress callable, then one more
        training so that the final iterate is scored too."""
        self._train(lib.mgrad_mgd_run, B.int_scalar(steps, "steps"))

    def best(self):
        """(value, score) of the best iterate so far (a value like Meta.value)."""
        self._handle()
        meta = self._meta
        out = B.RealOut(meta.shape)
        score = ctypes.c_double()
        self._call(lib.mgrad_mgd_best, self, Dtype.F64, out.ptr, meta.size, ctypes.byref(score))
        value = out.result()
        if meta._kind in _SCALAR_KINDS:
            value = float(value[0])
        return value, score.value

    @property
    def steps(self):
        """Meta-steps taken."""
        out = ctypes.c_int64()
        self._call(lib.mgrad_mgd_steps, self, ctypes.byref(out))
        return out.value

    def close(self):
        """Free the C optimiser (the metaparameter keeps its value).
        Idempotent; never blocks (closed during a step or run() in flight,
        the optimiser is freed when that call has returned)."""
        super().close()

    def _keep_until_freed(self):
        callback, self._progress_cb = self._progress_cb, None
        return callback

    def __repr__(self):
        if self.closed:
            return "<metagrad.MGD closed>"
        return "<metagrad.MGD of %s steps=%d>" % (self._meta.kind, self.steps)


# ---------------------------------------------------------------- scoring

class Score:
    """What score() measured on one evaluation set over n retrainings:
    loss_mean, loss_std, accuracy_mean, accuracy_std (sample standard
    deviations, n − 1; 0 when n = 1; accuracy NaN for losses without one),
    and per retraining the seeds, losses and accuracies (lists, seed order)."""
    __slots__ = ("n", "loss_mean", "loss_std", "accuracy_mean", "accuracy_std", "seeds",
                 "losses", "accuracies")

    def __init__(self, st, seeds, losses, accuracies):
        self.n = st.n
        self.loss_mean, self.loss_std = st.loss_mean, st.loss_std
        self.accuracy_mean, self.accuracy_std = st.accuracy_mean, st.accuracy_std
        self.seeds, self.losses, self.accuracies = seeds, losses, accuracies

    def __repr__(self):
        return ("<metagrad.Score n=%d loss %.6g ± %.3g accuracy %.6g ± %.3g>"
                % (self.n, self.loss_mean, self.loss_std, self.accuracy_mean,
                   self.accuracy_std))


_SETTING_OPTIONS = ("step_begin", "step_end", "step", "pool", "rows")


def _setting_items(settings):
    """(kind, value, options dict) for a dict {kind: value} or a sequence of
    (kind, value) pairs; a value may be a dict {'value': v, option: ...}."""
    items = settings.items() if isinstance(settings, dict) else settings
    out = []
    for item in items:
        try:
            kind, value = item
        except (TypeError, ValueError):
            raise TypeError("settings: expected a dict {kind: value} or (kind, value) pairs, "
                            "got %r" % (item,)) from None
        options = {}
        if isinstance(value, dict):
            options = dict(value)
            if "value" not in options:
                raise InvalidError("settings[%r]: a dict needs 'value'" % (kind,))
            value = options.pop("value")
            unknown = sorted(set(options) - set(_SETTING_OPTIONS))
            if unknown:
                raise InvalidError("settings[%r]: unknown options %s; choose from %s"
                                   % (kind, ", ".join(unknown), ", ".join(_SETTING_OPTIONS)))
        out.append((_enum(MetaKind, kind, "settings kind"), value, options))
    return out


def score(model, train, eval, *, steps, batch_size, validation=None, seeds=5, first_seed=0,
          seed_list=None, redraw_init=True, redraw_order=True, settings=None, **run_options):
    """Retrain `model` from scratch on `train` once per seed with the run
    options and `settings` applied, and score θ_T on `eval`
    (mgrad_score_run, metagrad/score.h; docs/python.md).

    eval:        a Dataset (returns a Score) or a list of them (a list of Scores).
    seeds:       retrainings n; their seeds are first_seed + s, or seed_list.
    redraw_init: θ0 of retraining s drawn with its seed (False: the model's θ0).
    redraw_order: its batch order from seed XOR 0x5bd1e995 (False: shuffle_seed
                 or batches of the run options, for every retraining).
    settings:    metaparameter values, {kind: value} or (kind, value) pairs,
                 e.g. {'data_weights': w, 'lr_schedule': s}; a value may be
                 {'value': v, 'rows': r} (or step_begin, step_end, step, pool).
    validation:  the run's validation set (unused by the scores; default
                 None: plain runs).
    Other keywords are Run's options (lr, momentum, lr_schedule, ...).  The
    model's θ0 is redrawn during the call and restored exactly."""
    if not isinstance(model, Model):
        raise TypeError("model: expected a metagrad.Model")
    single = isinstance(eval, Dataset)
    evals = [eval] if single else list(eval)
    for ds in [train] + evals + ([validation] if validation is not None else []):
        if not isinstance(ds, Dataset):
            raise TypeError("train, eval, validation: expected metagrad.Dataset objects")
    if not evals:
        raise InvalidError("eval: give at least one evaluation set")
    o, keep = _run_options(validation if validation is not None else evals[0], steps,
                           batch_size, **run_options)
    if validation is None:
        o.validation = None  # plain runs: the scores do not use φ
    so = ScoreOptions()
    lib.mgrad_score_options_init(ctypes.byref(so), SCORE_OPTIONS_VERSION)
    so.redraw_init = 1 if redraw_init else 0
    so.redraw_order = 1 if redraw_order else 0
    so.first_seed = B.int_scalar(first_seed, "first_seed", 64, unsigned=True)
    if seed_list is not None:
        seed_list = [B.int_scalar(x, "seed_list", 64, unsigned=True) for x in seed_list]
        arr = (ctypes.c_uint64 * max(len(seed_list), 1))(*seed_list)
        keep.append(arr)
        so.seed_list = ctypes.cast(arr, ctypes.POINTER(ctypes.c_uint64))
        seeds = len(seed_list)
    so.seeds = B.int_scalar(seeds, "seeds", 32)
    items = _setting_items(settings or ())
    pools = []
    if items:
        arr = (ScoreSetting * len(items))()
        for k, (kind, value, options) in enumerate(items):
            mo, rows = _meta_options(**options)
            if options.get("pool") is not None:
                pools.append(options["pool"])
            if kind in _SCALAR_KINDS and not hasattr(value, "__len__") and not (
                    B.HAVE_NUMPY and isinstance(value, B.np.ndarray)):
                value = [B.real_scalar(value, "settings")]
            buf = B.real_in(value, "settings[%s]" % kind.name.lower())
            keep.extend((mo, rows, buf))
            arr[k].kind = kind
            arr[k].options = ctypes.pointer(mo)
            arr[k].dtype = buf.dtype
            arr[k].values = buf.ptr
            arr[k].count = buf.count
        keep.append(arr)
        so.settings = arr
        so.num_settings = len(items)
    n = so.seeds
    sets = (ctypes.c_void_p * len(evals))(*[ds._handle() for ds in evals])
    outs = (_ScoreStruct * len(evals))()
    for st in outs:
        st.version = SCORE_VERSION
    per_seed = (ctypes.c_double * max(2 * n * len(evals), 1))()
    _invoke(_core_of(model), lib.mgrad_score_run,
            (model, train, ctypes.byref(o), ctypes.byref(so), sets, len(evals), outs, per_seed),
            uses=tuple(evals) + (validation,) + tuple(pools))
    del keep
    used = seed_list if seed_list is not None else [(so.first_seed + s) % 2 ** 64
                                                     for s in range(n)]
    results = [Score(outs[e], list(used), [per_seed[2 * (e * n + s)] for s in range(n)],
                     [per_seed[2 * (e * n + s) + 1] for s in range(n)])
               for e in range(len(evals))]
    return results[0] if single else results
