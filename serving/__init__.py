"""svhn-tfx-serve and its client: TF Serving's API over the exported model. Depends on
``schema`` only, never on training code."""
import os
import warnings

# Quiet TensorFlow before it loads. Without an NVIDIA GPU, its CUDA plugins log registration
# errors at import that mean nothing there; where a GPU is, its errors stay visible.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2" if os.path.exists("/dev/nvidiactl") else "3")
# oneDNN kernels on every x86 CPU, not only where TensorFlow picks them (AVX-512, AMX): faster
# convolutions on an AVX2-only one (1.8x a training step). Effective only before TF loads.
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")
warnings.filterwarnings("ignore", category=FutureWarning, module=r"google\.")  # pinned versions
