"""Transform throughput: the TFX Transform component on Beam's DirectRunner (multi-processing,
2 workers) vs. a plain tf.data map of the same preprocessing over the same records.

The component is run for real (ImportExampleGen -> ImportSchemaGen -> Transform, LocalDagRunner)
and timed from MLMD; ImportExampleGen's time is not counted.
"""
import glob
import os
import time

import components  # noqa: F401
import schema
from bench.component_times import component_seconds
from pipeline import configs
from pipeline.svhn_pipeline import PREPROCESSING_FN, RECORD_GLOB

BASELINE_BATCH = 256


def transform_pipeline_seconds(root: str, data_root: str, disable_statistics: bool,
                               beam_args=None) -> float:
    from tfx import v1 as tfx
    example_gen = tfx.components.ImportExampleGen(
        input_base=data_root,
        input_config=tfx.proto.Input(splits=[
            tfx.proto.Input.Split(name=split, pattern=f"{split}/{RECORD_GLOB}")
            for split in ("train", "eval")]))
    schema_gen = tfx.components.ImportSchemaGen(schema_file=schema.SCHEMA_PATH)
    transform = tfx.components.Transform(
        examples=example_gen.outputs["examples"], schema=schema_gen.outputs["schema"],
        preprocessing_fn=PREPROCESSING_FN, disable_statistics=disable_statistics)
    metadata = os.path.join(root, "metadata.db")
    tfx.orchestration.LocalDagRunner().run(tfx.dsl.Pipeline(
        pipeline_name="bench-transform", pipeline_root=os.path.join(root, "pipeline"),
        components=[example_gen, schema_gen, transform], enable_cache=False,
        metadata_connection_config=tfx.orchestration.metadata.sqlite_metadata_connection_config(
            metadata),
        beam_pipeline_args=configs.DEFAULT_BEAM_ARGS if beam_args is None else beam_args))
    return component_seconds(metadata)["Transform"]


def tf_data_images_per_s(data_root: str) -> tuple:
    """(images, seconds) for parse + decode/resize/rescale of every record with tf.data."""
    import tensorflow as tf
    from components.transform.preprocessing import preprocess_images
    files = sorted(glob.glob(os.path.join(data_root, "*", RECORD_GLOB)))
    spec = {schema.IMAGE_KEY: tf.io.FixedLenFeature([1], tf.string)}
    ds = (tf.data.TFRecordDataset(files, compression_type="GZIP")
          .batch(BASELINE_BATCH)
          .map(lambda raw: preprocess_images(tf.io.parse_example(raw, spec)[schema.IMAGE_KEY]),
               num_parallel_calls=tf.data.AUTOTUNE)
          .prefetch(tf.data.AUTOTUNE))
    start, images = time.perf_counter(), 0
    for batch in ds:
        images += int(batch.shape[0])
    return images, time.perf_counter() - start


def run(root: str, data_root: str, images: int, compare_statistics: bool = True) -> dict:
    result = {"images": images}
    counted, seconds = tf_data_images_per_s(data_root)
    assert counted == images, (counted, images)
    result["tf_data_images_per_s"] = round(images / seconds, 1)
    settings = {"without_statistics": True}
    if compare_statistics:
        settings["with_statistics (TFX default)"] = False
    for label, disable in settings.items():
        seconds = transform_pipeline_seconds(os.path.join(root, label.split()[0]), data_root,
                                             disable_statistics=disable)
        result[f"transform_{label}_seconds"] = seconds
        result[f"transform_{label}_images_per_s"] = round(images / seconds, 1)
        result[f"ratio_{label}"] = round(images / seconds / result["tf_data_images_per_s"], 3)
    return result


def table(result: dict) -> str:
    rows = ["| path | images/s | ratio to tf.data |", "|---|---|---|",
            f"| tf.data map of preprocess_images | {result['tf_data_images_per_s']} | 1.00 |"]
    for key, value in result.items():
        if key.startswith("transform_") and key.endswith("_images_per_s"):
            label = key[len("transform_"):-len("_images_per_s")]
            rows.append(f"| Transform component, DirectRunner 2 workers, {label} | {value} | "
                        f"{result['ratio_' + label]:.2f} |")
    return "\n".join(rows) + f"\n\n{result['images']} images (train + eval)."
