"""A run a person can read: `tfx run create` through the local runner prints one line per
component with its result, the full output lands in a log file, and a failure shows the
failing component's error and the log's path."""
import os
import re
import subprocess
import sys

import pytest

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


def _run(root) -> tuple:
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
    from svhn_tfx.pipeline.console import newest_run_log
    assert newest_run_log(str(tmp_path / "logs"), NAME) == _log_path(console)  # the demo's
    with open(_log_path(console)) as f:
        log = f.read()
    assert "Component SvhnTrainer is finished." in log
    assert "Using deployment config" in log       # TFX's own INFO output is all there
    assert len(log.splitlines()) > 10 * len(lines)


def test_a_failure_shows_the_component_s_error_and_the_log(tmp_path, capfd):
    """What a failed run prints (the failure itself, a data anomaly stopping the run before
    training, is tests/test_pipeline.py's: through the CLI it would cost another 3 minutes)."""
    import logging
    from svhn_tfx.pipeline.console import FINISHED, RUNNING, RunConsole

    class DataAnomaliesError(RuntimeError):
        pass

    log_path = str(tmp_path / "logs" / "run.log")
    with pytest.raises(DataAnomaliesError):
        with RunConsole(log_path, summarize=lambda node: f"summary of {node}"):
            logging.getLogger("absl").warning(RUNNING, "ExampleValidator")
            logging.getLogger("absl").warning(FINISHED, "ExampleValidator")
            logging.getLogger("absl").warning(RUNNING, "AnomalyGate")
            os.write(2, b"raw output of the component\n")   # as C++, Beam workers write
            raise DataAnomaliesError("split 'train', feature 'label': out of range")
    console = capfd.readouterr().out
    assert re.search(r"^ExampleValidator\s+[\d.]+ s  summary of ExampleValidator$", console, re.M)
    assert "FAILED: AnomalyGate" in console
    assert "DataAnomaliesError: split 'train', feature 'label': out of range" in console
    assert console.rstrip().endswith(f"full log: {log_path}")
    assert "raw output of the component" not in console
    with open(log_path) as f:
        log = f.read()
    assert "raw output of the component" in log and "DataAnomaliesError" in log
