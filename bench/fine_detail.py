"""Does the finest detail of real crops mislead the model? Measured without training.

The real development crops (and the 21 real backgrounds), and as many freshly generated
images, are read by ``pretrained/weights.h5`` as they are, blurred by a gaussian of a few
sigmas, sharpened (unsharp mask), blurred along one axis only, and zoomed out a little. If
blurring real crops reads them better while it reads generated ones worse, the detail that
misleads is the real crops' own. This is a question, not a recipe: filtering only what is
served would be a skew between training and serving (the model's ``GaussianLowPass`` trains
and serves alike; bench/ablation.py BLUR_ROWS).

Three rows read each crop several times and average the calibrated probabilities (test-time
augmentation): shifted by a pixel each way, and zoomed out a little. If the network's answer
hung on where exactly the digit sits, averaging views would read more crops right.

One row changes the answers, not the pixels: a correction for label shift (Saerens et al.
2002). The generator draws its ten digits equally often; house numbers do not (SVHN's
training split holds 2.8 times as many 1s as 9s), so each digit's calibrated probability is
reweighted by its share of SVHN's published training labels over the generator's.

It also splits the real digits into quarters by how sharp and how flat they are
(``domain_gap``'s high-frequency share and luminance std), with each quarter's accuracy and
the share of generated digits that fall in it: which real crops fail, and whether the
generator makes their like.

Usage: python -m bench.fine_detail   (about two minutes; writes bench/results/fine_detail.json)
"""
import os

import numpy as np

import svhn_tfx.components  # noqa: F401
from bench import ablation, domain_gap, run
from svhn_tfx.components.generator import synthetic

SIGMAS = (0.0, 0.7, 1.0, 1.3)
UNSHARP_AMOUNTS = (0.5, 1.0)   # at sigma 1
ZOOM_OUT = 0.9   # the crop's content shrunk about its centre (borders repeated)
GENERATED = 3000
GENERATED_SEED = 555   # not a training seed
# digits 0-9 in SVHN's training split (73,257 digits, Netzer et al. 2011): published
# frequencies, not the development crops'
SVHN_TRAIN_DIGIT_COUNTS = (4948, 13861, 10585, 8497, 7458, 6882, 5727, 5595, 5045, 4659)


def _zoomed(x, zoom: float, dx: float = 0.0, dy: float = 0.0):
    """The crop's content scaled by ``zoom`` about its centre and moved by (dx, dy) pixels,
    borders repeated."""
    from scipy import ndimage
    centre = (x.shape[1] - 1) / 2
    return ndimage.affine_transform(
        x, np.diag((1.0, 1.0 / zoom, 1.0 / zoom, 1.0)),
        offset=(0.0, centre * (1.0 - 1.0 / zoom) - dy / zoom,
                centre * (1.0 - 1.0 / zoom) - dx / zoom, 0.0), order=1, mode="nearest")


# test-time augmentation: each reading averages the probabilities of these views
VIEWS = {
    "as they are and shifted by 1 px right, left, down and up, averaged":
        [(1.0, 0, 0), (1.0, 1, 0), (1.0, -1, 0), (1.0, 0, 1), (1.0, 0, -1)],
    f"as they are and zoomed out to {ZOOM_OUT}, averaged": [(1.0, 0, 0), (ZOOM_OUT, 0, 0)],
    f"as they are and zoomed to {ZOOM_OUT} and {1 / ZOOM_OUT:.2f}, averaged":
        [(1.0, 0, 0), (ZOOM_OUT, 0, 0), (1 / ZOOM_OUT, 0, 0)],
}


def _filters():
    from scipy import ndimage

    def blur(x, sigma):
        return ndimage.gaussian_filter(x, (0, sigma, sigma, 0)) if sigma else x
    rows = {("as they are" if not s else f"gaussian blur, sigma {s} px"):
            (lambda x, s=s: blur(x, s)) for s in SIGMAS}
    for k in UNSHARP_AMOUNTS:
        rows[f"unsharp mask, sigma 1 px, amount {k}"] = \
            lambda x, k=k: np.clip(x + k * (x - blur(x, 1.0)), 0.0, 1.0)
    rows["gaussian blur along y only, sigma 1 px"] = \
        lambda x: ndimage.gaussian_filter(x, (0, 1.0, 0, 0))
    rows["gaussian blur along x only, sigma 1 px"] = \
        lambda x: ndimage.gaussian_filter(x, (0, 0, 1.0, 0))
    rows[f"zoomed out to {ZOOM_OUT} (smaller digit, borders repeated)"] = \
        lambda x: _zoomed(x, ZOOM_OUT)
    return rows


def by_quarter(real, right, generated) -> dict:
    """For each of domain_gap's per-image measures (on 0-255 luminance, as there), the real
    digits' quartile edges, each quarter's real accuracy (lowest first) and the share of the
    generated digits that fall in that quarter. ``real`` and ``generated`` are in [0, 1]."""
    def luminance(x):
        return x @ domain_gap.LUMA * 255.0

    out = {}
    for name, measure_of in (
            ("high_frequency_share", lambda x: np.array(
                [domain_gap.high_frequency_share(y) for y in luminance(x)])),
            ("luminance_std", lambda x: luminance(x).std((1, 2)))):
        r, g = measure_of(real), measure_of(generated)
        edges = np.quantile(r, (0.25, 0.5, 0.75))
        quarter, generated_quarter = np.digitize(r, edges), np.digitize(g, edges)
        out[name] = {"edges": [float(e) for e in edges],
                     "real_accuracy": [float(right[quarter == q].mean()) for q in range(4)],
                     "generated_share": [float(np.mean(generated_quarter == q))
                                         for q in range(4)]}
    return out


def measure(weights: str, dev_dir: str, format1_dir: str) -> dict:
    sets = ablation.decoded_real(dev_dir, format1_dir)
    if sets is None:
        return {"skipped": f"no real development crops at {dev_dir}"}
    real, labels, backgrounds = sets["digits"], sets["labels"], sets["backgrounds"]
    records = list(synthetic.generate(GENERATED, GENERATED_SEED, workers=os.cpu_count() or 1))
    generated = ablation.decode([r.image for r in records])
    generated_labels = np.array([r.label for r in records])
    net, calibration = ablation.load_calibrated(weights)
    temperature = calibration["temperature"]   # argmax is T's own only with a shift

    def probabilities(x, shift=0.0):
        z = net.predict(x, verbose=0, batch_size=ablation.DECODE_BATCH) / temperature + shift
        z = np.exp(z - z.max(1, keepdims=True))
        return z / z.sum(1, keepdims=True)

    def read(x, shift=0.0):
        return probabilities(x, shift).argmax(1)

    viewed = {}   # (image set, view): the rows of VIEWS share views; each is read once

    def view_probabilities(x, view):
        if (id(x), view) not in viewed:   # the three image sets live through measure()
            viewed[id(x), view] = probabilities(_zoomed(x, *view))
        return viewed[id(x), view]

    def averaged(views):
        return lambda x: np.mean([view_probabilities(x, v) for v in views], 0).argmax(1)

    shares = np.asarray(SVHN_TRAIN_DIGIT_COUNTS, np.float64) / sum(SVHN_TRAIN_DIGIT_COUNTS)
    readings = [(name, f, 0.0) for name, f in _filters().items()]
    readings.insert(1, ("as they are, answers reweighted to SVHN's digit shares (label shift)",
                        lambda x: x, np.append(np.log(shares * len(shares)), 0.0)))

    readers = {name: (lambda x, f=f, shift=shift: read(f(x), shift))
               for name, f, shift in readings}
    readers.update({name: averaged(views) for name, views in VIEWS.items()})
    as_is = read(real) == labels
    rows = {}
    for name, reader in readers.items():
        answers = reader(real)
        right = answers == labels
        rows[name] = {
            "real_accuracy": float(right.mean()),
            "real_called_no_digit": float((answers == 10).mean()),
            "real_gained": int((right & ~as_is).sum()), "real_lost": int((~right & as_is).sum()),
            "backgrounds_called_a_digit": int((reader(backgrounds) != 10).sum()),
            "generated_accuracy": float((reader(generated) == generated_labels).mean())}
    digits = generated_labels != 10
    return {"weights": os.path.relpath(weights, run.REPO), "real": int(len(labels)),
            "backgrounds": int(len(backgrounds)), "generated": GENERATED, "rows": rows,
            "by_quarter": by_quarter(real, as_is, generated[digits])}


def table(result: dict) -> str:
    if "skipped" in result:
        return f"Skipped: {result['skipped']}."
    lines = ["| real and generated crops, before the model reads them | real accuracy | real "
             "called no digit | real gained / lost | backgrounds called a digit | generated "
             "accuracy |", "|---|---|---|---|---|---|"]
    for name, r in result["rows"].items():
        lines.append(f"| {name} | {r['real_accuracy']:.3f} | {r['real_called_no_digit']:.3f} | "
                     f"{r['real_gained']} / {r['real_lost']} | "
                     f"{r['backgrounds_called_a_digit']} of {result['backgrounds']} | "
                     f"{r['generated_accuracy']:.3f} |")
    quarters = ["| real digits split by | quartile edges | real accuracy, lowest quarter "
                "first | generated digits in each quarter |", "|---|---|---|---|"]
    for name, q in result.get("by_quarter", {}).items():
        quarters.append(
            f"| {name.replace('_', ' ')} | " + " / ".join(f"{e:.3f}" for e in q["edges"]) +
            " | " + " / ".join(f"{a:.3f}" for a in q["real_accuracy"]) + " | " +
            " / ".join(f"{100 * s:.0f}%" for s in q["generated_share"]) + " |")
    return "\n".join(lines) + (f"\n\n{result['weights']}, {result['real']} real crops, "
                               f"{result['generated']} generated images (seed "
                               f"{GENERATED_SEED}); nothing trained.") + (
        "\n\n" + "\n".join(quarters) + "\n\nHigh-frequency share: mean |Laplacian| of the "
        "luminance over its spread (low: blurred); luminance std in 0-255 (low: flat), as in "
        "bench/domain_gap.py."
        if len(quarters) > 2 else "")


if __name__ == "__main__":
    result = measure(run.PRETRAINED_WEIGHTS, run.DEV_DIR, run.FORMAT1_DIR)
    run.save("fine_detail", result, quick=False)
    print(table(result))
