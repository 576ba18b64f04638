"""The exported model's wire contract: what the trainer exports and every caller relies on.

  serving_default  image_bytes: string[batch] (PNG/JPEG/GIF/BMP file bytes, any size)
                   -> probabilities float32[batch, 11] (calibrated: softmax(logits / T)),
                      class_id int64[batch] (10 = no digit), confidence float32[batch],
                      is_digit bool[batch] (class_id is a digit),
                      digit int64[batch] (the digit, or NOT_ANSWERED for "no digit" and for
                      confidence below the abstention threshold)
  classify         inputs: string[batch] serialized tf.Example with ``image_raw``
                   -> classes string[batch, 11], scores float32[batch, 11]
                   (method ``tensorflow/serving/classify``, for TF Serving's Classify API)
  preprocess       image_bytes -> image float32[batch, 32, 32, 3]: the exact model input,
                   so skew between training and serving can be checked from outside.
"""
from svhn_tfx.schema import NUM_DIGITS

SERVING_SIGNATURE = "serving_default"
CLASSIFY_SIGNATURE = "classify"
PREPROCESS_SIGNATURE = "preprocess"
IMAGE_BYTES_INPUT = "image_bytes"
EXAMPLES_INPUT = "inputs"     # serialized tf.Examples (the classify signature)
CLASSIFY_METHOD = "tensorflow/serving/classify"
CLASS_NAMES = [str(d) for d in range(NUM_DIGITS)] + ["none"]
NOT_ANSWERED = -1             # ``digit`` when the model does not answer with a digit
# The model's own calibration record inside the SavedModel (TF Serving ignores unknown files in
# assets.extra/): temperature, threshold, and ANSWER_SHARES, the share of each kind of answer
# on the held-out data it was calibrated on, which the server's drift check compares with.
CALIBRATION_ASSET = "assets.extra/calibration.json"
ANSWER_SHARES = "answer_shares"
ANSWER_KINDS = ("no_digit", "abstain")   # class_id is "no digit"; digit is NOT_ANSWERED
