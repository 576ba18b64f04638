"""svhn-tfx-serve and its client: TF Serving's API over the exported model. Depends on
``schema`` only, never on training code."""
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")   # quiet TensorFlow before it loads
