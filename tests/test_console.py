"""A run a person can read: `tfx run create` through the local runner prints one line per
component with its result, the full output lands in a log file, and a failure (here: a data
anomaly, which stops the run before training) shows the failing component's error and the
log's path."""
import glob
import os
import re
import subprocess
import sys

import numpy as np
import pytest

from svhn_tfx.schema.images import encode
from tests import pipeline_helpers as ph

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TFX = os.path.join(os.path.dirname(sys.executable), "tfx")
NAME = "console-test"
COMPONENTS = ("ImportExampleGen", "StatisticsGen", "ImportSchemaGen", "ExampleValidator",
              "AnomalyGate", "Transform", "SvhnTrainer", "latest_blessed_model_resolver",
              "SvhnEvaluator", "Pusher")
# What the console must not show: TFX's IR dump, absl's INFO lines, TensorFlow's CUDA probe.
NOISE = ("deployment config", "pipeline_info", "node_info", "executor_spec", "I1127",
         "Unable to register", "cuda drivers", "FutureWarning")
MAX_CONSOLE_LINES = 100


def _cli(root, *args, timeout=900) -> subprocess.CompletedProcess:
    """The TFX CLI as `make demo` runs it (the Makefile exports the last two variables)."""
    env = dict(os.environ, SVHN_TFX_ROOT=str(root), SVHN_TFX_PIPELINE_NAME=NAME,
               TF_CPP_MIN_LOG_LEVEL="3", PYTHONWARNINGS="ignore::FutureWarning",
               LOCAL_HOME=str(root / "tfx-home"), SVHN_TFX_WARM_START="",
               SVHN_TFX_TRAIN_STEPS="10",
               # one in-memory Beam worker; --setup_file spares TFX building an sdist of itself
               SVHN_TFX_BEAM_ARGS=f"--direct_num_workers=1 --setup_file={REPO}/setup.py")
    return subprocess.run([TFX, *args], cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=timeout)


def _run(root) -> str:
    created = _cli(root, "pipeline", "create", "--engine", "local", "--pipeline_path",
                   "pipeline/local_runner.py")
    assert created.returncode == 0, created.stdout[-3000:] + created.stderr[-3000:]
    run = _cli(root, "run", "create", "--engine", "local", "--pipeline_name", NAME)
    return run.returncode, run.stdout + run.stderr


def _log_path(console: str) -> str:
    paths = re.findall(r"full log: (\S+)", console)
    assert paths and os.path.isfile(paths[-1]), console
    return paths[-1]


@pytest.mark.timeout(1200)
def test_a_run_prints_a_line_per_component_and_logs_everything(tmp_path):
    ph.write_synthetic_data(tmp_path / "data", train=200, eval_=100)
    code, console = _run(tmp_path)
    assert code == 0, console[-4000:]
    lines = console.splitlines()
    assert len(lines) < MAX_CONSOLE_LINES, console
    for noise in NOISE:
        assert noise not in console, noise
    finished = [re.match(r"(\S+)\s+[\d.]+ s  (.*)", line) for line in lines]
    results = {m[1]: m[2] for m in finished if m}
    assert sorted(results) == sorted(COMPONENTS), console
    assert results["StatisticsGen"] == "examples: train 200, eval 100"
    assert results["ExampleValidator"] == "no anomalies"
    assert re.search(r"10 steps, accuracy train [\d.]+ / validation [\d.]+; T [\d.]+, "
                     r"abstain below confidence [\d.]+", results["SvhnTrainer"])
    # ten steps cannot pass the default gates: the line says so, and why
    assert results["SvhnEvaluator"].startswith("NOT BLESSED: accuracy ")
    assert "accuracy" in results["SvhnEvaluator"].split(";", 1)[1]
    assert results["Pusher"] == "not pushed (the model was not blessed)"
    assert any("SvhnTrainer step 10/10" in line for line in lines), console
    with open(_log_path(console)) as f:
        log = f.read()
    assert "Component SvhnTrainer is finished." in log
    assert "Using deployment config" in log       # TFX's own INFO output is all there
    assert len(log.splitlines()) > 10 * len(lines)


@pytest.mark.timeout(900)
def test_a_failed_run_shows_the_component_s_error_and_the_log(tmp_path):
    image = encode(np.zeros((32, 32, 3), np.uint8))
    ph.write_unchecked_records(tmp_path / "data", "train", [(image, 3)] * 20 + [(image, 12)])
    ph.write_unchecked_records(tmp_path / "data", "eval", [(image, 3)] * 5)
    code, console = _run(tmp_path)
    assert code != 0
    assert "FAILED: AnomalyGate" in console, console[-4000:]
    assert "DataAnomaliesError" in console
    assert "split 'train', feature 'label'" in console and "stopping before" in console
    pipeline_root = tmp_path / "pipelines" / NAME   # stopped before anything was trained
    assert not (pipeline_root / "Transform").exists()
    assert not (pipeline_root / "SvhnTrainer").exists()
    log = _log_path(console)
    with open(log) as f:
        assert "Component AnomalyGate is running." in f.read()
    assert len(glob.glob(os.path.join(os.path.dirname(log), f"{NAME}-*.log"))) == 1
