"""What a person sees while the pipeline runs: one line per component as it finishes, with
its result in words, and everything TFX, Beam and TensorFlow print in one log file per run.

``RunConsole`` points this process's stdout and stderr (file descriptors 1 and 2, so C++
logs and Beam's worker processes too) at the run's log file, keeps the terminal for its own
lines, and watches TFX's "Component X is running/finished" log records. When one finishes it
reads what the component recorded in MLMD (artifact properties, statistics, anomalies,
blessing, push) and prints a line. On failure it prints the failing component's error in
full and where the log is.
"""
import contextlib
import datetime
import glob
import json
import logging
import os
import sys
import time
import traceback
from typing import Callable, Dict, List, Optional

from svhn_tfx.components import PROGRESS_PREFIX

LOG_SUFFIX = ".log"
STAMP = "%Y%m%d-%H%M%S"   # sorts as it runs
STAMP_GLOB = "[0-9]" * 8 + "-" + "[0-9]" * 6
RUNNING = "Component %s is running."
FINISHED = "Component %s is finished."
NAME_WIDTH = 30


def run_log_path(log_dir: str, pipeline_name: str) -> str:
    stamp = datetime.datetime.now().strftime(STAMP)
    return os.path.join(log_dir, f"{pipeline_name}-{stamp}{LOG_SUFFIX}")


def newest_run_log(log_dir: str, pipeline_name: str) -> Optional[str]:
    """The newest log run_log_path named for this pipeline, or None."""
    logs = glob.glob(os.path.join(log_dir, f"{glob.escape(pipeline_name)}-{STAMP_GLOB}{LOG_SUFFIX}"))
    return max(logs) if logs else None


class _Watcher(logging.Handler):
    """Turns TFX's component log records (and the components' progress lines) into lines."""

    def __init__(self, console: "RunConsole"):
        super().__init__(logging.INFO)
        self.console = console

    def emit(self, record: logging.LogRecord) -> None:
        try:
            if record.msg == RUNNING and record.args:
                self.console.started(str(record.args[0]))
            elif record.msg == FINISHED and record.args:
                self.console.finished(str(record.args[0]))
            elif isinstance(record.msg, str) and record.msg.startswith(PROGRESS_PREFIX):
                self.console.line("    " + record.getMessage()[len(PROGRESS_PREFIX):])
        except Exception:   # a summary must never stop the pipeline
            logging.getLogger(__name__).exception("console line failed")


class RunConsole:
    """A context: inside it, raw output goes to ``log_path`` and the terminal gets lines."""

    def __init__(self, log_path: str, summarize: Callable[[str], str] = None):
        self.log_path = log_path
        self.summarize = summarize or (lambda node_id: "")
        self.started_at: Dict[str, float] = {}
        self.finished_components: List[str] = []
        self.running: Optional[str] = None
        self._terminal = None

    def line(self, text: str) -> None:
        self._terminal.write(text + "\n")
        self._terminal.flush()

    def started(self, node_id: str) -> None:
        self.running = node_id
        self.started_at[node_id] = time.monotonic()

    def finished(self, node_id: str) -> None:
        seconds = time.monotonic() - self.started_at.get(node_id, time.monotonic())
        self.running = None
        self.finished_components.append(node_id)
        self.line(f"{node_id:<{NAME_WIDTH}} {seconds:6.1f} s  {self.summarize(node_id)}")

    def __enter__(self):
        os.makedirs(os.path.dirname(self.log_path), exist_ok=True)
        sys.stdout.flush()
        sys.stderr.flush()
        self._saved = (os.dup(1), os.dup(2))
        self._terminal = os.fdopen(os.dup(1), "w")
        log_fd = os.open(self.log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        os.dup2(log_fd, 1)
        os.dup2(log_fd, 2)
        os.close(log_fd)
        self._watcher = _Watcher(self)
        logging.getLogger().addHandler(self._watcher)
        self.line(f"full log: {self.log_path}")
        return self

    def __exit__(self, kind, error, tb):
        logging.getLogger().removeHandler(self._watcher)
        sys.stdout.flush()
        sys.stderr.flush()
        if kind is not None and not issubclass(kind, SystemExit):
            failed = self.running or "the pipeline"
            text = "".join(traceback.format_exception(kind, error, tb))
            os.write(2, text.encode())   # into the log as well (fd 2 is the log here)
            self.line(f"FAILED: {failed}\n{text.rstrip()}\nfull log: {self.log_path}")
        for fd, saved in zip((1, 2), self._saved):
            os.dup2(saved, fd)
            os.close(saved)
        self._terminal.close()
        return False


# ----------------------------------------------------------------------- what components did

def summarizer(connection_config, pipeline_name: str) -> Callable[[str], str]:
    """node id -> its result in words, read from MLMD (the newest execution of that node)."""
    from ml_metadata.metadata_store import metadata_store
    from ml_metadata.proto import metadata_store_pb2

    def outputs(node_id: str):
        store = metadata_store.MetadataStore(connection_config)
        context = store.get_context_by_type_and_name("node", f"{pipeline_name}.{node_id}")
        if context is None:
            return None, {}
        executions = store.get_executions_by_context(context.id)
        if not executions:
            return None, {}
        execution = max(executions, key=lambda e: e.id)
        events = [e for e in store.get_events_by_execution_ids([execution.id])
                  if e.type == metadata_store_pb2.Event.OUTPUT]
        artifacts = {a.id: a for a in store.get_artifacts_by_id([e.artifact_id for e in events])}
        found = {}
        for event in events:
            key = event.path.steps[0].key if event.path.steps else ""
            found.setdefault(key, []).append(artifacts[event.artifact_id])
        return execution, found

    def summarize(node_id: str) -> str:
        execution, found = outputs(node_id)
        if execution is None:
            return ""
        cached = execution.last_known_state == metadata_store_pb2.Execution.CACHED
        words = _describe(node_id, found, execution)
        return ("(cached) " if cached else "") + words

    return summarize


def _prop(artifact, name, default=None):
    """A property of an MLMD artifact or execution (custom or typed), or ``default``."""
    for properties in (artifact.custom_properties, artifact.properties):
        if name in properties and properties[name].WhichOneof("value"):
            value = properties[name]
            return getattr(value, value.WhichOneof("value"))
    return default


def _splits(artifact) -> List[str]:
    return json.loads(_prop(artifact, "split_names", "[]") or "[]")


def _describe(node_id: str, found: dict, execution) -> str:
    """The result of one component in words; empty when there is nothing worth saying."""
    first = {key: artifacts[0] for key, artifacts in found.items() if artifacts}
    if "statistics" in first:
        return _statistics(first["statistics"])
    if "anomalies" in first:
        return _anomalies(first["anomalies"])
    if "examples" in first:
        return "splits " + ", ".join(_splits(first["examples"]))
    if "schema" in first:
        return f"schema from {first['schema'].uri}"
    if "transform_graph" in first:
        return "transform graph written (decode, resize, rescale in one graph)"
    if "blessing" in first:
        return _blessing(first["blessing"], first.get("evaluation"))
    if "pushed_model" in first:
        return _pushed(first["pushed_model"])
    if "model" in first and "model_run" in first:
        return _trained(first["model"], execution)
    if "model" in first:   # the Resolver
        return f"baseline: the last blessed model, {first['model'].uri}"
    if "result" in first:  # an Importer (the warm start)
        return f"imported {first['result'].uri}"
    if node_id.endswith("resolver"):
        return "no blessed model yet: nothing to compare with"
    if node_id == "AnomalyGate":
        return "passed: no anomalies, training may start"
    return ""


def _per_split(artifact, file_name: str, proto_class):
    """(split, parsed proto) for each split's ``Split-<name>/<file_name>`` of an artifact."""
    from tfx.dsl.io import fileio
    for split in _splits(artifact):
        proto = proto_class()
        with fileio.open(os.path.join(artifact.uri, f"Split-{split}", file_name), "rb") as f:
            proto.ParseFromString(f.read())
        yield split, proto


def _statistics(artifact) -> str:
    from tensorflow_metadata.proto.v0 import statistics_pb2
    counts = [f"{split} {sum(d.num_examples for d in stats.datasets):,}" for split, stats in
              _per_split(artifact, "FeatureStats.pb", statistics_pb2.DatasetFeatureStatisticsList)]
    return "examples: " + ", ".join(counts)


def _anomalies(artifact) -> str:
    from tensorflow_metadata.proto.v0 import anomalies_pb2
    problems = [f"{split}/{feature}: {info.short_description}" for split, anomalies in
                _per_split(artifact, "SchemaDiff.pb", anomalies_pb2.Anomalies)
                for feature, info in anomalies.anomaly_info.items()]
    return "anomalies: " + "; ".join(problems) if problems else "no anomalies"


def _trained(model, execution) -> str:
    steps = _prop(execution, "train_steps")
    steps = f"{int(steps):,} steps, " if steps is not None else ""
    return (f"{steps}accuracy train {_prop(model, 'train_accuracy', 0):.3f} / validation "
            f"{_prop(model, 'validation_accuracy', 0):.3f}; T {_prop(model, 'temperature', 0):.2f}"
            f", abstain below confidence {_prop(model, 'abstain_threshold', 0):.3f}")


def _blessing(blessing, evaluation) -> str:
    from tfx.dsl.io import fileio
    blessed = bool(_prop(blessing, "blessed", 0))
    reasons = []
    if evaluation is not None:
        with contextlib.suppress(Exception), fileio.open(
                os.path.join(evaluation.uri, "metrics.json")) as f:
            report = json.load(f)
            candidate = report["candidate"]["calibrated"]
            reasons.append(f"accuracy {candidate['accuracy']:.3f}, ECE {candidate['ece']:.3f}, "
                           f"no-digit AUROC {candidate['no_digit_auroc']:.3f}")
            reasons += report["failed_gates"]
    return ("BLESSED: " if blessed else "NOT BLESSED: ") + "; ".join(reasons)


def _pushed(pushed) -> str:
    if not _prop(pushed, "pushed", 0):
        return "not pushed (the model was not blessed)"
    return (f"pushed version {_prop(pushed, 'pushed_version', '?')} to "
            f"{_prop(pushed, 'pushed_destination', '?')}")
