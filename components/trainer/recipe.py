"""The training recipe's defaults, in one place: the Trainer component falls back on them and
pipeline/configs.py reads them (its environment variables override)."""
TRAIN_STEPS = 3000               # from scratch
FINE_TUNE_STEPS = 1000           # warm-started from a base model; 200 would cut the demo's
# Trainer to about a minute at equal real accuracy but call more real digits "no digit" (2.4%
# against 1.3%; docs/real-data-quality.md, "Fewer fine-tuning steps")
LEARNING_RATE = 3e-3             # peak of a cosine decay over the steps, from scratch
FINE_TUNE_LEARNING_RATE = 3e-4   # peak; 1e-3 moved pretrained weights further from what they
# read well: the demo's generated eval 0.914 against 0.919 at 3e-4, real crops 0.804 against 0.815
BATCH_SIZE = 128
