"""Versions of the software that produced the report."""

from __future__ import annotations

import platform
from importlib.metadata import PackageNotFoundError, version

from .. import __version__

PACKAGES = ["torch", "numpy", "pandas", "scikit-image", "scikit-learn", "basicpy",
            "copairs", "umap-learn", "snakemake", "h5py"]
"""Distributions listed in the report, after Python and opsembed itself."""


def software_versions(packages: list[str] = PACKAGES) -> list[tuple[str, str]]:
    """(name, version) for Python, opsembed and each distribution ("not installed" when absent)."""
    out = [("python", platform.python_version()), ("opsembed", __version__)]
    for name in packages:
        try:
            out.append((name, version(name)))
        except PackageNotFoundError:
            out.append((name, "not installed"))
    return out
