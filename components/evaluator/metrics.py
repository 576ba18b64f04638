"""Beam transforms that score models on serialized tf.Examples through their serving path.

Each model is called exactly as a client would call it: the raw ``image_raw`` bytes go into
``serving_default``. Results are reduced to per-model sufficient statistics (a confusion
matrix), so memory stays constant however many examples there are and the work scales
with the Beam runner.
"""
import apache_beam as beam
import numpy as np

import schema
from components.trainer.export import IMAGE_BYTES_INPUT, SERVING_SIGNATURE

BATCH_SIZE = 256


class PredictFn(beam.DoFn):
    """Batches of serialized tf.Examples -> (model name, (labels, probabilities))."""

    def __init__(self, model_dirs: dict):
        self._model_dirs = model_dirs
        self._signatures = None

    def setup(self):
        import components  # noqa: F401
        import tensorflow as tf
        self._tf = tf
        self._signatures = {name: tf.saved_model.load(path).signatures[SERVING_SIGNATURE]
                            for name, path in self._model_dirs.items()}

    def process(self, serialized_batch):
        tf = self._tf
        images, labels = [], []
        for serialized in serialized_batch:
            feature = tf.train.Example.FromString(serialized).features.feature
            images.append(feature[schema.IMAGE_KEY].bytes_list.value[0])
            labels.append(feature[schema.LABEL_KEY].int64_list.value[0])
        labels = np.asarray(labels, np.int64)
        for name, signature in self._signatures.items():
            outputs = signature(**{IMAGE_BYTES_INPUT: tf.constant(images)})
            yield name, (labels, outputs["probabilities"].numpy())


class ConfusionCombineFn(beam.CombineFn):
    """Sums an [11, 11] confusion matrix (rows: true label, columns: predicted class)."""

    def create_accumulator(self):
        return np.zeros((schema.NUM_CLASSES, schema.NUM_CLASSES), np.int64)

    def add_input(self, acc, labels_and_probabilities):
        labels, probabilities = labels_and_probabilities
        np.add.at(acc, (labels, probabilities.argmax(axis=1)), 1)
        return acc

    def merge_accumulators(self, accumulators):
        return sum(accumulators, self.create_accumulator())

    def extract_output(self, acc):
        return acc


@beam.ptransform_fn
def ConfusionMatrices(pcoll, model_dirs: dict):  # pylint: disable=invalid-name
    """Serialized tf.Examples -> (model name, confusion matrix) for every model."""
    return (pcoll
            | "Batch" >> beam.BatchElements(min_batch_size=BATCH_SIZE, max_batch_size=BATCH_SIZE)
            | "Predict" >> beam.ParDo(PredictFn(model_dirs))
            | "Confusion" >> beam.CombinePerKey(ConfusionCombineFn()))


def summarize(confusion: np.ndarray) -> dict:
    """Accuracy overall, per class and on digits only, from a confusion matrix."""
    confusion = np.asarray(confusion)
    per_class_total = confusion.sum(axis=1)
    correct = np.diag(confusion)
    digits = slice(0, schema.NUM_DIGITS)
    with np.errstate(invalid="ignore", divide="ignore"):
        per_class = np.where(per_class_total > 0, correct / per_class_total, np.nan)
    names = [str(d) for d in range(schema.NUM_DIGITS)] + ["no_digit"]
    return {
        "examples": int(confusion.sum()),
        "accuracy": float(correct.sum() / max(confusion.sum(), 1)),
        "digit_accuracy": float(correct[digits].sum() / max(per_class_total[digits].sum(), 1)),
        "per_class_accuracy": {n: (None if np.isnan(a) else float(a))
                               for n, a in zip(names, per_class)},
        "per_class_examples": {n: int(t) for n, t in zip(names, per_class_total)},
        "confusion_matrix": confusion.tolist(),
    }
