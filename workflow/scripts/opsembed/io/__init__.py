"""File formats of the pipeline's interfaces, with input validation."""
