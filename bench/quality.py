"""Real-data quality of models trained only on generated images.

Scores a pipeline's model through its serving signature (raw PNG bytes in, as a client
sends them) on real SVHN: the development crops (``../shared/data/svhn-real-dev``, 541 real
digits, never trained on), the real background crops of the shared format-1 photos for
no-digit AUROC, and ``test_32x32.mat`` when a path is given. The models: the ``make demo``
recipe (the pipeline on the demo's data, warm-started as the demo is) and the longer
``make pretrain`` recipe those weights come from. The published anchor for synthetic-only
training tested on SVHN is about 87% (Ganin & Lempitsky 2015, Syn Numbers -> SVHN).
"""
import glob
import os

import numpy as np

import svhn_tfx.components  # noqa: F401
from svhn_tfx import schema
from svhn_tfx.components import trust
from svhn_tfx.components.evaluator.blessing import OPEN_GATES
from svhn_tfx.pipeline import configs

PUBLISHED_ANCHOR = 0.87
SCORE_BATCH = 512
BACKGROUNDS_PER_PHOTO = 8


def fmt(value) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def real_dev_sets(dev_dir: str, format1_dir: str):
    """{"digits": [png bytes], "labels": [...], "where": [file paths], "backgrounds": [png
    bytes]} or None."""
    from svhn_tfx.components.converters.digit_struct import read_digit_struct_dir
    from svhn_tfx.components.converters.folder import read_folder
    if not os.path.isdir(dev_dir):
        return None
    digits = [r for r in read_folder(dev_dir) if r.error is None]
    backgrounds = [r.image for split in ("train", "test")
                   if os.path.isdir(os.path.join(format1_dir, split))
                   for r in read_digit_struct_dir(os.path.join(format1_dir, split),
                                                  backgrounds_per_image=BACKGROUNDS_PER_PHOTO,
                                                  seed=0)
                   if r.error is None and r.label == schema.NO_DIGIT]
    return {"digits": [r.image for r in digits], "labels": [r.label for r in digits],
            "where": [r.where for r in digits], "backgrounds": backgrounds}


def real_metrics(digit_probabilities, labels, background_probabilities, threshold) -> dict:
    """Real-digit accuracy and trust at the exported threshold (or one per digit, where
    different models scored them), and no-digit AUROC."""
    p, labels = np.asarray(digit_probabilities, np.float64), np.asarray(labels)
    predicted, confidence = p.argmax(1), p.max(1)
    answered = (predicted != schema.NO_DIGIT) & (confidence >= threshold)
    confusions = {}
    for truth, guess in zip(labels, predicted):
        if truth != guess:
            key = f"{truth}->{'none' if guess == schema.NO_DIGIT else guess}"
            confusions[key] = confusions.get(key, 0) + 1
    result = {
        "digits": int(len(labels)),
        "accuracy": float(np.mean(predicted == labels)),
        "digits_only_accuracy": float(np.mean(p[:, :schema.NO_DIGIT].argmax(1) == labels)),
        "per_class_accuracy": {str(d): float(np.mean(predicted[labels == d] == d))
                               for d in range(schema.NUM_DIGITS) if (labels == d).any()},
        "called_no_digit": float(np.mean(predicted == schema.NO_DIGIT)),
        "ece": trust.ece(confidence, predicted == labels),
        "coverage": float(answered.mean()),
        "risk": float(np.mean(predicted[answered] != labels[answered])) if answered.any()
        else 0.0,
        "top_confusions": sorted(confusions.items(), key=lambda kv: -kv[1])[:8],
        "backgrounds": 0, "no_digit_auroc": None, "backgrounds_called_digit": None,
    }
    if len(background_probabilities):
        b = np.asarray(background_probabilities, np.float64)
        scores = np.concatenate([p[:, schema.NO_DIGIT], b[:, schema.NO_DIGIT]])
        is_background = np.r_[np.zeros(len(p), bool), np.ones(len(b), bool)]
        result.update(backgrounds=int(len(b)), no_digit_auroc=trust.auroc(scores, is_background),
                      backgrounds_called_digit=float(np.mean(b.argmax(1) != schema.NO_DIGIT)))
    return result


def score_model(model_dir: str, sets: dict, test_mat: str = None) -> dict:
    """The model's serving_default on the real sets, as a client would call it."""
    import tensorflow as tf
    loaded = tf.saved_model.load(model_dir)
    signature = loaded.signatures["serving_default"]

    def probabilities(images):
        return np.concatenate([
            signature(image_bytes=tf.constant(images[i:i + SCORE_BATCH]))["probabilities"]
            .numpy() for i in range(0, len(images), SCORE_BATCH)]) if images else np.zeros((0, 11))

    threshold = float(loaded.abstain_threshold.numpy())
    result = {"dev": real_metrics(probabilities(sets["digits"]), sets["labels"],
                                  probabilities(sets["backgrounds"]), threshold),
              "temperature": float(loaded.temperature.numpy()), "abstain_threshold": threshold}
    if test_mat:
        from svhn_tfx.components.converters.svhn_mat import read_mat
        records = list(read_mat(test_mat))
        result["test_32x32"] = real_metrics(probabilities([r.image for r in records]),
                                            [r.label for r in records], [], threshold)
    return result


def generated_eval(pipeline_root: str, model_dir: str) -> dict:
    """The evaluator's numbers on the generated eval split for this model (its newest
    evaluation under the pipeline root; a later run may have evaluated another model)."""
    import json
    from svhn_tfx.components.evaluator.component import reports
    for path in reports(pipeline_root):
        with open(path) as f:
            candidate = json.load(f)["candidate"]
        if os.path.normpath(candidate["uri"]) == os.path.normpath(model_dir):
            calibrated = candidate["calibrated"]
            return {k: calibrated[k]
                    for k in ("accuracy", "ece", "no_digit_auroc", "coverage", "risk")}
    return {}


def train_demo_recipe(root: str, train: int, eval_: int, steps: int, beam_args=None,
                      warm_start_dir=configs.WARM_START_DIR) -> str:
    """Runs the pipeline as `make demo` does (generated data, warm start); returns the trained
    model's serving directory."""
    from tfx import v1 as tfx
    from svhn_tfx.components.converters.records import write_split
    from svhn_tfx.components.generator.synthetic import EVAL_SEED_OFFSET, generate
    from svhn_tfx.pipeline import svhn_pipeline
    data = os.path.join(root, "data")
    workers = os.cpu_count() or 1
    # Generated afresh each run: data kept from an earlier run would be an older generator's.
    write_split(generate(train, 0, workers=workers), data, schema.TRAIN_SPLIT, overwrite=True)
    write_split(generate(eval_, EVAL_SEED_OFFSET, workers=workers), data, schema.EVAL_SPLIT,
                overwrite=True)
    tfx.orchestration.LocalDagRunner().run(svhn_pipeline.create_pipeline(
        pipeline_name="bench-quality", pipeline_root=os.path.join(root, "pipeline"),
        data_root=data, serving_model_dir=os.path.join(root, "serving"),
        train_steps=steps, batch_size=configs.BATCH_SIZE, learning_rate=configs.LEARNING_RATE,
        gates=OPEN_GATES, target_risk=configs.TARGET_RISK, warm_start_dir=warm_start_dir,
        metadata_connection_config=tfx.orchestration.metadata.sqlite_metadata_connection_config(
            os.path.join(root, "metadata.db")),
        beam_pipeline_args=configs.DEFAULT_BEAM_ARGS if beam_args is None else beam_args))
    return newest_model(os.path.join(root, "pipeline"))


def newest_model(pipeline_root: str) -> str:
    models = glob.glob(os.path.join(pipeline_root, "SvhnTrainer", "model", "*", "Format-Serving"))
    if not models:
        raise FileNotFoundError(f"no trained model under {pipeline_root}")
    return max(models, key=lambda m: int(m.split(os.sep)[-2]))


def run(models: dict, dev_dir: str, format1_dir: str, test_mat: str = None) -> dict:
    """models: {row name: (serving model dir, pipeline root)}."""
    sets = real_dev_sets(dev_dir, format1_dir)
    if sets is None:
        return {"skipped": f"no real development crops at {dev_dir}"}
    return {"anchor": PUBLISHED_ANCHOR, "models": {
        name: {"model_dir": model_dir, "generated_eval": generated_eval(pipeline_root, model_dir),
               **score_model(model_dir, sets, test_mat)}
        for name, (model_dir, pipeline_root) in models.items()}}


def table(result: dict) -> str:
    if "skipped" in result:
        return f"Skipped: {result['skipped']}."
    rows = ["| model | real accuracy | real digits called no digit | real ECE | coverage / risk "
            "at threshold | AUROC vs real backgrounds | generated eval: accuracy, ECE |",
            "|---|---|---|---|---|---|---|"]
    per_class = ["| model | " + " | ".join(str(d) for d in range(10)) + " |",
                 "|---|" + "---|" * 10]
    for name, m in result["models"].items():
        d, g = m["dev"], m["generated_eval"]
        rows.append(f"| {name} | **{d['accuracy']:.3f}** | {d['called_no_digit']:.3f} | "
                    f"{d['ece']:.3f} | {d['coverage']:.3f} / {d['risk']:.3f} | "
                    f"{fmt(d['no_digit_auroc'])} | {fmt(g.get('accuracy'))}, "
                    f"{fmt(g.get('ece'))} |")
        per_class.append(f"| {name} | " + " | ".join(
            fmt(d["per_class_accuracy"].get(str(k))) for k in range(10)) + " |")
    first = next(iter(result["models"].values()))["dev"]
    return "\n".join(rows) + (
        f"\n\nReal: {first['digits']} development crops (never trained on), "
        f"{first['backgrounds']} real background crops for the AUROC. Published anchor "
        f"(synthetic digits only -> SVHN test): {result['anchor']:.2f}.\n\nPer-class real "
        f"accuracy:\n\n" + "\n".join(per_class))
