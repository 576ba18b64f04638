"""Beam transforms that score models on serialized tf.Examples through their serving path.

Each model is called exactly as a client would call it: the raw ``image_raw`` bytes go into
``serving_default``. Results are reduced to fixed-size sufficient statistics per model
(``trust.TrustAccumulator``), so memory stays constant however many examples there are and
the work scales with the Beam runner.

Every model is scored twice from one call: with the probabilities it serves (calibrated),
and with its temperature undone (softmax(T * log p) = softmax(logits)), which is what the
same network would have said without calibration.
"""
import base64

import apache_beam as beam
import numpy as np

from svhn_tfx import schema
from svhn_tfx.components import trust
from svhn_tfx.schema.signatures import IMAGE_BYTES_INPUT, SERVING_SIGNATURE

BATCH_SIZE = 256
CALIBRATED = "calibrated"
UNCALIBRATED = "uncalibrated"
CALIBRATION = "calibration"


def model_calibration(loaded) -> dict:
    """The temperature and abstention threshold a SavedModel was exported with."""
    def read(name, default):
        variable = getattr(loaded, name, None)
        return float(variable.numpy()) if variable is not None else default
    return {"temperature": read("temperature", 1.0),
            "abstain_threshold": read("abstain_threshold", 0.0)}


class PredictFn(beam.DoFn):
    """Batches of (split, serialized tf.Example) -> ((model name, split), scored batch).

    Records of several splits share a batch, so the models are loaded and called once."""

    def __init__(self, model_dirs: dict):
        self._model_dirs = model_dirs
        self._models = None

    def setup(self):
        import svhn_tfx.components  # noqa: F401
        import tensorflow as tf
        self._tf = tf
        self._models = {}
        for name, path in self._model_dirs.items():
            loaded = tf.saved_model.load(path)
            self._models[name] = (loaded, loaded.signatures[SERVING_SIGNATURE],
                                  model_calibration(loaded))

    def process(self, batch):
        tf = self._tf
        splits, images, labels = [], [], []
        for split, serialized in batch:
            feature = tf.train.Example.FromString(serialized).features.feature
            splits.append(split)
            images.append(feature[schema.IMAGE_KEY].bytes_list.value[0])
            labels.append(feature[schema.LABEL_KEY].int64_list.value[0])
        splits, labels = np.asarray(splits), np.asarray(labels, np.int64)
        shown = [base64.b64encode(image).decode() for image in images]  # the mistakes grid
        for name, (_, signature, calibration) in self._models.items():
            probabilities = signature(**{IMAGE_BYTES_INPUT: tf.constant(images)})[
                "probabilities"].numpy().astype(np.float64)
            uncalibrated = trust.softmax(
                calibration["temperature"] * np.log(np.maximum(probabilities, trust.PROB_FLOOR)))
            for split in sorted(set(splits)):
                rows = np.flatnonzero(splits == split)
                yield (name, str(split)), (labels[rows], probabilities[rows], uncalibrated[rows],
                                           [shown[i] for i in rows], calibration)


class TrustCombineFn(beam.CombineFn):
    """Scored batches -> {calibrated: metrics, uncalibrated: metrics, temperature,
    abstain_threshold} for one model."""

    def create_accumulator(self):
        return {CALIBRATED: trust.TrustAccumulator(), UNCALIBRATED: trust.TrustAccumulator(),
                CALIBRATION: {}}

    def add_input(self, acc, scored):
        labels, probabilities, uncalibrated, shown, calibration = scored
        threshold = calibration["abstain_threshold"]
        acc[CALIBRATED].add_batch(probabilities, labels, threshold, shown)
        acc[UNCALIBRATED].add_batch(uncalibrated, labels, threshold, shown)
        acc[CALIBRATION] = calibration
        return acc

    def merge_accumulators(self, accumulators):
        merged = self.create_accumulator()
        for acc in accumulators:
            for key in (CALIBRATED, UNCALIBRATED):
                merged[key].merge(acc[key])
            merged[CALIBRATION] = acc[CALIBRATION] or merged[CALIBRATION]
        return merged

    def extract_output(self, acc):
        return {CALIBRATED: acc[CALIBRATED].result(), UNCALIBRATED: acc[UNCALIBRATED].result(),
                **acc[CALIBRATION]}


@beam.ptransform_fn
def TrustMetrics(pcoll, model_dirs: dict):  # pylint: disable=invalid-name
    """(split, serialized tf.Example) -> ((model name, split), {calibrated, uncalibrated}
    metrics)."""
    return (pcoll
            | "Batch" >> beam.BatchElements(min_batch_size=BATCH_SIZE, max_batch_size=BATCH_SIZE)
            | "Predict" >> beam.ParDo(PredictFn(model_dirs))
            | "Combine" >> beam.CombinePerKey(TrustCombineFn()))
