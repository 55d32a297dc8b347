"""Preprocessing chain (GRAPE paper section 3.2), one module per step.

``validate`` checks the user's inputs before any long work; ``flatfield`` fits BaSiC
illumination profiles per plate; ``rescale`` maps intensities to [0, 1] between robust
percentiles; ``crops`` cuts single-cell windows per well; ``zscore`` streams per-batch
control statistics; ``merge`` writes ``cells.h5``; ``qc`` draws the QC figures.
Corrected intensity = (raw - darkfield) / flatfield, then (v - low) / (high - low) clipped
to [0, 1], then z-scored against the batch's control cells.
"""
