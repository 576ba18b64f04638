"""Serving metrics, TF Serving's way (``--monitoring_config_file``, Prometheus text on the REST
port), read back with a real Prometheus parser; and the drift gauge, flipped by the pictures."""
import base64
import json
import os
import shutil
import urllib.request

import grpc
import numpy as np
import pytest
from prometheus_client.parser import text_string_to_metric_families
from tensorflow_serving.apis import prediction_service_pb2_grpc

from svhn_tfx.schema.images import encode
from svhn_tfx.schema.signatures import ANSWER_KINDS, ANSWER_SHARES, CALIBRATION_ASSET
from svhn_tfx.serving.client import predict_request
from svhn_tfx.serving.metrics import ServingMetrics, parse_monitoring_config
from svhn_tfx.serving.process import ServerProcess
from tests import serving_helpers as sh

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PRETRAINED = os.path.join(REPO, "pretrained")
MODEL = "svhn"
METRICS_PATH = "/monitoring/prometheus/metrics"
CONFIG = f'prometheus_config {{\n  enable: true,\n  path: "{METRICS_PATH}"\n}}\n'
DRIFT_WINDOW = 20


def _scrape(server) -> dict:
    """{family name: [samples]} parsed by prometheus_client's text parser."""
    with urllib.request.urlopen(server.rest_url + METRICS_PATH, timeout=30) as response:
        assert response.headers["Content-Type"].startswith("text/plain")
        text = response.read().decode()
    return {f.name: f.samples for f in text_string_to_metric_families(text)}


def _value(families, sample_name, **labels) -> float:
    family = sample_name
    for suffix in ("_total", "_bucket", "_count", "_sum"):
        if sample_name.endswith(suffix) and sample_name[:-len(suffix)] in families:
            family = sample_name[:-len(suffix)]
    return sum(s.value for s in families.get(family, []) if s.name == sample_name
               and all(s.labels.get(k) == str(v) for k, v in labels.items()))


def _config_file(tmp_path) -> str:
    path = tmp_path / "monitoring.config"
    path.write_text(CONFIG)
    return str(path)


@pytest.fixture(scope="module")
def server(tmp_path_factory, exported_model):
    root = tmp_path_factory.mktemp("metrics")
    shutil.copytree(exported_model, root / "models" / "1")
    process = ServerProcess(str(root / "models"), MODEL, file_system_poll_wait_seconds=0,
                            monitoring_config_file=_config_file(root), max_batch_size=8)
    yield process
    process.stop()


def test_the_monitoring_config_is_tf_serving_s_format():
    assert parse_monitoring_config(CONFIG) == METRICS_PATH
    assert parse_monitoring_config("prometheus_config { enable: true }") == METRICS_PATH
    assert parse_monitoring_config('prometheus_config { enable: false path: "/m" }') is None
    with pytest.raises(ValueError, match="unknown prometheus_config fields"):
        parse_monitoring_config("prometheus_config { enable: true, port: 9 }")
    with pytest.raises(ValueError, match="not a MonitoringConfig"):
        parse_monitoring_config("logging_config { }")


def test_request_counts_latency_and_batch_sizes_move_with_requests(server):
    before = _scrape(server)
    images = sh.sample_images(3, seed=5)
    with grpc.insecure_channel(server.grpc_target) as channel:
        stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
        for _ in range(4):
            stub.Predict(predict_request(images, MODEL), timeout=30)
        with pytest.raises(grpc.RpcError) as bad:
            stub.Predict(predict_request([b"not an image"], MODEL), timeout=30)
        assert bad.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        with pytest.raises(grpc.RpcError) as missing:
            stub.Predict(predict_request(images, "no-such-model"), timeout=30)
        assert missing.value.code() == grpc.StatusCode.NOT_FOUND
    rest = urllib.request.Request(
        f"{server.rest_url}/v1/models/{MODEL}:predict", method="POST",
        data=json.dumps({"instances": [{"b64": base64.b64encode(images[0]).decode()}]}).encode())
    with urllib.request.urlopen(rest, timeout=30) as response:
        assert response.status == 200
    after = _scrape(server)

    def moved(name, **labels):
        return _value(after, name, **labels) - _value(before, name, **labels)

    counter = ":tensorflow:serving:request_count_total"
    ok = dict(model_name=MODEL, model_version=1, signature_name="serving_default",
              API="predict", status="OK")
    assert moved(counter, entrypoint="GRPC", **ok) == 4
    assert moved(counter, entrypoint="REST", **ok) == 1
    assert moved(counter, entrypoint="GRPC", API="predict",
                 status="INVALID_ARGUMENT") == 1
    assert moved(counter, entrypoint="GRPC", model_name="no-such-model",
                 status="NOT_FOUND") == 1
    latency = ":tensorflow:serving:request_latency"
    assert moved(latency + "_count", model_name=MODEL, API="predict", entrypoint="GRPC") == 5
    assert moved(latency + "_sum", model_name=MODEL, API="predict", entrypoint="GRPC") > 0
    batches = ":tensorflow:serving:batching_session:input_batch_size"
    # 4 good requests of 3 images and 1 of 1 (refused by the graph) reached the model
    assert moved(batches + "_sum", model_name=MODEL, signature_name="serving_default") >= 13
    assert moved(batches + "_count", model_name=MODEL, signature_name="serving_default") >= 1
    assert _value(after, "svhn_tfx_model_version_loaded", model_name=MODEL,
                  model_version=1) == 1
    # the exported test model records no answer shares: counted, but drift is not judged
    assert _value(after, "svhn_tfx_answer_window", model_name=MODEL) > 0
    assert _value(after, "svhn_tfx_drift", model_name=MODEL) == 0
    assert "svhn_tfx_answer_share_expected" not in after or not after[
        "svhn_tfx_answer_share_expected"]


def test_metrics_are_off_without_a_monitoring_config(tmp_path, exported_model):
    shutil.copytree(exported_model, tmp_path / "models" / "1")
    process = ServerProcess(str(tmp_path / "models"), MODEL, file_system_poll_wait_seconds=0)
    try:
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(process.rest_url + METRICS_PATH, timeout=30)
        assert refused.value.code == 404
    finally:
        process.stop()


def test_drift_window_flags_a_window_unlike_the_held_out_shares():
    metrics = ServingMetrics(drift_window=4, drift_margin=0.3)
    expected = {"no_digit": 0.1, "abstain": 0.2}
    digits = {"class_id": np.array([3, 4]), "digit": np.array([3, 4]),
              "confidence": np.array([0.99, 0.98])}
    nothing = {"class_id": np.array([10, 10]), "digit": np.array([-1, -1]),
               "confidence": np.array([0.9, 0.95])}
    metrics.record_answers(MODEL, nothing, expected)
    assert metrics.drift.render().endswith(" 0")          # half a window: not judged yet
    metrics.record_answers(MODEL, nothing, expected)
    assert metrics.drift.render().endswith(" 1")
    metrics.record_answers(MODEL, digits, expected)       # window: 2 nothing, 2 digits
    assert metrics.drift.render().endswith(" 1")          # no-digit 0.5 vs 0.1: still off
    metrics.record_answers(MODEL, digits, expected)
    assert metrics.drift.render().endswith(" 0")
    metrics.record_answers(MODEL, nothing, expected)
    metrics.record_answers(MODEL, nothing, expected)
    assert metrics.drift.render().endswith(" 1")
    metrics.record_answers(MODEL, nothing, None)           # a version without shares
    assert metrics.drift.render().endswith(" 0")          # ends the drift: nothing to judge
    with pytest.raises(ValueError, match="drift_margin"):
        ServingMetrics(drift_window=10, drift_margin=1.5)


@pytest.fixture(scope="module")
def trained_model(tmp_path_factory):
    """The repository's pretrained weights behind the real export, with the answer shares
    the trainer records (set here, so the test knows them)."""
    with open(os.path.join(PRETRAINED, "calibration.json")) as f:
        calibration = json.load(f)
    calibration[ANSWER_SHARES] = {"no_digit": 0.15, "abstain": 0.25}
    root = tmp_path_factory.mktemp("trained")
    return sh.export_model(str(root / "models" / "1"), str(root / "work"),
                           calibration["temperature"],
                           os.path.join(PRETRAINED, "weights.h5"),
                           calibration["abstain_threshold"], calibration)


def _digits(count: int) -> list:
    from svhn_tfx.components.generator.settings import GeneratorSettings
    from svhn_tfx.components.generator.synthetic import render_example
    rng = np.random.default_rng(11)
    clean = GeneratorSettings(distortions=False, low_contrast_fraction=0.0,
                              neighbours=False, clutter_probability=0.0)
    return [encode(render_example(rng, clean, int(rng.integers(10)))) for _ in range(count)]


def _blank_walls(count: int) -> list:
    rng = np.random.default_rng(12)
    return [encode(np.full((32, 32, 3), rng.integers(30, 230, 3), np.uint8))
            for _ in range(count)]


def test_the_drift_gauge_flips_on_for_no_digit_pictures_and_back_off_for_digits(
        tmp_path, trained_model):
    with open(os.path.join(trained_model, CALIBRATION_ASSET)) as f:
        assert set(json.load(f)[ANSWER_SHARES]) == set(ANSWER_KINDS)
    process = ServerProcess(os.path.dirname(trained_model), MODEL,
                            file_system_poll_wait_seconds=0, log_path=str(tmp_path / "log"),
                            monitoring_config_file=_config_file(tmp_path),
                            drift_window=DRIFT_WINDOW, drift_margin=0.3)
    try:
        with grpc.insecure_channel(process.grpc_target) as channel:
            stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)

            def send(images):
                for i in range(0, len(images), 5):
                    stub.Predict(predict_request(images[i:i + 5], MODEL), timeout=60)
                return _scrape(process)

            calm = send(_digits(DRIFT_WINDOW))
            assert _value(calm, "svhn_tfx_drift", model_name=MODEL) == 0
            assert _value(calm, "svhn_tfx_answer_share_expected", model_name=MODEL,
                          kind="no_digit") == pytest.approx(0.15)
            walls = send(_blank_walls(DRIFT_WINDOW))
            assert _value(walls, "svhn_tfx_answer_share", model_name=MODEL,
                          kind="no_digit") > 0.45
            assert _value(walls, "svhn_tfx_drift", model_name=MODEL) == 1
            back = send(_digits(DRIFT_WINDOW))
            assert _value(back, "svhn_tfx_drift", model_name=MODEL) == 0
            assert _value(back, "svhn_tfx_answer_confidence_count", model_name=MODEL) == \
                3 * DRIFT_WINDOW
    finally:
        process.stop()
    log = process.logs()
    assert log.count("drift: model svhn") == 1 and log.count("drift over: model svhn") == 1
