"""MPI entry points through Python, in a single process: without a
communicator the run is its own rank 0 of 1 and gather_grad equals grad;
a bad handle is refused with the library's message."""
import pytest

import metagrad as mg

from _common import CONFIGS, Fixture


def test_single_process_view():
    fx = Fixture(CONFIGS[0])
    try:
        lr = fx.run.add_meta("lr_schedule")
        fx.run.train()
        fx.run.reverse()
        info = fx.run.mpi_info
        assert info["rank"] == 0 and info["size"] == 1 and info["reductions"] == 0
        assert list(lr.gather_grad()) == list(lr.grad)
        assert list(lr.gather_grad(root=0)) == list(lr.grad)
    finally:
        fx.close()


def test_communicator_refused_or_checked():
    fx = Fixture(CONFIGS[0])
    try:
        if not mg.mpi_available():
            with pytest.raises(mg.UnsupportedError):
                fx.run.set_communicator(0)
        else:
            with pytest.raises(mg.MetagradError):
                fx.run.set_communicator(-12345)   # not a valid Fortran handle
    finally:
        fx.close()
