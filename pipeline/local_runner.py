"""Runs the pipeline on this machine; the file `tfx pipeline create --engine local` points at.

Run by `tfx run create`, it prints one line per component as it finishes and writes the full
log to ``configs.LOG_DIR`` (pipeline/console.py); the TFX CLI, which compiles this file inside
its own process, gets the plain run (nothing is redirected there).
"""
import sys

import svhn_tfx.components  # noqa: F401  (sets the Keras/TF environment before TensorFlow loads)
from absl import logging
from tfx import v1 as tfx

from svhn_tfx.pipeline import configs, console, svhn_pipeline

# compiled by `tfx pipeline create` (none of the imports above loads the CLI's modules)
IN_TFX_CLI = any(name.startswith("tfx.tools.cli") for name in sys.modules)


def run():
    connection = tfx.orchestration.metadata.sqlite_metadata_connection_config(
        configs.METADATA_PATH)
    pipeline = svhn_pipeline.create_configured_pipeline(metadata_connection_config=connection)
    if IN_TFX_CLI:
        tfx.orchestration.LocalDagRunner().run(pipeline)
        return
    logging.set_verbosity(logging.INFO)   # all of it into the log file
    with console.RunConsole(console.run_log_path(configs.LOG_DIR, configs.PIPELINE_NAME),
                            console.summarizer(connection, configs.PIPELINE_NAME)) as out:
        tfx.orchestration.LocalDagRunner().run(pipeline)
        out.line(f"done: {len(out.finished_components)} components; report and model: "
                 f"svhn-tfx-demo prints them, or see {configs.PIPELINE_ROOT}")


if __name__ == "__main__":
    run()
