"""Builds tiny data sets and runs the real pipeline on them, for the tests."""
import glob
import os

import svhn_tfx.components  # noqa: F401
from tfx import v1 as tfx

from svhn_tfx.components.evaluator.blessing import OPEN_GATES
from svhn_tfx.components.converters.records import RECORD_SUFFIX, make_example, write_split
from svhn_tfx.components.generator.synthetic import EVAL_SEED_OFFSET, generate
from svhn_tfx.pipeline import configs, svhn_pipeline

MULTI_PROCESS_BEAM_ARGS = configs.DEFAULT_BEAM_ARGS  # multi_processing, 2 workers
IN_MEMORY_BEAM_ARGS = []  # Beam's default DirectRunner mode


def write_synthetic_data(data_root, train: int, eval_: int, seed: int = 1) -> None:
    write_split(generate(train, seed=seed), str(data_root), "train")
    write_split(generate(eval_, seed=seed + EVAL_SEED_OFFSET), str(data_root), "eval")


def write_unchecked_records(data_root, split: str, records) -> None:
    """Writes (image, label) pairs as-is: the converters would refuse a bad label."""
    import tensorflow as tf
    os.makedirs(os.path.join(str(data_root), split))
    path = os.path.join(str(data_root), split, "part-00000" + RECORD_SUFFIX)
    with tf.io.TFRecordWriter(path, tf.io.TFRecordOptions(compression_type="GZIP")) as writer:
        for image, label in records:
            writer.write(make_example(image, label).SerializeToString())


# Tests check the mechanics, not the quality a few hundred steps reach: every gate is open
# (OPEN_GATES) unless a test closes one.
def run_pipeline(root, data_root, beam_args, train_steps=150, batch_size=64, gates=OPEN_GATES,
                 name="test-svhn", split_gates=None, warm_start_dir=None, learning_rate=2e-3):
    root = str(root)
    pipeline = svhn_pipeline.create_pipeline(
        pipeline_name=name,
        pipeline_root=os.path.join(root, "pipeline"),
        data_root=str(data_root),
        serving_model_dir=os.path.join(root, "serving", "svhn"),
        train_steps=train_steps,
        batch_size=batch_size,
        learning_rate=learning_rate,
        gates=gates,
        split_gates=split_gates,
        warm_start_dir=warm_start_dir,
        metadata_connection_config=tfx.orchestration.metadata.sqlite_metadata_connection_config(
            os.path.join(root, "metadata.db")),
        beam_pipeline_args=beam_args)
    tfx.orchestration.LocalDagRunner().run(pipeline)
    return pipeline


def latest_output(root, component: str, output: str) -> str:
    """URI of the newest artifact a component wrote for one output key."""
    uris = glob.glob(os.path.join(str(root), "pipeline", component, output, "*"))
    if not uris:
        raise FileNotFoundError(f"{component} wrote no {output!r} under {root}")
    return max(uris, key=lambda u: int(os.path.basename(u)))


def pushed_versions(root):
    return sorted(glob.glob(os.path.join(str(root), "serving", "svhn", "*")))
