"""svhn-tfx pipeline steps: data converters, Transform, and the custom trainer/evaluator.

One Keras per process: TensorFlow Transform's Keras layer is Keras 2 (``tf_keras``), so
the whole project uses ``tf_keras`` and says so before TensorFlow is first imported.
"""
import os

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
