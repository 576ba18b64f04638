"""Wires the svhn-tfx components into a TFX pipeline; no logic lives here."""
import dataclasses
from typing import Dict, List, Optional, Sequence

from tfx import v1 as tfx

from svhn_tfx import schema
from svhn_tfx.components import trust
from svhn_tfx.components.anomaly_gate import AnomalyGate
from svhn_tfx.components.converters.records import find_splits
from svhn_tfx.components.evaluator.blessing import Gates, split_gates_json
from svhn_tfx.components.evaluator.component import SvhnEvaluator
from svhn_tfx.components.trainer import recipe
from svhn_tfx.components.trainer.component import SvhnTrainer, code_version, weights_fingerprint

PREPROCESSING_FN = "svhn_tfx.components.transform.preprocessing.preprocessing_fn"
RECORD_GLOB = "*.tfrecord.gz"


def create_pipeline(
    pipeline_name: str,
    pipeline_root: str,
    data_root: str,
    serving_model_dir: str,
    train_steps: int,
    batch_size: int,
    learning_rate: float,
    adversarial_epsilon: float = recipe.ADVERSARIAL_EPSILON,
    gates: Gates = Gates(),
    split_gates: Optional[Dict[str, Gates]] = None,
    target_risk: float = trust.TARGET_RISK,
    metadata_connection_config=None,
    beam_pipeline_args: Optional[List[str]] = None,
    enable_cache: bool = True,
    splits: Optional[Sequence[str]] = None,
    warm_start_dir: Optional[str] = None,
    warm_start_fingerprint: Optional[str] = None,
    schema_file: str = schema.SCHEMA_PATH,
) -> tfx.dsl.Pipeline:
    """``schema_file`` and ``warm_start_dir`` are paths where the components run (inside the
    image, for a compiled pipeline); ``warm_start_fingerprint`` is the weights' hash when
    they cannot be read from here."""
    # Every split is ingested: train, eval, and the optional calibration split and extra eval
    # splits (e.g. the user's real crops). Unnamed, they are the split folders found now.
    example_gen = tfx.components.ImportExampleGen(
        input_base=data_root,
        input_config=tfx.proto.Input(splits=[
            tfx.proto.Input.Split(name=split, pattern=f"{split}/{RECORD_GLOB}")
            for split in (splits or find_splits(data_root))]))
    statistics_gen = tfx.components.StatisticsGen(examples=example_gen.outputs["examples"])
    schema_gen = tfx.components.ImportSchemaGen(schema_file=schema_file)
    example_validator = tfx.components.ExampleValidator(
        statistics=statistics_gen.outputs["statistics"], schema=schema_gen.outputs["schema"])
    anomaly_gate = AnomalyGate(anomalies=example_validator.outputs["anomalies"])

    transform = tfx.components.Transform(
        examples=example_gen.outputs["examples"],
        schema=schema_gen.outputs["schema"],
        preprocessing_fn=PREPROCESSING_FN,
        # StatisticsGen already describes the raw data; statistics of 3,072 pixel values per
        # image add nothing a person reads and cost 23% of Transform's time (bench/).
        disable_statistics=True,
        # The preprocessing_fn has no analyzers, so all Transform would do per image is write
        # 12 KB of float32 through Beam (34 s of 34 s at 22k images, bench/). The trainer
        # applies the transform graph to the raw examples in its tf.data input instead.
        materialize=False)
    transform.add_upstream_node(anomaly_gate)

    # Warm start: the weights are imported as a Model artifact, named by their hash, so that
    # new weights in the same folder make a new artifact (and a Trainer cache miss).
    base_model = tfx.dsl.Importer(
        source_uri=warm_start_dir, artifact_type=tfx.types.standard_artifacts.Model,
        custom_properties={"sha256": warm_start_fingerprint or weights_fingerprint(warm_start_dir)},
    ).with_id("warm_start_importer") if warm_start_dir else None

    trainer = SvhnTrainer(
        examples=example_gen.outputs["examples"],
        base_model=base_model.outputs["result"] if base_model else None,
        transform_graph=transform.outputs["transform_graph"],
        schema=schema_gen.outputs["schema"],
        train_steps=train_steps,
        batch_size=batch_size,
        learning_rate=learning_rate,
        adversarial_epsilon=adversarial_epsilon,
        target_risk=target_risk,
        # TFX's cache looks at inputs and parameters, not code: a changed model must retrain
        code_version=code_version())

    model_resolver = tfx.dsl.Resolver(
        strategy_class=tfx.dsl.experimental.LatestBlessedModelStrategy,
        model=tfx.dsl.Channel(type=tfx.types.standard_artifacts.Model),
        model_blessing=tfx.dsl.Channel(type=tfx.types.standard_artifacts.ModelBlessing),
    ).with_id("latest_blessed_model_resolver")

    evaluator = SvhnEvaluator(
        model=trainer.outputs["model"],
        examples=example_gen.outputs["examples"],
        baseline_model=model_resolver.outputs["model"],
        split_gates=split_gates_json(split_gates or {}),
        **dataclasses.asdict(gates))

    pusher = tfx.components.Pusher(
        model=trainer.outputs["model"],
        model_blessing=evaluator.outputs["blessing"],
        push_destination=tfx.proto.PushDestination(
            filesystem=tfx.proto.PushDestination.Filesystem(base_directory=serving_model_dir)))

    return tfx.dsl.Pipeline(
        pipeline_name=pipeline_name,
        pipeline_root=pipeline_root,
        components=[example_gen, statistics_gen, schema_gen, example_validator, anomaly_gate,
                    transform] + ([base_model] if base_model else []) + [
                        trainer, model_resolver, evaluator, pusher],
        enable_cache=enable_cache,
        metadata_connection_config=metadata_connection_config,
        beam_pipeline_args=beam_pipeline_args or [])


def create_configured_pipeline(**overrides) -> tfx.dsl.Pipeline:
    """create_pipeline with every setting from configs.py; runners pass what differs."""
    from svhn_tfx.pipeline import configs
    settings = dict(
        pipeline_name=configs.PIPELINE_NAME,
        pipeline_root=configs.PIPELINE_ROOT,
        data_root=configs.DATA_ROOT,
        serving_model_dir=configs.SERVING_MODEL_DIR,
        train_steps=configs.TRAIN_STEPS,
        batch_size=configs.BATCH_SIZE,
        learning_rate=configs.LEARNING_RATE,
        adversarial_epsilon=configs.ADVERSARIAL_EPSILON,
        gates=configs.GATES,
        split_gates=configs.SPLIT_GATES,
        target_risk=configs.TARGET_RISK,
        beam_pipeline_args=configs.BEAM_PIPELINE_ARGS,
        splits=configs.SPLITS,
        warm_start_dir=configs.WARM_START_DIR)
    settings.update(overrides)
    return create_pipeline(**settings)
