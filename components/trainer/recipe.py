"""The training recipe's defaults, in one place: the Trainer component falls back on them and
pipeline/configs.py reads them (its environment variables override)."""
TRAIN_STEPS = 3000               # from scratch
FINE_TUNE_STEPS = 400            # warm-started from a base model (whole epochs of 100 steps
# are trained). From today's pretrained/ at FINE_TUNE_LEARNING_RATE, half the 700 before read
# real crops 0.908 / 0.909 / 0.906 / 0.909 in memory (four seeds) against 0.904 / 0.908 /
# 0.908 / 0.904 for 700 (bench/ablation.py WARM_HALF_STEPS_ROWS, table 1zz; 1zr), with as
# few real digits called "no digit" (0.4-0.6%). An adversarial step costs about 1.7x a plain
# one, and on an AVX2-only CPU 0.4-0.5 s: 700 took make demo to 10 min 47 s there. 200 plain
# steps from the plainly made base called more real digits "no digit" (2.4% against 1.3%;
# docs/real-data-quality.md, "Fewer fine-tuning steps")
LEARNING_RATE = 3e-3             # peak of a cosine decay over the steps, from scratch
FINE_TUNE_LEARNING_RATE = 3e-4   # peak. From today's pretrained/ (itself trained on
# adversarial steps, which reads real crops 0.909 alone) the fine-tuning need not move far:
# 3e-4 read real crops 0.904 / 0.908 / 0.908 / 0.904 against 0.902 / 0.893 / 0.902 / 0.900 at
# 1e-3 (four seeds, three quarters of the steps; bench/ablation.py WARM_BASE_ROWS, table 1zr).
# From the plainly made pretrained/ before, 1e-3 had read more (WARM_ADVERSARIAL_ROWS)
BATCH_SIZE = 128
ADVERSARIAL_EPSILON = 2 / 255    # each training image is moved by at most this much a pixel
# (pixels in [0, 1]) the way that raises the loss, and the step is taken on the moved image
# (components/trainer/model.py, AdversarialModel; 0: plain steps). Real crops' fine detail
# misleads a network trained on generated digits; this teaches it not to lean on it. Real
# crops read 0.889 fine-tuned as the demo does against 0.862, and 0.871 from scratch against
# 0.846 (four seeds each, every seed better); 1/255 and 4/255 read less (bench/ablation.py
# WARM_ADVERSARIAL_ROWS, ADVERSARIAL_ROWS). A step costs two passes (about 1.7x the time).
