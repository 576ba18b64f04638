"""The whole TFX pipeline on tiny synthetic data: raw bytes in, a pushed raw-bytes model out."""
import glob
import json
import io
import os

import numpy as np
import pytest

import components  # noqa: F401
import tensorflow as tf
from PIL import Image

import schema
from components.anomaly_gate import DataAnomaliesError
from components.data.records import read_split
from components.data.synthetic import generate
from components.trainer.export import CLASSIFY_METHOD, CLASSIFY_SIGNATURE
from components.transform.preprocessing import TRANSFORMED_IMAGE_KEY, TRANSFORMED_LABEL_KEY
from tests import pipeline_helpers as ph

pytestmark = pytest.mark.slow
NUM_CLASSES = schema.NUM_CLASSES
TRAIN_STEPS = 600  # of 64 images: the generator's crops are hard; ~200 steps stay near chance


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """One real pipeline run (Beam DirectRunner, multi-processing, 2 workers)."""
    root = tmp_path_factory.mktemp("pipeline")
    ph.write_synthetic_data(root / "data", train=3000, eval_=300)
    ph.run_pipeline(root, root / "data", ph.MULTI_PROCESS_BEAM_ARGS, train_steps=TRAIN_STEPS)
    return root


@pytest.fixture(scope="module")
def pushed(run):
    versions = ph.pushed_versions(run)
    assert len(versions) == 1, versions
    return tf.saved_model.load(versions[0])


def _encode(pixels: np.ndarray, fmt: str) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, format=fmt)
    return buf.getvalue()


def test_every_component_ran_and_the_model_was_pushed_in_tf_serving_layout(run):
    for component in ["ImportExampleGen", "StatisticsGen", "ImportSchemaGen", "ExampleValidator",
                      "AnomalyGate", "Transform", "SvhnTrainer", "SvhnEvaluator", "Pusher"]:
        assert os.path.isdir(os.path.join(run, "pipeline", component)), component
    (version,) = ph.pushed_versions(run)
    assert os.path.basename(version).isdigit()  # TF Serving only loads integer versions
    assert os.path.isfile(os.path.join(version, "saved_model.pb"))
    blessing = ph.latest_output(run, "SvhnEvaluator", "blessing")
    assert os.path.isfile(os.path.join(blessing, "BLESSED"))


def test_serving_default_takes_only_raw_bytes(pushed):
    signature = pushed.signatures["serving_default"]
    (spec,) = signature.structured_input_signature[1].values()
    assert spec.dtype == tf.string and spec.shape.as_list() == [None]
    with pytest.raises((TypeError, ValueError, tf.errors.InvalidArgumentError)):
        signature(image_bytes=tf.zeros([1, 32, 32, 3]))  # pre-decoded pixels are refused


@pytest.mark.parametrize("size", [32, 227])
@pytest.mark.parametrize("fmt", ["PNG", "JPEG"])
def test_pushed_model_answers_png_and_jpeg_of_any_size(pushed, size, fmt):
    rng = np.random.default_rng(size)
    images = [_encode(rng.integers(0, 256, (size, size, 3), dtype=np.uint8), fmt)
              for _ in range(3)]
    out = pushed.signatures["serving_default"](image_bytes=tf.constant(images))
    probabilities = out["probabilities"].numpy()
    assert probabilities.shape == (3, NUM_CLASSES)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, atol=1e-5)
    np.testing.assert_array_equal(out["class_id"].numpy(), probabilities.argmax(axis=1))
    np.testing.assert_allclose(out["confidence"].numpy(), probabilities.max(axis=1))


def test_classify_signature_is_marked_for_tf_serving_classify_api(run, pushed):
    from tensorflow.core.protobuf import saved_model_pb2
    proto = saved_model_pb2.SavedModel()
    with open(os.path.join(ph.pushed_versions(run)[0], "saved_model.pb"), "rb") as f:
        proto.ParseFromString(f.read())
    assert proto.meta_graphs[0].signature_def[CLASSIFY_SIGNATURE].method_name == CLASSIFY_METHOD
    image, _ = next(read_split(os.path.join(run, "data", "eval")))
    example = tf.train.Example(features=tf.train.Features(feature={
        schema.IMAGE_KEY: tf.train.Feature(bytes_list=tf.train.BytesList(value=[image]))}))
    scores = pushed.signatures[CLASSIFY_SIGNATURE](
        inputs=tf.constant([example.SerializeToString()]))["scores"].numpy()
    direct = pushed.signatures["serving_default"](
        image_bytes=tf.constant([image]))["probabilities"].numpy()
    np.testing.assert_allclose(scores, direct, atol=1e-6)


def _transformed_eval_examples(run):
    """The preprocessed tensors exactly as Transform materialised them for training."""
    import tensorflow_transform as tft
    transform_graph = ph.latest_output(run, "Transform", "transform_graph")
    spec = tft.TFTransformOutput(transform_graph).transformed_feature_spec()
    examples = ph.latest_output(run, "Transform", "transformed_examples")
    files = glob.glob(os.path.join(examples, "Split-eval", "*"))
    batch = next(iter(tf.data.TFRecordDataset(files, compression_type="GZIP").batch(10_000)))
    parsed = tf.io.parse_example(batch, spec)
    return parsed[TRANSFORMED_IMAGE_KEY].numpy(), parsed[TRANSFORMED_LABEL_KEY].numpy()


def test_no_training_serving_skew(run, pushed):
    """The same bytes give the same model input and probabilities on both paths (1e-5)."""
    trained_images, trained_labels = _transformed_eval_examples(run)
    raw = list(read_split(os.path.join(run, "data", "eval")))
    raw_bytes = tf.constant([image for image, _ in raw])
    served_images = pushed.signatures["preprocess"](image_bytes=raw_bytes)[
        TRANSFORMED_IMAGE_KEY].numpy()
    served_probabilities = pushed.signatures["serving_default"](
        image_bytes=raw_bytes)["probabilities"].numpy()
    assert len(trained_images) == len(raw) == 300
    # Beam may reorder records: pair each materialised tensor with the raw image it came from.
    flat_served = served_images.reshape(len(raw), -1)
    for image, label in zip(trained_images, trained_labels):
        distances = np.abs(flat_served - image.reshape(1, -1)).max(axis=1)
        match = int(distances.argmin())
        assert distances[match] <= 1e-5
        assert raw[match][1] == label
        training_path = tf.nn.softmax(pushed.model(image[None], training=False)).numpy()[0]
        np.testing.assert_allclose(training_path, served_probabilities[match], atol=1e-5)


def test_trained_model_beats_chance_on_fresh_generated_images(pushed):
    fresh = list(generate(600, seed=987654))
    out = pushed.signatures["serving_default"](
        image_bytes=tf.constant([r.image for r in fresh]))
    accuracy = float(np.mean(out["class_id"].numpy() == np.array([r.label for r in fresh])))
    print(f"accuracy on 600 fresh generated images after {TRAIN_STEPS} steps: {accuracy:.3f}")
    # Chance is 1/11 (0.09, sd 0.012 over 600 images); 0.25 is over 13 sd above it.
    assert accuracy >= 0.25


def test_an_anomaly_stops_the_run_before_training(tmp_path):
    image = next(generate(1, seed=3)).image
    ph.write_unchecked_records(tmp_path / "data", "train", [(image, 3)] * 20 + [(image, 12)])
    ph.write_unchecked_records(tmp_path / "data", "eval", [(image, 3)] * 5)
    with pytest.raises(DataAnomaliesError) as error:
        ph.run_pipeline(tmp_path, tmp_path / "data", ph.IN_MEMORY_BEAM_ARGS, name="anomaly")
    message = str(error.value)
    assert "split 'train', feature 'label'" in message and "stopping before" in message
    assert not os.path.exists(os.path.join(tmp_path, "pipeline", "Transform"))
    assert not os.path.exists(os.path.join(tmp_path, "pipeline", "SvhnTrainer"))


def test_an_unblessed_model_is_not_pushed_and_the_run_says_why(run):
    """Runs last: re-runs the cached pipeline with an accuracy gate no model can pass."""
    ph.run_pipeline(run, run / "data", ph.MULTI_PROCESS_BEAM_ARGS, train_steps=TRAIN_STEPS,
                    min_accuracy=1.01)
    evaluation = ph.latest_output(run, "SvhnEvaluator", "evaluation")
    with open(os.path.join(evaluation, "metrics.json")) as f:
        report = json.load(f)
    assert report["blessed"] is False
    assert any("below the threshold 1.0100" in gate for gate in report["failed_gates"])
    assert report["baseline"] is not None  # the resolver found the first run's blessed model
    blessing = ph.latest_output(run, "SvhnEvaluator", "blessing")
    assert os.path.isfile(os.path.join(blessing, "NOT_BLESSED"))
    assert len(ph.pushed_versions(run)) == 1  # still only the first run's model
