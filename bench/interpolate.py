"""Do weights between ``pretrained/`` and the demo's fine-tuned ones read real crops better?

Fine-tuning moves a network towards the data it is tuned on and can cost it robustness to
what it was not; interpolating the weights of the starting point and the fine-tuned network
(WiSE-FT, Wortsman et al. 2022) kept much of both for image classifiers under distribution
shift. Here the start is ``pretrained/`` and the fine-tuning is make demo's recipe in memory
(``bench/ablation.py``: make demo's steps at its rate on its 20,000 generated images, one seed a
run); each mixture of the two (batch-norm statistics mixed alike) gets its own T and threshold
fitted on the generated hold-out, as the Trainer would, and reads the real development
crops. Measured, not built in.

Usage: python -m bench.interpolate   (about 12 minutes; writes bench/results/interpolate.json)
"""
import numpy as np

import svhn_tfx.components  # noqa: F401
from bench import ablation, run
from svhn_tfx.components.generator.settings import GeneratorSettings

SHARES = (0.0, 0.5, 0.75, 1.0)   # of the fine-tuned weights: 0 is pretrained/, 1 the demo's
SEEDS = (0, 1)
METRICS = ("accuracy", "called_no_digit", "ece", "coverage", "risk", "no_digit_auroc")


def measure(weights: str, dev_dir: str, format1_dir: str, n: int = run.FULL["real_labels_train"],
            steps: int = run.FULL["real_labels_steps"], seeds=SEEDS) -> dict:
    real = ablation.decoded_real(dev_dir, format1_dir)
    if real is None:
        return {"skipped": f"no real development crops at {dev_dir}"}
    rows = {}
    for seed in seeds:
        print(f"bench: fine-tuning with seed {seed}", flush=True)
        images, labels = ablation.generated(GeneratorSettings(), n, seed)
        held = np.arange(n) % ablation.HOLD_OUT_EVERY == 0
        net = ablation.fit(images[~held], labels[~held], steps, seed, warm_start=weights)
        tuned = net.get_weights()
        net.load_weights(weights)
        start = net.get_weights()
        for share in SHARES:
            net.set_weights([(1 - share) * a + share * b for a, b in zip(start, tuned)])
            calibration, m = ablation.scored_on_real(net, images[held], labels[held], real)
            rows.setdefault(str(share), {})[str(seed)] = {
                **{k: m[k] for k in METRICS},
                "generated_hold_out_accuracy": calibration["accuracy"]}
            print(f"bench:   {share:.2f} fine-tuned: real accuracy {m['accuracy']:.3f}",
                  flush=True)
    return {"train": n, "steps": steps, "real": int(len(real["labels"])), "rows": rows}


def table(result: dict) -> str:
    if "skipped" in result:
        return f"Skipped: {result['skipped']}."
    lines = ["| share of the fine-tuned weights | real accuracy, each seed (mean) | called no "
             "digit | ECE | coverage / risk at the threshold | AUROC | generated hold-out |",
             "|---|---|---|---|---|---|---|"]
    for share, by_seed in result["rows"].items():
        runs = list(by_seed.values())

        def each(key, digits=3):
            return " / ".join(f"{r[key]:.{digits}f}" for r in runs)
        answered = " ; ".join(f"{r['coverage']:.3f} / {r['risk']:.3f}" for r in runs)
        lines.append(
            f"| {share} | {each('accuracy')} "
            f"({np.mean([r['accuracy'] for r in runs]):.3f}) | {each('called_no_digit')} | "
            f"{each('ece')} | {answered} | {each('no_digit_auroc')} | "
            f"{each('generated_hold_out_accuracy')} |")
    return "\n".join(lines) + (
        f"\n\n0 is pretrained/ as it is; 1 is make demo's recipe in memory ({result['steps']} "
        f"steps on {result['train']} generated images); {result['real']} real crops.")


if __name__ == "__main__":
    result = measure(run.PRETRAINED_WEIGHTS, run.DEV_DIR, run.FORMAT1_DIR)
    run.save("interpolate", result, quick=False)
    print(table(result))
