"""svhn-tfx-predict: send image files' raw bytes to a TF Serving endpoint, print the answers.

The client does no image processing at all: it reads each file's bytes and sends them.
Decoding, resizing and rescaling happen inside the served model, so a caller cannot get
them wrong. Works against ``svhn-tfx-serve`` and the real TensorFlow Serving alike.
"""
import argparse
import sys
import time
from typing import List, Optional, Sequence

import grpc
import numpy as np
import tensorflow as tf
from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

from svhn_tfx import schema
from svhn_tfx.schema.signatures import IMAGE_BYTES_INPUT, SERVING_SIGNATURE

DEFAULT_TIMEOUT_S = 30.0
TOP_K = 3
# Predict requests are at most this large; raise it together with the server's limit.
MAX_MESSAGE_BYTES = 64 << 20


def label_name(class_id: int) -> str:
    return "no digit" if class_id == schema.NO_DIGIT else str(class_id)


def predict_request(images: Sequence[bytes], model_name: str, signature_name=SERVING_SIGNATURE,
                    version: Optional[int] = None) -> predict_pb2.PredictRequest:
    return tensor_request({IMAGE_BYTES_INPUT: tf.make_tensor_proto(
        list(images), dtype=tf.string, shape=[len(images)])}, model_name, signature_name, version)


def tensor_request(inputs: dict, model_name: str, signature_name=SERVING_SIGNATURE,
                   version: Optional[int] = None) -> predict_pb2.PredictRequest:
    """A PredictRequest carrying ``inputs`` ({name: TensorProto}) exactly as given."""
    request = predict_pb2.PredictRequest()
    request.model_spec.name = model_name
    request.model_spec.signature_name = signature_name
    if version is not None:
        request.model_spec.version.value = version
    for key, proto in inputs.items():
        request.inputs[key].CopyFrom(proto)
    return request


def answers(response: predict_pb2.PredictResponse) -> List[dict]:
    """One dict per image: class_id, digit (-1: no digit or not sure enough), answer,
    probability, top3 [(name, p)], probabilities."""
    probabilities = tf.make_ndarray(response.outputs["probabilities"])
    digits = tf.make_ndarray(response.outputs["digit"]) if "digit" in response.outputs \
        else None
    results = []
    for i, p in enumerate(probabilities):
        class_id = int(np.argmax(p))
        top = np.argsort(-p)[:TOP_K]
        digit = int(digits[i]) if digits is not None else class_id
        abstained = class_id != schema.NO_DIGIT and digit == -1
        results.append({
            "class_id": class_id,
            "digit": -1 if class_id == schema.NO_DIGIT else digit,
            "answer": f"unsure ({class_id}?)" if abstained else label_name(class_id),
            "probability": float(p[class_id]),
            "top3": [(label_name(int(c)), float(p[c])) for c in top],
            "probabilities": p.tolist(),
            "model_version": response.model_spec.version.value,
        })
    return results


def predict_bytes(server: str, images: Sequence[bytes], model_name: str = "svhn",
                  timeout: float = DEFAULT_TIMEOUT_S, **request_args) -> List[dict]:
    """Sends ``images`` (encoded file bytes) in one Predict request to ``server`` (host:port)."""
    options = [("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
               ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES)]
    with grpc.insecure_channel(server, options=options) as channel:
        stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
        response = stub.Predict(predict_request(images, model_name, **request_args),
                                timeout=timeout)
    return answers(response)


def wait_until_available(server: str, model_name: str, timeout_s: float,
                         check_alive=lambda: None) -> None:
    """Polls GetModelStatus until a version is AVAILABLE; ``check_alive`` may raise to stop
    early (e.g. when the server process has exited)."""
    from tensorflow_serving.apis import get_model_status_pb2, model_service_pb2_grpc
    request = get_model_status_pb2.GetModelStatusRequest()
    request.model_spec.name = model_name
    deadline = time.time() + timeout_s
    with grpc.insecure_channel(server) as channel:
        stub = model_service_pb2_grpc.ModelServiceStub(channel)
        while time.time() < deadline:
            check_alive()
            try:
                if stub.GetModelStatus(request, timeout=2).model_version_status:
                    return
            except grpc.RpcError:
                time.sleep(0.3)
    raise TimeoutError(f"model '{model_name}' was not available at {server} within {timeout_s} s")


def predict_files(server: str, paths: Sequence[str], **kwargs) -> List[dict]:
    images = []
    for path in paths:
        with open(path, "rb") as f:
            images.append(f.read())
    results = predict_bytes(server, images, **kwargs)
    for path, result in zip(paths, results):
        result["file"] = path
    return results


def format_results(results: List[dict]) -> str:
    width = max([len("file")] + [len(r.get("file", "")) for r in results])
    lines = [f"{'file':<{width}}  {'answer':<11}  {'prob':>5}  top-3"]
    for r in results:
        top3 = ", ".join(f"{name} {p:.2f}" for name, p in r["top3"])
        lines.append(f"{r.get('file', ''):<{width}}  {r['answer']:<11}  "
                     f"{r['probability']:>5.3f}  {top3}")
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="svhn-tfx-predict", description=__doc__.splitlines()[0])
    p.add_argument("images", nargs="+", metavar="IMAGE", help="PNG/JPEG/GIF/BMP files")
    p.add_argument("--server", default="127.0.0.1:8500", help="gRPC host:port")
    p.add_argument("--model_name", default="svhn")
    p.add_argument("--signature_name", default=SERVING_SIGNATURE)
    p.add_argument("--version", type=int, help="a model version (default: the latest)")
    p.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT_S)
    args = p.parse_args(argv)
    try:
        results = predict_files(args.server, args.images, model_name=args.model_name,
                                signature_name=args.signature_name, version=args.version,
                                timeout=args.timeout)
    except OSError as e:
        print(f"error: cannot read {e.filename}: {e.strerror}", file=sys.stderr)
        return 1
    except grpc.RpcError as e:
        print(f"error: {args.server} answered {e.code().name}: {e.details()}", file=sys.stderr)
        return 1
    print(format_results(results))
    if results:
        print(f"(model '{args.model_name}' version {results[0]['model_version']})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
