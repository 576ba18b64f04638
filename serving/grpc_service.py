"""TF Serving's gRPC API (PredictionService, ModelService) over a ModelStore."""
import functools
import math

import grpc
import numpy as np
import tensorflow as tf
from google.protobuf import any_pb2
from tensorflow.core.framework import types_pb2
from tensorflow_serving.apis import (classification_pb2, get_model_metadata_pb2,
                                     get_model_status_pb2, model_service_pb2_grpc,
                                     predict_pb2, prediction_service_pb2_grpc)

from svhn_tfx.schema.signatures import CLASSIFY_METHOD
from svhn_tfx.serving.errors import ServingError, internal, invalid, too_large
from svhn_tfx.serving.metrics import RequestTimer, ServingMetrics
from svhn_tfx.serving.model_store import ModelStore
from svhn_tfx.serving.servable import DEFAULT_SIGNATURE, check_shape

SIGNATURE_DEF_FIELD = "signature_def"


# The ``API`` label of each method in the request metrics, as TF Serving names them.
API_NAMES = {"Predict": "predict", "Classify": "classify",
             "GetModelMetadata": "get_model_metadata", "GetModelStatus": "get_model_status"}


def _grpc_errors(method):
    """Turns ServingError into the gRPC status; anything else is INTERNAL, logged with an
    id, and answered without its text. Counts the request in the metrics either way."""
    @functools.wraps(method)
    def wrapper(self, request, context):
        spec = getattr(request, "model_spec", None)
        signature = getattr(spec, "signature_name", "") or (
            DEFAULT_SIGNATURE if method.__name__ in ("Predict", "Classify") else "")
        timer = RequestTimer(getattr(self, "metrics", None), "GRPC",
                             API_NAMES.get(method.__name__, method.__name__),
                             getattr(spec, "name", ""), signature)
        try:
            response = method(self, request, context)
            served = getattr(response, "model_spec", None)
            timer.version = served.version.value if served is not None else None
            return response
        except ServingError as e:
            timer.status = e.code
            context.abort(e.code, e.message)
        except Exception:
            error = internal(f"{method.__name__} failed")
            timer.status = error.code
            context.abort(error.code, error.message)
        finally:
            timer.finish()
    return wrapper


def _version(model_spec):
    if model_spec.version_label:
        raise invalid("version labels are not configured on this server; ask by version number")
    return model_spec.version.value if model_spec.HasField("version") else None


# TensorProto's repeated field for each dtype; tensor_content carries any of them packed.
_VALUE_FIELDS = {
    types_pb2.DT_STRING: "string_val", types_pb2.DT_FLOAT: "float_val",
    types_pb2.DT_DOUBLE: "double_val", types_pb2.DT_INT64: "int64_val",
    types_pb2.DT_INT32: "int_val", types_pb2.DT_INT16: "int_val", types_pb2.DT_INT8: "int_val",
    types_pb2.DT_UINT8: "int_val", types_pb2.DT_BOOL: "bool_val", types_pb2.DT_HALF: "half_val",
}


def to_numpy(key: str, proto, signature_def, limits) -> np.ndarray:
    """TensorProto -> array, after checking it against the signature and the limits from the
    proto's declared shape and the values actually sent: converting first would let a
    50-byte request that declares a billion strings allocate them all (``make_ndarray``
    repeats the last value up to the declared shape). The values sent must fill the shape."""
    info = signature_def.inputs.get(key)
    if info is None:
        raise invalid(f"input '{key}' is not an input of this signature; it takes "
                      f"{sorted(signature_def.inputs)}")
    if proto.dtype != info.dtype:
        raise invalid(f"input '{key}' expects {_dtype_name(info.dtype)} but "
                      f"{_dtype_name(proto.dtype)} was sent")
    if proto.tensor_shape.unknown_rank:
        raise invalid(f"input '{key}' needs a shape")
    dims = [d.size for d in proto.tensor_shape.dim]
    if any(d < 0 for d in dims):
        raise invalid(f"input '{key}' declares a negative dimension {dims}")
    check_shape(key, dims, info)
    count = math.prod(dims)
    if proto.tensor_content and proto.dtype == types_pb2.DT_STRING:
        raise invalid(f"input '{key}': strings travel in string_val, not tensor_content")
    if proto.tensor_content:
        itemsize = tf.dtypes.as_dtype(proto.dtype).size
        if len(proto.tensor_content) != count * itemsize:
            raise invalid(f"input '{key}': tensor_content holds {len(proto.tensor_content)} "
                          f"bytes, shape {dims} needs {count * itemsize}")
    else:
        field = _VALUE_FIELDS.get(proto.dtype)
        sent = len(getattr(proto, field)) if field else None
        if sent != count:   # TF would repeat the last value up to the shape: not here
            raise invalid(f"input '{key}': shape {dims} holds {count} values but "
                          f"{sent if sent is not None else 'an unsupported kind of'} values "
                          f"were sent")
    limits.check_request_size(dims[0])
    cap = limits.max_images_per_request if proto.dtype == types_pb2.DT_STRING else \
        limits.max_request_bytes // tf.dtypes.as_dtype(proto.dtype).size
    if count > cap:
        raise too_large(f"input '{key}' holds {count} elements {dims}; the limit is {cap}")
    try:
        return tf.make_ndarray(proto)
    except Exception as e:
        raise invalid(f"input '{key}' is not a valid TensorProto: {e}") from None


def _dtype_name(enum: int) -> str:
    try:
        return tf.dtypes.as_dtype(enum).name
    except Exception:
        return f"dtype {enum}"


class PredictionService(prediction_service_pb2_grpc.PredictionServiceServicer):
    def __init__(self, store: ModelStore, metrics: ServingMetrics = None):
        self.store, self.metrics = store, metrics

    @_grpc_errors
    def Predict(self, request, context):
        servable = self.store.get(request.model_spec.name, _version(request.model_spec))
        signature_def = servable.signature_def(request.model_spec.signature_name)
        inputs = {key: to_numpy(key, proto, signature_def, servable.limits)
                  for key, proto in request.inputs.items()}
        outputs = servable.predict(request.model_spec.signature_name, inputs,
                                   tuple(request.output_filter))
        response = predict_pb2.PredictResponse()
        _fill_spec(response.model_spec, request.model_spec, servable)
        for key, value in outputs.items():
            response.outputs[key].CopyFrom(tf.make_tensor_proto(value))
        return response

    @_grpc_errors
    def Classify(self, request, context):
        servable = self.store.get(request.model_spec.name, _version(request.model_spec))
        signature_name = request.model_spec.signature_name or DEFAULT_SIGNATURE
        signature_def = servable.signature_def(signature_name)
        if signature_def.method_name != CLASSIFY_METHOD:
            raise invalid(f"Expected classification signature method_name to be "
                          f"{CLASSIFY_METHOD}; signature '{signature_name}' is "
                          f"{signature_def.method_name}. This model's classification "
                          f"signature is 'classify'.")
        examples = request.input.example_list.examples
        if not examples:
            raise invalid("Classify needs input.example_list with at least one tf.Example")
        servable.limits.check_request_size(len(examples))
        (input_key,) = signature_def.inputs
        serialized = np.array([e.SerializeToString() for e in examples], dtype=object)
        outputs = servable.predict(signature_name, {input_key: serialized})
        response = classification_pb2.ClassificationResponse()
        _fill_spec(response.model_spec, request.model_spec, servable)
        for classes, scores in zip(outputs["classes"], outputs["scores"]):
            result = response.result.classifications.add()
            for label, score in zip(classes, scores):
                result.classes.add(label=label.decode(), score=float(score))
        return response

    @_grpc_errors
    def GetModelMetadata(self, request, context):
        servable = self.store.get(request.model_spec.name, _version(request.model_spec))
        if list(request.metadata_field) != [SIGNATURE_DEF_FIELD]:
            raise invalid(f"metadata_field must be ['{SIGNATURE_DEF_FIELD}'], "
                          f"got {list(request.metadata_field)}")
        signature_map = get_model_metadata_pb2.SignatureDefMap()
        for name, signature_def in servable.signature_defs.items():
            signature_map.signature_def[name].CopyFrom(signature_def)
        response = get_model_metadata_pb2.GetModelMetadataResponse()
        _fill_spec(response.model_spec, request.model_spec, servable)
        packed = any_pb2.Any()
        packed.Pack(signature_map)
        response.metadata[SIGNATURE_DEF_FIELD].CopyFrom(packed)
        return response


class ModelService(model_service_pb2_grpc.ModelServiceServicer):
    def __init__(self, store: ModelStore, metrics: ServingMetrics = None):
        self.store, self.metrics = store, metrics

    @_grpc_errors
    def GetModelStatus(self, request, context):
        return model_status(self.store, request.model_spec.name, _version(request.model_spec))


def model_status(store: ModelStore, name: str, version=None):
    """AVAILABLE for each loaded version (or the one asked for), as TF Serving reports it."""
    versions = [store.get(name, version).version] if version is not None else None
    if versions is None:
        store.get(name)  # NOT_FOUND when nothing is loaded
        versions = store.loaded_versions()
    response = get_model_status_pb2.GetModelStatusResponse()
    for v in versions:
        status = response.model_version_status.add(
            version=v, state=get_model_status_pb2.ModelVersionStatus.AVAILABLE)
        status.status.error_code = 0
    return response


def _fill_spec(spec, requested, servable) -> None:
    spec.name = requested.name
    spec.version.value = servable.version
    spec.signature_name = requested.signature_name or DEFAULT_SIGNATURE


def add_to_server(server: grpc.Server, store: ModelStore,
                  metrics: ServingMetrics = None) -> None:
    prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(
        PredictionService(store, metrics), server)
    model_service_pb2_grpc.add_ModelServiceServicer_to_server(ModelService(store, metrics),
                                                              server)
