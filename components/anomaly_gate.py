"""AnomalyGate: stops the run when ExampleValidator found anomalies, before any training.

TFX's ExampleValidator records anomalies but lets the pipeline go on; a label of 12 or an
example without an image would then reach Transform and the trainer. The gate fails the
run instead, with a message that names every anomaly by split and feature.
"""
import os

from tensorflow_metadata.proto.v0 import anomalies_pb2
from tfx import v1 as tfx
from tfx.types import artifact_utils
from tfx.utils import io_utils

ANOMALIES_FILE = "SchemaDiff.pb"  # what ExampleValidator writes per split


class DataAnomaliesError(RuntimeError):
    """The examples do not match schema/schema.pbtxt."""


def describe_anomalies(anomalies_artifact) -> list:
    problems = []
    for split in artifact_utils.decode_split_names(anomalies_artifact.split_names):
        path = os.path.join(artifact_utils.get_split_uri([anomalies_artifact], split),
                            ANOMALIES_FILE)
        anomalies = anomalies_pb2.Anomalies.FromString(io_utils.read_bytes_file(path))
        for feature, info in sorted(anomalies.anomaly_info.items()):
            problems.append(f"split '{split}', feature '{feature}': "
                            f"{info.short_description}: {info.description}")
        if anomalies.HasField("dataset_anomaly_info"):
            info = anomalies.dataset_anomaly_info
            problems.append(f"split '{split}': {info.short_description}: {info.description}")
    return problems


@tfx.dsl.components.component
def AnomalyGate(
    anomalies: tfx.dsl.components.InputArtifact[tfx.types.standard_artifacts.ExampleAnomalies],
) -> None:
    problems = describe_anomalies(anomalies)
    if problems:
        raise DataAnomaliesError(
            "ExampleValidator found data anomalies; stopping before Transform and training. "
            "Fix the data (or, if the change is intended, schema/schema.pbtxt):\n  - "
            + "\n  - ".join(problems))
