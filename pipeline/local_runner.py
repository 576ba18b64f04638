"""Runs the pipeline on this machine; the file `tfx pipeline create --engine local` points at."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import components  # noqa: E402,F401  (sets the Keras/TF environment before TensorFlow loads)
from absl import logging  # noqa: E402
from tfx import v1 as tfx  # noqa: E402

from pipeline import configs, svhn_pipeline  # noqa: E402


def run():
    tfx.orchestration.LocalDagRunner().run(svhn_pipeline.create_configured_pipeline(
        metadata_connection_config=tfx.orchestration.metadata
        .sqlite_metadata_connection_config(configs.METADATA_PATH)))


if __name__ == "__main__":
    logging.set_verbosity(logging.INFO)
    run()
