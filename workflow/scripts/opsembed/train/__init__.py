"""Training loops of the learned methods (GRAPE, IMPA, IST and the OOD predictors):
data, checkpoints, logs."""
