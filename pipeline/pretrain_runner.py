"""`make pretrain`: the longer recipe whose weights the demo's Trainer warm-starts from.

Generated data only (the generator with another seed than the demo's data): it runs the same
pipeline from scratch for PRETRAIN_STEPS, with the gates open (these weights are only where
the demo's own, gated, training starts), and copies the trained weights and calibration into
``pretrained/`` with ``recipe.json`` saying how they were made and what they scored.
Usage: python -m svhn_tfx.pipeline.pretrain_runner (about 50 minutes on 2 cores; see the README).
"""
import json
import os

import svhn_tfx.components  # noqa: F401  (sets the Keras/TF environment before TensorFlow loads)
import tensorflow as tf
from absl import logging
from tfx import v1 as tfx

from svhn_tfx import schema
from svhn_tfx.components.generator.synthetic import write_generated
from svhn_tfx.components.evaluator.blessing import OPEN_GATES
from svhn_tfx.components.evaluator.component import newest_report
from svhn_tfx.components.trainer.component import CALIBRATION_FILE, WEIGHTS_FILE
from svhn_tfx.pipeline import configs, svhn_pipeline

NAME = f"{configs.PIPELINE_NAME}-pretrain"
ROOT = os.path.join(configs.ARTIFACTS_ROOT, "pretrain")
RECIPE_FILE = "recipe.json"


def _write_data(data_root: str) -> None:
    """Generated once and reused while the generator, the count and the seed stay the same
    (a fingerprint file beside each split says what made it); else generated anew."""
    for split, n, seed in ((schema.TRAIN_SPLIT, configs.PRETRAIN_TRAIN_EXAMPLES,
                            configs.PRETRAIN_SEED),
                           (schema.EVAL_SPLIT, configs.PRETRAIN_EVAL_EXAMPLES,
                            configs.PRETRAIN_SEED + 1)):
        write_generated(data_root, split, n, seed, workers=os.cpu_count() or 1,
                        log=lambda message: print(f"pretrain: {message}", flush=True))


def _trained_model() -> tuple:
    """(model artifact URI, evaluation metrics) of this run's trainer."""
    pipeline_root = os.path.join(ROOT, "pipeline")
    with tf.io.gfile.GFile(newest_report(pipeline_root)) as f:
        report = json.load(f)
    model_dir = os.path.dirname(report["candidate"]["uri"].rstrip("/"))  # .../Format-Serving
    return model_dir, report


def run() -> str:
    data_root = os.path.join(ROOT, "data")
    _write_data(data_root)
    metadata_path = os.path.join(ROOT, "metadata.db")
    tfx.orchestration.LocalDagRunner().run(svhn_pipeline.create_configured_pipeline(
        pipeline_name=NAME, pipeline_root=os.path.join(ROOT, "pipeline"), data_root=data_root,
        serving_model_dir=os.path.join(ROOT, "serving"), splits=None, warm_start_dir=None,
        train_steps=configs.PRETRAIN_STEPS, learning_rate=configs.PRETRAIN_LEARNING_RATE,
        adversarial_epsilon=configs.PRETRAIN_ADVERSARIAL_EPSILON,
        gates=OPEN_GATES, split_gates={},
        metadata_connection_config=tfx.orchestration.metadata
        .sqlite_metadata_connection_config(metadata_path)))
    model_dir, report = _trained_model()
    os.makedirs(configs.PRETRAINED_DIR, exist_ok=True)
    for name in (WEIGHTS_FILE, CALIBRATION_FILE):
        tf.io.gfile.copy(os.path.join(model_dir, name),
                         os.path.join(configs.PRETRAINED_DIR, name), overwrite=True)
    recipe = {
        "made_by": "make pretrain (python -m svhn_tfx.pipeline.pretrain_runner)",
        "data": f"generated only: {configs.PRETRAIN_TRAIN_EXAMPLES} training images, generator "
                f"seed {configs.PRETRAIN_SEED} (components/generator/synthetic.py)",
        "train_steps": configs.PRETRAIN_STEPS, "batch_size": configs.BATCH_SIZE,
        "learning_rate": configs.PRETRAIN_LEARNING_RATE,
        "adversarial_epsilon": configs.PRETRAIN_ADVERSARIAL_EPSILON,
        "generated_eval": {k: report["candidate"]["calibrated"][k]
                           for k in ("count", "accuracy", "ece", "no_digit_auroc")},
        "source_model": model_dir,
    }
    with open(os.path.join(configs.PRETRAINED_DIR, RECIPE_FILE), "w") as f:
        json.dump(recipe, f, indent=2)
    print(f"pretrain: weights of {model_dir} written to {configs.PRETRAINED_DIR}")
    return configs.PRETRAINED_DIR


if __name__ == "__main__":
    logging.set_verbosity(logging.INFO)
    run()
