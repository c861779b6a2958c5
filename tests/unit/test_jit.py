"""``controller.jit``: a kernel that calls compiled code of another file is cached under a name that
changes with that file, so an edit there cannot bring back stale machine code from Numba's disk cache."""
import importlib.util

import pytest

from controller import fairshare, sim_kernels
from controller.jit import cache_name


def _module(tmp_path, name, text):
    path = tmp_path / (name + ".py")
    path.write_text(text)
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_cache_name_follows_the_called_files(tmp_path):
    def caller():
        pass

    one = _module(tmp_path, "dep_one", "def kernel(x):\n    return x + 1\n")
    same = _module(tmp_path, "dep_same", "def kernel(x):\n    return x + 1\n")
    edited = _module(tmp_path, "dep_edited", "def kernel(x):\n    return x + 2\n")
    assert cache_name(caller, [one.kernel]).startswith(caller.__qualname__ + "_")
    assert cache_name(caller, [one.kernel]) == cache_name(caller, [same.kernel])
    assert cache_name(caller, [one.kernel]) != cache_name(caller, [edited.kernel])
    assert cache_name(caller, [one.kernel, same.kernel]) == cache_name(caller, [same.kernel, one.kernel])


@pytest.mark.skipif(sim_kernels.run_events_jit is None, reason="Numba not installed or SIDESTEP_NO_JIT set")
def test_the_simulators_event_run_is_cached_under_the_solvers_digest():
    assert sim_kernels.run_events_jit.py_func.__qualname__ == cache_name(sim_kernels.run_events, [fairshare._resolve_kernel])
