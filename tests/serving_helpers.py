"""A small exported model and a running server process, for the serving tests."""
import io
import os
import queue
import shutil
import socket
import struct
import subprocess
import sys
import threading
import time
import zlib

import numpy as np
from PIL import Image

import components  # noqa: F401
import schema

STARTUP_TIMEOUT_S = 120
REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def export_model(export_dir: str, work_dir: str, temperature: float = 1.0) -> str:
    """The real export path (Transform graph + CNN + signatures) with untrained weights:
    serving tests need the wire contract, not accuracy, and this takes seconds."""
    import apache_beam as beam
    import tensorflow as tf
    import tensorflow_transform as tft
    import tensorflow_transform.beam as tft_beam
    from tensorflow_transform.tf_metadata import dataset_metadata, schema_utils

    from components.trainer.export import export_serving_model
    from components.trainer.model import build_model
    from components.transform.preprocessing import preprocessing_fn

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
    tft_layer = tft.TFTransformOutput(transform_dir).transform_features_layer()
    export_serving_model(model, tft_layer, export_dir, temperature)
    return export_dir


def encode(pixels: np.ndarray, fmt: str = "PNG") -> bytes:
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, format=fmt)
    return buf.getvalue()


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


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def copy_version(src: str, dst: str) -> None:
    """Copies a version the way a Pusher does: files appear one by one under the final name."""
    shutil.copytree(src, dst)


class ServerProcess:
    """``svhn-tfx-serve`` (or the real ``tensorflow_model_server``) as a child process."""

    def __init__(self, model_base_path: str, model_name: str = "svhn", binary=None,
                 log_path=None, **flags):
        self.rest_port = free_port()
        self.model_name = model_name
        if binary:
            self.grpc_port = free_port()
            command = [binary, f"--port={self.grpc_port}"]
        else:
            command = [sys.executable, "-m", "serving.server", "--port=0"]
        command += [f"--rest_api_port={self.rest_port}", f"--model_name={model_name}",
                    f"--model_base_path={model_base_path}"]
        command += [f"--{k}={v}" for k, v in flags.items()]
        self.log_path = log_path or os.path.join(model_base_path, "..", "server.log")
        self._log = open(self.log_path, "w")
        self.process = subprocess.Popen(command, cwd=REPO_ROOT, stdout=subprocess.PIPE,
                                        stderr=self._log, text=True)
        self._lines = queue.Queue()
        threading.Thread(target=self._read_stdout, daemon=True).start()
        if not binary:
            self.grpc_port = int(self._wait_for_line("gRPC on").rsplit(":", 1)[1])
            self._wait_for_line("REST on")
        self.grpc_target = f"127.0.0.1:{self.grpc_port}"
        self.rest_url = f"http://127.0.0.1:{self.rest_port}"
        self.wait_until_available()

    def _read_stdout(self):
        for line in self.process.stdout:
            self._lines.put(line.strip())

    def _wait_for_line(self, marker: str) -> str:
        deadline = time.time() + STARTUP_TIMEOUT_S
        while time.time() < deadline:
            try:
                line = self._lines.get(timeout=1)
            except queue.Empty:
                self._check_alive()
                continue
            if marker in line:
                return line
        raise TimeoutError(f"server printed no '{marker}' line; see {self.log_path}")

    def _check_alive(self):
        if self.process.poll() is not None:
            raise RuntimeError(f"server exited with {self.process.returncode}; "
                               f"log: {self.logs()[-3000:]}")

    def wait_until_available(self):
        from serving.client import wait_until_available
        wait_until_available(self.grpc_target, self.model_name, STARTUP_TIMEOUT_S,
                             self._check_alive)

    def logs(self) -> str:
        if not self._log.closed:
            self._log.flush()
        with open(self.log_path) as f:
            return f.read()

    def stop(self):
        self.process.terminate()
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
        self._log.close()
