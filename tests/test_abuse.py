"""Hostile and broken requests against ``svhn-tfx-serve``: every one gets a clear refusal
(never INTERNAL, never a leaked exception), the server answers a good request right after,
keeps its memory bounded, and sheds overload instead of queueing without limit."""
import base64
import json
import shutil
import socket
import threading
import time
import urllib.error
import urllib.request

import grpc
import pytest
import tensorflow as tf
from hypothesis import HealthCheck, given, settings, strategies as st
from tensorflow.core.framework import tensor_pb2, tensor_shape_pb2, types_pb2
from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

from svhn_tfx import schema
from svhn_tfx.serving.client import predict_request, tensor_request
from svhn_tfx.serving.process import ServerProcess
from tests import serving_helpers as sh

MODEL = "svhn"
MAX_IMAGES = 16
MAX_CONCURRENT = 4
REST_TIMEOUT_S = 2
MAX_REQUEST_PIXELS = 100_000   # the sample images (one is 227x227) fit
REFUSALS = {"INVALID_ARGUMENT", "RESOURCE_EXHAUSTED", "NOT_FOUND"}
GOOD = sh.sample_images(2, seed=3)


@pytest.fixture(scope="module")
def server(tmp_path_factory, exported_model):
    root = tmp_path_factory.mktemp("abuse")
    shutil.copytree(exported_model, root / "models" / "1")
    process = ServerProcess(
        str(root / "models"), MODEL, file_system_poll_wait_seconds=0,
        max_images_per_request=MAX_IMAGES, max_request_pixels=MAX_REQUEST_PIXELS,
        max_concurrent_requests=MAX_CONCURRENT, max_enqueued_batches=2, max_batch_size=8,
        rest_timeout_seconds=REST_TIMEOUT_S, max_rest_connections=150)
    yield process
    process.stop()


@pytest.fixture(scope="module")
def stub(server):
    with grpc.insecure_channel(server.grpc_target) as channel:
        yield prediction_service_pb2_grpc.PredictionServiceStub(channel)


def _assert_good_request_works(stub):
    response = stub.Predict(predict_request(GOOD, MODEL), timeout=30)
    assert list(response.outputs["probabilities"].tensor_shape.dim[0:1])[0].size == len(GOOD)


def _refusal(stub, request, signature="serving_default"):
    request.model_spec.name = request.model_spec.name or MODEL
    request.model_spec.signature_name = request.model_spec.signature_name or signature
    try:
        stub.Predict(request, timeout=30)
        return "OK", ""
    except grpc.RpcError as e:
        return e.code().name, e.details()


def _tensor(dtype, dims, **values) -> tensor_pb2.TensorProto:
    proto = tensor_pb2.TensorProto(dtype=dtype, tensor_shape=tensor_shape_pb2.TensorShapeProto(
        dim=[tensor_shape_pb2.TensorShapeProto.Dim(size=d) for d in dims]))
    for field, value in values.items():
        if field == "tensor_content":
            proto.tensor_content = value
        else:
            getattr(proto, field).extend(value)
    return proto


def _request_with(key, proto, signature="serving_default"):
    return tensor_request({key: proto}, MODEL, signature)


def _rss_bytes(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        return next(int(line.split()[1]) * 1024 for line in f if line.startswith("VmRSS"))


# --------------------------------------------------------------------------------- gRPC

def test_a_shape_bomb_is_refused_before_any_allocation(server, stub):
    bomb = _request_with("image_bytes", _tensor(types_pb2.DT_STRING, [1_000_000_000],
                                                string_val=[b"x"]))
    assert bomb.ByteSize() < 60
    rss = _rss_bytes(server.process.pid)
    start = time.perf_counter()
    code, details = _refusal(stub, bomb)
    elapsed = time.perf_counter() - start
    assert code == "INVALID_ARGUMENT", details
    assert "holds 1000000000 values but 1 values were sent" in details
    assert elapsed < 1.0
    assert _rss_bytes(server.process.pid) - rss < 50 << 20
    _assert_good_request_works(stub)


@pytest.mark.parametrize("proto, message", [
    (_tensor(types_pb2.DT_FLOAT, [1], float_val=[1.0]), "expects string but float32 was sent"),
    (_tensor(types_pb2.DT_STRING, [2, 3], string_val=[b"x"] * 6), "has shape [2, 3]"),
    (_tensor(types_pb2.DT_STRING, [], string_val=[b"x"]), "needs a batch dimension"),
    (_tensor(types_pb2.DT_STRING, [3], string_val=[b"x"] * 5), "holds 3 values but 5"),
    (_tensor(types_pb2.DT_STRING, [1], tensor_content=b"abcd"), "not tensor_content"),
])
def test_tensors_that_do_not_fit_the_signature_are_refused_before_conversion(stub, proto,
                                                                              message):
    code, details = _refusal(stub, _request_with("image_bytes", proto))
    assert code == "INVALID_ARGUMENT" and message in details, details
    _assert_good_request_works(stub)


def _example(image: bytes = None, **features) -> bytes:
    feature = {k: tf.train.Feature(bytes_list=tf.train.BytesList(value=v))
               for k, v in features.items()}
    if image is not None:
        feature[schema.IMAGE_KEY] = tf.train.Feature(bytes_list=tf.train.BytesList(value=[image]))
    return tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString()


@pytest.mark.parametrize("examples, code, message", [
    ([_example(GOOD[0]), _example(sh.decompression_bomb_png())], "INVALID_ARGUMENT",
     "inputs[1].image_raw: declares too many pixels"),
    ([_example(sh.decompression_bomb_png(5000, 5000))], "INVALID_ARGUMENT",
     "over the limit of 16777216"),
    ([_example(b"<html>")], "INVALID_ARGUMENT", "inputs[0].image_raw: not a PNG, JPEG"),
    ([_example(other=[b"x"])], "INVALID_ARGUMENT", "needs exactly one 'image_raw'"),
    ([b"\xff\xff\xff not a proto"], "INVALID_ARGUMENT", "not a serialized tf.Example"),
    ([_example(GOOD[0])] * (MAX_IMAGES + 1), "RESOURCE_EXHAUSTED", "limit is 16 per request"),
])
def test_the_classify_signature_gets_the_same_image_checks_through_predict(stub, examples,
                                                                           code, message):
    request = _request_with("inputs", _tensor(types_pb2.DT_STRING, [len(examples)],
                                              string_val=examples), signature="classify")
    got, details = _refusal(stub, request)
    assert got == code and message in details, details
    _assert_good_request_works(stub)


def test_a_request_whose_images_together_decode_too_large_is_refused_before_decoding(stub):
    each = 200 * 200   # under the per-image limit; 3 of them exceed MAX_REQUEST_PIXELS
    images = [sh.decompression_bomb_png(200, 200)] * 3
    assert each < MAX_REQUEST_PIXELS < 3 * each
    code, details = _refusal(stub, predict_request(images, MODEL))
    assert code == "RESOURCE_EXHAUSTED" and "--max_request_pixels" in details, details
    _assert_good_request_works(stub)


_DTYPES = [types_pb2.DT_STRING, types_pb2.DT_FLOAT, types_pb2.DT_INT64, types_pb2.DT_INT32,
           types_pb2.DT_BOOL, types_pb2.DT_DOUBLE, types_pb2.DT_UINT8, 0, 999]
_SOME_BYTES = st.one_of(
    st.binary(max_size=64),
    st.sampled_from(GOOD).map(lambda b: b[:len(b) // 2]),           # truncated images
    st.sampled_from(GOOD),
    st.just(sh.decompression_bomb_png()),
    st.builds(lambda w, h: sh.decompression_bomb_png(w, h), st.integers(0, 70000),
              st.integers(0, 70000)))


@st.composite
def _hostile_predict(draw):
    request = predict_pb2.PredictRequest()
    request.model_spec.name = draw(st.sampled_from([MODEL, MODEL, "other"]))
    request.model_spec.signature_name = draw(st.sampled_from(
        ["", "serving_default", "classify", "preprocess", "nope"]))
    for key in draw(st.lists(st.sampled_from(["image_bytes", "inputs", "x"]), min_size=1,
                             max_size=2, unique=True)):
        dtype = draw(st.sampled_from(_DTYPES))
        dims = draw(st.lists(st.one_of(st.integers(-2, 20), st.integers(0, 1 << 62)),
                             max_size=3))
        proto = _tensor(dtype, dims)
        if draw(st.booleans()):
            proto.string_val.extend(draw(st.lists(_SOME_BYTES, max_size=6)))
        else:
            proto.tensor_content = draw(st.binary(max_size=64))
        request.inputs[key].CopyFrom(proto)
    return request


@settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
@given(request=_hostile_predict())
def test_random_hostile_predict_requests_are_refused_cleanly(stub, request):
    code, details = _refusal(stub, request)
    assert code in REFUSALS | {"OK"}, f"{code}: {details}"
    _assert_good_request_works(stub)


# --------------------------------------------------------------------------------- REST

def _raw_http(server, payload: bytes, read_timeout: float = 10.0) -> bytes:
    with socket.create_connection(("127.0.0.1", server.rest_port), timeout=read_timeout) as s:
        s.sendall(payload)
        chunks = []
        while True:
            try:
                chunk = s.recv(65536)
            except socket.timeout:
                break
            if not chunk:
                break
            chunks.append(chunk)
        return b"".join(chunks)


def _post_head(length: str, extra: str = "") -> bytes:
    return (f"POST /v1/models/{MODEL}:predict HTTP/1.1\r\nHost: x\r\n"
            f"Content-Type: application/json\r\nContent-Length: {length}\r\n{extra}\r\n").encode()


def _rest_predict(server, body, timeout=30):
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    request = urllib.request.Request(f"{server.rest_url}/v1/models/{MODEL}:predict", data=data,
                                     headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"{}")


def _good_rest(server):
    status, answer = _rest_predict(server, {"instances": [
        {"b64": base64.b64encode(b).decode()} for b in GOOD]})
    assert status == 200, answer
    assert len(answer["predictions"]) == len(GOOD)


@pytest.mark.parametrize("length", ["-1", "abc", "1e3", " "])
def test_a_bad_content_length_is_a_400_not_an_unbounded_read(server, length):
    start = time.monotonic()
    answer = _raw_http(server, _post_head(length) + b'{"instances": []}')
    assert answer.startswith(b"HTTP/1.1 400"), answer[:200]
    assert b"Content-Length must be a non-negative integer" in answer or length == " "
    assert time.monotonic() - start < REST_TIMEOUT_S + 1
    _good_rest(server)


def test_a_chunked_body_and_an_oversized_body_are_refused_without_reading_them(server):
    answer = _raw_http(server, (f"POST /v1/models/{MODEL}:predict HTTP/1.1\r\nHost: x\r\n"
                                f"Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"
                                ).encode())
    assert answer.startswith(b"HTTP/1.1 400") and b"Content-Length" in answer
    answer = _raw_http(server, _post_head(str(1 << 40)))
    assert answer.startswith(b"HTTP/1.1 429") and b"--max_request_bytes" in answer
    _good_rest(server)


def test_a_body_that_trickles_in_is_cut_off_at_the_deadline(server):
    with socket.create_connection(("127.0.0.1", server.rest_port), timeout=30) as s:
        s.sendall(_post_head("1000"))
        start = time.monotonic()
        answer = b""
        for _ in range(int(REST_TIMEOUT_S * 4) + 4):   # a byte every 0.5 s, forever
            try:
                s.sendall(b" ")
            except OSError:
                break
            s.settimeout(0.5)
            try:
                answer += s.recv(65536)
            except socket.timeout:
                continue
            if answer:
                s.settimeout(5)
                while chunk := s.recv(65536):   # the rest of the answer, until it closes
                    answer += chunk
                break
        assert answer.startswith(b"HTTP/1.1 400") and b"did not arrive within" in answer
        assert time.monotonic() - start < REST_TIMEOUT_S + 3
    _good_rest(server)


def test_a_hundred_idle_connections_do_not_stop_a_good_request(server):
    idle = [socket.create_connection(("127.0.0.1", server.rest_port)) for _ in range(100)]
    try:
        for s in idle[::2]:
            s.sendall(b"POST /v1/models/svhn:predict HTTP/1.1\r\n")   # half a request
        start = time.monotonic()
        _good_rest(server)
        assert time.monotonic() - start < 5
    finally:
        for s in idle:
            s.close()


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(
        st.sampled_from(["instances", "inputs", "b64", "signature_name", "image_bytes", "x"]),
        children, max_size=3),
    max_leaves=20)


@st.composite
def _hostile_body(draw):
    kind = draw(st.sampled_from(["json", "instances", "bytes", "deep"]))
    if kind == "json":
        return json.dumps(draw(_JSON)).encode()
    if kind == "instances":
        items = draw(st.lists(st.one_of(
            _SOME_BYTES.map(lambda b: {"b64": base64.b64encode(b).decode()}),
            st.just({"b64": "!!notbase64"}), _JSON), max_size=MAX_IMAGES + 2))
        body = {"instances": items}
        if draw(st.booleans()):
            body["signature_name"] = draw(st.sampled_from(["classify", "preprocess", "nope", 7]))
        return json.dumps(body).encode()
    if kind == "deep":
        depth = draw(st.integers(100, 200_000))
        return b'{"instances": ' + b"[" * depth + b"]" * depth + b"}"
    return draw(st.binary(max_size=200))


@settings(max_examples=120, deadline=None, suppress_health_check=list(HealthCheck))
@given(body=_hostile_body())
def test_random_hostile_rest_bodies_are_refused_cleanly(server, body):
    status, answer = _rest_predict(server, body)
    assert status in (200, 400, 404, 429), answer
    assert "Traceback" not in json.dumps(answer)
    _good_rest(server)


# ------------------------------------------------------------------------------ overload

def test_an_overload_burst_is_shed_with_resource_exhausted_and_nothing_hangs(server, stub):
    images = sh.sample_images(6, seed=5)
    results, deadline_s = [], 20

    def client():
        with grpc.insecure_channel(server.grpc_target) as channel:
            burst_stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
            start = time.monotonic()
            try:
                burst_stub.Predict(predict_request(images, MODEL), timeout=deadline_s)
                results.append(("OK", time.monotonic() - start))
            except grpc.RpcError as e:
                results.append((e.code().name, time.monotonic() - start))

    threads = [threading.Thread(target=client) for _ in range(48)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(deadline_s + 10)
    codes = {code for code, _ in results}
    assert len(results) == len(threads)
    assert codes <= {"OK", "RESOURCE_EXHAUSTED"}, codes
    assert "RESOURCE_EXHAUSTED" in codes and "OK" in codes
    assert max(seconds for _, seconds in results) < deadline_s
    _assert_good_request_works(stub)


def test_memory_stays_bounded_over_many_abusive_requests(server, stub):
    bomb = _request_with("image_bytes", _tensor(types_pb2.DT_STRING, [10 ** 9],
                                                string_val=[b"x"]))
    abusive = [bomb, predict_request([sh.decompression_bomb_png()], MODEL),
               predict_request([GOOD[0][:len(GOOD[0]) // 2]] * 8, MODEL),
               predict_request([b"\x89PNG junk"] * MAX_IMAGES, MODEL)]
    _assert_good_request_works(stub)
    before = _rss_bytes(server.process.pid)
    for i in range(400):
        code, details = _refusal(stub, abusive[i % len(abusive)])
        assert code in REFUSALS, details
    _assert_good_request_works(stub)
    assert _rss_bytes(server.process.pid) - before < 100 << 20


# ------------------------------------------------------------------------------- leaks

class _FakeContext:
    def abort(self, code, details):
        self.code, self.details = code, details
        raise grpc.RpcError(details)


def test_an_unexpected_error_answers_internal_with_an_id_and_no_exception_text(caplog):
    from svhn_tfx.serving import grpc_service

    class Exploding:
        @grpc_service._grpc_errors
        def Predict(self, request, context):
            raise RuntimeError("secret: /srv/models/keys.pem")

    context = _FakeContext()
    with pytest.raises(grpc.RpcError):
        Exploding().Predict(None, context)
    assert context.code == grpc.StatusCode.INTERNAL
    assert "secret" not in context.details and "RuntimeError" not in context.details
    error_id = context.details.split("id ")[-1]
    logged = [r for r in caplog.records if error_id in r.getMessage()]
    assert logged and "secret: /srv/models/keys.pem" in logged[0].exc_text


def test_a_version_that_fails_warm_up_starts_no_threads(exported_model, monkeypatch):
    from svhn_tfx.serving import servable
    from svhn_tfx.serving.limits import Limits

    def failing_warm_up(self):
        raise RuntimeError("warm-up failed")

    monkeypatch.setattr(servable.Servable, "_warm_up", failing_warm_up)
    before = threading.active_count()
    for _ in range(3):   # the model store retries a failed version when its files change
        with pytest.raises(RuntimeError, match="warm-up failed"):
            servable.Servable(exported_model, 1, Limits(), max_batch_size=8,
                              batch_timeout_s=0.001, num_batch_threads=2)
    assert threading.active_count() == before
