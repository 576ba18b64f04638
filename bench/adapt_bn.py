"""Would unlabelled real crops help? Batch-norm statistics re-estimated on them (AdaBN).

Labelled real crops are scarce, unlabelled ones are not: a user could hand the pipeline a
folder of real crops without labels. The cheapest use of them is AdaBN (Li et al. 2016):
keep every weight of ``pretrained/weights.h5`` and replace each batch-norm layer's moving
mean and variance with those of the real images (or a blend). Measured split-half on the
real development crops so that no crop is both adapted on and scored: the statistics come
from one half's images (labels unused), accuracy from the other half, then the halves swap.
The 21 real backgrounds are scored too: adapting on digits alone may pull them toward digits.

Usage: python -m bench.adapt_bn   (about a minute; writes bench/results/adapt_bn.json)
"""
import os

import numpy as np

import svhn_tfx.components  # noqa: F401
from bench import ablation, run

BLENDS = (0.0, 0.25, 0.5, 1.0)   # share of the real statistics in the adapted ones (0: none)
SPLIT_SEED = 0


def _adapted(weights: str, images: np.ndarray, blend: float):
    import tf_keras as keras
    from svhn_tfx.components.trainer.model import build_model
    net = build_model(1e-3)
    net.load_weights(weights)
    norms = [layer for layer in net.layers if isinstance(layer, keras.layers.BatchNormalization)]
    before = [layer.get_weights() for layer in norms]
    for layer in norms:
        layer.momentum = 0.0   # one forward pass in training mode: moving stats = these images'
    net(images, training=True)
    for layer, (gamma, beta, mean, var) in zip(norms, before):
        _, _, real_mean, real_var = layer.get_weights()
        layer.set_weights([gamma, beta, blend * real_mean + (1 - blend) * mean,
                           blend * real_var + (1 - blend) * var])
    return net


def measure(weights: str, dev_dir: str, format1_dir: str) -> dict:
    sets = ablation.decoded_real(dev_dir, format1_dir)
    if sets is None:
        return {"skipped": f"no real development crops at {dev_dir}"}
    real, labels, backgrounds = sets["digits"], sets["labels"], sets["backgrounds"]
    order = np.random.default_rng(SPLIT_SEED).permutation(len(labels))
    halves = (order[: len(order) // 2], order[len(order) // 2:])
    rows = {}
    for blend in BLENDS:
        right, no_digit, background_digits = 0, 0, []
        for adapt, score in (halves, halves[::-1]):
            net = _adapted(weights, real[adapt], blend)
            answers = net.predict(real[score], verbose=0).argmax(1)
            right += int((answers == labels[score]).sum())
            no_digit += int((answers == 10).sum())
            background_digits.append(int((net.predict(backgrounds, verbose=0).argmax(1)
                                          != 10).sum()))
        rows[f"{blend:g}"] = {"real_accuracy": right / len(labels),
                              "real_called_no_digit": no_digit / len(labels),
                              "backgrounds_called_a_digit": background_digits}
    return {"weights": os.path.relpath(weights, run.REPO), "real": int(len(labels)),
            "backgrounds": int(len(backgrounds)), "rows": rows}


def table(result: dict) -> str:
    if "skipped" in result:
        return f"Skipped: {result['skipped']}."
    lines = ["| real statistics in the batch norms | real accuracy (each half scored after "
             "adapting on the other) | real called no digit | backgrounds called a digit "
             "(adapted on half 1 / half 2) |", "|---|---|---|---|"]
    for blend, r in result["rows"].items():
        lines.append(f"| {blend} | {r['real_accuracy']:.3f} | {r['real_called_no_digit']:.3f} "
                     f"| {' / '.join(str(n) for n in r['backgrounds_called_a_digit'])} of "
                     f"{result['backgrounds']} |")
    return "\n".join(lines) + (f"\n\n{result['weights']}, {result['real']} real crops in two "
                               f"halves (seed {SPLIT_SEED}); no weight trained.")


if __name__ == "__main__":
    result = measure(run.PRETRAINED_WEIGHTS, run.DEV_DIR, run.FORMAT1_DIR)
    run.save("adapt_bn", result, quick=False)
    print(table(result))
