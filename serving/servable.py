"""One loaded model version: its signatures, their wire contract, and batched execution.

Signature definitions are read from ``saved_model.pb`` itself, so input names, dtypes and
method names are exactly what TF Serving would report and enforce for the same directory.
"""
import json
import logging
import os
from typing import Dict, Optional

import grpc
import numpy as np
import tensorflow as tf
from tensorflow.core.example import example_pb2
from tensorflow.core.protobuf import saved_model_pb2

from svhn_tfx import schema
from svhn_tfx.schema.images import encode
from svhn_tfx.schema.signatures import (ANSWER_KINDS, ANSWER_SHARES, CALIBRATION_ASSET,
                                        EXAMPLES_INPUT, IMAGE_BYTES_INPUT, SERVING_SIGNATURE)
from svhn_tfx.serving.batching import Batcher
from svhn_tfx.serving.errors import ServingError, invalid
from svhn_tfx.serving.limits import Limits
from svhn_tfx.serving.metrics import ServingMetrics

# TF Serving's default signature is the model's raw-bytes one; string inputs named
# IMAGE_BYTES_INPUT carry encoded image files and are checked image by image.
DEFAULT_SIGNATURE = SERVING_SIGNATURE


class Servable:
    def __init__(self, path: str, version: int, limits: Limits, max_batch_size: int,
                 batch_timeout_s: float, num_batch_threads: int, max_enqueued_batches: int = 0,
                 model_name: str = "", metrics: Optional[ServingMetrics] = None):
        self.path = path
        self.version = version
        self.limits = limits
        self.model_name, self.metrics = model_name, metrics
        self.signature_defs = _read_signature_defs(path)
        self.expected_shares = _read_expected_shares(path)
        self._model = tf.saved_model.load(path)
        self._warm_up()   # before any thread starts: a version that fails here leaves nothing
        self._batchers: Dict[str, Optional[Batcher]] = {}
        for name, signature_def in self.signature_defs.items():
            batchable = max_batch_size > 1 and all(
                _leading_dim_is_batch(info) for info in
                list(signature_def.inputs.values()) + list(signature_def.outputs.values()))
            self._batchers[name] = Batcher(
                lambda inputs, name=name: self._run(name, inputs), max_batch_size,
                batch_timeout_s, num_batch_threads, name=f"v{version}-{name}",
                max_batch_cost=limits.max_request_pixels,
                max_enqueued_batches=max_enqueued_batches) if batchable else None

    def signature_def(self, name: str):
        name = name or DEFAULT_SIGNATURE
        if name not in self.signature_defs:
            raise invalid(f'Serving signature key "{name}" not found; this model has: '
                          f'{", ".join(sorted(self.signature_defs))}')
        return self.signature_defs[name]

    def predict(self, signature_name: str, inputs: Dict[str, np.ndarray],
                output_filter=()) -> Dict[str, np.ndarray]:
        """Validates ``inputs`` against the signature and the limits, runs it (batched),
        returns its outputs."""
        signature_name = signature_name or DEFAULT_SIGNATURE
        signature_def = self.signature_def(signature_name)
        batcher = self._batchers[signature_name]
        if batcher:
            with batcher.arriving() as arrival:
                costs = self._validate(signature_name, signature_def, inputs, output_filter)
                outputs = self._refused_row_named(
                    signature_name, inputs, lambda: arrival(inputs, costs))
        else:
            self._validate(signature_name, signature_def, inputs, output_filter)
            outputs = self._refused_row_named(
                signature_name, inputs, lambda: self._run(signature_name, inputs))
        if self.metrics is not None and signature_name == SERVING_SIGNATURE:
            self.metrics.record_answers(self.model_name, outputs, self.expected_shares)
        return {k: v for k, v in outputs.items() if not output_filter or k in output_filter}

    def _validate(self, signature_name, signature_def, inputs, output_filter) -> np.ndarray:
        """Checks names, dtypes, shapes and every image; returns each row's decoded pixels."""
        expected = set(signature_def.inputs)
        if set(inputs) != expected:
            raise invalid(
                f"input names {sorted(inputs)} do not match signature '{signature_name}': "
                f"sent extra {sorted(set(inputs) - expected)}, missing but required "
                f"{sorted(expected - set(inputs))}")
        sizes, costs = set(), None
        for key, value in inputs.items():
            info = signature_def.inputs[key]
            want = tf.dtypes.as_dtype(info.dtype)
            got = tf.dtypes.as_dtype(value.dtype) if value.dtype != object else tf.string
            if got != want:
                raise invalid(f"input '{key}' of signature '{signature_name}' expects "
                              f"{want.name} but {got.name} was sent")
            check_shape(key, value.shape, info)
            sizes.add(len(value))
            self.limits.check_request_size(len(value))
            images = _images_in(key, value)
            if images is not None:
                costs = np.array([self.limits.check_image(data, item) for item, data in images],
                                 np.int64)
                self.limits.check_request_pixels(int(costs.sum()))
        if len(sizes) > 1:
            raise invalid(f"inputs have different batch sizes {sorted(sizes)}")
        unknown = set(output_filter) - set(signature_def.outputs)
        if unknown:
            raise invalid(f"output_filter names {sorted(unknown)} that signature "
                          f"'{signature_name}' does not have: {sorted(signature_def.outputs)}")
        return costs

    def _refused_row_named(self, signature_name, inputs, run):
        """Runs ``run``; if the graph refuses the request, finds the first row it refuses on
        its own, so the error says which image is bad (the happy path decodes once)."""
        try:
            return run()
        except GraphRefused as e:
            rows = len(next(iter(inputs.values())))
            bad = 0 if rows == 1 else next(
                (i for i in range(rows) if self._row_refused(signature_name, inputs, i)), None)
            if bad is None:
                raise invalid(e.message) from None
            carrier = next((k for k in inputs if k in (IMAGE_BYTES_INPUT, EXAMPLES_INPUT)), None)
            item = f"{carrier}[{bad}]" if carrier else f"row {bad}"
            raise invalid(f"{item}: {e.message}") from None

    def _row_refused(self, signature_name, inputs, row: int) -> bool:
        try:
            self._call(signature_name, {k: v[row:row + 1] for k, v in inputs.items()})
        except GraphRefused:
            return True
        return False

    def close(self) -> None:
        for batcher in self._batchers.values():
            if batcher:
                batcher.close()

    def _run(self, signature_name: str, inputs: Dict[str, np.ndarray]) -> Dict[str, np.ndarray]:
        """One model call for requests (batched or not), counted in the batch-size histogram."""
        if self.metrics is not None:
            self.metrics.record_batch(self.model_name, self.version, signature_name,
                                      len(next(iter(inputs.values()))))
        return self._call(signature_name, inputs)

    def _call(self, signature_name: str, inputs: Dict[str, np.ndarray]) -> Dict[str, np.ndarray]:
        function = self._model.signatures[signature_name]
        try:
            outputs = function(**{k: tf.constant(v) for k, v in inputs.items()})
        except tf.errors.InvalidArgumentError as e:
            raise GraphRefused(f"the model's graph cannot read it (corrupt or truncated image "
                               f"data?): {e.message.splitlines()[0]}") from None
        return {k: v.numpy() for k, v in outputs.items()}

    def _warm_up(self) -> None:
        """One call per image signature before the version is announced, as TF Serving's
        warm-up requests do: it traces the graph and proves the model can answer."""
        grey = encode(np.full((32, 32, 3), 128, np.uint8))
        for name, signature_def in self.signature_defs.items():
            if set(signature_def.inputs) == {IMAGE_BYTES_INPUT}:
                self._call(name, {IMAGE_BYTES_INPUT: np.array([grey], dtype=object)})
        logging.info("version %d warmed up (%s)", self.version, self.path)


class GraphRefused(ServingError):
    """The model's graph raised InvalidArgumentError: the request's data, not the server."""

    def __init__(self, message: str):
        super().__init__(grpc.StatusCode.INVALID_ARGUMENT, message)


def check_shape(key: str, shape, tensor_info) -> None:
    """INVALID_ARGUMENT unless ``shape`` fits the signature input (rank and known sizes);
    a leading batch dimension is required."""
    if len(shape) == 0:
        raise invalid(f"input '{key}' needs a batch dimension, got a scalar")
    if tensor_info.tensor_shape.unknown_rank:
        return
    want = [d.size for d in tensor_info.tensor_shape.dim]
    if len(shape) != len(want) or any(w >= 0 and w != s for w, s in zip(want, shape)):
        raise invalid(f"input '{key}' has shape {list(shape)}; the signature takes "
                      f"{['batch' if w < 0 else w for w in want]}")


def _images_in(key: str, value: np.ndarray):
    """(item name, encoded image) for every image an input carries, or None if it carries
    none: raw bytes (``image_bytes``) or serialized tf.Examples (``inputs``)."""
    if key == IMAGE_BYTES_INPUT:
        return [(f"{key}[{i}]", data) for i, data in enumerate(value)]
    if key != EXAMPLES_INPUT:
        return None
    found = []
    for i, data in enumerate(value):
        try:
            example = example_pb2.Example.FromString(data)
        except Exception:
            raise invalid(f"{key}[{i}]: not a serialized tf.Example") from None
        feature = example.features.feature.get(schema.IMAGE_KEY)
        if feature is None or len(feature.bytes_list.value) != 1:
            raise invalid(f"{key}[{i}]: example needs exactly one '{schema.IMAGE_KEY}' bytes "
                          f"value")
        found.append((f"{key}[{i}].{schema.IMAGE_KEY}", feature.bytes_list.value[0]))
    return found


def _read_expected_shares(path: str) -> Optional[Dict[str, float]]:
    """The answer shares the model's calibration data showed, or None (drift is then not
    judged): models exported before they were recorded, or by other code, have none."""
    asset = os.path.join(path, CALIBRATION_ASSET)
    if not tf.io.gfile.exists(asset):
        logging.info("%s has no %s: its answers are counted but drift is not judged",
                     path, CALIBRATION_ASSET)
        return None
    with tf.io.gfile.GFile(asset) as f:
        shares = json.load(f).get(ANSWER_SHARES)
    if not isinstance(shares, dict) or any(
            not isinstance(shares.get(k), (int, float)) for k in ANSWER_KINDS):
        logging.warning("%s: %s has no usable %s; drift is not judged", path, CALIBRATION_ASSET,
                        ANSWER_SHARES)
        return None
    return {k: float(shares[k]) for k in ANSWER_KINDS}


def _read_signature_defs(path: str):
    proto = saved_model_pb2.SavedModel()
    with tf.io.gfile.GFile(os.path.join(path, "saved_model.pb"), "rb") as f:
        proto.ParseFromString(f.read())
    (meta_graph,) = [m for m in proto.meta_graphs if "serve" in m.meta_info_def.tags]
    return {name: sig for name, sig in meta_graph.signature_def.items()
            if not name.startswith("__")}  # __saved_model_init_op is not a signature


def _leading_dim_is_batch(tensor_info) -> bool:
    dims = tensor_info.tensor_shape.dim
    return not tensor_info.tensor_shape.unknown_rank and len(dims) > 0 and dims[0].size == -1
