"""Compiles the pipeline to a Kubeflow Pipelines v2 / Vertex AI pipeline spec (JSON).

The spec runs as compiled in the image the ``Dockerfile`` builds (``SVHN_TFX_IMAGE``): every
path in it is a URI under the shared root (``SVHN_TFX_ROOT=gs://bucket/svhn-tfx``) or a path
inside the image (``IMAGE_REPO_DIR``), never one of the machine that compiled it. Beam runs
in each component's container unless SVHN_TFX_BEAM_ARGS names a service, e.g.
"--runner=DataflowRunner --project=P --region=R --temp_location=gs://bucket/tmp".
Usage: SVHN_TFX_ROOT=gs://bucket/svhn-tfx python -m svhn_tfx.pipeline.kubeflow_v2_runner [OUTPUT.json]
"""
import os
import shlex
import sys

import svhn_tfx.components  # noqa: F401  (sets the Keras/TF environment before TensorFlow loads)
from tfx import v1 as tfx

from svhn_tfx import schema
from svhn_tfx.components.trainer.component import weights_fingerprint
from svhn_tfx.pipeline import configs, svhn_pipeline

DEFAULT_OUTPUT = "svhn_tfx_pipeline.json"
IMAGE_REPO_DIR = "/pipeline"   # where the Dockerfile copies this repository
_REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def in_image(local_path: str) -> str:
    """The path a file of this repository has inside the image (a URI stays as it is)."""
    if "://" in local_path:
        return local_path
    relative = os.path.relpath(os.path.abspath(local_path), _REPO_ROOT)
    if relative.startswith(".."):
        raise ValueError(f"{local_path} is outside the repository, so not in the image: put "
                         f"it on shared storage and give its URI")
    return os.path.join(IMAGE_REPO_DIR, relative)


def compile_pipeline(output_filename: str = DEFAULT_OUTPUT, image: str = configs.KUBEFLOW_IMAGE,
                     root: str = configs.ARTIFACTS_ROOT, beam_args=None):
    if "://" not in root:
        raise ValueError(f"a compiled pipeline runs on other machines: its root must be "
                         f"shared storage, e.g. SVHN_TFX_ROOT=gs://bucket/svhn-tfx (got {root})")
    if beam_args is None:
        beam_args = shlex.split(os.environ.get("SVHN_TFX_BEAM_ARGS", ""))
    beam_args = [a for a in beam_args if not a.startswith("--setup_file")] + [
        f"--setup_file={in_image(os.path.join(_REPO_ROOT, 'setup.py'))}"]
    warm_start = configs.WARM_START_DIR
    runner = tfx.orchestration.experimental.KubeflowV2DagRunner(
        config=tfx.orchestration.experimental.KubeflowV2DagRunnerConfig(default_image=image),
        output_filename=output_filename)
    # A compiled pipeline cannot look into the data root: it ingests SVHN_TFX_SPLITS, or
    # train and eval.
    return runner.run(svhn_pipeline.create_configured_pipeline(
        pipeline_root=f"{root}/pipelines/{configs.PIPELINE_NAME}",
        data_root=f"{root}/data",
        serving_model_dir=f"{root}/serving/{configs.MODEL_NAME}",
        beam_pipeline_args=beam_args,
        splits=configs.SPLITS or (schema.TRAIN_SPLIT, schema.EVAL_SPLIT),
        schema_file=in_image(schema.SCHEMA_PATH),
        warm_start_dir=in_image(warm_start) if warm_start else None,
        warm_start_fingerprint=weights_fingerprint(warm_start) if warm_start else None))


if __name__ == "__main__":
    compile_pipeline(*sys.argv[1:2])
