"""Compiles the pipeline to a Kubeflow Pipelines v2 / Vertex AI pipeline spec (JSON).

The container image (``SVHN_TFX_IMAGE``) must have this package installed; paths should
then point at shared storage, e.g. SVHN_TFX_ROOT=gs://bucket/svhn-tfx, and Beam args at
Dataflow (SVHN_TFX_BEAM_ARGS="--runner=DataflowRunner --project=... --region=...").
Usage: python -m pipeline.kubeflow_v2_runner [OUTPUT.json]
"""
import sys

import components  # noqa: F401  (sets the Keras/TF environment before TensorFlow loads)
from tfx import v1 as tfx

import schema
from pipeline import configs, svhn_pipeline

DEFAULT_OUTPUT = "svhn_tfx_pipeline.json"


def compile_pipeline(output_filename: str = DEFAULT_OUTPUT, image: str = configs.KUBEFLOW_IMAGE):
    runner = tfx.orchestration.experimental.KubeflowV2DagRunner(
        config=tfx.orchestration.experimental.KubeflowV2DagRunnerConfig(default_image=image),
        output_filename=output_filename)
    # A compiled pipeline cannot look into the data root: it ingests SVHN_TFX_SPLITS, or
    # train and eval.
    return runner.run(svhn_pipeline.create_configured_pipeline(
        splits=configs.SPLITS or (schema.TRAIN_SPLIT, schema.EVAL_SPLIT)))


if __name__ == "__main__":
    compile_pipeline(*sys.argv[1:2])
