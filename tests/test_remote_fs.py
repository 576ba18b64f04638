"""The parts that take paths, run against a filesystem that is not the local disk.

TensorFlow's ``ram://`` filesystem lives in this process's memory: a stray ``open``,
``glob`` or ``os.path`` call on one of its URIs finds nothing and fails the test, as it would
on ``gs://``. (Beam has no ``ram://``, so the Beam components are not run here.)
"""
import json
import os
import uuid

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_transform as tft

from svhn_tfx import schema
from svhn_tfx.components.converters import digit_struct, folder, records, svhn_mat
from svhn_tfx.components.generator import synthetic
from svhn_tfx.components.evaluator import component as evaluator
from svhn_tfx.components.trainer import component as trainer
from svhn_tfx.components.transform.preprocessing import preprocess_images
from svhn_tfx.serving.limits import Limits
from svhn_tfx.serving.model_store import ModelStore
from svhn_tfx.serving.servable import Servable
from svhn_tfx.schema.images import encode
from tests import serving_helpers as sh

gfile = tf.io.gfile


@pytest.fixture
def ram():
    root = f"ram://svhn-tfx-{uuid.uuid4().hex[:8]}"
    yield root
    for parent, _, files in gfile.walk(root):   # ram:// has no recursive delete of a root
        for name in files:
            gfile.remove(os.path.join(parent, name))


def _copy_tree(src: str, dst: str) -> None:
    for parent, _, files in os.walk(src):
        relative = os.path.relpath(parent, src)
        target = dst if relative == "." else os.path.join(dst, relative)
        gfile.makedirs(target)
        for name in files:
            gfile.copy(os.path.join(parent, name), os.path.join(target, name))


def test_converters_write_find_read_and_replace_splits_on_a_uri(ram):
    data = f"{ram}/data"
    for split, count in (("train", 6), ("eval", 3)):
        records.write_split(synthetic.generate(count, seed=1), data, split)
    assert records.find_splits(data) == ["train", "eval"]
    assert len(list(records.read_split(f"{data}/train"))) == 6
    records.write_split(synthetic.generate(2, seed=2), data, "eval", overwrite=True)
    assert len(list(records.read_split(f"{data}/eval"))) == 2
    assert sorted(n.rstrip("/") for n in gfile.listdir(data)) == ["eval", "train"]
    with pytest.raises(FileExistsError):
        records.write_split(synthetic.generate(2, seed=2), data, "eval")


def test_a_folder_tree_is_read_from_a_uri(ram):
    png = encode(np.full((8, 8, 3), 200, np.uint8))
    for path in ("3/a.png", "3/deeper/b.png", "none/c.png", "3/.hidden.png"):
        gfile.makedirs(os.path.dirname(f"{ram}/tree/{path}"))   # ram:// needs explicit folders
        with gfile.GFile(f"{ram}/tree/{path}", "wb") as f:
            f.write(png)
    found = [(r.where, r.label) for r in folder.read_folder(f"{ram}/tree")]
    assert found == [(f"{ram}/tree/3/a.png", 3), (f"{ram}/tree/3/deeper/b.png", 3),
                     (f"{ram}/tree/none/c.png", schema.NO_DIGIT)]


def test_the_server_store_loads_and_answers_from_a_uri(ram, exported_model):
    _copy_tree(exported_model, f"{ram}/models/7")
    store = ModelStore("svhn", f"{ram}/models",
                       lambda path, version: Servable(path, version, Limits(), 8, 0.001, 1))
    store.poll_once()
    assert store.loaded_versions() == [7]
    images = np.array(sh.sample_images(3), dtype=object)
    served = store.get("svhn").predict("serving_default", {"image_bytes": images})
    local = tf.saved_model.load(exported_model).signatures["serving_default"](
        image_bytes=tf.constant(images))
    np.testing.assert_allclose(served["probabilities"], local["probabilities"].numpy(),
                               atol=1e-6)
    store.get("svhn").close()


def test_the_trainer_reads_examples_and_the_transform_graph_from_uris(ram, exported_model):
    _copy_tree(os.path.join(os.path.dirname(exported_model), "work", "transform_graph"),
               f"{ram}/transform_graph")
    gfile.makedirs(f"{ram}/transform_graph/metadata")   # Transform writes the raw schema here
    gfile.copy(schema.SCHEMA_PATH, f"{ram}/transform_graph/metadata/schema.pbtxt")
    examples = trainer.examples_artifact(f"{ram}/examples", ["train"])
    images = sh.sample_images(5)
    writer = tf.io.TFRecordWriter(f"{ram}/examples/Split-train/data.tfrecord.gz",
                                  tf.io.TFRecordOptions(compression_type="GZIP"))
    for i, image in enumerate(images):
        writer.write(records.make_example(image, i).SerializeToString())
    writer.close()
    dataset = trainer.transformed_dataset(
        examples, "train", tft.TFTransformOutput(f"{ram}/transform_graph"), batch_size=5,
        shuffle=False, repeat=False)
    batch_images, labels = next(iter(dataset))
    np.testing.assert_array_equal(labels.numpy(), np.arange(5))
    np.testing.assert_allclose(batch_images.numpy(),
                               preprocess_images(tf.constant(images)).numpy(), atol=1e-6)


def test_the_evaluator_publishes_its_report_to_a_uri(ram, tmp_path):
    (tmp_path / "metrics.json").write_text('{"blessed": true}')
    (tmp_path / "report.html").write_text("<html></html>")
    evaluator._publish(str(tmp_path), f"{ram}/evaluation")
    with gfile.GFile(f"{ram}/evaluation/metrics.json") as f:
        assert json.load(f) == {"blessed": True}
    assert gfile.exists(f"{ram}/evaluation/report.html")


SHARED_FORMAT1 = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                              os.pardir, "shared", "data", "svhn-format1", "train")


def _same_records(a, b):
    return [(r.label, r.image, r.error) for r in a] == [(r.label, r.image, r.error) for r in b]


@pytest.mark.parametrize("version", ["v5", "v7.3"])
def test_svhn_mat_files_are_read_from_a_uri(ram, tmp_path, version):
    import h5py
    import scipy.io
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (32, 32, 3, 5), dtype=np.uint8)
    y = rng.integers(1, 11, (5, 1)).astype(np.float64)
    local = str(tmp_path / "train_32x32.mat")
    if version == "v5":
        scipy.io.savemat(local, {"X": x, "y": y}, do_compression=True)
    else:
        with h5py.File(local, "w", userblock_size=512) as f:
            f.create_dataset("X", data=np.ascontiguousarray(x.T))
            f.create_dataset("y", data=np.ascontiguousarray(y.T))
    gfile.makedirs(ram)
    gfile.copy(local, f"{ram}/train_32x32.mat")
    assert _same_records(svhn_mat.read_mat(f"{ram}/train_32x32.mat"), svhn_mat.read_mat(local))


@pytest.mark.skipif(not os.path.isdir(SHARED_FORMAT1), reason="no shared SVHN format-1 photos")
def test_svhn_photos_and_digit_struct_are_read_from_a_uri(ram):
    _copy_tree(SHARED_FORMAT1, f"{ram}/train")
    from_uri = list(digit_struct.read_digit_struct_dir(f"{ram}/train"))
    assert from_uri and _same_records(from_uri, digit_struct.read_digit_struct_dir(SHARED_FORMAT1))
