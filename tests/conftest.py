"""Test set-up: Triton kernels run on the CPU through the interpreter when no GPU is present.

TRITON_INTERPRET is read when a kernel is decorated (at import), so it is set here, before any test
module imports ``kernels``. Tests marked ``gpu`` skip cleanly without CUDA.
"""

import os

import pytest


def _cuda_available() -> bool:
    try:
        import torch
    except ImportError:
        return False
    return torch.cuda.is_available()


HAS_CUDA = _cuda_available()
if not HAS_CUDA:
    os.environ.setdefault("TRITON_INTERPRET", "1")


def pytest_collection_modifyitems(config, items):
    if HAS_CUDA:
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)
