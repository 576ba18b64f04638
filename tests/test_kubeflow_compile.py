"""The same pipeline compiles to a Kubeflow Pipelines v2 / Vertex AI spec that runs as compiled:
every path in it is on the shared root or inside the image."""
import json
import os

import pytest

from svhn_tfx.pipeline import kubeflow_v2_runner

ROOT = "gs://example-bucket/svhn-tfx"
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _strings(node):
    if isinstance(node, dict):
        for key, value in node.items():
            yield from _strings(key)
            yield from _strings(value)
    elif isinstance(node, list):
        for value in node:
            yield from _strings(value)
    elif isinstance(node, str):
        yield node
        if node[:1] in "[{":   # TFX nests JSON (e.g. beam args, properties) inside strings
            try:
                yield from _strings(json.loads(node))
            except ValueError:
                pass


@pytest.fixture(scope="module")
def spec(tmp_path_factory):
    output = tmp_path_factory.mktemp("kfp") / "pipeline.json"
    kubeflow_v2_runner.compile_pipeline(str(output), image="example.com/svhn-tfx:test",
                                        root=ROOT, beam_args=[])
    return json.loads(output.read_text())


def test_compiles_to_a_pipeline_spec_with_every_component(spec):
    tasks = spec["pipelineSpec"]["root"]["dag"]["tasks"]
    for component in ["ImportExampleGen", "StatisticsGen", "ImportSchemaGen", "ExampleValidator",
                      "AnomalyGate", "Transform", "SvhnTrainer",
                      "latest_blessed_model_resolver", "SvhnEvaluator", "Pusher"]:
        assert any(name.startswith(component) for name in tasks), (component, sorted(tasks))
    executors = spec["pipelineSpec"]["deploymentSpec"]["executors"]
    images = {e["container"]["image"] for e in executors.values() if "container" in e}
    assert images == {"example.com/svhn-tfx:test"}
    assert "AnomalyGate" in tasks["Transform"].get("dependentTasks", [])


def test_no_path_of_the_compiling_machine_and_no_direct_runner_args(spec):
    strings = list(_strings(spec))
    local = [s for s in strings if REPO in s or os.getcwd() in s or "/tmp/" in s
             or os.path.expanduser("~") + "/" in s]
    assert local == []
    assert not [s for s in strings if "--direct_" in s]
    assert any(s.startswith(f"{ROOT}/pipelines/") for s in strings)
    assert any(s == "/pipeline/schema/schema.pbtxt" for s in strings)
    assert any("--setup_file=/pipeline/setup.py" in s for s in strings)


def test_a_local_root_is_refused(tmp_path):
    with pytest.raises(ValueError, match="shared storage"):
        kubeflow_v2_runner.compile_pipeline(str(tmp_path / "p.json"), root=str(tmp_path))
