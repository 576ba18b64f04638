"""SvhnTrainer: a TFX custom component that trains the digit CNN on Transform's graph.

It reads the raw examples (encoded image bytes) and applies the Transform graph in its tf.data
input, the same graph the exported model embeds, so decoding happens in parallel with training
instead of in a Beam job that writes 12 KB of floats per image; each image is decoded once and
cached on local disk for the later passes. One training record in ten (by hash) is held out
and never trained on: after training, a temperature and an abstention threshold are fitted on
it (calibration.py). The exported SavedModel embeds the Transform graph and both numbers
(export.py).
"""
import enum
import hashlib
import json
import os
import tempfile
import time
from typing import Optional

import svhn_tfx.components  # noqa: F401  (sets the Keras/TF environment before TensorFlow loads)
import tensorflow as tf
import tensorflow_data_validation as tfdv
import tensorflow_transform as tft
import tf_keras as keras
from absl import logging
from tfx import v1 as tfx
from tfx.types import artifact_utils
from tfx.utils import path_utils

from svhn_tfx import schema as record_schema
from svhn_tfx.components import PROGRESS_PREFIX, trust
from svhn_tfx.components.source_digest import source_digest
from svhn_tfx.components.trainer import recipe
from svhn_tfx.components.trainer.calibration import (CALIBRATION_BUCKETS, calibrate,
                                            is_calibration_record, logits_and_labels)
from svhn_tfx.components.trainer.export import export_serving_model
from svhn_tfx.components.trainer.model import build_model
from svhn_tfx.components.trainer.tried import AVERAGE_FROM, WeightAverage
from svhn_tfx.components.transform.preprocessing import TRANSFORMED_IMAGE_KEY, TRANSFORMED_LABEL_KEY

SHUFFLE_BUFFER = 10_000
DECODE_BATCH = 256
STEPS_PER_EPOCH = 100   # how often Keras reports progress and TensorBoard gets a point
VALIDATION_STEPS = 20
CALIBRATION_FILE = "calibration.json"  # beside Format-Serving in the Model artifact
# The Keras weights, beside Format-Serving: what a later run warm-starts from (base_model).
WEIGHTS_FILE = "weights.h5"


def _load_weights(net, base_model_uri: str) -> None:
    """Warm start: the base model's weights into ``net`` (same architecture, or an error)."""
    source = os.path.join(base_model_uri, WEIGHTS_FILE)
    if not tf.io.gfile.exists(source):
        raise FileNotFoundError(f"base model {base_model_uri} has no {WEIGHTS_FILE} to warm-start "
                                f"from")
    with tempfile.TemporaryDirectory() as local:   # h5 needs a local file
        tf.io.gfile.copy(source, os.path.join(local, WEIGHTS_FILE))
        net.load_weights(os.path.join(local, WEIGHTS_FILE))


def code_version() -> str:
    """A digest of the code that makes the Trainer's model besides its inputs (this package,
    the Transform graph's, the trust numbers' and the record contract's): a pipeline run after
    a change to the model or the recipe must train again, not hit the cached Trainer."""
    components = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    return source_digest(os.path.join(components, "trainer"), os.path.join(components, "transform"),
                         os.path.join(components, "trust.py"),
                         os.path.dirname(os.path.abspath(record_schema.__file__)))


def weights_fingerprint(model_dir: str) -> str:
    """SHA-256 of a model directory's weights: new weights must not hit a cached Trainer."""
    path = os.path.join(model_dir, WEIGHTS_FILE)
    if not tf.io.gfile.exists(path):
        raise FileNotFoundError(f"warm start: {model_dir} has no {WEIGHTS_FILE} (give a Trainer "
                                f"output or pretrained/ folder, or SVHN_TFX_WARM_START= to "
                                f"train from scratch)")
    digest = hashlib.sha256()
    with tf.io.gfile.GFile(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _save_weights(net, model_uri: str) -> None:
    with tempfile.TemporaryDirectory() as local:
        net.save_weights(os.path.join(local, WEIGHTS_FILE))
        tf.io.gfile.copy(os.path.join(local, WEIGHTS_FILE), os.path.join(model_uri, WEIGHTS_FILE),
                         overwrite=True)


class _EpochProgress(keras.callbacks.Callback):
    """One progress line per epoch (PROGRESS_PREFIX: the run's console shows it)."""

    def __init__(self, epochs: int, steps_per_epoch: int):
        super().__init__()
        self.epochs, self.steps_per_epoch = epochs, steps_per_epoch

    def on_train_begin(self, logs=None):
        self.start = time.monotonic()

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        done = epoch + 1
        elapsed = time.monotonic() - self.start
        logging.info(PROGRESS_PREFIX + "SvhnTrainer step %d/%d: loss %.3f, accuracy %.3f, "
                     "validation accuracy %.3f (%.0f s, about %.0f s left)",
                     done * self.steps_per_epoch, self.epochs * self.steps_per_epoch,
                     logs.get("loss", float("nan")), logs.get("accuracy", float("nan")),
                     logs.get("val_accuracy", float("nan")), elapsed,
                     elapsed / done * (self.epochs - done))


class Records(enum.Enum):
    """Which records of a split to read. Without a calibration split, one train record in
    CALIBRATION_BUCKETS is held out to fit T and the threshold on, and not trained on."""
    ALL = "all"
    HELD_OUT = "only the ones held out for calibration"
    TRAINED_ON = "all but the ones held out for calibration"


def examples_artifact(uri: str, split_names=(record_schema.TRAIN_SPLIT,
                                             record_schema.EVAL_SPLIT)):
    """An Examples artifact for examples already written at ``uri`` (outside a pipeline run)."""
    examples = tfx.types.standard_artifacts.Examples()
    examples.uri = uri
    examples.split_names = artifact_utils.encode_split_names(list(split_names))
    return examples


def transformed_dataset(examples, split: str, tft_output, batch_size: int, shuffle: bool,
                        seed: int = 0, records: Records = Records.ALL, repeat: bool = True,
                        cache_file: Optional[str] = None) -> tf.data.Dataset:
    """(image, label) batches: a split of raw GZIP TFRecords through the Transform graph.

    ``cache_file``: decode each image once, on the first pass, and read the decoded tensors
    back from this local file on every later pass (12 KB an image).
    """
    pattern = os.path.join(artifact_utils.get_split_uri([examples], split), "*")
    files = sorted(tfx.dsl.io.fileio.glob(pattern))
    if not files:
        raise FileNotFoundError(f"no examples for split {split!r} at {pattern}")
    spec = tft_output.raw_feature_spec()
    transform = tft_output.transform_features_layer()

    def decode(serialized):
        features = transform(tf.io.parse_example(serialized, spec))
        return features[TRANSFORMED_IMAGE_KEY], features[TRANSFORMED_LABEL_KEY]

    ds = tf.data.TFRecordDataset(files, compression_type="GZIP",
                                 num_parallel_reads=tf.data.AUTOTUNE)
    if records is not Records.ALL:
        held_out = records is Records.HELD_OUT
        ds = ds.filter(lambda raw: tf.equal(is_calibration_record(raw), held_out))
    if cache_file:
        ds = ds.batch(DECODE_BATCH).map(decode, num_parallel_calls=tf.data.AUTOTUNE)
        ds = ds.unbatch().cache(cache_file)
    if shuffle:
        ds = ds.shuffle(SHUFFLE_BUFFER, seed=seed, reshuffle_each_iteration=True)
    if repeat:
        ds = ds.repeat()
    ds = ds.batch(batch_size, drop_remainder=shuffle)
    if not cache_file:
        ds = ds.map(decode, num_parallel_calls=tf.data.AUTOTUNE)
    return ds.prefetch(tf.data.AUTOTUNE)


def check_label_domain(schema_artifact) -> None:
    """The model's output size is fixed by the record contract; the schema must agree."""
    schema_proto = tfdv.load_schema_text(
        os.path.join(schema_artifact.uri, tfx.dsl.io.fileio.listdir(schema_artifact.uri)[0]))
    domain = tfdv.get_feature(schema_proto, record_schema.LABEL_KEY).int_domain
    if (domain.min, domain.max) != (0, record_schema.MAX_LABEL):
        raise ValueError(
            f"schema label domain [{domain.min}, {domain.max}] does not match the model's "
            f"{record_schema.NUM_CLASSES} classes [0, {record_schema.MAX_LABEL}]")


@tfx.dsl.components.component
def SvhnTrainer(
    examples: tfx.dsl.components.InputArtifact[tfx.types.standard_artifacts.Examples],
    transform_graph: tfx.dsl.components.InputArtifact[
        tfx.types.standard_artifacts.TransformGraph],
    schema: tfx.dsl.components.InputArtifact[tfx.types.standard_artifacts.Schema],
    model: tfx.dsl.components.OutputArtifact[tfx.types.standard_artifacts.Model],
    model_run: tfx.dsl.components.OutputArtifact[tfx.types.standard_artifacts.ModelRun],
    base_model: tfx.dsl.components.InputArtifact[tfx.types.standard_artifacts.Model] = None,
    train_steps: tfx.dsl.components.Parameter[int] = recipe.TRAIN_STEPS,
    batch_size: tfx.dsl.components.Parameter[int] = recipe.BATCH_SIZE,
    learning_rate: tfx.dsl.components.Parameter[float] = recipe.LEARNING_RATE,
    adversarial_epsilon: tfx.dsl.components.Parameter[float] = recipe.ADVERSARIAL_EPSILON,
    target_risk: tfx.dsl.components.Parameter[float] = trust.TARGET_RISK,
    seed: tfx.dsl.components.Parameter[int] = 0,
    code_version: tfx.dsl.components.Parameter[str] = "",   # see code_version(); cache key only
) -> None:
    check_label_domain(schema)
    keras.utils.set_random_seed(seed)
    tft_output = tft.TFTransformOutput(transform_graph.uri)
    validation = transformed_dataset(examples, record_schema.EVAL_SPLIT, tft_output, batch_size,
                                     shuffle=False)
    # Labelled crops in a calibration split (e.g. the user's real ones) are what T and the
    # threshold are fitted on, and all of train is trained on; without one, one training record
    # in ten is held out for it.
    has_calibration_split = record_schema.CALIBRATION_SPLIT in artifact_utils.decode_split_names(
        examples.split_names)
    calibration_source = (f"split '{record_schema.CALIBRATION_SPLIT}'" if has_calibration_split
                          else f"1 in {CALIBRATION_BUCKETS} training records, held out")

    steps_per_epoch = min(STEPS_PER_EPOCH, train_steps)
    epochs = max(1, round(train_steps / steps_per_epoch))
    net = build_model(learning_rate, decay_steps=epochs * steps_per_epoch,
                      adversarial_epsilon=adversarial_epsilon)
    if base_model is not None:
        _load_weights(net, base_model.uri)
    logging.info("SvhnTrainer: %d steps of %d images (%d epochs of %d steps, inputs moved "
                 "adversarially by up to %.4f a pixel), %s",
                 epochs * steps_per_epoch, batch_size, epochs, steps_per_epoch,
                 adversarial_epsilon,
                 f"warm-started from {base_model.uri}" if base_model is not None
                 else "from scratch")
    # Decoded training images are cached on local disk for the passes after the first
    # (2,380-2,600 images/s against 1,670-1,860 decoding every pass, on 2 cores).
    with tempfile.TemporaryDirectory(prefix="svhn-tfx-decoded-") as cache_dir:
        train = transformed_dataset(examples, record_schema.TRAIN_SPLIT, tft_output, batch_size,
                                    shuffle=True, seed=seed,
                                    records=Records.ALL if has_calibration_split
                                    else Records.TRAINED_ON,
                                    cache_file=os.path.join(cache_dir, "train"))
        history = net.fit(
            train, steps_per_epoch=steps_per_epoch, epochs=epochs,
            validation_data=validation, validation_steps=VALIDATION_STEPS, verbose=2,
            callbacks=[keras.callbacks.TensorBoard(log_dir=model_run.uri, update_freq="epoch"),
                       _EpochProgress(epochs, steps_per_epoch)]
            + ([WeightAverage(epochs * steps_per_epoch)] if AVERAGE_FROM else []))

    if has_calibration_split:
        held_out = transformed_dataset(examples, record_schema.CALIBRATION_SPLIT, tft_output,
                                       batch_size, shuffle=False, repeat=False)
    else:
        held_out = transformed_dataset(examples, record_schema.TRAIN_SPLIT, tft_output,
                                       batch_size, shuffle=False, records=Records.HELD_OUT,
                                       repeat=False)
    calibration = calibrate(*logits_and_labels(net, held_out), target_risk)
    calibration["fitted_on"] = calibration_source
    logging.info("SvhnTrainer: calibration on %(examples)d examples (%(fitted_on)s): temperature "
                 "%(temperature).3f, ECE %(ece_before).4f -> %(ece_after).4f, NLL "
                 "%(nll_before).4f -> %(nll_after).4f; abstain below confidence "
                 "%(abstain_threshold).4f (risk %(digit_risk).4f at coverage "
                 "%(digit_coverage).3f of digit answers)", calibration)

    export_dir = path_utils.serving_model_path(model.uri)
    export_serving_model(net, tft_output.transform_features_layer(), export_dir,
                         calibration["temperature"], calibration["abstain_threshold"],
                         calibration)
    with tf.io.gfile.GFile(os.path.join(model.uri, CALIBRATION_FILE), "w") as f:
        json.dump(calibration, f, indent=2)
    _save_weights(net, model.uri)
    model.set_float_custom_property("train_accuracy", float(history.history["accuracy"][-1]))
    model.set_float_custom_property("validation_accuracy",
                                    float(history.history["val_accuracy"][-1]))
    for key in ("temperature", "abstain_threshold"):
        model.set_float_custom_property(key, calibration[key])
    model.set_string_custom_property("calibrated_on", calibration_source)
    model.set_string_custom_property("warm_start", base_model.uri if base_model else "")
    logging.info("SvhnTrainer: exported serving model to %s", export_dir)
