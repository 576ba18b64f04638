"""Exports the serving SavedModel: raw image bytes in, calibrated class probabilities out.

The signatures are the wire contract in ``schema/signatures.py``. The Transform graph is
embedded (``tft_layer``), so decoding and rescaling happen here and nowhere else.
"""
import json
import os

import svhn_tfx.components  # noqa: F401  (sets the Keras/TF environment before TensorFlow loads)
import tensorflow as tf
from tensorflow.core.protobuf import saved_model_pb2

from svhn_tfx import schema
from svhn_tfx.components.transform.preprocessing import TRANSFORMED_IMAGE_KEY
from svhn_tfx.schema.signatures import (CALIBRATION_ASSET, CLASS_NAMES, CLASSIFY_METHOD,
                                        CLASSIFY_SIGNATURE, EXAMPLES_INPUT, IMAGE_BYTES_INPUT,
                                        NOT_ANSWERED, PREPROCESS_SIGNATURE, SERVING_SIGNATURE)

class DigitReader(tf.Module):
    """Transform graph + Keras model + calibration (temperature, abstention threshold).

    ``temperature`` and ``abstain_threshold`` are variables of the SavedModel, so anyone who
    loads it can read what it was calibrated with.
    """

    def __init__(self, model, tft_layer, temperature: float = 1.0,
                 abstain_threshold: float = 0.0):
        super().__init__()
        self.model = model
        self.tft_layer = tft_layer
        self.temperature = tf.Variable(temperature, dtype=tf.float32, trainable=False,
                                       name="temperature")
        self.abstain_threshold = tf.Variable(abstain_threshold, dtype=tf.float32,
                                             trainable=False, name="abstain_threshold")

    def _transform(self, image_bytes):
        # The schema makes image_raw a FixedLenFeature of shape [1]: [batch] -> [batch, 1].
        raw = {schema.IMAGE_KEY: tf.reshape(image_bytes, [-1, 1])}
        return self.tft_layer(raw)[TRANSFORMED_IMAGE_KEY]

    def _answer(self, image_bytes):
        logits = self.model(self._transform(image_bytes), training=False)
        probabilities = tf.nn.softmax(logits / self.temperature, axis=-1)
        class_id = tf.argmax(probabilities, axis=-1, output_type=tf.int64)
        confidence = tf.reduce_max(probabilities, axis=-1)
        is_digit = tf.not_equal(class_id, schema.NO_DIGIT)
        answered = tf.logical_and(is_digit, confidence >= self.abstain_threshold)
        return {
            "probabilities": probabilities,
            "class_id": class_id,
            "confidence": confidence,
            "is_digit": is_digit,
            "digit": tf.where(answered, class_id, tf.constant(NOT_ANSWERED, tf.int64)),
        }

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name=IMAGE_BYTES_INPUT)])
    def serve_image_bytes(self, image_bytes):
        return self._answer(image_bytes)

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name=EXAMPLES_INPUT)])
    def classify_examples(self, inputs):
        parsed = tf.io.parse_example(
            inputs, {schema.IMAGE_KEY: tf.io.FixedLenFeature([], tf.string)})
        probabilities = self._answer(parsed[schema.IMAGE_KEY])["probabilities"]
        classes = tf.broadcast_to(tf.constant(CLASS_NAMES), tf.shape(probabilities))
        return {"classes": classes, "scores": probabilities}

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name=IMAGE_BYTES_INPUT)])
    def preprocess(self, image_bytes):
        return {TRANSFORMED_IMAGE_KEY: self._transform(image_bytes)}


def _mark_classify_method(export_dir: str) -> None:
    """TF2 saves every signature as Predict; TF Serving's Classify API needs the classify method."""
    path = os.path.join(export_dir, "saved_model.pb")
    saved_model = saved_model_pb2.SavedModel()
    with tf.io.gfile.GFile(path, "rb") as f:
        saved_model.ParseFromString(f.read())
    for meta_graph in saved_model.meta_graphs:
        meta_graph.signature_def[CLASSIFY_SIGNATURE].method_name = CLASSIFY_METHOD
    with tf.io.gfile.GFile(path, "wb") as f:
        f.write(saved_model.SerializeToString())


def export_serving_model(model, tft_layer, export_dir: str, temperature: float = 1.0,
                         abstain_threshold: float = 0.0, calibration: dict = None) -> None:
    """``calibration`` (calibrate()'s record) goes into the SavedModel as CALIBRATION_ASSET."""
    reader = DigitReader(model, tft_layer, temperature, abstain_threshold)
    signatures = {
        SERVING_SIGNATURE: reader.serve_image_bytes,
        CLASSIFY_SIGNATURE: reader.classify_examples,
        PREPROCESS_SIGNATURE: reader.preprocess,
    }
    tf.saved_model.save(reader, export_dir, signatures=signatures)
    _mark_classify_method(export_dir)
    if calibration is not None:
        path = os.path.join(export_dir, CALIBRATION_ASSET)
        tf.io.gfile.makedirs(os.path.dirname(path))
        with tf.io.gfile.GFile(path, "w") as f:
            json.dump(calibration, f, indent=2)
