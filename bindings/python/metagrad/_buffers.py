"""Bulk data in and out: numpy arrays when numpy is importable, plain
sequences otherwise.  Everything is checked here, before a pointer reaches C:
C trusts the counts it is given, so a wrong count must never get through.

Real buffers: float64 and float32 C-contiguous arrays are passed as they are
(the dtype travels with the call, C converts); other integer or real dtypes
are converted to float64; anything else is a DtypeError.  Non-contiguous
arrays are refused (InvalidError) rather than silently copied.
"""

import ctypes
import math
import numbers
import os

from ._errors import DtypeError, InvalidError, ShapeError, SizeError
from ._lib import Dtype

np = None
if not os.environ.get("METAGRAD_NO_NUMPY"):
    try:
        import numpy as np
    except ImportError:  # plain sequences then
        np = None

HAVE_NUMPY = np is not None


def _shape_str(shape):
    return "(" + ", ".join(str(d) for d in shape) + ("," if len(shape) == 1 else "") + ")"


def _check_shape(name, shape, expect):
    """`expect` is a tuple whose entries are ints or None (any size)."""
    if expect is None:
        return
    if len(shape) != len(expect) or any(e is not None and d != e for d, e in zip(shape, expect)):
        want = _shape_str(tuple("?" if e is None else e for e in expect))
        raise ShapeError("%s: expected shape %s, got %s" % (name, want, _shape_str(shape)))


def _flatten(value, name):
    """Nested sequences -> (flat list, shape), for the numpy-free path."""
    if isinstance(value, (str, bytes)) or not hasattr(value, "__len__"):
        raise DtypeError("%s: expected a sequence of numbers, got %s" % (name, type(value).__name__))
    shape = []
    level = [value]
    while True:
        first = level[0]
        if isinstance(first, (str, bytes)) or not hasattr(first, "__len__"):
            break
        n = len(first)
        for item in level:
            if isinstance(item, (str, bytes)) or not hasattr(item, "__len__") or len(item) != n:
                raise ShapeError("%s: ragged nested sequence" % name)
        shape.append(n)
        level = [x for item in level for x in item]
        if not level:
            break
    for x in level:
        if not isinstance(x, (str, bytes)) and hasattr(x, "__len__"):
            raise ShapeError("%s: ragged nested sequence" % name)
    return level, tuple(shape)


def _nest(flat, shape):
    """Flat list -> nested lists of `shape` (1-D stays flat)."""
    if len(shape) <= 1:
        return list(flat)
    step = len(flat) // shape[0] if shape[0] else 0
    return [_nest(flat[i * step:(i + 1) * step], shape[1:]) for i in range(shape[0])]


class Buffer:
    """A pointer C may read, with what keeps its memory alive."""
    __slots__ = ("ptr", "dtype", "count", "shape", "keep")

    def __init__(self, ptr, dtype, count, shape, keep):
        self.ptr, self.dtype, self.count, self.shape, self.keep = ptr, dtype, count, shape, keep


def _as_ndarray(value, name):
    if isinstance(value, np.ndarray):
        return value
    if isinstance(value, (str, bytes)):
        raise DtypeError("%s: expected numbers, got %s" % (name, type(value).__name__))
    try:
        return np.asarray(value)
    except (ValueError, TypeError) as e:
        raise ShapeError("%s: cannot make an array of it (%s)" % (name, e)) from None


def real_in(value, name, expect=None, min_ndim=None):
    """A real buffer for C.  `expect`: the required shape (None entries free)."""
    if HAVE_NUMPY:
        arr = _as_ndarray(value, name)
        if arr.dtype.kind not in "fiu" or arr.dtype.kind == "f" and arr.dtype.itemsize > 8:
            raise DtypeError("%s: expected real numbers (float64 or float32), got dtype %s"
                             % (name, arr.dtype))
        if not arr.flags.c_contiguous:
            raise InvalidError("%s: the array is not C-contiguous; pass "
                               "numpy.ascontiguousarray(x)" % name)
        if min_ndim is not None and arr.ndim < min_ndim:
            raise ShapeError("%s: expected at least %d dimensions, got shape %s"
                             % (name, min_ndim, _shape_str(arr.shape)))
        _check_shape(name, arr.shape, expect)
        if arr.dtype == np.float64:
            dtype = Dtype.F64
        elif arr.dtype == np.float32:
            dtype = Dtype.F32
        else:  # integers, float16, non-native byte order: convert
            arr = arr.astype(np.float64)
            dtype = Dtype.F64
        return Buffer(ctypes.c_void_p(arr.ctypes.data), dtype, int(arr.size), arr.shape, arr)
    flat, shape = _flatten(value, name)
    for x in flat:
        if isinstance(x, bool) or not isinstance(x, numbers.Real):
            raise DtypeError("%s: expected real numbers, got %s" % (name, type(x).__name__))
    if min_ndim is not None and len(shape) < min_ndim:
        raise ShapeError("%s: expected at least %d dimensions, got shape %s"
                         % (name, min_ndim, _shape_str(shape)))
    _check_shape(name, shape, expect)
    try:
        arr = (ctypes.c_double * len(flat))(*flat)
    except OverflowError as e:
        raise InvalidError("%s: %s" % (name, e)) from None
    return Buffer(ctypes.cast(arr, ctypes.c_void_p), Dtype.F64, len(flat), shape, arr)


_INT_LIMITS = {32: (-2 ** 31, 2 ** 31 - 1), 64: (-2 ** 63, 2 ** 63 - 1)}


def int_in(value, name, bits, expect=None):
    """An int32 or int64 buffer for C (labels, row indices, batches)."""
    lo, hi = _INT_LIMITS[bits]
    ctype = ctypes.c_int32 if bits == 32 else ctypes.c_int64
    if HAVE_NUMPY:
        arr = _as_ndarray(value, name)
        if arr.dtype.kind not in "iu":
            raise DtypeError("%s: expected integers, got dtype %s" % (name, arr.dtype))
        if not arr.flags.c_contiguous:
            raise InvalidError("%s: the array is not C-contiguous; pass "
                               "numpy.ascontiguousarray(x)" % name)
        _check_shape(name, arr.shape, expect)
        want = np.int32 if bits == 32 else np.int64
        if arr.dtype != want:
            if arr.size and (int(arr.min()) < lo or int(arr.max()) > hi):
                raise InvalidError("%s: a value does not fit in int%d" % (name, bits))
            arr = arr.astype(want)
        return Buffer(ctypes.cast(ctypes.c_void_p(arr.ctypes.data), ctypes.POINTER(ctype)),
                      None, int(arr.size), arr.shape, arr)
    flat, shape = _flatten(value, name)
    for x in flat:
        if isinstance(x, bool) or not isinstance(x, numbers.Integral):
            raise DtypeError("%s: expected integers, got %s" % (name, type(x).__name__))
        if not lo <= x <= hi:
            raise InvalidError("%s: %d does not fit in int%d" % (name, x, bits))
    _check_shape(name, shape, expect)
    arr = (ctype * len(flat))(*flat)
    return Buffer(ctypes.cast(arr, ctypes.POINTER(ctype)), None, len(flat), shape, arr)


def int_max(buf):
    """Largest value of an int_in buffer (None when empty)."""
    if buf.count == 0:
        return None
    if HAVE_NUMPY:
        return int(buf.keep.max())
    return max(buf.keep)


class RealOut:
    """A float64 (or float32) buffer C writes into, returned as an array or a
    list."""
    __slots__ = ("ptr", "count", "shape", "_arr", "dtype")

    def __init__(self, shape, dtype=Dtype.F64):
        self.shape = tuple(shape)
        self.dtype = dtype
        self.count = 1
        for d in self.shape:
            self.count *= d
        if HAVE_NUMPY:
            self._arr = np.empty(self.shape, dtype=np.float64 if dtype == Dtype.F64
                                 else np.float32)
            self.ptr = ctypes.c_void_p(self._arr.ctypes.data)
        else:
            ctype = ctypes.c_double if dtype == Dtype.F64 else ctypes.c_float
            self._arr = (ctype * self.count)()
            self.ptr = ctypes.cast(self._arr, ctypes.c_void_p)

    def result(self):
        if HAVE_NUMPY:
            return self._arr
        return _nest(list(self._arr), self.shape)


class Int32Out:
    """An int32 buffer C writes into (labels), returned as an array or a list."""
    __slots__ = ("ptr", "count", "_arr")

    def __init__(self, count):
        self.count = count
        if HAVE_NUMPY:
            self._arr = np.empty(count, dtype=np.int32)
            self.ptr = self._arr.ctypes.data_as(ctypes.POINTER(ctypes.c_int32))
        else:
            self._arr = (ctypes.c_int32 * count)()
            self.ptr = ctypes.cast(self._arr, ctypes.POINTER(ctypes.c_int32))

    def result(self):
        return self._arr if HAVE_NUMPY else list(self._arr)


def f64_in(value, name, expect=None):
    """A real buffer of float64 exactly (for C parameters typed double *)."""
    buf = real_in(value, name, expect)
    if buf.dtype == Dtype.F64:
        return buf
    if HAVE_NUMPY:
        arr = np.ascontiguousarray(buf.keep, dtype=np.float64)
        return Buffer(ctypes.c_void_p(arr.ctypes.data), Dtype.F64, int(arr.size), arr.shape, arr)
    raise AssertionError("the numpy-free path makes float64 buffers only")


def as_pointer(buf):
    """A real Buffer's address as a double pointer (it must be float64)."""
    return ctypes.cast(buf.ptr, ctypes.POINTER(ctypes.c_double))


# ---------------------------------------------------------------- views of C memory

def view(address, shape, dtype, writable):
    """The memory at `address` (owned by C, valid only during a callback) as a
    numpy array of `shape` without a copy, or a ctypes array of that shape
    (nested for 2-D) without numpy.  Read-only views are marked so with numpy.
    None for a NULL address."""
    if not address:
        return None
    if dtype == "i32":
        ctype = ctypes.c_int32
    else:
        ctype = ctypes.c_double if dtype == Dtype.F64 else ctypes.c_float
    if HAVE_NUMPY:
        arr = np.ctypeslib.as_array(ctypes.cast(address, ctypes.POINTER(ctype)), shape=shape)
        if not writable:
            arr.flags.writeable = False
        return arr
    atype = ctype
    for d in reversed(shape):
        atype = atype * d
    return atype.from_address(address)


def finite_real(value, name):
    """A Python float that is finite (scales, learning rates, ...)."""
    x = real_scalar(value, name)
    if not math.isfinite(x):
        from ._errors import NonFiniteError
        raise NonFiniteError("%s: %r is not finite" % (name, x))
    return x


def real_scalar(value, name):
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise DtypeError("%s: expected a real number, got %s" % (name, type(value).__name__))
    return float(value)


def int_scalar(value, name, bits=64, unsigned=False):
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise DtypeError("%s: expected an integer, got %s" % (name, type(value).__name__))
    value = int(value)
    lo, hi = (0, 2 ** bits - 1) if unsigned else _INT_LIMITS[bits]
    if not lo <= value <= hi:
        raise InvalidError("%s: %d is out of range [%d, %d]" % (name, value, lo, hi))
    return value


def size_error(name, got, want):
    return SizeError("%s: expected %d values, got %d" % (name, want, got))
