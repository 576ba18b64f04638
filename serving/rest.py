"""TF Serving's REST API on a second port: predict, model status and metadata.

  POST /v1/models/<name>[/versions/<v>]:predict   {"instances": [...]} or {"inputs": ...}
  GET  /v1/models/<name>[/versions/<v>]           model status
  GET  /v1/models/<name>[/versions/<v>]/metadata  signature defs
  GET  /monitoring/prometheus/metrics              Prometheus metrics (the path the
                                                   --monitoring_config_file enables)

Binary values travel as {"b64": "<base64>"}, exactly as TF Serving expects them.
"""
import base64
import http.server
import json
import logging
import re
import threading
import time

import numpy as np
import tensorflow as tf
from google.protobuf import json_format

from svhn_tfx.serving.errors import ServingError, internal, invalid, not_found, overloaded, too_large
from svhn_tfx.serving.grpc_service import model_status
from svhn_tfx.serving.limits import Limits
from svhn_tfx.serving.metrics import CONTENT_TYPE, RequestTimer, ServingMetrics
from svhn_tfx.serving.model_store import ModelStore
from svhn_tfx.serving.servable import DEFAULT_SIGNATURE

DEFAULT_TIMEOUT_S = 30.0             # idle keep-alive, and the longest a body may take to arrive
DEFAULT_MAX_CONCURRENT_REQUESTS = 64
DEFAULT_MAX_CONNECTIONS = 512        # open connections (threads), idle ones included
READ_CHUNK = 1 << 16
_BUSY_BODY = b'{"error": "too many open connections; retry later"}\n'
_BUSY_RESPONSE = (b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n"
                  b"Content-Length: %d\r\nConnection: close\r\n\r\n" % len(_BUSY_BODY)
                  + _BUSY_BODY)
_PATH = re.compile(r"^/v1/models/(?P<name>[^/:]+)(?:/versions/(?P<version>\d+))?"
                   r"(?P<rest>/metadata|:predict)?$")


def _decode_value(value):
    """JSON value -> Python value, turning {"b64": ...} into bytes (recursively)."""
    if isinstance(value, dict):
        if set(value) == {"b64"}:
            try:
                return base64.b64decode(value["b64"], validate=True)
            except Exception:
                raise invalid("a {\"b64\": ...} value is not valid base64") from None
        raise invalid(f"unexpected object {sorted(value)}; binary values are {{\"b64\": ...}}")
    if isinstance(value, list):
        return [_decode_value(v) for v in value]
    return value


def _to_array(key: str, values, dtype) -> np.ndarray:
    if dtype == tf.string:
        array = np.empty(len(values), dtype=object)
        for i, v in enumerate(values):
            if isinstance(v, str):
                v = v.encode()
            array[i] = v
        if not all(isinstance(v, bytes) for v in array):
            raise invalid(f"input '{key}' expects strings or {{\"b64\": ...}} values")
        return array
    try:
        return np.asarray(values, dtype=dtype.as_numpy_dtype)
    except (TypeError, ValueError) as e:
        raise invalid(f"input '{key}' expects {dtype.name}: {e}") from None


def _encode_output(key: str, value: np.ndarray):
    if value.dtype == object:  # strings: TF Serving base64-encodes outputs named *_bytes
        encode = (lambda b: {"b64": base64.b64encode(b).decode()}) if key.endswith("_bytes") \
            else (lambda b: b.decode("utf-8", "replace"))
        return np.vectorize(encode, otypes=[object])(value).tolist() if value.size else []
    return value.tolist()


def parse_predict_body(body: dict, signature_def, limits: Limits):
    """Row ("instances") or columnar ("inputs") request -> {input name: array}. The number
    of rows is checked before any value is decoded."""
    dtypes = {k: tf.dtypes.as_dtype(v.dtype) for k, v in signature_def.inputs.items()}
    if ("instances" in body) == ("inputs" in body):
        raise invalid('the request body needs exactly one of "instances" or "inputs"')
    if "instances" in body:
        raw = body["instances"]
        if not isinstance(raw, list) or not raw:
            raise invalid('"instances" must be a non-empty list')
        limits.check_request_size(len(raw))
        instances = _decode_value(raw)
        if all(isinstance(i, dict) and set(i) != {"b64"} for i in raw):  # named inputs
            columns = {k: [i.get(k) for i in instances] for k in instances[0]}
        elif len(dtypes) == 1:
            columns = {next(iter(dtypes)): instances}
        else:
            raise invalid(f"this signature has inputs {sorted(dtypes)}: name them in each instance")
        return {k: _to_array(k, v, dtypes.get(k, tf.string)) for k, v in columns.items()}, True
    raw = body["inputs"]
    for column in (raw.values() if isinstance(raw, dict) and set(raw) != {"b64"} else [raw]):
        if isinstance(column, list):
            limits.check_request_size(len(column))
    if isinstance(raw, dict) and set(raw) != {"b64"}:  # named inputs
        inputs = {k: _decode_value(v) for k, v in raw.items()}
    elif len(dtypes) == 1:
        inputs = {next(iter(dtypes)): _decode_value(raw)}
    else:
        raise invalid(f"this signature has inputs {sorted(dtypes)}: name them in \"inputs\"")
    return {k: _to_array(k, v if isinstance(v, list) else [v], dtypes.get(k, tf.string))
            for k, v in inputs.items()}, False


def make_handler(store: ModelStore, limits: Limits, timeout_s: float,
                 max_concurrent_requests: int, metrics: ServingMetrics = None,
                 metrics_path: str = None):
    busy = threading.BoundedSemaphore(max_concurrent_requests)

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        timeout = timeout_s   # per socket read/write: an idle or stalled connection is closed

        def log_message(self, fmt, *args):  # access logs only at debug level
            logging.debug("REST %s - " + fmt, self.address_string(), *args)

        def do_GET(self):
            if metrics_path and self.path.split("?")[0] == metrics_path:
                self._send(200, metrics.render().encode(), CONTENT_TYPE)
                return
            self._respond(self._get)

        def do_POST(self):
            self._respond(self._post)

        def _route(self):
            match = _PATH.match(self.path.split("?")[0])
            if not match:
                raise not_found(f"unknown path {self.path}; see /v1/models/<name>[:predict]")
            version = int(match["version"]) if match["version"] else None
            rest = match["rest"] or ""
            self._timer.model_name = match["name"]
            self._timer.api = {":predict": "predict", "/metadata": "get_model_metadata"}.get(
                rest, "get_model_status")
            return match["name"], version, rest

        def _get(self):
            name, version, rest = self._route()
            if rest == ":predict":
                raise invalid("predict needs POST")
            if rest == "/metadata":
                servable = store.get(name, version)
                self._timer.version = servable.version
                return {"model_spec": {"name": name, "signature_name": "",
                                       "version": str(servable.version)},
                        "metadata": {"signature_def": {"signature_def": {
                            k: json_format.MessageToDict(v, preserving_proto_field_name=True)
                            for k, v in servable.signature_defs.items()}}}}
            status = json_format.MessageToDict(model_status(store, name, version),
                                               including_default_value_fields=True)
            for entry in status["model_version_status"]:
                entry["status"] = {"error_code": "OK", "error_message": ""}
            return status

        def _read_body(self) -> bytes:
            """The body, within the size limit and a whole-body deadline (a client sending
            a byte at a time cannot hold the connection for longer)."""
            if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
                raise invalid("send the body with a Content-Length, not chunked")
            declared = (self.headers.get("Content-Length") or "0").strip()
            if not declared.isdigit():
                raise invalid(f"Content-Length must be a non-negative integer, got "
                              f"{declared[:40]!r}")
            length = int(declared)
            if length > limits.max_request_bytes:
                raise too_large(f"request body of {length} bytes is over the limit of "
                                f"{limits.max_request_bytes} bytes (--max_request_bytes)")
            deadline = time.monotonic() + timeout_s
            chunks, remaining = [], length
            while remaining:
                if time.monotonic() > deadline:
                    raise invalid(f"the request body did not arrive within {timeout_s:g} s")
                try:
                    chunk = self.rfile.read1(min(remaining, READ_CHUNK))
                except OSError:   # the socket timeout: nothing arrived for timeout_s
                    chunk = None
                if chunk is None:
                    raise invalid(f"the request body did not arrive within {timeout_s:g} s")
                if not chunk:
                    raise invalid(f"the connection closed after {length - remaining} of "
                                  f"{length} body bytes")
                chunks.append(chunk)
                remaining -= len(chunk)
            return b"".join(chunks)

        def _post(self):
            name, version, rest = self._route()
            if rest != ":predict":
                raise not_found(f"unknown method for POST {self.path}; use :predict")
            raw = self._read_body()
            if not busy.acquire(blocking=False):
                raise overloaded(f"the server is answering {max_concurrent_requests} REST "
                                 f"requests already; retry later")
            try:
                return self._predict(name, version, raw)
            finally:
                busy.release()

        def _predict(self, name, version, raw: bytes):
            try:
                body = json.loads(raw or b"null")
            except (ValueError, RecursionError) as e:
                raise invalid(f"the request body is not JSON: {str(e)[:200]}") from None
            if not isinstance(body, dict):
                raise invalid('the request body must be a JSON object with "instances" or "inputs"')
            servable = store.get(name, version)
            self._timer.version = servable.version
            signature_name = body.get("signature_name") or DEFAULT_SIGNATURE
            if not isinstance(signature_name, str):
                raise invalid('"signature_name" must be a string')
            self._timer.signature_name = signature_name
            try:
                inputs, row_format = parse_predict_body(
                    body, servable.signature_def(signature_name), limits)
            except RecursionError:
                raise invalid("the request's values are nested too deeply") from None
            outputs = servable.predict(signature_name, inputs)
            encoded = {k: _encode_output(k, v) for k, v in outputs.items()}
            if not row_format:
                return {"outputs": encoded if len(encoded) > 1 else next(iter(encoded.values()))}
            if len(encoded) == 1:
                return {"predictions": next(iter(encoded.values()))}
            count = len(next(iter(encoded.values())))
            return {"predictions": [{k: v[i] for k, v in encoded.items()} for i in range(count)]}

        def _respond(self, handler):
            self._timer = RequestTimer(metrics, "REST")
            try:
                status, payload = 200, handler()
            except ServingError as e:
                self._timer.status = e.code
                status, payload = e.http_status, {"error": e.message}
                self.close_connection = True  # the body may be unread: do not reuse the stream
            except Exception:
                error = internal("REST request failed")
                self._timer.status = error.code
                status, payload = error.http_status, {"error": error.message}
                self.close_connection = True
            self._timer.finish()
            self._send(status, json.dumps(payload).encode(), "application/json")

        def _send(self, status: int, data: bytes, content_type: str):
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

    return Handler


class RestServer(http.server.ThreadingHTTPServer):
    """One thread per connection, at most ``max_connections`` of them: past that, a new
    connection is answered 503 and closed at once instead of costing a thread."""
    daemon_threads = True

    def __init__(self, address, handler, max_connections: int):
        super().__init__(address, handler)
        self._connections = threading.BoundedSemaphore(max_connections)

    def process_request(self, request, client_address):
        if not self._connections.acquire(blocking=False):
            try:
                request.sendall(_BUSY_RESPONSE)
            except OSError:
                pass
            self.shutdown_request(request)
            return
        super().process_request(request, client_address)

    def process_request_thread(self, request, client_address):
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._connections.release()


def make_server(host: str, port: int, store: ModelStore, limits: Limits,
                timeout_s: float = DEFAULT_TIMEOUT_S,
                max_concurrent_requests: int = DEFAULT_MAX_CONCURRENT_REQUESTS,
                max_connections: int = DEFAULT_MAX_CONNECTIONS, metrics: ServingMetrics = None,
                metrics_path: str = None) -> RestServer:
    """``metrics_path`` (from --monitoring_config_file) serves ``metrics`` there, if given."""
    return RestServer((host, port), make_handler(store, limits, timeout_s,
                                                 max_concurrent_requests, metrics,
                                                 metrics_path), max_connections)
