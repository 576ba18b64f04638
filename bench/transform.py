"""Transform throughput: the TFX Transform component on Beam's DirectRunner (multi-processing,
2 workers) vs. a plain tf.data map of the same preprocessing over the same records.

The component is run for real (ImportExampleGen -> ImportSchemaGen -> Transform, LocalDagRunner)
and timed from MLMD; ImportExampleGen's time is not counted. It is run the way the pipeline runs
it (``materialize=False``: the transform graph only, because the preprocessing_fn has no
analyzers) and the way it ran before (materialising the transformed examples, with and without
TFX's default statistics). Without materialisation the decoding happens in the trainer's tf.data
input, so that input is measured too, over the same records.
"""
import glob
import os
import time

import svhn_tfx.components  # noqa: F401
from svhn_tfx import schema
from bench.component_times import component_seconds
from svhn_tfx.pipeline import configs
from svhn_tfx.pipeline.svhn_pipeline import PREPROCESSING_FN, RECORD_GLOB

BASELINE_BATCH = 256


def transform_pipeline_seconds(root: str, data_root: str, disable_statistics: bool = True,
                               materialize: bool = False, beam_args=None) -> float:
    from tfx import v1 as tfx
    example_gen = tfx.components.ImportExampleGen(
        input_base=data_root,
        input_config=tfx.proto.Input(splits=[
            tfx.proto.Input.Split(name=split, pattern=f"{split}/{RECORD_GLOB}")
            for split in ("train", "eval")]))
    schema_gen = tfx.components.ImportSchemaGen(schema_file=schema.SCHEMA_PATH)
    transform = tfx.components.Transform(
        examples=example_gen.outputs["examples"], schema=schema_gen.outputs["schema"],
        preprocessing_fn=PREPROCESSING_FN, disable_statistics=disable_statistics,
        materialize=materialize)
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
    from svhn_tfx.components.transform.preprocessing import preprocess_images
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


def trainer_input_images_per_s(root: str) -> float:
    """One pass of the trainer's input (raw records -> Transform graph) over the train split."""
    import tensorflow_transform as tft
    from svhn_tfx.components.trainer.component import examples_artifact, transformed_dataset
    examples = examples_artifact(
        glob.glob(os.path.join(root, "pipeline", "ImportExampleGen", "examples", "*"))[0])
    graph = glob.glob(os.path.join(root, "pipeline", "Transform", "transform_graph", "*"))[0]
    ds = transformed_dataset(examples, "train", tft.TFTransformOutput(graph), BASELINE_BATCH,
                             shuffle=False, repeat=False)
    next(iter(ds))  # trace
    start, images = time.perf_counter(), 0
    for batch, _ in ds:
        images += int(batch.shape[0])
    return round(images / (time.perf_counter() - start), 1)


# label -> (disable_statistics, materialize); the first is how the pipeline runs Transform.
SETTINGS = {
    "pipeline: transform graph only (materialize=False)": (True, False),
    "materialised, no statistics (the pipeline until now)": (True, True),
    "materialised, with statistics (TFX default)": (False, True),
}


def run(root: str, data_root: str, images: int, quick: bool = False) -> dict:
    result = {"images": images, "components": {}}
    counted, seconds = tf_data_images_per_s(data_root)
    assert counted == images, (counted, images)
    result["tf_data_images_per_s"] = round(images / seconds, 1)
    settings = list(SETTINGS.items())[:2 if quick else None]
    for n, (label, (disable_statistics, materialize)) in enumerate(settings):
        work = os.path.join(root, f"setting-{n}")
        seconds = transform_pipeline_seconds(work, data_root, disable_statistics, materialize)
        result["components"][label] = seconds
        if n == 0:
            result["trainer_input_images_per_s"] = trainer_input_images_per_s(work)
    pipeline, materialised = list(result["components"].values())[:2]
    result["speedup_vs_materialised"] = round(materialised / pipeline, 1)
    return result


def table(result: dict) -> str:
    rate = result["tf_data_images_per_s"]
    rows = ["| path | Transform component s | images/s | ratio to tf.data |", "|---|---|---|---|",
            f"| tf.data map of preprocess_images (baseline) | - | {rate} | 1.00 |"]
    for label, seconds in result["components"].items():
        if SETTINGS.get(label, (True, True))[1]:
            per_image = result["images"] / seconds
            rows.append(f"| Transform, {label} | {seconds} | {per_image:.0f} | "
                        f"{per_image / rate:.2f} |")
        else:  # reads no images: seconds per image would be meaningless
            rows.append(f"| Transform, {label} | {seconds} | - (reads no images) | - |")
    trainer = result["trainer_input_images_per_s"]
    rows.append(f"| trainer's tf.data input: raw records -> Transform graph (train split) | - | "
                f"{trainer} | {trainer / rate:.2f} |")
    return "\n".join(rows) + (
        f"\n\n{result['images']} images (train + eval). Transform as the pipeline runs it takes "
        f"{result['speedup_vs_materialised']}x less time than materialising. The decoding it "
        f"no longer does runs in "
        f"the trainer's input at the rate in the last row, alongside training (section 2 "
        f"has training's images/s with this input).")
