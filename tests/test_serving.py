"""The served model over TF Serving's gRPC and REST APIs: raw image bytes in, answers out.

One server process for the module; every bad request is followed by a good one to show
the server kept serving. Where the real ``tensorflow_model_server`` is on PATH, the
round-trip also runs against it with the same model directory.
"""
import base64
import json
import os
import shutil
import threading
import time
import urllib.error
import urllib.request

import grpc
import numpy as np
import pytest
import tensorflow as tf
from tensorflow_serving.apis import (classification_pb2, get_model_metadata_pb2,
                                     get_model_status_pb2, model_service_pb2_grpc,
                                     prediction_service_pb2_grpc)

from svhn_tfx import schema
from svhn_tfx.serving.client import predict_bytes, predict_request, tensor_request
from svhn_tfx.serving.process import ServerProcess
from svhn_tfx.schema.images import encode
from tests import serving_helpers as sh

POLL_S = 0.5
MODEL = "svhn"


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory, exported_model):
    root = tmp_path_factory.mktemp("serving")
    shutil.copytree(exported_model, root / "models" / "1")
    return root


@pytest.fixture(scope="module")
def server(model_dir):
    process = ServerProcess(str(model_dir / "models"), MODEL,
                               file_system_poll_wait_seconds=POLL_S, max_images_per_request=64,
                               max_image_bytes=1 << 20)
    yield process
    process.stop()


@pytest.fixture(scope="module")
def in_process(model_dir):
    return tf.saved_model.load(str(model_dir / "models" / "1"))


@pytest.fixture(scope="module")
def stub(server):
    with grpc.insecure_channel(server.grpc_target) as channel:
        yield prediction_service_pb2_grpc.PredictionServiceStub(channel)


def _expected(in_process, images):
    out = in_process.signatures["serving_default"](image_bytes=tf.constant(images))
    return {k: v.numpy() for k, v in out.items()}


def _rest(server, path, body=None):
    data = None if body is None else (body if isinstance(body, bytes) else
                                      json.dumps(body).encode())
    request = urllib.request.Request(server.rest_url + path, data=data)
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.load(response)
    except urllib.error.HTTPError as e:
        return e.code, json.load(e)


def _assert_still_serving(stub):
    response = stub.Predict(predict_request(sh.sample_images(1), MODEL), timeout=30)
    assert tf.make_ndarray(response.outputs["probabilities"]).shape == (1, schema.NUM_CLASSES)


def test_grpc_predict_equals_the_saved_model_in_process(stub, in_process):
    images = sh.sample_images(6)  # PNG and JPEG; 32, 227, 20x50; grey, RGB, RGBA
    response = stub.Predict(predict_request(images, MODEL), timeout=30)
    expected = _expected(in_process, images)
    assert set(response.outputs) == set(expected)
    for key, value in expected.items():
        np.testing.assert_allclose(tf.make_ndarray(response.outputs[key]), value, atol=1e-6)
    assert response.model_spec.version.value == 1
    assert response.model_spec.signature_name == "serving_default"


def test_client_library_reads_files_and_sends_bytes(server, in_process, tmp_path):
    from svhn_tfx.serving.client import predict_files
    images = sh.sample_images(3, seed=5)
    paths = []
    for i, data in enumerate(images):
        paths.append(str(tmp_path / f"img{i}"))
        with open(paths[-1], "wb") as f:
            f.write(data)
    results = predict_files(server.grpc_target, paths, model_name=MODEL)
    expected = _expected(in_process, images)
    for result, probabilities in zip(results, expected["probabilities"]):
        assert result["class_id"] == int(probabilities.argmax())
        assert result["probability"] == pytest.approx(float(probabilities.max()), abs=1e-6)
        assert [p for _, p in result["top3"]] == sorted(
            [p for _, p in result["top3"]], reverse=True)


def test_predict_other_signatures_by_name(stub, in_process):
    images = sh.sample_images(2)
    response = stub.Predict(predict_request(images, MODEL, signature_name="preprocess"),
                            timeout=30)
    expected = in_process.signatures["preprocess"](image_bytes=tf.constant(images))["image"]
    np.testing.assert_allclose(tf.make_ndarray(response.outputs["image"]), expected.numpy(),
                               atol=1e-6)


@pytest.mark.parametrize("row_format", [True, False])
def test_rest_predict_with_base64_equals_in_process(server, in_process, row_format):
    images = sh.sample_images(4, seed=2)
    b64 = [{"b64": base64.b64encode(i).decode()} for i in images]
    body = {"instances": b64} if row_format else {"inputs": {"image_bytes": b64}}
    status, answer = _rest(server, f"/v1/models/{MODEL}:predict", body)
    assert status == 200, answer
    expected = _expected(in_process, images)
    if row_format:
        got = np.array([p["probabilities"] for p in answer["predictions"]])
    else:
        got = np.array(answer["outputs"]["probabilities"])
    np.testing.assert_allclose(got, expected["probabilities"], atol=1e-6)


def test_classify_api_with_tf_examples(stub, in_process):
    images = sh.sample_images(3, seed=3)
    request = classification_pb2.ClassificationRequest()
    request.model_spec.name = MODEL
    request.model_spec.signature_name = "classify"
    for image in images:
        example = request.input.example_list.examples.add()
        example.features.feature[schema.IMAGE_KEY].bytes_list.value.append(image)
    response = stub.Classify(request, timeout=30)
    expected = _expected(in_process, images)["probabilities"]
    for result, probabilities in zip(response.result.classifications, expected):
        scores = [c.score for c in result.classes]
        np.testing.assert_allclose(scores, probabilities, atol=1e-6)
        assert [c.label for c in result.classes][schema.NO_DIGIT] == "none"


def test_metadata_shows_the_raw_bytes_input(stub, server):
    request = get_model_metadata_pb2.GetModelMetadataRequest(metadata_field=["signature_def"])
    request.model_spec.name = MODEL
    response = stub.GetModelMetadata(request, timeout=30)
    signatures = get_model_metadata_pb2.SignatureDefMap()
    response.metadata["signature_def"].Unpack(signatures)
    serving = signatures.signature_def["serving_default"]
    assert list(serving.inputs) == ["image_bytes"]
    assert serving.inputs["image_bytes"].dtype == tf.string.as_datatype_enum
    assert [d.size for d in serving.inputs["image_bytes"].tensor_shape.dim] == [-1]
    assert {"probabilities", "class_id", "confidence"} <= set(serving.outputs)
    status, answer = _rest(server, f"/v1/models/{MODEL}/metadata")
    assert status == 200
    rest_inputs = answer["metadata"]["signature_def"]["signature_def"]["serving_default"]["inputs"]
    assert rest_inputs["image_bytes"]["dtype"] == "DT_STRING"


def test_model_status_is_available(server):
    with grpc.insecure_channel(server.grpc_target) as channel:
        stub = model_service_pb2_grpc.ModelServiceStub(channel)
        request = get_model_status_pb2.GetModelStatusRequest()
        request.model_spec.name = MODEL
        (status,) = stub.GetModelStatus(request, timeout=30).model_version_status
    assert status.version == 1
    assert status.state == get_model_status_pb2.ModelVersionStatus.AVAILABLE
    code, answer = _rest(server, f"/v1/models/{MODEL}")
    assert code == 200
    assert answer["model_version_status"][0]["state"] == "AVAILABLE"


def _bad_requests():
    good = sh.sample_images(1)[0]
    png = encode(np.zeros((64, 64, 3), np.uint8))
    jpeg = encode(np.random.default_rng(0).integers(0, 256, (64, 64, 3), np.uint8), "JPEG")
    return {
        "not an image": ([good, b"<html>not an image</html>"], "INVALID_ARGUMENT",
                         "image_bytes[1]: not a PNG, JPEG, GIF or BMP file"),
        "truncated PNG": ([png[:len(png) // 2]], "INVALID_ARGUMENT",
                          "image_bytes[0]: the model's graph cannot read it"),
        "truncated JPEG": ([good, good, jpeg[:len(jpeg) // 2]], "INVALID_ARGUMENT",
                           "image_bytes[2]: the model's graph cannot read it"),
        "JPEG cut in its header": ([good, jpeg[:40]], "INVALID_ARGUMENT",
                                   "image_bytes[1]: corrupt or truncated JPEG header"),
        "empty bytes": ([b""], "INVALID_ARGUMENT", "image_bytes[0]: empty bytes"),
        "decompression bomb": ([sh.decompression_bomb_png()], "INVALID_ARGUMENT",
                               "refused before decoding"),
        "too many pixels": ([sh.decompression_bomb_png(5000, 5000)], "INVALID_ARGUMENT",
                            "over the limit of 16777216"),
        "image over the byte limit": ([b"\x89PNG" + b"\x00" * (1 << 20)], "INVALID_ARGUMENT",
                                      "limit of 1048576 bytes"),
        "too many images": ([good] * 65, "RESOURCE_EXHAUSTED", "limit is 64 per request"),
    }


@pytest.mark.parametrize("case", list(_bad_requests()))
def test_bad_images_are_refused_by_name_and_the_server_keeps_serving(stub, case):
    images, code, message = _bad_requests()[case]
    with pytest.raises(grpc.RpcError) as error:
        stub.Predict(predict_request(images, MODEL), timeout=30)
    assert error.value.code().name == code, error.value.details()
    assert message in error.value.details()
    _assert_still_serving(stub)


def _request(inputs, signature="serving_default", model=MODEL, version=None):
    return tensor_request({key: tf.make_tensor_proto(value) for key, value in inputs.items()},
                          model, signature, version)


@pytest.mark.parametrize("case, request_args, code, message", [
    ("pixels instead of bytes", dict(inputs={"image_bytes": np.zeros((1, 32, 32, 3), np.float32)}),
     "INVALID_ARGUMENT", "expects string but float32 was sent"),
    ("wrong input key", dict(inputs={"images": [b"x"]}), "INVALID_ARGUMENT",
     "input 'images' is not an input of this signature; it takes ['image_bytes']"),
    ("unknown signature", dict(signature="nope"), "INVALID_ARGUMENT",
     'signature key "nope" not found'),
    ("unknown model", dict(model="mnist"), "NOT_FOUND", "model 'mnist'"),
    ("unknown version", dict(version=99), "NOT_FOUND", "version 99"),
])
def test_bad_requests_get_tf_serving_status_codes(stub, case, request_args, code, message):
    request_args.setdefault("inputs", {"image_bytes": sh.sample_images(1)})
    with pytest.raises(grpc.RpcError) as error:
        stub.Predict(_request(**request_args), timeout=30)
    assert error.value.code().name == code, error.value.details()
    assert message in error.value.details()
    _assert_still_serving(stub)


@pytest.mark.parametrize("path, body, code, message", [
    (f"/v1/models/{MODEL}:predict", b"{not json", 400, "not JSON"),
    (f"/v1/models/{MODEL}:predict", {"instances": [{"b64": "!!!"}]}, 400, "not valid base64"),
    (f"/v1/models/{MODEL}:predict", {"instances": [{"b64": base64.b64encode(b"GIF89a").decode()}]},
     400, "image_bytes[0]"),
    (f"/v1/models/{MODEL}:predict", {"instances": [[[0.5, 0.5, 0.5]]]}, 400, "expects strings"),
    ("/v1/models/mnist:predict", {"instances": [{"b64": ""}]}, 404, "model 'mnist'"),
    (f"/v1/models/{MODEL}/versions/7", None, 404, "version 7"),
])
def test_rest_errors(server, stub, path, body, code, message):
    status, answer = _rest(server, path, body)
    assert status == code, answer
    assert message in answer["error"]
    _assert_still_serving(stub)


def test_concurrent_good_and_bad_requests_share_batches_without_harm(server):
    """Bad requests mixed into a stream of concurrent good ones: every good one succeeds."""
    good, bad = sh.sample_images(4, seed=9), [b"junk"]
    errors, codes = [], []

    def worker(i):
        with grpc.insecure_channel(server.grpc_target) as channel:
            client = prediction_service_pb2_grpc.PredictionServiceStub(channel)
            for j in range(10):
                is_bad = (i + j) % 4 == 0
                try:
                    client.Predict(predict_request(bad if is_bad else good, MODEL), timeout=30)
                    if is_bad:
                        errors.append("bad request accepted")
                except grpc.RpcError as e:
                    (codes if is_bad else errors).append(e.code().name if is_bad else e.details())

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert codes and set(codes) == {"INVALID_ARGUMENT"}


def test_hot_reload_without_failing_a_request(server, model_dir):
    """A new version appears while a client loop runs: no request fails, and the new
    version answers within the poll interval plus its load time."""
    failures, versions, stop = [], [], threading.Event()
    images = sh.sample_images(2)

    def loop():
        with grpc.insecure_channel(server.grpc_target) as channel:
            client = prediction_service_pb2_grpc.PredictionServiceStub(channel)
            while not stop.is_set():
                try:
                    response = client.Predict(predict_request(images, MODEL), timeout=30)
                    versions.append(response.model_spec.version.value)
                except grpc.RpcError as e:
                    failures.append(f"{e.code().name}: {e.details()}")

    clients = [threading.Thread(target=loop) for _ in range(3)]
    for c in clients:
        c.start()
    try:
        time.sleep(1)
        models = model_dir / "models"
        # A broken version first: it must be refused while version 1 keeps serving.
        os.makedirs(models / "2")
        (models / "2" / "saved_model.pb").write_bytes(b"not a SavedModel")
        time.sleep(4 * POLL_S)
        assert versions and set(versions) == {1}
        shutil.rmtree(models / "2")
        pushed_at = time.time()
        sh.copy_version(str(models / "1"), str(models / "3"))
        deadline = pushed_at + 60
        while time.time() < deadline and (not versions or versions[-1] != 3):
            time.sleep(0.1)
        took = time.time() - pushed_at
        time.sleep(0.5)
    finally:
        stop.set()
        for c in clients:
            c.join()
    print(f"hot reload: {len(versions)} requests, version 3 answered {took:.1f} s after push")
    assert failures == []
    assert versions[-1] == 3, f"version 3 not served within 60 s: {sorted(set(versions))}"
    assert "could not load svhn version 2" in server.logs()
    # Both versions stay addressable by number.
    with grpc.insecure_channel(server.grpc_target) as channel:
        client = prediction_service_pb2_grpc.PredictionServiceStub(channel)
        response = client.Predict(predict_request(images, MODEL, version=1), timeout=30)
    assert response.model_spec.version.value == 1


def test_load_with_8_concurrent_clients_has_no_errors(server):
    from svhn_tfx.serving.load import run_load
    result = run_load(server.grpc_target, MODEL, sh.sample_images(1), clients=8, seconds=3)
    print(f"load test (8 clients, 3 s): {result}")
    assert result["errors"] == 0
    assert result["requests"] > 0


def test_server_process_is_still_up(server):
    assert server.process.poll() is None


@pytest.mark.skipif(shutil.which("tensorflow_model_server") is None,
                    reason="tensorflow_model_server is not on PATH (no package for this OS; "
                           "see README for the Docker command)")
def test_the_same_round_trip_against_real_tf_serving(model_dir, in_process, tmp_path):
    real = ServerProcess(str(model_dir / "models"), MODEL,
                            binary=shutil.which("tensorflow_model_server"),
                            log_path=str(tmp_path / "tf_serving.log"))
    try:
        images = sh.sample_images(6)
        results = predict_bytes(real.grpc_target, images, model_name=MODEL, version=1)
        expected = _expected(in_process, images)["probabilities"]
        np.testing.assert_allclose([r["probabilities"] for r in results], expected, atol=1e-5)
    finally:
        real.stop()
