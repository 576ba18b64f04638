"""A small exported model and hostile or odd image bytes, for the serving tests."""
import os
import shutil
import struct
import zlib

import numpy as np

import svhn_tfx.components  # noqa: F401
from svhn_tfx import schema
from svhn_tfx.schema.images import encode


def export_model(export_dir: str, work_dir: str, temperature: float = 1.0,
                 weights: str = None, abstain_threshold: float = 0.0,
                 calibration: dict = None) -> str:
    """The real export path (Transform graph + CNN + signatures), with untrained weights
    unless ``weights`` (a weights.h5) is given: most serving tests need the wire contract,
    not accuracy, and this takes seconds."""
    import apache_beam as beam
    import tensorflow as tf
    import tensorflow_transform as tft
    import tensorflow_transform.beam as tft_beam
    from tensorflow_transform.tf_metadata import dataset_metadata, schema_utils

    from svhn_tfx.components.trainer.export import export_serving_model
    from svhn_tfx.components.trainer.model import build_model
    from svhn_tfx.components.transform.preprocessing import preprocessing_fn

    feature_spec = {schema.IMAGE_KEY: tf.io.FixedLenFeature([1], tf.string),
                    schema.LABEL_KEY: tf.io.FixedLenFeature([1], tf.int64)}
    metadata = dataset_metadata.DatasetMetadata(
        schema_utils.schema_from_feature_spec(feature_spec))
    transform_dir = os.path.join(work_dir, "transform_graph")
    with beam.Pipeline() as p, tft_beam.Context(temp_dir=os.path.join(work_dir, "tft-tmp")):
        data = p | beam.Create([{schema.IMAGE_KEY: [encode(np.zeros((32, 32, 3), np.uint8))],
                                 schema.LABEL_KEY: [0]}])
        transform_fn = (data, metadata) | tft_beam.AnalyzeDataset(preprocessing_fn)
        _ = transform_fn | tft_beam.WriteTransformFn(transform_dir)
    tf.keras.utils.set_random_seed(0)
    model = build_model(1e-3)
    if weights:
        model.load_weights(weights)
    tft_layer = tft.TFTransformOutput(transform_dir).transform_features_layer()
    export_serving_model(model, tft_layer, export_dir, temperature, abstain_threshold,
                         calibration)
    return export_dir


def sample_images(count: int = 6, seed: int = 0):
    """PNG and JPEG bytes of several sizes, grey and RGBA among them."""
    rng = np.random.default_rng(seed)
    shapes = [(32, 32, 3), (227, 227, 3), (20, 50, 3), (64, 64), (40, 40, 4), (32, 32, 3)]
    images = []
    for i in range(count):
        shape = shapes[i % len(shapes)]
        pixels = rng.integers(0, 256, shape, dtype=np.uint8)
        images.append(encode(pixels, "JPEG" if i % 3 == 1 and len(shape) == 3 and
                             shape[-1] == 3 else "PNG"))
    return images


def decompression_bomb_png(width: int = 100_000, height: int = 100_000) -> bytes:
    """A valid PNG header declaring width x height RGB pixels, with a tiny data chunk."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + \
            struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) +
            chunk(b"IDAT", zlib.compress(b"\x00" * 1024)) + chunk(b"IEND", b""))


def copy_version(src: str, dst: str) -> None:
    """Copies a version the way a Pusher does: files appear one by one under the final name."""
    shutil.copytree(src, dst)
