"""metagrad: Python bindings of libmetagrad, exact metagradients through
training runs.

    import metagrad as mg
    ctx = mg.Context(dtype='f64')
    model = mg.Model(ctx, 16).dense(32).activation('tanh').dense(4)
    train = mg.Dataset(ctx, x_train, labels=y_train, num_classes=4)
    val = mg.Dataset(ctx, x_val, labels=y_val, num_classes=4)
    run = mg.Run(model, train, validation=val, steps=100, batch_size=32,
                 lr=0.1, momentum=0.9)
    lr = run.add_meta('lr_schedule')
    phi = run.train()          # validation loss at θ_T
    run.reverse()              # dφ/dz for every metaparameter
    lr.grad                    # dφ/dη_t, one per step

The shared library is found through METAGRAD_LIBRARY, then
METAGRAD_BUILD_DIR, then the copy bundled by `pip install .`, then the one
`meson install` put beside the package, then build*/ of the source
checkout, then the system loader; see docs/install.md.
"""

from ._errors import (BudgetError, BusyError, CallbackError, CancelledError, ClosedError,
                      DtypeError, FileIOError, FormatError, InternalError, InvalidError,
                      MetagradError, NoMemoryError, NonFiniteError, NullError, OrderError,
                      ShapeError, SizeError, UnsupportedError, VersionError)
from ._lib import (VERSION as __version__, Activation, Checkpoint, Dtype, Init, LogLevel, Loss,
                   MetaKind, MgdMethod, Normalize, Optimizer, Projection, Status,
                   lib as _lib_handle)
from ._api import MGD, CallbackModel, Context, Dataset, Meta, Model, Run, Score, TextCorpus, score
from ._buffers import HAVE_NUMPY

#: Path of the loaded shared library.
library_path = _lib_handle.path


def library_version():
    """The loaded libmetagrad's version string, e.g. '0.2.0'."""
    return _lib_handle.mgrad_version_string().decode()


def mpi_available():
    """True when the loaded library was built with MPI (Run.set_communicator)."""
    return bool(_lib_handle.mgrad_mpi_available())


def status_string(status):
    """The library's short description of a status number."""
    return _lib_handle.mgrad_status_string(int(status)).decode()


__all__ = [
    "Context", "Model", "Dataset", "TextCorpus", "Run", "Meta", "CallbackModel", "MGD",
    "score", "Score",
    "library_path", "library_version",
    "status_string", "mpi_available", "HAVE_NUMPY", "__version__",
    "Status", "Dtype", "Init", "Activation", "Loss", "Optimizer", "Checkpoint", "MetaKind",
    "LogLevel", "Normalize", "MgdMethod", "Projection",
    "MetagradError", "NullError", "InvalidError", "SizeError", "ShapeError", "OrderError",
    "ClosedError", "BusyError", "NonFiniteError", "NoMemoryError", "DtypeError", "BudgetError",
    "FileIOError", "CallbackError", "CancelledError", "UnsupportedError", "FormatError",
    "VersionError", "InternalError",
]
