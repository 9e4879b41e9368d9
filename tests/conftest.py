"""Test configuration: 8 CPU devices (so sharding is exercised on every run), float64 enabled,
rank promotion raises (catches silent broadcasting bugs)."""

import os

# Must happen before jax initialises its backends. Two test workers share a GPU where there is
# one: neither may take most of its memory up front.
os.environ.setdefault("XLA_FLAGS", "")
os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")
import jax  # noqa: E402

jax.config.update("jax_num_cpu_devices", 8)
jax.config.update("jax_enable_x64", True)
jax.config.update("jax_numpy_rank_promotion", "raise")

import pytest  # noqa: E402


@pytest.fixture
def tmp_h5(tmp_path):
    """A path for an HDF5 file that does not exist yet."""
    return tmp_path / "out.h5"


def pytest_collection_finish(session):
    # Start the single-threaded subprocess checks now, to overlap with the compile-bound tests.
    from _background import start_for

    # Under pytest-xdist every worker collects every test and which one runs a file is decided
    # later: the jobs then start when their tests ask (the workers overlap each other instead).
    if not session.config.option.collectonly and "PYTEST_XDIST_WORKER" not in os.environ:
        start_for(session.items)


def pytest_sessionfinish(session):
    from _background import stop_all

    stop_all()
