"""How generated digits differ from real ones, measured without training anything.

The model standardises each image (zero mean, unit variance) before its first layer, so
what it sees of an image is where that image's variance lies. This benchmark compares the
real development crops (``../shared/data/svhn-real-dev``) with generated digit images on:

* the radially averaged power spectrum of the standardised luminance, as a ratio
  generated / real per spatial frequency (1 = matches; >1 = the generator puts more of the
  image's variance there: low bins are light and surfaces, bins 2-5 the digits' own
  strokes, high bins edges, texture and noise);
* per-image luminance spread (the digit's contrast, mostly), saturation, and the
  high-frequency share (mean |Laplacian| / luminance std: noise and sharpness);
* structure: the vertical-edge ratio (mean |d/dx| over mean |d/dy| of the luminance: tall
  strokes, close neighbours and little else make it large) and the edge-rows ratio (the
  vertical change in the 3 rows at the crop's top and bottom over that in its middle rows:
  large when the digits reach the crop's top and bottom edges, as SVHN's boxes make them).

It writes the numbers and a plot of the spectrum ratios (``domain_gap.png``).
"""
import dataclasses
import io
import os

import numpy as np
from PIL import Image

from svhn_tfx import schema
from svhn_tfx.components.generator import synthetic
from svhn_tfx.components.generator.settings import GeneratorSettings

LUMA = np.array([0.299, 0.587, 0.114], np.float32)
SIZE = 32
GENERATED_SEED = 7   # not a training seed
EDGE_ROWS = 3        # rows at the crop's top and at its bottom, for the edge-rows ratio
MIDDLE_ROWS = slice(8, 23)   # the rows between, away from both (of the 31 row differences)
CENTRE_ROWS = slice(12, 20)  # what the stroke-rows profile is divided by


def _luma(pixels: np.ndarray) -> np.ndarray:
    return pixels.astype(np.float32) @ LUMA


def high_frequency_share(y: np.ndarray) -> float:
    """Mean |Laplacian| of a luminance image over its spread (low: blurred)."""
    lap = np.abs(4 * y[1:-1, 1:-1] - y[:-2, 1:-1] - y[2:, 1:-1] - y[1:-1, :-2] - y[1:-1, 2:])
    return lap.mean() / (y.std() + 1e-3)


def spectrum(images) -> np.ndarray:
    """Mean radial power spectrum (bins 1..16) of the standardised luminance."""
    power = np.zeros((SIZE, SIZE))
    for pixels in images:
        y = _luma(pixels)
        y = (y - y.mean()) / (y.std() + 1e-3)
        power += np.abs(np.fft.fft2(y)) ** 2
    power = np.fft.fftshift(power / len(images))
    yy, xx = np.indices(power.shape)
    radius = np.hypot(yy - SIZE // 2, xx - SIZE // 2).astype(int)
    return np.array([power[radius == k].mean() for k in range(1, SIZE // 2 + 1)])


def image_stats(images) -> dict:
    """Medians over images of luminance spread, saturation, high-frequency share, the two
    structure ratios, and the stroke-rows profile: each row's change across, of the centre
    rows', which falls off where the digits' upright strokes end, so it shows how much of
    the crop's height the digit fills."""
    spread, saturation, high, vertical, edge_rows, stroke_rows = [], [], [], [], [], []
    for pixels in images:
        p = pixels.astype(np.float32)
        y = _luma(pixels)
        spread.append(y.std() + 1e-3)
        saturation.append(float(((p.max(-1) - p.min(-1)) / np.maximum(p.max(-1), 1)).mean()))
        high.append(high_frequency_share(y))
        across_rows = np.abs(np.diff(y, axis=1)).mean(axis=1)   # 32 rows
        across = across_rows.mean() + 1e-6
        stroke_rows.append(across_rows / (across_rows[CENTRE_ROWS].mean() + 1e-6))
        down_rows = np.abs(np.diff(y, axis=0)).mean(axis=1) + 1e-6   # 31 rows
        vertical.append(across / down_rows.mean())
        edge_rows.append(np.concatenate([down_rows[:EDGE_ROWS], down_rows[-EDGE_ROWS:]]).mean()
                         / down_rows[MIDDLE_ROWS].mean())
    return {"luminance_std": float(np.median(spread)), "saturation": float(np.median(saturation)),
            "high_frequency_share": float(np.median(high)),
            "vertical_edge_ratio": float(np.median(vertical)),
            "edge_rows_ratio": float(np.median(edge_rows)),
            "stroke_rows": np.median(np.array(stroke_rows), axis=0).round(3).tolist()}


def real_digits(dev_dir: str):
    """The folder's labelled digits (not its "none" crops) as SIZE x SIZE RGB arrays."""
    from svhn_tfx.components.converters.folder import read_folder
    if not os.path.isdir(dev_dir):
        return []
    return [np.asarray(Image.open(io.BytesIO(r.image)).convert("RGB").resize((SIZE, SIZE)))
            for r in read_folder(dev_dir) if r.error is None and r.label != schema.NO_DIGIT]


def generated_digits(settings: GeneratorSettings, n: int):
    images, index = [], 0
    while len(images) < n:
        blob, label = synthetic.generate_one(GENERATED_SEED, index, settings)
        index += 1
        if label != schema.NO_DIGIT:
            images.append(np.asarray(Image.open(io.BytesIO(blob)).convert("RGB")))
    return images


def rows() -> dict:
    """Today's generator, and the camera and class mix it had before being matched to these
    statistics (the same changes ``ablation.WARM_ROWS`` trains on)."""
    from bench.ablation import BEFORE_CAMERA, BEFORE_MIX
    default = GeneratorSettings()
    return {"default": default,
            "digit boxes 0.9-1.0 of the crop": dataclasses.replace(default,
                                                                    digit_height=(0.9, 1.0)),
            "digit boxes 0.8-1.0 of the crop, padding 0-0.06": dataclasses.replace(
                default, digit_height=(0.8, 1.0), box_padding=(0.0, 0.06)),
            "camera as before": dataclasses.replace(default, **BEFORE_CAMERA),
            "camera and mix as before": dataclasses.replace(default, **BEFORE_CAMERA,
                                                            **BEFORE_MIX)}


def run(dev_dir: str, n: int, rows: dict, plot_path: str = None) -> dict:
    """``rows``: {name: GeneratorSettings}; each is compared with the real crops."""
    real = real_digits(dev_dir)
    if not real:
        return {"skipped": f"no real development crops at {dev_dir}"}
    real_spectrum = spectrum(real)
    result = {"real": {"images": len(real), **image_stats(real)}, "generated": n, "rows": {}}
    for name, settings in rows.items():
        images = generated_digits(settings, n)
        ratio = spectrum(images) / real_spectrum
        result["rows"][name] = {**image_stats(images), "spectrum_ratio": ratio.round(3).tolist(),
                                "spectrum_log_error": float(np.abs(np.log(ratio)).mean())}
    if plot_path:
        _plot(result, plot_path)
    return result


def _plot(result: dict, path: str) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, (ax, rows_ax) = plt.subplots(1, 2, figsize=(13, 4.5))
    rows_ax.plot(result["real"]["stroke_rows"], color="black", linewidth=2.5,
                 label="real dev crops")
    for name, row in result["rows"].items():
        ratio = row["spectrum_ratio"]
        ax.plot(range(1, len(ratio) + 1), ratio, marker="o", label=name)
        rows_ax.plot(row["stroke_rows"], label=name)
    ax.axhline(1.0, color="black", linewidth=1)
    ax.set_xlabel("spatial frequency (cycles per 32 px)")
    ax.set_ylabel("power, generated / real")
    ax.set_title("Where generated digits' variance lies, against real SVHN crops")
    ax.legend(fontsize=8)
    rows_ax.set_xlabel("row of the 32 x 32 crop (0 = top)")
    rows_ax.set_ylabel("change across the row, of the centre rows'")
    rows_ax.set_title("How much of the crop's height the digit fills")
    rows_ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def table(result: dict) -> str:
    if "skipped" in result:
        return f"Skipped: {result['skipped']}."
    real = result["real"]

    def structure(row):
        return f"{row['vertical_edge_ratio']:.2f} | {row['edge_rows_ratio']:.2f}"
    lines = ["| images | luminance std | saturation | high-frequency share | vertical-edge "
             "ratio | edge-rows ratio | spectrum: mean abs log ratio to real (0 = same) |",
             "|---|---|---|---|---|---|---|",
             f"| real dev crops ({real['images']}) | {real['luminance_std']:.1f} | "
             f"{real['saturation']:.3f} | {real['high_frequency_share']:.3f} | "
             f"{structure(real)} | 0 |"]
    for name, row in result["rows"].items():
        lines.append(f"| {name} | {row['luminance_std']:.1f} | {row['saturation']:.3f} | "
                     f"{row['high_frequency_share']:.3f} | {structure(row)} | "
                     f"{row['spectrum_log_error']:.3f} |")
    return "\n".join(lines) + (
        f"\n\nMedians over images; {result['generated']} generated digit images per row. "
        "The plot `bench/results/domain_gap.png` shows the spectrum ratio per frequency and "
        "each row's stroke-rows profile (how much of the crop's height the digit fills).")
