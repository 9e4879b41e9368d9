"""simkit.ensemble across processes: two real processes on 127.0.0.1 (gloo collectives, 2 CPU
devices each) solve a Lorenz-63 ensemble with `solve_ensemble(shard=True)`; both must return the
single-process, unsharded answer. Plus the argument and call-order errors of
`initialize_distributed`."""

import importlib.util
import os
import pathlib
import socket
import subprocess
import sys
import time

import jax
import numpy as np
import pytest

from simkit import SimkitInputError
from simkit.ensemble import initialize_distributed

TESTS = pathlib.Path(__file__).resolve().parent
REPO = TESTS.parent
WORKER = TESTS / "_distributed_worker.py"
TIMEOUT_S = 180

_spec = importlib.util.spec_from_file_location("_distributed_worker", WORKER)
worker = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(worker)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _worker_env() -> dict[str, str]:
    """A clean environment: none of this process's device-count or dtype settings leak in."""
    env = {
        k: v for k, v in os.environ.items() if not (k.startswith("XLA_") or k.startswith("JAX_"))
    }
    env["JAX_PLATFORMS"] = "cpu"
    env["PYTHONPATH"] = os.pathsep.join(
        [str(REPO)] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else [])
    )
    return env


def _logs(tmp_path, n) -> str:
    return "\n".join(
        f"--- worker {i} ---\n" + (tmp_path / f"worker{i}.log").read_text()[-3000:]
        for i in range(n)
    )


def _wait_all(procs, tmp_path) -> None:
    """Wait for every worker; stop early if one fails (the other would hang in a collective)."""
    deadline = time.monotonic() + TIMEOUT_S
    while True:
        codes = [p.poll() for p in procs]
        if all(c == 0 for c in codes):
            return
        if any(c not in (None, 0) for c in codes):
            pytest.fail(f"worker exit codes {codes}:\n{_logs(tmp_path, len(procs))}")
        if time.monotonic() > deadline:
            pytest.fail(
                f"workers still running after {TIMEOUT_S} s:\n{_logs(tmp_path, len(procs))}"
            )
        running = next(p for p, c in zip(procs, codes, strict=False) if c is None)
        try:
            running.wait(timeout=1.0)
        except subprocess.TimeoutExpired:
            pass


def test_two_processes_match_single_process(tmp_path):
    n_proc, local_devices, n_members = 2, 2, 10  # 10 members on 4 devices: padded to 12
    x64 = bool(jax.config.jax_enable_x64)  # the workers use the same precision as this test
    address = f"127.0.0.1:{_free_port()}"
    procs, logs = [], []
    try:
        for pid in range(n_proc):
            log = open(tmp_path / f"worker{pid}.log", "w")
            logs.append(log)
            cmd = [
                sys.executable,
                str(WORKER),
                "--coordinator",
                address,
                "--num-processes",
                str(n_proc),
                "--process-id",
                str(pid),
                "--local-devices",
                str(local_devices),
                "--n-members",
                str(n_members),
                "--out",
                str(tmp_path / f"out{pid}.npz"),
            ] + (["--x64"] if x64 else [])
            procs.append(
                subprocess.Popen(
                    cmd, cwd=REPO, env=_worker_env(), stdout=log, stderr=subprocess.STDOUT
                )
            )
        _wait_all(procs, tmp_path)
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
        for log in logs:
            log.close()
    assert [p.returncode for p in procs] == [0] * n_proc, _logs(tmp_path, n_proc)

    ts_ref, ys_ref = worker.solve_lorenz(n_members, shard=False)
    for pid in range(n_proc):
        got = np.load(tmp_path / f"out{pid}.npz")
        assert int(got["process_index"]) == pid
        assert int(got["process_count"]) == n_proc
        assert int(got["global_devices"]) == n_proc * local_devices
        assert int(got["local_devices"]) == local_devices
        assert bool(got["mesh_multi_process"])
        assert "already initialised" in str(got["second_init_error"])
        assert str(got["ys_type"]) == "ndarray"  # host-readable on every process
        assert got["ys"].dtype == np.asarray(ys_ref).dtype
        assert got["ys"].shape == (n_members, 11, 3)
        np.testing.assert_array_equal(got["ts"], np.asarray(ts_ref))
        # Same fixed-step Tsit5 arithmetic on 2 members per device instead of 10 on one device:
        # only rounding differs (XLA vectorisation), amplified by Lorenz's Lyapunov exponent
        # ~0.9 over t = 1 with |y| <= ~50. Measured max |diff| ~5e-14; tolerance 1e-11.
        np.testing.assert_allclose(got["ys"], np.asarray(ys_ref), rtol=0, atol=1e-11)


def test_error_initialize_distributed_arguments():
    with pytest.raises(SimkitInputError, match="together"):
        initialize_distributed("127.0.0.1:1234")
    with pytest.raises(SimkitInputError, match="host:port"):
        initialize_distributed("localhost", 2, 0)
    with pytest.raises(SimkitInputError, match="port number"):
        initialize_distributed("localhost:99999", 2, 0)
    with pytest.raises(SimkitInputError, match=r"process_id must be an integer in \[0, 1\]"):
        initialize_distributed("127.0.0.1:1234", 2, 2)
    with pytest.raises(SimkitInputError, match="num_processes"):
        initialize_distributed("127.0.0.1:1234", 0, 0)
    with pytest.raises(SimkitInputError, match="local_device_count"):
        initialize_distributed("127.0.0.1:1234", 2, 0, local_device_count=-1)


def test_error_initialize_distributed_after_backends_started():
    jax.devices()  # this test process has already started its 8-device CPU backend
    with pytest.raises(RuntimeError, match="too late"):
        initialize_distributed("127.0.0.1:1234", 1, 0, local_device_count=3)
    with pytest.raises(RuntimeError, match="before any JAX computation"):
        initialize_distributed("127.0.0.1:1234", 1, 0)
    assert not jax.distributed.is_initialized()
