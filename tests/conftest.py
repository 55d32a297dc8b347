"""Shared test set-up: import the library from the repo, and locate optional real data."""

import pathlib
import sys

import pytest

REPO = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "workflow" / "scripts"))

REAL_DATA = REPO.parent / "shared" / "data" / "real"


@pytest.fixture
def real_data() -> pathlib.Path:
    """The real third-party images beside the checkout; skips when absent (fresh clones)."""
    if not REAL_DATA.is_dir():
        pytest.skip(f"real data folder {REAL_DATA} is absent (only present in the dev workspace)")
    return REAL_DATA


@pytest.fixture
def one_thread():
    """Run a test on one torch thread, then restore: tiny nets only contend for threads."""
    import torch

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)
