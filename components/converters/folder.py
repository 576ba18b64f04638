"""A folder tree ``ROOT/<label>/...`` of image files (Keras ``flow_from_directory`` layout).

Folder names ``0``-``9`` hold digits, ``none`` (or ``10``) images with no digit. Files
with an image extension (.png .jpg .jpeg .gif .bmp, any case) anywhere below a label
folder are taken, in sorted order, and their bytes are stored untouched; other files and
hidden entries (``.DS_Store``, ``.ipynb_checkpoints``) are ignored, as Keras does.

A folder with another name gives one bad record per image file in it (so the default
stops at its first file, naming the folder; ``skip_bad`` counts and skips them). An
unreadable file gives a bad record naming its path; a corrupt or truncated image is
caught by ``records.check_record`` and reported with its path. ``root`` may be a URI
(gs://...) as well as a local folder.
"""
import os
from typing import Iterator, List, Optional

import tensorflow as tf

from svhn_tfx import schema
from svhn_tfx.components.converters.records import gfile

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".gif", ".bmp")
NO_DIGIT_NAMES = ("none", str(schema.NO_DIGIT))


def folder_label(name: str) -> Optional[int]:
    """The label a folder name stands for, or None if it is not a label folder name."""
    if name in NO_DIGIT_NAMES:
        return schema.NO_DIGIT
    if len(name) == 1 and name.isdigit():
        return int(name)
    return None


def _image_files(directory: str) -> List[str]:
    found = []
    for parent, dirs, files in gfile.walk(directory):
        dirs[:] = sorted(d.rstrip("/") for d in dirs if not d.startswith("."))
        found.extend(os.path.join(parent, f) for f in sorted(files)
                     if not f.startswith(".") and f.lower().endswith(IMAGE_EXTENSIONS))
    return found


def read_folder(root: str) -> Iterator[schema.Record]:
    """Checks ``root`` now; yields one schema.Record per image file lazily, in sorted order."""
    root = os.fspath(root)
    if not gfile.exists(root):
        raise FileNotFoundError(f"{root}: no such directory")
    if not gfile.isdir(root):
        raise NotADirectoryError(f"{root}: not a directory")
    folders = sorted(e.rstrip("/") for e in gfile.listdir(root)
                     if not e.startswith(".") and gfile.isdir(os.path.join(root, e)))
    if not folders:
        raise FileNotFoundError(f"{root}: no label folders (expected {root}/0 .. {root}/9 "
                                f"and {root}/none)")

    def records():
        for name in folders:
            label = folder_label(name)
            for path in _image_files(os.path.join(root, name)):
                if label is None:
                    yield schema.Record(path, None, -1, error=(
                        f"folder name {name!r} is not a label (use 0-9 for digits, "
                        f"'none' or '10' for no digit)"))
                    continue
                try:
                    with gfile.GFile(path, "rb") as f:
                        data = f.read()
                except (OSError, tf.errors.OpError) as e:
                    reason = e.message if isinstance(e, tf.errors.OpError) else e.strerror or e
                    yield schema.Record(path, None, label, error=f"cannot read file ({reason})")
                    continue
                yield schema.Record(path, data, label)
    return records()
