"""One loaded model version: its signatures, their wire contract, and batched execution.

Signature definitions are read from ``saved_model.pb`` itself, so input names, dtypes and
method names are exactly what TF Serving would report and enforce for the same directory.
"""
import io
import logging
import os
from typing import Dict, Optional

import numpy as np
import tensorflow as tf
from PIL import Image
from tensorflow.core.protobuf import saved_model_pb2

from components.trainer.export import IMAGE_BYTES_INPUT, SERVING_SIGNATURE
from serving.batching import Batcher
from serving.errors import invalid
from serving.limits import Limits

# TF Serving's default signature is the model's raw-bytes one; string inputs named
# IMAGE_BYTES_INPUT carry encoded image files and are checked image by image.
DEFAULT_SIGNATURE = SERVING_SIGNATURE


class Servable:
    def __init__(self, path: str, version: int, limits: Limits, max_batch_size: int,
                 batch_timeout_s: float, num_batch_threads: int):
        self.path = path
        self.version = version
        self.limits = limits
        self.signature_defs = _read_signature_defs(path)
        self._model = tf.saved_model.load(path)
        self._batchers: Dict[str, Optional[Batcher]] = {}
        for name, signature_def in self.signature_defs.items():
            batchable = max_batch_size > 1 and all(
                _leading_dim_is_batch(info) for info in
                list(signature_def.inputs.values()) + list(signature_def.outputs.values()))
            self._batchers[name] = Batcher(
                lambda inputs, name=name: self._call(name, inputs), max_batch_size,
                batch_timeout_s, num_batch_threads, name=f"v{version}-{name}") \
                if batchable else None
        self._warm_up()

    def signature_def(self, name: str):
        name = name or DEFAULT_SIGNATURE
        if name not in self.signature_defs:
            raise invalid(f'Serving signature key "{name}" not found; this model has: '
                          f'{", ".join(sorted(self.signature_defs))}')
        return self.signature_defs[name]

    def predict(self, signature_name: str, inputs: Dict[str, np.ndarray],
                output_filter=()) -> Dict[str, np.ndarray]:
        """Validates ``inputs`` against the signature, runs it (batched), returns outputs."""
        signature_name = signature_name or DEFAULT_SIGNATURE
        signature_def = self.signature_def(signature_name)
        batcher = self._batchers[signature_name]
        if batcher:
            with batcher.arriving() as arrival:
                self._validate(signature_name, signature_def, inputs, output_filter)
                outputs = arrival(inputs)
        else:
            self._validate(signature_name, signature_def, inputs, output_filter)
            outputs = self._call(signature_name, inputs)
        return {k: v for k, v in outputs.items() if not output_filter or k in output_filter}

    def _validate(self, signature_name, signature_def, inputs, output_filter) -> None:
        expected = set(signature_def.inputs)
        if set(inputs) != expected:
            raise invalid(
                f"input names {sorted(inputs)} do not match signature '{signature_name}': "
                f"sent extra {sorted(set(inputs) - expected)}, missing but required "
                f"{sorted(expected - set(inputs))}")
        sizes = set()
        for key, value in inputs.items():
            want = tf.dtypes.as_dtype(signature_def.inputs[key].dtype)
            got = tf.dtypes.as_dtype(value.dtype) if value.dtype != object else tf.string
            if got != want:
                raise invalid(f"input '{key}' of signature '{signature_name}' expects "
                              f"{want.name} but {got.name} was sent")
            if value.ndim == 0:
                raise invalid(f"input '{key}' needs a batch dimension, got a scalar")
            sizes.add(len(value))
            self.limits.check_request_size(len(value))
            if key == IMAGE_BYTES_INPUT:
                for i, data in enumerate(value):
                    self.limits.check_image(data, f"{key}[{i}]")
        if len(sizes) > 1:
            raise invalid(f"inputs have different batch sizes {sorted(sizes)}")
        unknown = set(output_filter) - set(signature_def.outputs)
        if unknown:
            raise invalid(f"output_filter names {sorted(unknown)} that signature "
                          f"'{signature_name}' does not have: {sorted(signature_def.outputs)}")

    def close(self) -> None:
        for batcher in self._batchers.values():
            if batcher:
                batcher.close()

    def _call(self, signature_name: str, inputs: Dict[str, np.ndarray]) -> Dict[str, np.ndarray]:
        function = self._model.signatures[signature_name]
        try:
            outputs = function(**{k: tf.constant(v) for k, v in inputs.items()})
        except tf.errors.InvalidArgumentError as e:
            raise invalid(f"signature '{signature_name}' refused the input: "
                          f"{e.message.splitlines()[0]}") from None
        return {k: v.numpy() for k, v in outputs.items()}

    def _warm_up(self) -> None:
        """One call per image signature before the version is announced, as TF Serving's
        warm-up requests do: it traces the graph and proves the model can answer."""
        buf = io.BytesIO()
        Image.new("RGB", (32, 32), (128, 128, 128)).save(buf, format="PNG")
        for name, signature_def in self.signature_defs.items():
            if set(signature_def.inputs) == {IMAGE_BYTES_INPUT}:
                self._call(name, {IMAGE_BYTES_INPUT: np.array([buf.getvalue()], dtype=object)})
        logging.info("version %d warmed up (%s)", self.version, self.path)


def _read_signature_defs(path: str):
    proto = saved_model_pb2.SavedModel()
    with open(os.path.join(path, "saved_model.pb"), "rb") as f:
        proto.ParseFromString(f.read())
    (meta_graph,) = [m for m in proto.meta_graphs if "serve" in m.meta_info_def.tags]
    return {name: sig for name, sig in meta_graph.signature_def.items()
            if not name.startswith("__")}  # __saved_model_init_op is not a signature


def _leading_dim_is_batch(tensor_info) -> bool:
    dims = tensor_info.tensor_shape.dim
    return not tensor_info.tensor_shape.unknown_rank and len(dims) > 0 and dims[0].size == -1
