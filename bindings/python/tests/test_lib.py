"""Finding the library, its version, and the struct layouts against the C
compiler's."""

import ctypes
import os
import shutil
import subprocess
import sys

import pytest

import metagrad as mg
from metagrad import _lib

HERE = os.path.dirname(os.path.abspath(__file__))
PKG = os.path.dirname(HERE)
REPO = os.path.dirname(os.path.dirname(PKG))


def test_version():
    assert mg.library_version() == mg.__version__
    assert _lib.lib.mgrad_version_number() == _lib.VERSION_NUMBER
    assert os.path.exists(mg.library_path) or mg.library_path.startswith("lib")


def _import_in_child(env_updates):
    env = dict(os.environ, PYTHONPATH=PKG)
    env.update(env_updates)
    return subprocess.run([sys.executable, "-c", "import metagrad"], env=env,
                          capture_output=True, text=True, timeout=60)


def test_missing_library_says_what_was_tried(tmp_path):
    out = _import_in_child({"METAGRAD_LIBRARY": str(tmp_path / "nope.so")})
    assert out.returncode != 0
    assert "ImportError" in out.stderr and "Tried" in out.stderr
    assert "nope.so" in out.stderr


def test_not_a_library(tmp_path):
    bogus = tmp_path / "libmetagrad.so"
    bogus.write_text("not an ELF file")
    out = _import_in_child({"METAGRAD_LIBRARY": str(bogus)})
    assert out.returncode != 0 and "ImportError" in out.stderr


def test_build_dir_variable(tmp_path):
    lib = tmp_path / "lib"
    lib.mkdir()
    shutil.copy(mg.library_path, lib / "libmetagrad.so")
    env = {"METAGRAD_BUILD_DIR": str(tmp_path)}
    env["METAGRAD_LIBRARY"] = ""
    out = subprocess.run([sys.executable, "-c", "import metagrad; print(metagrad.library_path)"],
                         env=dict(os.environ, PYTHONPATH=PKG, **env), capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == str(lib / "libmetagrad.so")


def test_version_mismatch_refused(tmp_path):
    """A package claiming another version refuses the library."""
    pkg = tmp_path / "metagrad"
    shutil.copytree(os.path.join(PKG, "metagrad"), pkg)
    other = "%d.%d.%d" % (_lib._MAJOR, _lib._MINOR + 1, _lib._PATCH)
    src = (pkg / "_lib.py").read_text().replace('VERSION = "%s"' % _lib.VERSION,
                                                'VERSION = "%s"' % other)
    assert 'VERSION = "%s"' % other in src
    (pkg / "_lib.py").write_text(src)
    env = dict(os.environ, PYTHONPATH=str(tmp_path), METAGRAD_LIBRARY=mg.library_path)
    out = subprocess.run([sys.executable, "-c", "import metagrad"], env=env, cwd=str(tmp_path),
                         capture_output=True, text=True, timeout=60)
    assert out.returncode != 0
    assert "version mismatch" in out.stderr


# Fields newer than some headers these bindings accept.
GUARDS = {("mgrad_run_stats", "approximate"): "MGRAD_RUN_STATS_VERSION >= 2",
          ("mgrad_run_stats", "memo_bytes"): "MGRAD_RUN_STATS_VERSION >= 3",
          ("mgrad_run_stats", "memo_hits"): "MGRAD_RUN_STATS_VERSION >= 3"}

STRUCTS = {
    "mgrad_context_options": _lib.ContextOptions,
    "mgrad_run_options": _lib.RunOptions,
    "mgrad_meta_options": _lib.MetaOptions,
    "mgrad_run_stats": _lib.RunStats,
    "mgrad_mgd_param_info": _lib.MgdParamInfo,
    "mgrad_callback_model": _lib.CallbackModel,
    "mgrad_chunk": _lib.Chunk,
    "mgrad_loss_grad_out": _lib.LossGradOut,
    "mgrad_hvp_out": _lib.HvpOut,
}


def test_struct_layout_matches_c(tmp_path):
    cc = shutil.which("cc") or shutil.which("gcc")
    include = os.path.join(REPO, "include")
    if cc is None or not os.path.exists(os.path.join(include, "metagrad.h")):
        pytest.skip("needs a C compiler and the source tree's headers")
    lines = ["#include <stdio.h>", "#include <stddef.h>", "#include <metagrad.h>",
             "int main(void) {"]
    for cname, pystruct in STRUCTS.items():
        lines.append('printf("%s size %%zu\\n", sizeof(%s));' % (cname, cname))
        for field, _ in pystruct._fields_:
            guard = GUARDS.get((cname, field))
            if guard:
                lines.append("#if %s" % guard)
            lines.append('printf("%s.%s %%zu\\n", offsetof(%s, %s));'
                         % (cname, field, cname, field))
            if guard:
                lines.append("#endif")
    lines += ["return 0; }"]
    src = tmp_path / "layout.c"
    src.write_text("\n".join(lines))
    exe = tmp_path / "layout"
    subprocess.run([cc, "-I", include, str(src), "-o", str(exe)], check=True)
    c_layout = dict(line.rsplit(" ", 1) for line in
                    subprocess.run([str(exe)], capture_output=True, text=True,
                                   check=True).stdout.splitlines())
    for cname, pystruct in STRUCTS.items():
        present = [f for f, _ in pystruct._fields_ if "%s.%s" % (cname, f) in c_layout]
        for field in present:
            assert int(c_layout["%s.%s" % (cname, field)]) == \
                getattr(pystruct, field).offset, (cname, field)
        if len(present) == len(pystruct._fields_):  # the same version: no field left out
            assert int(c_layout["%s size" % cname]) == ctypes.sizeof(pystruct), cname


def test_options_init_agrees_with_header_defaults():
    o = _lib.RunOptions()
    _lib.lib.mgrad_run_options_init(ctypes.byref(o), _lib.RUN_OPTIONS_VERSION)
    assert (o.version, o.steps, o.lr, o.beta1, o.beta2, o.eps, o.loss, o.optimizer) == \
        (1, 0, 0.1, 0.9, 0.999, 1e-8, _lib.Loss.CROSS_ENTROPY, _lib.Optimizer.SGD)
    m = _lib.MetaOptions()
    _lib.lib.mgrad_meta_options_init(ctypes.byref(m), _lib.META_OPTIONS_VERSION)
    assert (m.step_begin, m.step_end, m.step, m.num_rows) == (0, -1, -1, 0)
    c = _lib.ContextOptions()
    _lib.lib.mgrad_context_options_init(ctypes.byref(c), _lib.CONTEXT_OPTIONS_VERSION)
    assert (c.dtype, c.log_level, bool(c.log_fn)) == (_lib.Dtype.F32, _lib.LogLevel.WARNING, False)
    with pytest.raises(mg.VersionError):
        _lib.lib.mgrad_run_options_init(ctypes.byref(o), 99)
    cb = _lib.CallbackModel()
    _lib.lib.mgrad_callback_model_init(ctypes.byref(cb), _lib.CALLBACK_MODEL_VERSION)
    assert (cb.version, cb.num_params, cb.ndim, bool(cb.input_shape), cb.num_outputs,
            bool(cb.loss_grad), bool(cb.hvp), cb.input_tangents, bool(cb.outputs),
            cb.user_data) == (2, 0, 0, False, 0, False, False, 0, False, None)
    with pytest.raises(mg.VersionError):
        _lib.lib.mgrad_callback_model_init(ctypes.byref(cb), 1)


def test_enums_match_headers(tmp_path):
    """The IntEnum values of the newer headers against the C compiler's."""
    cc = shutil.which("cc") or shutil.which("gcc")
    include = os.path.join(REPO, "include")
    if cc is None or not os.path.exists(os.path.join(include, "metagrad.h")):
        pytest.skip("needs a C compiler and the source tree's headers")
    enums = {"MGRAD_NORMALIZE_": _lib.Normalize, "MGRAD_MGD_": _lib.MgdMethod,
             "MGRAD_PROJECT_": _lib.Projection, "MGRAD_MGD_PARAM_": _lib.MgdParam,
             "MGRAD_CALLBACK_PHASE_": _lib.CallbackPhase}
    lines = ["#include <stdio.h>", "#include <metagrad.h>", "int main(void) {"]
    for prefix, cls in enums.items():
        for name in cls.__members__:
            lines.append('printf("%s%s %%d\\n", (int)%s%s);' % (prefix, name, prefix, name))
    lines += ["return 0; }"]
    src = tmp_path / "enums.c"
    src.write_text("\n".join(lines))
    exe = tmp_path / "enums"
    subprocess.run([cc, "-I", include, str(src), "-o", str(exe)], check=True)
    got = dict(line.rsplit(" ", 1) for line in subprocess.run(
        [str(exe)], capture_output=True, text=True, check=True).stdout.splitlines())
    for prefix, cls in enums.items():
        for name, member in cls.__members__.items():
            assert int(got[prefix + name]) == member.value, (prefix, name)


def test_table_functions_are_exported():
    mapfile = os.path.join(REPO, "lib", "libmetagrad.map")
    if not os.path.exists(mapfile):
        pytest.skip("needs the source tree")
    with open(mapfile) as f:
        exported = {line.strip().rstrip(";") for line in f if line.strip().startswith("mgrad_")}
    bound = {name for name, *_ in _lib.FUNCTIONS}
    assert bound <= exported, bound - exported
    unbound = exported - bound
    if unbound:  # new C API the bindings do not cover yet: say so, do not fail
        import warnings
        warnings.warn("C functions without Python bindings: " + ", ".join(sorted(unbound)))
