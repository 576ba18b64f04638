"""The record contract shared by the converters, the pipeline and the server.

Every data source becomes tf.Examples with these two features, and nothing else:
``image_raw`` holds the encoded file bytes exactly as a camera or file gives them
(never decoded or rescaled pixels), ``label`` is 0-9 for a digit and 10 for "no digit".
"""
import dataclasses
import os
from typing import Optional

IMAGE_KEY = "image_raw"
LABEL_KEY = "label"

NUM_DIGITS = 10
NO_DIGIT = 10          # label of the background ("no digit") class
NUM_CLASSES = 11       # ten digits plus "no digit"
MAX_LABEL = NO_DIGIT
# The encodings ``image_raw`` may hold: what the model's graph decodes (tf.io.decode_image).
IMAGE_FORMATS = ("PNG", "JPEG", "GIF", "BMP")   # and which variants of them: images.py
# The largest picture a record or a request may hold (decoded pixels, from its header).
MAX_IMAGE_PIXELS = 4096 * 4096

# Splits, one folder each under the data root. Every split found there is ingested:
TRAIN_SPLIT = "train"              # trained on
EVAL_SPLIT = "eval"                # the evaluator's main split: the default gates apply to it
CALIBRATION_SPLIT = "calibration"  # optional: labelled crops the temperature and abstention
#                                    threshold are fitted on instead of held-out training data
# Any other folder (e.g. "real") is one more eval split, reported on its own.
SPLIT_NAME_CHARS = "abcdefghijklmnopqrstuvwxyz0123456789_-"

SCHEMA_PATH = os.path.join(os.path.dirname(os.path.abspath(__file__)), "schema.pbtxt")
SCHEMA_DIR = os.path.dirname(SCHEMA_PATH)


@dataclasses.dataclass
class Record:
    """One labelled picture from any source (the generator, SVHN files, a folder tree),
    before the converters check it and write it as a tf.Example."""
    where: str                    # path, path#index or similar: what a person needs to find it
    image: Optional[bytes]        # encoded image bytes, exactly as stored
    label: int
    error: Optional[str] = None   # set by a source that already knows the item is bad
