"""Exceptions: one class per mgrad_status, all deriving from MetagradError.

Each class also derives from the built-in exception a Python programmer would
expect (ValueError for bad values, TypeError for bad dtypes, MemoryError, ...),
so ``except ValueError`` keeps working.  The same classes are raised for
checks done in Python before a call reaches C, with the status C would have
returned.
"""

__all__ = [
    "MetagradError", "NullError", "InvalidError", "SizeError", "ShapeError",
    "OrderError", "NonFiniteError", "NoMemoryError", "DtypeError", "BudgetError",
    "FileIOError", "CallbackError", "CancelledError", "UnsupportedError",
    "FormatError", "VersionError", "InternalError", "ClosedError", "BusyError",
]


class MetagradError(Exception):
    """An error reported by libmetagrad (or found before calling it).

    Attributes:
        status:   the mgrad_status number (negative).
        message:  the context's last error message (what to fix), or the
                  status description when the library kept none.
        function: the C function that failed, or None for a Python-side check.
    """

    status = None  # set on each subclass

    def __init__(self, message, status=None, function=None):
        super().__init__(message)
        if status is not None:
            self.status = status
        self.message = message
        self.function = function

    def __str__(self):
        if self.function and not str(self.message).startswith(self.function):
            return "%s: %s" % (self.function, self.message)
        return str(self.message)


class NullError(MetagradError, ValueError):
    """MGRAD_ERR_NULL: a required pointer argument was NULL."""
    status = -1


class InvalidError(MetagradError, ValueError):
    """MGRAD_ERR_INVALID: an argument value is out of range."""
    status = -2


class SizeError(MetagradError, ValueError):
    """MGRAD_ERR_SIZE: a count or buffer size does not match."""
    status = -3


class ShapeError(MetagradError, ValueError):
    """MGRAD_ERR_SHAPE: tensor shapes do not chain."""
    status = -4


class OrderError(MetagradError, RuntimeError):
    """MGRAD_ERR_ORDER: call made in the wrong order."""
    status = -5


class ClosedError(OrderError):
    """A method was called on a handle after close() (status MGRAD_ERR_ORDER)."""


class BusyError(OrderError):
    """A call from a callback (progress, callback model, log) would modify an
    object that the call in progress below it on the same thread uses, e.g.
    run.train() or meta.value = ... from inside train() or MGD.run() of that
    run (status MGRAD_ERR_ORDER).  Read-only calls are allowed there; calls
    from other threads wait instead (docs/python.md, "Threads")."""


class NonFiniteError(MetagradError, ArithmeticError):
    """MGRAD_ERR_NONFINITE: NaN or Inf appeared (the message names the step)."""
    status = -6


class NoMemoryError(MetagradError, MemoryError):
    """MGRAD_ERR_NOMEM: an allocation failed."""
    status = -7


class DtypeError(MetagradError, TypeError):
    """MGRAD_ERR_DTYPE: unknown or unsupported dtype."""
    status = -8


class BudgetError(MetagradError, MemoryError):
    """MGRAD_ERR_BUDGET: memory budget too small (the message gives the minimum)."""
    status = -9


class FileIOError(MetagradError, OSError):
    """MGRAD_ERR_IO: reading or writing a file failed."""
    status = -10


class CallbackError(MetagradError, RuntimeError):
    """MGRAD_ERR_CALLBACK: a caller callback reported failure."""
    status = -11


class CancelledError(MetagradError, RuntimeError):
    """MGRAD_ERR_CANCELLED: a progress callback asked to stop."""
    status = -12


class UnsupportedError(MetagradError, NotImplementedError):
    """MGRAD_ERR_UNSUPPORTED: valid request this build cannot serve."""
    status = -13


class FormatError(MetagradError, ValueError):
    """MGRAD_ERR_FORMAT: a file or buffer is malformed."""
    status = -14


class VersionError(MetagradError, ValueError):
    """MGRAD_ERR_VERSION: options struct version unknown to this library."""
    status = -15


class InternalError(MetagradError, RuntimeError):
    """MGRAD_ERR_INTERNAL: a bug in libmetagrad; please report it."""
    status = -16


_BY_STATUS = {cls.status: cls for cls in (
    NullError, InvalidError, SizeError, ShapeError, OrderError, NonFiniteError,
    NoMemoryError, DtypeError, BudgetError, FileIOError, CallbackError,
    CancelledError, UnsupportedError, FormatError, VersionError, InternalError)}


def error_class(status):
    """The exception class of a status (MetagradError for unknown ones)."""
    return _BY_STATUS.get(status, MetagradError)


def make_error(status, message, function=None):
    """An exception instance for `status` carrying `message`."""
    return error_class(status)(message, status=status, function=function)
