"""Training loops of the learned embedding methods (GRAPE, IMPA): data, checkpoints, logs."""
