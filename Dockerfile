# The pipeline image for Kubeflow Pipelines / Vertex AI: TFX 1.16's own image with svhn-tfx
# installed from this repository. Beam services (Dataflow, Flink) get the package from
# --setup_file=/pipeline/setup.py, which the compiled spec passes.
#   docker build -t gcr.io/PROJECT/svhn-tfx:latest . && docker push gcr.io/PROJECT/svhn-tfx:latest
#   SVHN_TFX_IMAGE=gcr.io/PROJECT/svhn-tfx:latest SVHN_TFX_ROOT=gs://BUCKET/svhn-tfx \
#     python -m svhn_tfx.pipeline.kubeflow_v2_runner svhn_tfx_pipeline.json
# The compiled spec names paths inside this image (/pipeline/...) and URIs under the root.
# Serving needs no image of its own: tensorflow/serving:2.16.1 serves the pushed folder.
FROM tensorflow/tfx:1.16.0

WORKDIR /pipeline
COPY . /pipeline
# The pinned set, minus what the base image already holds at the same versions.
RUN python -m pip install --no-cache-dir -c constraints.txt . \
    && cd / && python -c "import svhn_tfx.components, svhn_tfx.pipeline, svhn_tfx.schema, svhn_tfx.serving"
