"""Real-data quality of a model trained only on the embedded generator.

For each generator setting: generate the data, run the real pipeline (TFX components,
LocalDagRunner), and score the trained model's serving signature on real SVHN: the digit
and background crops of the shared format-1 photos, and ``test_32x32.mat`` when a path is
given. The published anchor for synthetic-only training tested on SVHN is about 87%
(Ganin & Lempitsky 2015, Syn Numbers -> SVHN, source only).
"""
import dataclasses
import glob
import os

import numpy as np

import components  # noqa: F401
import schema
from components.data.records import write_split
from components.data.synthetic import GeneratorSettings, generate
from components.evaluator import trust
from components.evaluator.blessing import Gates
from pipeline import configs, svhn_pipeline

PUBLISHED_ANCHOR = 0.87
SETTINGS = {
    "default (neighbours at crop edges)": GeneratorSettings(),
    "no neighbouring digits": GeneratorSettings(neighbours=False),
}
OPEN_GATES = Gates(0.0, 1.0, 0.0, 1.0, 1.0, 1.0)
SCORE_BATCH = 512


def real_test_sets(format1_dir: str, test_mat: str = None) -> dict:
    """{name: (images, labels)} of real SVHN data available on this machine."""
    from components.data.digit_struct import read_digit_struct_dir
    sets = {}
    crops = [r for split in ("train", "test") if os.path.isdir(os.path.join(format1_dir, split))
             for r in read_digit_struct_dir(os.path.join(format1_dir, split),
                                            backgrounds_per_image=8, seed=0)
             if r.error is None]  # the shared sample lacks most photos digitStruct.mat names
    if crops:
        sets["format-1 crops (shared)"] = ([r.image for r in crops], [r.label for r in crops])
    if test_mat:
        from components.data.svhn_mat import read_mat
        records = list(read_mat(test_mat))
        sets[os.path.basename(test_mat)] = ([r.image for r in records],
                                            [r.label for r in records])
    return sets


def score(model_dir: str, images, labels) -> dict:
    import tensorflow as tf
    signature = tf.saved_model.load(model_dir).signatures["serving_default"]
    probabilities = np.concatenate([
        signature(image_bytes=tf.constant(images[i:i + SCORE_BATCH]))["probabilities"].numpy()
        for i in range(0, len(images), SCORE_BATCH)]).astype(np.float64)
    labels = np.asarray(labels)
    predicted = probabilities.argmax(1)
    digits = labels != schema.NO_DIGIT
    has_both = digits.any() and (~digits).any()
    return {
        "examples": int(len(labels)), "digit_examples": int(digits.sum()),
        "accuracy": float(np.mean(predicted == labels)),
        "digit_accuracy": float(np.mean(predicted[digits] == labels[digits]))
        if digits.any() else None,
        "ece": trust.ece(probabilities.max(1), predicted == labels),
        "no_digit_auroc": trust.auroc(probabilities[:, schema.NO_DIGIT], ~digits)
        if has_both else None,
    }


def train_on_generator(root: str, settings: GeneratorSettings, train: int, eval_: int,
                       steps: int, beam_args=None) -> str:
    """Runs the pipeline on generated data; returns the trained model's serving directory."""
    from tfx import v1 as tfx
    data = os.path.join(root, "data")
    write_split(generate(train, 0, settings), data, "train", overwrite=True)
    write_split(generate(eval_, 1000, settings), data, "eval", overwrite=True)
    tfx.orchestration.LocalDagRunner().run(svhn_pipeline.create_pipeline(
        pipeline_name="bench-quality", pipeline_root=os.path.join(root, "pipeline"),
        data_root=data, serving_model_dir=os.path.join(root, "serving"),
        train_steps=steps, batch_size=configs.BATCH_SIZE, learning_rate=configs.LEARNING_RATE,
        gates=OPEN_GATES, target_risk=configs.TARGET_RISK,
        metadata_connection_config=tfx.orchestration.metadata.sqlite_metadata_connection_config(
            os.path.join(root, "metadata.db")),
        beam_pipeline_args=configs.DEFAULT_BEAM_ARGS if beam_args is None else beam_args))
    models = glob.glob(os.path.join(root, "pipeline", "SvhnTrainer", "model", "*",
                                    "Format-Serving"))
    return max(models, key=lambda m: int(m.split(os.sep)[-2]))


def run(root: str, format1_dir: str, test_mat: str, train: int, eval_: int, steps: int,
        settings=None, beam_args=None) -> dict:
    tests = real_test_sets(format1_dir, test_mat)
    results = {}
    for name, generator in (settings or SETTINGS).items():
        model_dir = train_on_generator(os.path.join(root, name.split()[0]), generator, train,
                                       eval_, steps, beam_args)
        results[name] = {"generator": dataclasses.asdict(generator)["neighbours"],
                         **{test: score(model_dir, *data) for test, data in tests.items()}}
    return {"train": train, "steps": steps, "anchor": PUBLISHED_ANCHOR, "settings": results}


def _fmt(value):
    return "n/a" if value is None else f"{value:.3f}"


def table(result: dict) -> str:
    rows = ["| generator setting | test set | examples (digits) | digit accuracy | accuracy "
            "| ECE | no-digit AUROC |", "|---|---|---|---|---|---|---|"]
    for setting, by_test in result["settings"].items():
        for test, m in by_test.items():
            if isinstance(m, dict):
                rows.append(f"| {setting} | {test} | {m['examples']} ({m['digit_examples']}) | "
                            f"{_fmt(m['digit_accuracy'])} | {_fmt(m['accuracy'])} | "
                            f"{_fmt(m['ece'])} | {_fmt(m['no_digit_auroc'])} |")
    return "\n".join(rows) + (
        f"\n\nTrained on {result['train']} generated images for {result['steps']} steps. "
        f"Published anchor (synthetic digits only -> SVHN test): {result['anchor']:.2f}.")
