"""All of the pipeline's configuration, in one place.

Paths live under one root (``SVHN_TFX_ROOT``, default ``./artifacts`` in the repository):
converted data, pipeline outputs, the MLMD database, the TFX CLI's registry and the
pushed models. Everything can be overridden with environment variables, because the TFX
CLI runs ``local_runner.py`` without arguments.
"""
import os
import shlex

from svhn_tfx.components import trust
from svhn_tfx.components.evaluator.blessing import Gates, parse_split_gates
from svhn_tfx.components.trainer import recipe

_REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

PIPELINE_NAME = os.environ.get("SVHN_TFX_PIPELINE_NAME", "svhn-tfx")
MODEL_NAME = os.environ.get("SVHN_TFX_MODEL_NAME", "svhn")


def _root(path: str) -> str:
    """A URI (gs://bucket/..., s3://...) stays as given; a local path becomes absolute."""
    return path if "://" in path else os.path.abspath(path)


ARTIFACTS_ROOT = _root(os.environ.get("SVHN_TFX_ROOT", os.path.join(_REPO_ROOT, "artifacts")))
# Converted GZIP TFRecords, one folder per split (what `svhn-tfx-data` writes).
DATA_ROOT = _root(os.environ.get("SVHN_TFX_DATA", os.path.join(ARTIFACTS_ROOT, "data")))
PIPELINE_ROOT = os.path.join(ARTIFACTS_ROOT, "pipelines", PIPELINE_NAME)
# What must be on this machine even when the root is a URI: the local runner's MLMD database
# (SQLite) and the run logs.
_LOCAL_ROOT = ARTIFACTS_ROOT if "://" not in ARTIFACTS_ROOT else os.path.join(_REPO_ROOT,
                                                                               "artifacts")
METADATA_PATH = _root(os.environ.get("SVHN_TFX_METADATA", os.path.join(
    _LOCAL_ROOT, "metadata", PIPELINE_NAME, "metadata.db")))
# The splits to ingest, e.g. "train,eval,calibration,real". Unset: every split folder found in
# DATA_ROOT when the pipeline is built (a compiled Kubeflow/Vertex pipeline takes train,eval).
SPLITS = tuple(s.strip() for s in os.environ["SVHN_TFX_SPLITS"].split(",") if s.strip()) \
    if os.environ.get("SVHN_TFX_SPLITS") else None
# One full log per `tfx run create` (pipeline/console.py).
LOG_DIR = _root(os.environ.get("SVHN_TFX_LOG_DIR", os.path.join(_LOCAL_ROOT, "logs")))
# Pusher writes <SERVING_ROOT>/<MODEL_NAME>/<version>/: TF Serving's --model_base_path.
SERVING_ROOT = os.path.join(ARTIFACTS_ROOT, "serving")
SERVING_MODEL_DIR = os.path.join(SERVING_ROOT, MODEL_NAME)

# The embedded default data set (`make demo`).
DEMO_TRAIN_EXAMPLES = int(os.environ.get("SVHN_TFX_DEMO_TRAIN", "20000"))
DEMO_EVAL_EXAMPLES = int(os.environ.get("SVHN_TFX_DEMO_EVAL", "2000"))

# Warm start: the Trainer starts from the weights in this folder (``weights.h5``), which
# `make pretrain` made from generated data only (see pretrained/README.md). Set
# SVHN_TFX_WARM_START= (empty) to train from scratch.
PRETRAINED_DIR = os.path.join(_REPO_ROOT, "pretrained")
WARM_START_DIR = os.environ.get("SVHN_TFX_WARM_START", PRETRAINED_DIR if os.path.isdir(
    PRETRAINED_DIR) else "") or None

# Trainer. Warm-started, it fine-tunes: fewer steps at a lower peak rate than from scratch.
TRAIN_STEPS = int(os.environ.get("SVHN_TFX_TRAIN_STEPS", recipe.FINE_TUNE_STEPS if WARM_START_DIR
                                 else recipe.TRAIN_STEPS))
BATCH_SIZE = recipe.BATCH_SIZE
LEARNING_RATE = recipe.FINE_TUNE_LEARNING_RATE if WARM_START_DIR else recipe.LEARNING_RATE
ADVERSARIAL_EPSILON = float(os.environ.get("SVHN_TFX_ADVERSARIAL_EPSILON",
                                           recipe.ADVERSARIAL_EPSILON))   # 0: plain steps

# `make pretrain`: the longer recipe the warm-start weights come from (generated data only).
PRETRAIN_TRAIN_EXAMPLES = int(os.environ.get("SVHN_TFX_PRETRAIN_TRAIN", "300000"))
PRETRAIN_EVAL_EXAMPLES = 4000
# Adversarial steps (the recipe's, about 1.7x a plain one): 15,000 of them, 52 minutes on 2
# cores, made weights that read the real dev crops 0.909 alone, against 0.865 for 30,000 plain
# steps (2026-12-05; pretrained/README.md). SVHN_TFX_PRETRAIN_ADVERSARIAL_EPSILON=0: plain.
PRETRAIN_STEPS = int(os.environ.get("SVHN_TFX_PRETRAIN_STEPS", "15000"))
PRETRAIN_LEARNING_RATE = recipe.LEARNING_RATE   # from scratch
PRETRAIN_ADVERSARIAL_EPSILON = float(os.environ.get("SVHN_TFX_PRETRAIN_ADVERSARIAL_EPSILON",
                                                    recipe.ADVERSARIAL_EPSILON))
PRETRAIN_SEED = 100   # a different generator seed from the demo's data

# Calibration: the abstention threshold is chosen so that at most TARGET_RISK of the digits
# the model answers (on held-out data) are wrong.
TARGET_RISK = trust.TARGET_RISK

# Evaluator gates: bless only a model that is accurate, calibrated and tells "no digit"
# apart, and that is not worse than the last blessed model by more than the margins.
GATES = Gates(
    min_accuracy=float(os.environ.get("SVHN_TFX_MIN_ACCURACY", "0.80")),
    max_ece=float(os.environ.get("SVHN_TFX_MAX_ECE", "0.05")),
    min_no_digit_auroc=float(os.environ.get("SVHN_TFX_MIN_NO_DIGIT_AUROC", "0.95")),
    max_accuracy_drop=0.01,
    max_ece_rise=0.01,
    max_auroc_drop=0.01,
)

# Gates on other eval splits, by name: JSON, e.g.
#   SVHN_TFX_SPLIT_GATES='{"real": {"min_accuracy": 0.85, "max_ece": 0.08}}'
# (a gate left out is open). A split a gate names must be in the data.
SPLIT_GATES = parse_split_gates(os.environ.get("SVHN_TFX_SPLIT_GATES", ""))

# Beam: DirectRunner on this machine by default. For a cluster pass e.g.
#   SVHN_TFX_BEAM_ARGS="--runner=FlinkRunner --flink_master=host:8081 --environment_type=LOOPBACK"
# --setup_file ships this package to remote workers; it also stops TFX from building an
# sdist of TFX itself before every Beam component (what it does when no dependency is set).
DEFAULT_BEAM_ARGS = ["--direct_running_mode=multi_processing", "--direct_num_workers=2",
                     f"--setup_file={os.path.join(_REPO_ROOT, 'setup.py')}"]
BEAM_PIPELINE_ARGS = shlex.split(os.environ["SVHN_TFX_BEAM_ARGS"]) \
    if "SVHN_TFX_BEAM_ARGS" in os.environ else DEFAULT_BEAM_ARGS

# Kubeflow / Vertex: the container image holding this package (see README).
KUBEFLOW_IMAGE = os.environ.get("SVHN_TFX_IMAGE", "gcr.io/your-project/svhn-tfx:latest")
