"""svhn-tfx-serve and its client: TF Serving's API over the exported model. Depends on
``schema`` only, never on training code."""
import os
import warnings

# Quiet TensorFlow before it loads. Without an NVIDIA GPU, its CUDA plugins log registration
# errors at import that mean nothing there; where a GPU is, its errors stay visible.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2" if os.path.exists("/dev/nvidiactl") else "3")
warnings.filterwarnings("ignore", category=FutureWarning, module=r"google\.")  # pinned versions
