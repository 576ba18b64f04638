"""Is an ensemble worth its cost on real crops? Measured, not built in.

``MEMBERS`` networks are trained from scratch as the ablation rows are (``bench/ablation.py``:
the same generated images, today's generator, seeds 0, 1, ... for the initialisation and the
batch order), and each one alone and the running average of their logits read the real
development crops. An ensemble of K costs K times the training and the serving; this says
what it buys.

Usage: python -m bench.ensemble   (about 10 minutes; writes bench/results/ensemble.json)
"""
import numpy as np

import svhn_tfx.components  # noqa: F401
from bench import ablation, run
from svhn_tfx.components.generator.settings import GeneratorSettings

MEMBERS = 4


def measure(dev_dir: str, format1_dir: str, n: int = run.FULL["ablation_train"],
            steps: int = run.FULL["ablation_steps"], members: int = MEMBERS) -> dict:
    """Each network is the size of a from-scratch ablation row (bench/run.py FULL)."""
    sets = ablation.decoded_real(dev_dir, format1_dir)
    if sets is None:
        return {"skipped": f"no real development crops at {dev_dir}"}
    real, labels = sets["digits"], sets["labels"]
    images, image_labels = ablation.generated(GeneratorSettings(), n, seed=0)
    logits, rows = [], {}
    for seed in range(members):
        print(f"bench: ensemble member {seed + 1} of {members}", flush=True)
        net = ablation.fit(images, image_labels, steps, seed)
        logits.append(net.predict(real, verbose=0, batch_size=ablation.DECODE_BATCH))
        rows[f"network {seed} alone"] = float((logits[-1].argmax(1) == labels).mean())
        if seed:
            rows[f"networks 0-{seed} averaged ({seed + 1})"] = float(
                (np.mean(logits, axis=0).argmax(1) == labels).mean())
    return {"train": n, "steps": steps, "real": int(len(labels)), "rows": rows}


def table(result: dict) -> str:
    if "skipped" in result:
        return f"Skipped: {result['skipped']}."
    lines = ["| networks | real accuracy (11-way) |", "|---|---|"]
    lines += [f"| {name} | {accuracy:.3f} |" for name, accuracy in result["rows"].items()]
    return "\n".join(lines) + (
        f"\n\nEach network: {result['train']} generated images (seed 0), {result['steps']} "
        f"steps from scratch; {result['real']} real crops; averaged = mean of the logits.")


if __name__ == "__main__":
    result = measure(run.DEV_DIR, run.FORMAT1_DIR)
    run.save("ensemble", result, quick=False)
    print(table(result))
