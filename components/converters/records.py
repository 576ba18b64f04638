"""Writes converted images as GZIP TFRecords of tf.Example, the one format ExampleGen reads.

Every source (SVHN .mat files, digitStruct photos, folder trees, the generator) yields
``schema.Record`` items; ``write_split`` checks each one (readable image, label in range) and
either stops with a message naming the item or, with ``skip_bad``, counts and skips it.
Output is written to a hidden temporary folder and renamed into place only when the
whole split is complete, so an interrupted or failed conversion never leaves a
half-written split that looks finished.
"""
import collections
import dataclasses
import os
import sys
import time
from typing import Iterable, List

import svhn_tfx.components  # noqa: F401  (sets the Keras/TF environment before TensorFlow loads)
import tensorflow as tf

from svhn_tfx import schema
from svhn_tfx.components.transform import preprocessing
from svhn_tfx.schema import images

gfile = tf.io.gfile   # every path may be a URI (gs://, s3://, ...) as well as a local path
RECORD_SUFFIX = ".tfrecord.gz"
DEFAULT_SHARD_SIZE = 20_000
PROGRESS_EVERY = 5_000


class BadRecordError(ValueError):
    """A source item that cannot become a training example; the message names it."""


@dataclasses.dataclass
class SplitStats:
    split: str
    path: str
    written: int = 0
    skipped: int = 0
    per_label: collections.Counter = dataclasses.field(default_factory=collections.Counter)
    skipped_examples: list = dataclasses.field(default_factory=list)

    def summary(self) -> str:
        labels = ", ".join(f"{k}:{v}" for k, v in sorted(self.per_label.items()))
        return (f"{self.split}: wrote {self.written} examples to {self.path} "
                f"(per label {labels}); skipped {self.skipped} bad records")


def check_record(record: schema.Record) -> None:
    """Raises BadRecordError unless the record is an image the model's graph decodes exactly
    (``schema.images``: checked from its header, then decoded by the graph's own decoder)
    and has a valid label."""
    if record.error:
        raise BadRecordError(f"{record.where}: {record.error}")
    if not isinstance(record.label, (int,)) or not 0 <= record.label <= schema.MAX_LABEL:
        raise BadRecordError(
            f"{record.where}: label {record.label!r} is out of range "
            f"[0, {schema.MAX_LABEL}] (0-9 digits, {schema.NO_DIGIT} = no digit)")
    try:
        images.read_header(record.image, schema.MAX_IMAGE_PIXELS)
        preprocessing.decode(record.image)   # truncated or corrupt pixel data fails here
    except images.ImageRejected as e:
        raise BadRecordError(f"{record.where}: {e}") from None
    except tf.errors.InvalidArgumentError as e:
        reason = e.message.split("}}")[-1].split("[Op:")[0].strip()   # TF's text, no op names
        raise BadRecordError(f"{record.where}: the model's decoder cannot read it "
                             f"({reason})") from None


def make_example(image: bytes, label: int) -> tf.train.Example:
    return tf.train.Example(features=tf.train.Features(feature={
        schema.IMAGE_KEY: tf.train.Feature(bytes_list=tf.train.BytesList(value=[image])),
        schema.LABEL_KEY: tf.train.Feature(int64_list=tf.train.Int64List(value=[label])),
    }))


def check_split_name(split: str) -> None:
    """A split is a folder under the data root and a TFX split name: keep it plain."""
    if not split or any(c not in schema.SPLIT_NAME_CHARS for c in split):
        raise ValueError(f"split name {split!r} must be non-empty and use only lower-case "
                         f"letters, digits, '_' and '-'")


def find_splits(data_root: str) -> List[str]:
    """The splits under ``data_root`` (folders holding records): train, eval, then the rest
    sorted. Hidden folders (a conversion in progress) are not splits."""
    if not tf.io.gfile.isdir(data_root):
        raise FileNotFoundError(f"data root {data_root} does not exist; write the data first "
                                f"(svhn-tfx-data, see the README)")
    found = sorted(name.rstrip("/") for name in tf.io.gfile.listdir(data_root)
                   if not name.startswith(".") and
                   tf.io.gfile.glob(os.path.join(data_root, name.rstrip("/"),
                                                 f"*{RECORD_SUFFIX}")))
    for required in (schema.TRAIN_SPLIT, schema.EVAL_SPLIT):
        if required not in found:
            raise FileNotFoundError(f"data root {data_root} has no {required!r} split "
                                    f"(found: {', '.join(found) or 'none'})")
    for split in found:
        check_split_name(split)
    first = [schema.TRAIN_SPLIT, schema.EVAL_SPLIT]
    return first + [s for s in found if s not in first]


def write_split(records: Iterable[schema.Record], out_dir: str, split: str, *,
                skip_bad: bool = False, overwrite: bool = False,
                shard_size: int = DEFAULT_SHARD_SIZE, log=None) -> SplitStats:
    """Writes ``records`` to ``out_dir/split/part-NNNNN.tfrecord.gz``, all or nothing.

    Progress and skipped records go to ``log`` (default: the current sys.stderr)."""
    log = log or sys.stderr
    check_split_name(split)
    final = os.path.join(out_dir, split)
    _restore_interrupted(final, log)
    if gfile.exists(final) and not overwrite:
        raise FileExistsError(f"{final} already exists; pass overwrite to replace it")
    gfile.makedirs(out_dir)
    partial = os.path.join(out_dir, f".{split}.partial-{os.getpid()}")
    _remove_tree(partial)
    gfile.makedirs(partial)
    stats = SplitStats(split=split, path=final)
    options = tf.io.TFRecordOptions(compression_type="GZIP")
    writer, shard, start = None, 0, time.time()
    try:
        for record in records:
            try:
                check_record(record)
            except BadRecordError as e:
                if not skip_bad:
                    raise
                stats.skipped += 1
                if len(stats.skipped_examples) < 20:
                    stats.skipped_examples.append(str(e))
                print(f"skipping bad record: {e}", file=log)
                continue
            if writer is None or stats.written % shard_size == 0 and stats.written:
                if writer is not None:
                    writer.close()
                    shard += 1
                writer = tf.io.TFRecordWriter(
                    os.path.join(partial, f"part-{shard:05d}{RECORD_SUFFIX}"), options)
            writer.write(make_example(record.image, record.label).SerializeToString())
            stats.written += 1
            stats.per_label[record.label] += 1
            if stats.written % PROGRESS_EVERY == 0:
                rate = stats.written / max(time.time() - start, 1e-9)
                print(f"{split}: {stats.written} examples ({rate:.0f}/s)", file=log, flush=True)
        if writer is not None:
            writer.close()
            writer = None
        if stats.written == 0:
            raise BadRecordError(f"{split}: no valid records to write")
        _replace(partial, final)
    finally:
        if writer is not None:
            writer.close()
        _remove_tree(partial)
    return stats


def _replace(new: str, final: str) -> None:
    """Moves ``new`` to ``final``; an existing ``final`` is set aside first and deleted only
    once the new one is in place, so a failure at any point leaves one of them whole."""
    if not gfile.exists(final):
        _move_tree(new, final)
        return
    old = _set_aside_name(final)
    _move_tree(final, old)
    try:
        _move_tree(new, final)
    except BaseException:
        _move_tree(old, final)
        raise
    gfile.rmtree(old)


def _move_tree(src: str, dst: str) -> None:
    """One atomic rename on a local disk; file by file where a "directory" is only a name
    prefix (object stores, ram://), whose renames do not carry a folder's contents."""
    if "://" not in src:
        gfile.rename(src, dst)
        return
    for parent, _, files in gfile.walk(src):
        target = dst + parent[len(src):]
        gfile.makedirs(target)
        for name in files:
            gfile.rename(os.path.join(parent, name), os.path.join(target, name))
    gfile.rmtree(src)


def _remove_tree(path: str) -> None:
    if gfile.exists(path):
        gfile.rmtree(path)


def _set_aside_name(final: str) -> str:
    return os.path.join(os.path.dirname(final), f".{os.path.basename(final)}.replaced")


def _restore_interrupted(final: str, log) -> None:
    """A replacement killed between its two renames left the old split set aside: put it back."""
    old = _set_aside_name(final)
    if gfile.exists(old):
        if gfile.exists(final):
            gfile.rmtree(old)   # the new split made it in; the old one was being deleted
        else:
            _move_tree(old, final)
            print(f"restored {final} from an interrupted replacement", file=log)


def read_split(path: str):
    """Yields (image_bytes, label) from a split folder written above; for tests and tools."""
    files = sorted(tf.io.gfile.glob(os.path.join(path, f"*{RECORD_SUFFIX}")))
    for raw in tf.data.TFRecordDataset(files, compression_type="GZIP"):
        ex = tf.train.Example.FromString(raw.numpy())
        f = ex.features.feature
        yield f[schema.IMAGE_KEY].bytes_list.value[0], f[schema.LABEL_KEY].int64_list.value[0]
