"""opsembed: optical pooled screen -> gene embeddings -> CORUM benchmark.

Subpackages: ``io`` (file formats and validation), ``preprocess`` (flatfield, rescaling,
crops, z-scoring), ``simulate`` (the demo screen), ``models`` (embedding methods),
``train`` (training loops), ``evaluate`` (ground truth and metrics), ``report`` (HTML).
Importing this package is cheap: heavy dependencies are imported by the submodules.
"""

__version__ = "0.1.0"
