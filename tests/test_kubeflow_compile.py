"""The same pipeline compiles to a Kubeflow Pipelines v2 / Vertex AI spec."""
import json

from pipeline import kubeflow_v2_runner


def test_compiles_to_a_pipeline_spec_with_every_component(tmp_path):
    output = tmp_path / "pipeline.json"
    kubeflow_v2_runner.compile_pipeline(str(output), image="example.com/svhn-tfx:test")
    spec = json.loads(output.read_text())
    tasks = spec["pipelineSpec"]["root"]["dag"]["tasks"]
    for component in ["ImportExampleGen", "StatisticsGen", "ImportSchemaGen", "ExampleValidator",
                      "AnomalyGate", "Transform", "SvhnTrainer",
                      "latest_blessed_model_resolver", "SvhnEvaluator", "Pusher"]:
        assert any(name.startswith(component) for name in tasks), (component, sorted(tasks))
    executors = spec["pipelineSpec"]["deploymentSpec"]["executors"]
    images = {e["container"]["image"] for e in executors.values() if "container" in e}
    assert images == {"example.com/svhn-tfx:test"}
    assert "AnomalyGate" in tasks["Transform"].get("dependentTasks", [])
