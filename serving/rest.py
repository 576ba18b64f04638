"""TF Serving's REST API on a second port: predict, model status and metadata.

  POST /v1/models/<name>[/versions/<v>]:predict   {"instances": [...]} or {"inputs": ...}
  GET  /v1/models/<name>[/versions/<v>]           model status
  GET  /v1/models/<name>[/versions/<v>]/metadata  signature defs

Binary values travel as {"b64": "<base64>"}, exactly as TF Serving expects them.
"""
import base64
import http.server
import json
import logging
import re

import numpy as np
import tensorflow as tf
from google.protobuf import json_format

from serving.errors import ServingError, invalid, not_found, too_large
from serving.grpc_service import model_status
from serving.model_store import ModelStore
from serving.servable import DEFAULT_SIGNATURE

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


def parse_predict_body(body: dict, signature_def):
    """Row ("instances") or columnar ("inputs") request -> {input name: array}."""
    dtypes = {k: tf.dtypes.as_dtype(v.dtype) for k, v in signature_def.inputs.items()}
    if ("instances" in body) == ("inputs" in body):
        raise invalid('the request body needs exactly one of "instances" or "inputs"')
    if "instances" in body:
        raw = body["instances"]
        if not isinstance(raw, list) or not raw:
            raise invalid('"instances" must be a non-empty list')
        instances = _decode_value(raw)
        if all(isinstance(i, dict) and set(i) != {"b64"} for i in raw):  # named inputs
            columns = {k: [i.get(k) for i in instances] for k in instances[0]}
        elif len(dtypes) == 1:
            columns = {next(iter(dtypes)): instances}
        else:
            raise invalid(f"this signature has inputs {sorted(dtypes)}: name them in each instance")
        return {k: _to_array(k, v, dtypes.get(k, tf.string)) for k, v in columns.items()}, True
    raw = body["inputs"]
    if isinstance(raw, dict) and set(raw) != {"b64"}:  # named inputs
        inputs = {k: _decode_value(v) for k, v in raw.items()}
    elif len(dtypes) == 1:
        inputs = {next(iter(dtypes)): _decode_value(raw)}
    else:
        raise invalid(f"this signature has inputs {sorted(dtypes)}: name them in \"inputs\"")
    return {k: _to_array(k, v if isinstance(v, list) else [v], dtypes.get(k, tf.string))
            for k, v in inputs.items()}, False


def make_handler(store: ModelStore, max_request_bytes: int):
    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, fmt, *args):  # access logs only at debug level
            logging.debug("REST %s - " + fmt, self.address_string(), *args)

        def do_GET(self):
            self._respond(self._get)

        def do_POST(self):
            self._respond(self._post)

        def _route(self):
            match = _PATH.match(self.path.split("?")[0])
            if not match:
                raise not_found(f"unknown path {self.path}; see /v1/models/<name>[:predict]")
            version = int(match["version"]) if match["version"] else None
            return match["name"], version, match["rest"] or ""

        def _get(self):
            name, version, rest = self._route()
            if rest == ":predict":
                raise invalid("predict needs POST")
            if rest == "/metadata":
                servable = store.get(name, version)
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

        def _post(self):
            name, version, rest = self._route()
            if rest != ":predict":
                raise not_found(f"unknown method for POST {self.path}; use :predict")
            length = int(self.headers.get("Content-Length") or 0)
            if length > max_request_bytes:
                raise too_large(f"request body of {length} bytes is over the limit of "
                                f"{max_request_bytes} bytes (--max_request_bytes)")
            try:
                body = json.loads(self.rfile.read(length) or b"null")
            except ValueError as e:
                raise invalid(f"the request body is not JSON: {e}") from None
            if not isinstance(body, dict):
                raise invalid('the request body must be a JSON object with "instances" or "inputs"')
            servable = store.get(name, version)
            signature_name = body.get("signature_name") or DEFAULT_SIGNATURE
            inputs, row_format = parse_predict_body(body, servable.signature_def(signature_name))
            outputs = servable.predict(signature_name, inputs)
            encoded = {k: _encode_output(k, v) for k, v in outputs.items()}
            if not row_format:
                return {"outputs": encoded if len(encoded) > 1 else next(iter(encoded.values()))}
            if len(encoded) == 1:
                return {"predictions": next(iter(encoded.values()))}
            count = len(next(iter(encoded.values())))
            return {"predictions": [{k: v[i] for k, v in encoded.items()} for i in range(count)]}

        def _respond(self, handler):
            try:
                status, payload = 200, handler()
            except ServingError as e:
                status, payload = e.http_status, {"error": e.message}
                self.close_connection = True  # the body may be unread: do not reuse the stream
            except Exception as e:
                logging.exception("REST request failed")
                status, payload = 500, {"error": f"{type(e).__name__}: {e}"}
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

    return Handler


def make_server(host: str, port: int, store: ModelStore, max_request_bytes: int):
    server = http.server.ThreadingHTTPServer((host, port), make_handler(store, max_request_bytes))
    server.daemon_threads = True
    return server
