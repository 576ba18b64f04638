"""The training recipe's defaults, in one place: the Trainer component falls back on them and
pipeline/configs.py reads them (its environment variables override)."""
TRAIN_STEPS = 3000               # from scratch
FINE_TUNE_STEPS = 1000           # warm-started from a base model
LEARNING_RATE = 3e-3             # peak of a cosine decay over the steps, from scratch
FINE_TUNE_LEARNING_RATE = 1e-3
BATCH_SIZE = 128
