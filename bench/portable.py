"""The Beam components on Beam's portable runner, with SDK workers in separate processes.

This is how Flink and Spark run Python pipelines: a job server takes the pipeline, SDK
worker processes run it, and nothing passes through the driver's memory or working
directory. Here the job server is Beam's ``local_job_service_main`` and the workers come
from ``worker_pool_main`` (``--environment_type=EXTERNAL``), both separate processes on this
machine. The Beam components (ExampleGen, StatisticsGen, Transform, the evaluator) run once
on the DirectRunner and once on the portable runner, on the same data and the same
(imported) model; the statistics and the evaluation metrics must be identical (floats to
float32's last bits: the runners batch records and add partial sums differently).
"""
import contextlib
import dataclasses
import json
import math
import os
import shutil
import socket
import subprocess
import sys
import time

from tfx import v1 as tfx

from svhn_tfx import schema
from svhn_tfx.components.converters.records import write_split
from svhn_tfx.components.generator.synthetic import generate
from svhn_tfx.components.evaluator.blessing import OPEN_GATES
from svhn_tfx.components.evaluator.component import METRICS_FILE, SvhnEvaluator
from svhn_tfx.pipeline import configs
from svhn_tfx.pipeline.svhn_pipeline import PREPROCESSING_FN, RECORD_GLOB
from svhn_tfx.serving.process import free_port

STARTUP_S = 60
# Model outputs are float32, and the runners batch records differently: the same image in a
# batch of another size can come out different in float32's last bits (seen: 2e-7 relative).
FLOAT_REL_TOL = 1e-6


@contextlib.contextmanager
def portable_runner(log_dir: str):
    """Beam's job server and an SDK worker pool as child processes; yields the Beam args."""
    job_port, pool_port = free_port(), free_port()
    # Workers are started as "python": the one of this environment, which has the packages.
    env = dict(os.environ, PATH=os.path.dirname(sys.executable) + os.pathsep +
               os.environ.get("PATH", ""))
    commands = {
        "job-server": [sys.executable, "-m",
                       "apache_beam.runners.portability.local_job_service_main",
                       f"--port={job_port}"],
        "worker-pool": [sys.executable, "-m", "apache_beam.runners.worker.worker_pool_main",
                        f"--service_port={pool_port}"],
    }
    processes = []
    try:
        for name, command in commands.items():
            log = open(os.path.join(log_dir, f"{name}.log"), "w")
            processes.append(subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT,
                                              env=env, cwd=log_dir))
        for port in (job_port, pool_port):
            _wait_for_port(port, processes)
        yield ["--runner=PortableRunner", f"--job_endpoint=localhost:{job_port}",
               "--environment_type=EXTERNAL", f"--environment_config=localhost:{pool_port}",
               f"--setup_file={os.path.join(os.path.dirname(configs.__file__), '..', 'setup.py')}"]
    finally:
        for process in processes:
            process.terminate()
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()


def _wait_for_port(port: int, processes) -> None:
    deadline = time.time() + STARTUP_S
    while time.time() < deadline:
        if any(p.poll() is not None for p in processes):
            raise RuntimeError("a Beam service exited at start; see its log")
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.5)
    raise TimeoutError(f"nothing listens on port {port} after {STARTUP_S} s")


def beam_components(root: str, data_root: str, model_uri: str, beam_args) -> tfx.dsl.Pipeline:
    """The pipeline's Beam components, with the model imported instead of trained."""
    example_gen = tfx.components.ImportExampleGen(
        input_base=data_root, input_config=tfx.proto.Input(splits=[
            tfx.proto.Input.Split(name=s, pattern=f"{s}/{RECORD_GLOB}")
            for s in (schema.TRAIN_SPLIT, schema.EVAL_SPLIT)]))
    statistics_gen = tfx.components.StatisticsGen(examples=example_gen.outputs["examples"])
    schema_gen = tfx.components.ImportSchemaGen(schema_file=schema.SCHEMA_PATH)
    transform = tfx.components.Transform(
        examples=example_gen.outputs["examples"], schema=schema_gen.outputs["schema"],
        preprocessing_fn=PREPROCESSING_FN, disable_statistics=True, materialize=False)
    model = tfx.dsl.Importer(source_uri=model_uri,
                             artifact_type=tfx.types.standard_artifacts.Model).with_id("model")
    evaluator = SvhnEvaluator(model=model.outputs["result"],
                              examples=example_gen.outputs["examples"],
                              **dataclasses.asdict(OPEN_GATES))
    return tfx.dsl.Pipeline(
        pipeline_name="beam-components", pipeline_root=os.path.join(root, "pipeline"),
        components=[example_gen, statistics_gen, schema_gen, transform, model, evaluator],
        enable_cache=False,
        metadata_connection_config=tfx.orchestration.metadata.sqlite_metadata_connection_config(
            os.path.join(root, "metadata.db")),
        beam_pipeline_args=beam_args)


def _outputs(root: str) -> dict:
    """Statistics per split (serialized protos) and the candidate's eval metrics."""
    from tensorflow_metadata.proto.v0 import statistics_pb2
    pipeline = os.path.join(root, "pipeline")
    stats = {}
    for split in (schema.TRAIN_SPLIT, schema.EVAL_SPLIT):
        (path,) = [os.path.join(dirpath, "FeatureStats.pb") for dirpath, _, files in
                   os.walk(os.path.join(pipeline, "StatisticsGen")) if "FeatureStats.pb" in files
                   and dirpath.endswith(f"Split-{split}")]
        with open(path, "rb") as f:
            stats[split] = statistics_pb2.DatasetFeatureStatisticsList.FromString(f.read())
    (metrics_path,) = [os.path.join(d, METRICS_FILE) for d, _, files in
                       os.walk(os.path.join(pipeline, "SvhnEvaluator")) if METRICS_FILE in files]
    with open(metrics_path) as f:
        metrics = json.load(f)
    candidate = dict(metrics["candidate"])
    candidate.pop("uri", None)
    return {"statistics": stats, "metrics": candidate}


def _same(a, b) -> bool:
    """Equal, floats to FLOAT_REL_TOL (see there); counts and strings exactly."""
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    if isinstance(a, float) and isinstance(b, float):
        return math.isclose(a, b, rel_tol=FLOAT_REL_TOL, abs_tol=FLOAT_REL_TOL)
    return a == b


def run(work: str, model_uri: str, train: int, eval_: int) -> dict:
    shutil.rmtree(work, ignore_errors=True)
    data_root = os.path.join(work, "data")
    write_split(generate(train, seed=7), data_root, schema.TRAIN_SPLIT)
    write_split(generate(eval_, seed=8), data_root, schema.EVAL_SPLIT)
    seconds, outputs = {}, {}
    runs = {"direct": lambda: contextlib.nullcontext(configs.DEFAULT_BEAM_ARGS),
            "portable": lambda: portable_runner(work)}
    for name, runner in runs.items():
        root = os.path.join(work, name)
        with runner() as beam_args:
            start = time.perf_counter()
            tfx.orchestration.LocalDagRunner().run(
                beam_components(root, data_root, model_uri, beam_args))
            seconds[name] = round(time.perf_counter() - start, 1)
        outputs[name] = _outputs(root)
    from google.protobuf import json_format
    direct, portable = outputs["direct"], outputs["portable"]
    same_statistics = all(_same(json_format.MessageToDict(direct["statistics"][s]),
                                json_format.MessageToDict(portable["statistics"][s]))
                          for s in direct["statistics"])
    return {"examples": train + eval_, "seconds": seconds,
            "identical_statistics": same_statistics,
            "identical_metrics": _same(direct["metrics"], portable["metrics"]),
            "accuracy": outputs["portable"]["metrics"]["calibrated"]["accuracy"],
            "portable_args": "--runner=PortableRunner --environment_type=EXTERNAL "
                             "(local_job_service_main + worker_pool_main)"}


def table(result: dict) -> str:
    s = result["seconds"]
    return "\n".join([
        "| Beam runner | seconds (ExampleGen, StatisticsGen, Transform, evaluator) | "
        "statistics | evaluation metrics |", "|---|---|---|---|",
        f"| DirectRunner, multi-processing, 2 workers | {s['direct']} | reference | reference |",
        f"| PortableRunner, job server + SDK worker pool in separate processes | "
        f"{s['portable']} | {'identical' if result['identical_statistics'] else 'DIFFERENT'} | "
        f"{'identical' if result['identical_metrics'] else 'DIFFERENT'} |",
    ]) + (f"\n\n{result['examples']} generated examples; the same imported model on both runs. "
          f"Identical: every count and string equal, every float within {FLOAT_REL_TOL:g} "
          f"relative: model outputs are float32, and the runners batch records (and add partial "
          f"sums) differently; the differences seen are float32's last bits.")
