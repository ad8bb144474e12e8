"""The Pythonic API: Context, Model, Dataset, Run and Meta over the C handles.

Ownership mirrors the C library.  Every handle class frees its C object
exactly once: on close(), on leaving a ``with`` block, or when collected.
Every object made from a Context holds a reference on the C context (counted
here, in _ContextCore), so the context's error messages and log callback stay
valid for as long as any of them is open, whatever order they are closed in.
A Meta keeps its Run (its C parent) alive.
"""

import ctypes
import math
import os

from . import _buffers as B
from ._errors import (ClosedError, InvalidError, MetagradError, SizeError, VersionError,
                      make_error)
from ._lib import (Activation, Checkpoint, ContextOptions, Dtype, Init, LogFn, LogLevel,
                   Loss, MetaKind, MetaOptions, Optimizer, RunOptions, RunStats, lib,
                   CONTEXT_OPTIONS_VERSION, META_OPTIONS_VERSION, RUN_OPTIONS_VERSION,
                   RUN_STATS_V2_FIELDS, RUN_STATS_VERSION)

__all__ = ["Context", "Model", "Dataset", "Run", "Meta"]


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


class _ContextCore:
    """The C context and its log callback, freed when the last user releases it."""
    __slots__ = ("ptr", "refs", "log_callback")
    _destroy = staticmethod(lib.mgrad_context_destroy)
    _last_error = staticmethod(lib.mgrad_context_last_error)

    def __init__(self, ptr, log_callback):
        self.ptr = ptr
        self.refs = 1
        self.log_callback = log_callback  # C may call it until the context is freed

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


class _Handle:
    """Base of the handle classes: close() once, context manager, safe __del__."""
    _ptr = None
    _core = None
    _destroy = None  # staticmethod of the C destroy function

    def _handle(self):
        if self._ptr is None:
            raise ClosedError("%s is closed" % type(self).__name__, status=-5)
        return self._ptr

    def _call(self, fn, *args):
        """Call a status-returning C function; errors carry the context's message."""
        try:
            return fn(*args)
        except MetagradError as e:
            msg = self._core.last_error() if self._core is not None else ""
            raise make_error(e.status, msg or e.message, e.function) from None

    @property
    def closed(self):
        return self._ptr is None

    def close(self):
        """Free the C object.  Idempotent."""
        ptr, self._ptr = self._ptr, None
        if ptr is not None and self._destroy is not None:
            self._destroy(ptr)
        core, self._core = self._core, None
        if core is not None:
            core.release()

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
        threads:   BLAS threads; 0 leaves BLAS as configured (process-wide).
        seed:      default seed of initialisers and shuffles.
        log:       optional callable(level: str, message: str); exceptions it
                   raises are swallowed (they cannot cross into C).
        log_level: least severe level passed to `log`: 'debug', 'info',
                   'warning' (default) or 'error'.
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
        context is freed when the last of them is closed.  Idempotent."""
        self._ptr = None
        core, self._core = self._core, None
        if core is not None:
            core.release()

    def _core_for_child(self):
        self._handle()
        return self._core.acquire()

    @property
    def dtype(self):
        """'f32' or 'f64'."""
        return "f64" if lib.mgrad_context_dtype(self._handle()) == Dtype.F64 else "f32"

    @property
    def last_error(self):
        """The message of the last failed call on this context or its objects."""
        self._handle()
        return self._core.last_error()

    def clear_error(self):
        lib.mgrad_context_clear_error(self._handle())

    def memory(self):
        """(current, peak) bytes allocated through the context."""
        cur, peak = ctypes.c_uint64(), ctypes.c_uint64()
        self._call(lib.mgrad_context_memory, self._handle(), ctypes.byref(cur), ctypes.byref(peak))
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
        core = ctx._core_for_child()
        ptr = ctypes.c_void_p()
        try:
            _call_core(core, lib.mgrad_model_create, ctypes.byref(ptr), ctx._ptr,
                       len(self.input_shape), dims)
        except BaseException:
            core.release()
            raise
        self._core = core
        self._ptr = ptr

    def dense(self, units, init="default"):
        """Append y = x Wᵀ + b with `units` outputs; init: 'default',
        'kaiming_uniform', 'kaiming_normal', 'xavier_uniform', 'xavier_normal',
        'orthogonal' or 'zeros'."""
        init = _enum(Init, init, "init")
        self._call(lib.mgrad_model_add_dense, self._handle(), B.int_scalar(units, "units"), init)
        return self

    def activation(self, name):
        """Append 'tanh', 'sigmoid', 'relu', 'gelu' or 'softplus'."""
        act = _enum(Activation, name, "activation")
        self._call(lib.mgrad_model_add_activation, self._handle(), act)
        return self

    def scale(self, factor):
        """Append y = factor * x."""
        self._call(lib.mgrad_model_add_scale, self._handle(), B.finite_real(factor, "factor"))
        return self

    def mark(self):
        """The id of the current output, for residual()."""
        out = ctypes.c_int32()
        self._call(lib.mgrad_model_mark, self._handle(), ctypes.byref(out))
        return out.value

    def residual(self, from_id):
        """Append y = x + (output of node `from_id`)."""
        self._call(lib.mgrad_model_add_residual, self._handle(),
                   B.int_scalar(from_id, "from_id", 32))
        return self

    @property
    def num_params(self):
        out = ctypes.c_int64()
        self._call(lib.mgrad_model_num_params, self._handle(), ctypes.byref(out))
        return out.value

    @property
    def output_size(self):
        out = ctypes.c_int64()
        self._call(lib.mgrad_model_output_size, self._handle(), ctypes.byref(out))
        return out.value

    @property
    def params(self):
        """θ0 as float64 [num_params] (a copy)."""
        n = self.num_params
        out = B.RealOut((n,))
        self._call(lib.mgrad_model_get_params, self._handle(), Dtype.F64, out.ptr, n)
        return out.result()

    @params.setter
    def params(self, values):
        n = self.num_params
        buf = B.real_in(values, "params", (n,))
        self._call(lib.mgrad_model_set_params, self._handle(), buf.dtype, buf.ptr, buf.count)

    def init_params(self, seed):
        """Redraw every layer's parameters from `seed`."""
        self._call(lib.mgrad_model_init_params, self._handle(),
                   B.int_scalar(seed, "seed", 64, unsigned=True))
        return self

    def __repr__(self):
        if self.closed:
            return "<metagrad.Model closed>"
        return "<metagrad.Model input_shape=%s params=%d>" % (self.input_shape, self.num_params)


def _call_core(core, fn, *args):
    try:
        return fn(*args)
    except MetagradError as e:
        raise make_error(e.status, core.last_error() or e.message, e.function) from None


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
        core = ctx._core_for_child()
        ptr = ctypes.c_void_p()
        try:
            _call_core(core, lib.mgrad_dataset_create, ctypes.byref(ptr), ctx._ptr, n,
                       len(self.shape), dims, buf.dtype, buf.ptr)
        except BaseException:
            core.release()
            raise
        self._core = core
        self._ptr = ptr
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
        self._call(lib.mgrad_dataset_set_labels, self._handle(), buf.ptr, buf.count, num_classes)
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
        self._call(lib.mgrad_dataset_set_targets, self._handle(), buf.dtype, buf.ptr,
                   self._n, dim)
        return self

    def set_weights(self, weights):
        """Fixed per-example loss weights [N] (default 1)."""
        buf = B.real_in(weights, "weights", (self._n,))
        self._call(lib.mgrad_dataset_set_weights, self._handle(), buf.dtype, buf.ptr, self._n)
        return self

    @property
    def size(self):
        """Number of examples."""
        out = ctypes.c_int64()
        self._call(lib.mgrad_dataset_size, self._handle(), ctypes.byref(out))
        return out.value

    def __len__(self):
        return self.size

    @property
    def features(self):
        """Values per example (the product of the shape)."""
        out = ctypes.c_int64()
        self._call(lib.mgrad_dataset_features, self._handle(), ctypes.byref(out))
        return out.value

    def __repr__(self):
        if self.closed:
            return "<metagrad.Dataset closed>"
        return "<metagrad.Dataset n=%d shape=%s>" % (self._n, self.shape)


# ---------------------------------------------------------------- Run

class Run(_Handle):
    """A training run and its reverse pass.  See docs/python.md.

    Required: model, train, validation, steps, batch_size.  Every other option
    left at None keeps the library's default (mgrad_run_options_init).
    The run copies what it needs: model and datasets may be closed afterwards.
    """
    _destroy = staticmethod(lib.mgrad_run_destroy)

    def __init__(self, model, train, *, validation, steps, batch_size, optimizer=None,
                 lr=None, lr_schedule=None, momentum=None, nesterov=None,
                 weight_decay=None, beta1=None, beta2=None, eps=None, eps_root=None,
                 loss=None, label_smoothing=None, batches=None, shuffle_seed=None,
                 checkpoint=None, checkpoint_slots=None, checkpoint_k=None,
                 checkpoint_budget_bytes=None, spill_dir=None):
        if not isinstance(model, Model):
            raise TypeError("model: expected a metagrad.Model")
        for name, ds in (("train", train), ("validation", validation)):
            if not isinstance(ds, Dataset):
                raise TypeError("%s: expected a metagrad.Dataset" % name)
        model_ptr, train_ptr, val_ptr = model._handle(), train._handle(), validation._handle()
        if model._core is not train._core or model._core is not validation._core:
            raise InvalidError("Run: the model and datasets come from different contexts")
        o = RunOptions()
        lib.mgrad_run_options_init(ctypes.byref(o), RUN_OPTIONS_VERSION)
        o.steps = B.int_scalar(steps, "steps")
        o.batch_size = B.int_scalar(batch_size, "batch_size")
        o.validation = val_ptr
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
        core = model._core.acquire()
        ptr = ctypes.c_void_p()
        try:
            _call_core(core, lib.mgrad_run_create, ctypes.byref(ptr), model_ptr, train_ptr,
                       ctypes.byref(o))
        except BaseException:
            core.release()
            raise
        self._core = core
        self._ptr = ptr
        self.steps = o.steps
        self.batch_size = o.batch_size
        self._features = train.features
        self._train_n = train._n
        self._classes = model.output_size
        self._trained = False

    def train(self):
        """Run the T steps from θ0 and return φ, the validation loss at θ_T."""
        phi = ctypes.c_double()
        self._call(lib.mgrad_run_train, self._handle(), ctypes.byref(phi))
        return phi.value

    def reverse(self):
        """Fill dφ/dz of every metaparameter (after train(); may be repeated)."""
        self._call(lib.mgrad_run_reverse, self._handle())

    @property
    def num_params(self):
        out = ctypes.c_int64()
        self._call(lib.mgrad_run_num_params, self._handle(), ctypes.byref(out))
        return out.value

    @property
    def params(self):
        """θ_T as float64 [num_params] (after train())."""
        n = self.num_params
        out = B.RealOut((n,))
        self._call(lib.mgrad_run_get_params, self._handle(), Dtype.F64, out.ptr, n)
        return out.result()

    def evaluate(self, dataset):
        """(mean loss, accuracy) of θ_T on `dataset`; accuracy is NaN for
        squared error."""
        if not isinstance(dataset, Dataset):
            raise TypeError("dataset: expected a metagrad.Dataset")
        loss, acc = ctypes.c_double(), ctypes.c_double()
        self._call(lib.mgrad_run_evaluate, self._handle(), dataset._handle(),
                   ctypes.byref(loss), ctypes.byref(acc))
        return loss.value, acc.value

    @property
    def stats(self):
        """What the last train and reverse did, as a dict."""
        ptr = self._handle()
        st = RunStats()
        st.version = RUN_STATS_VERSION
        skip = {"version"}
        try:
            lib.mgrad_run_get_stats(ptr, ctypes.byref(st))
        except VersionError:  # a library that knows version 1 only
            st.version = 1
            skip.update(RUN_STATS_V2_FIELDS)
            self._call(lib.mgrad_run_get_stats, ptr, ctypes.byref(st))
        except MetagradError:
            self._call(lib.mgrad_run_get_stats, ptr, ctypes.byref(st))  # raise with message
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
        run_ptr = self._handle()
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
        ptr = ctypes.c_void_p()
        self._call(lib.mgrad_run_add_meta, ctypes.byref(ptr), run_ptr, kind, ctypes.byref(mo))
        return Meta(self, ptr)

    def __repr__(self):
        if self.closed:
            return "<metagrad.Run closed>"
        return "<metagrad.Run steps=%d batch_size=%d>" % (self.steps, self.batch_size)


def _tolist(buf):
    if B.HAVE_NUMPY:
        return buf.keep.ravel().tolist()
    return list(buf.keep)


# ---------------------------------------------------------------- Meta

_SCALAR_KINDS = (MetaKind.WEIGHT_DECAY, MetaKind.MOMENTUM, MetaKind.BETA2)


class Meta:
    """A metaparameter z of a run: `.value` (get/set) and `.grad` = dφ/dz.

    It belongs to its run (which it keeps alive) and has no close() of its
    own; once the run is closed every access raises ClosedError.  Scalar
    kinds (weight_decay, momentum, beta2) read and write plain floats.
    """

    def __init__(self, run, ptr):
        self._run = run
        self._ptr = ptr
        k = ctypes.c_int()
        run._call(lib.mgrad_meta_kind_of, ptr, ctypes.byref(k))
        self._kind = MetaKind(k.value)
        n = ctypes.c_int64()
        run._call(lib.mgrad_meta_size, ptr, ctypes.byref(n))
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
    def kind(self):
        """'data_weights', 'lr_schedule', ..."""
        return self._kind.name.lower()

    @property
    def run(self):
        return self._run

    def _get(self, fn):
        ptr = self._handle()
        out = B.RealOut(self.shape)
        self._run._call(fn, ptr, Dtype.F64, out.ptr, self.size)
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
        ptr = self._handle()
        if self._kind in _SCALAR_KINDS and not hasattr(values, "__len__") and not (
                B.HAVE_NUMPY and isinstance(values, B.np.ndarray)):
            values = [B.real_scalar(values, "value")]
        buf = B.real_in(values, "value")
        if tuple(buf.shape) != tuple(self.shape) and tuple(buf.shape) != (self.size,):
            raise B.ShapeError("value: expected shape %s, got %s"
                               % (B._shape_str(self.shape), B._shape_str(buf.shape)))
        self._run._call(lib.mgrad_meta_set_value, ptr, buf.dtype, buf.ptr, buf.count)

    @property
    def grad(self):
        """dφ/dz from the last Run.reverse()."""
        return self._get(lib.mgrad_meta_get_grad)

    def __repr__(self):
        return "<metagrad.Meta %s size=%d>" % (self.kind, self.size)
