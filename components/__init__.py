"""svhn-tfx pipeline steps: data converters and generator, Transform, custom trainer/evaluator.

One Keras per process: TensorFlow Transform's Keras layer is Keras 2 (``tf_keras``), so
the whole project uses ``tf_keras`` and says so before TensorFlow is first imported.
"""
import os
import warnings

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
# Without an NVIDIA GPU, TensorFlow's CUDA plugins log registration errors at every import,
# in every process; they mean nothing there. Where a GPU is, its errors stay visible.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2" if os.path.exists("/dev/nvidiactl") else "3")
# oneDNN kernels on every x86 CPU, not only where TensorFlow picks them (AVX-512, AMX): 1.8x
# faster training steps on an AVX2-only one. Effective only before TensorFlow loads.
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")
warnings.filterwarnings("ignore", category=FutureWarning, module=r"google\.")  # pinned versions

# A log line that starts with this is progress a person running the pipeline wants to see:
# the run's console (pipeline/console.py) shows it; everything else goes to the log file.
PROGRESS_PREFIX = "progress: "
