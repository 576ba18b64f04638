"""TF Serving's gRPC API (PredictionService, ModelService) over a ModelStore."""
import functools
import logging

import grpc
import numpy as np
import tensorflow as tf
from google.protobuf import any_pb2
from tensorflow_serving.apis import (classification_pb2, get_model_metadata_pb2,
                                     get_model_status_pb2, model_service_pb2_grpc,
                                     predict_pb2, prediction_service_pb2_grpc)

import schema
from serving.errors import ServingError, invalid
from components.trainer.export import CLASSIFY_METHOD
from serving.model_store import ModelStore
from serving.servable import DEFAULT_SIGNATURE

SIGNATURE_DEF_FIELD = "signature_def"


def _grpc_errors(method):
    """Turns ServingError into the gRPC status; anything else is INTERNAL and logged."""
    @functools.wraps(method)
    def wrapper(self, request, context):
        try:
            return method(self, request, context)
        except ServingError as e:
            context.abort(e.code, e.message)
        except Exception as e:
            logging.exception("%s failed", method.__name__)
            context.abort(grpc.StatusCode.INTERNAL, f"{type(e).__name__}: {e}")
    return wrapper


def _version(model_spec):
    if model_spec.version_label:
        raise invalid("version labels are not configured on this server; ask by version number")
    return model_spec.version.value if model_spec.HasField("version") else None


def _to_numpy(key: str, proto) -> np.ndarray:
    try:
        return tf.make_ndarray(proto)
    except Exception as e:
        raise invalid(f"input '{key}' is not a valid TensorProto: {e}") from None


class PredictionService(prediction_service_pb2_grpc.PredictionServiceServicer):
    def __init__(self, store: ModelStore):
        self.store = store

    @_grpc_errors
    def Predict(self, request, context):
        servable = self.store.get(request.model_spec.name, _version(request.model_spec))
        inputs = {key: _to_numpy(key, proto) for key, proto in request.inputs.items()}
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
        for i, example in enumerate(examples):
            feature = example.features.feature.get(schema.IMAGE_KEY)
            if feature is None or len(feature.bytes_list.value) != 1:
                raise invalid(f"example {i}: needs exactly one '{schema.IMAGE_KEY}' bytes value")
            servable.limits.check_image(feature.bytes_list.value[0], f"example {i}")
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
    def __init__(self, store: ModelStore):
        self.store = store

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


def add_to_server(server: grpc.Server, store: ModelStore) -> None:
    prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(
        PredictionService(store), server)
    model_service_pb2_grpc.add_ModelServiceServicer_to_server(ModelService(store), server)
