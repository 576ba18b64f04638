"""SVHN "format 1" (full photos + ``digitStruct.mat``) as 32x32 digit and no-digit crops.

``digitStruct.mat`` is MATLAB v7.3 (HDF5 with object references): ``digitStruct/name[i]``
refers to the file name (uint16 characters), ``digitStruct/bbox[i]`` to a group with
``label``, ``left``, ``top``, ``width`` and ``height``. Each field is a 1x1 dataset when
the photo has one digit, else a column of references to 1x1 datasets. Label 10 means 0.

Digit crops are made the way SVHN's 32x32 set was: the box is extended in its shorter
dimension to a square around its centre, parts outside the photo are filled by repeating
the border pixels, and the square is resized to ``size`` pixels with an antialiasing
(Lanczos) filter and stored as PNG.

"No digit" crops (label 10): per photo, ``backgrounds_per_image`` squares that overlap no
digit box (nor each other) and lie inside the photo, with sides drawn between the
smallest and largest digit square of that photo (falling back to the smallest); positions
are drawn uniformly among all that fit, from ``numpy.random.default_rng([seed, index])``,
so they are reproducible and independent of other photos. A photo where none fits gets
fewer (or none).

A photo that is missing or unreadable is one bad record, ``<photo path> (digitStruct.mat#i)``
with ``i`` 0-based; a box with a label outside 1-10 or no area is a bad record for that digit.
"""
import dataclasses
import io
import math
import os
from typing import Iterator, List, Optional, Sequence, Tuple

import numpy as np
import tensorflow as tf
from PIL import Image

from svhn_tfx import schema
from svhn_tfx.components.converters import files
from svhn_tfx.components.converters.records import BadRecordError
from svhn_tfx.schema import images

DIGIT_STRUCT = "digitStruct.mat"
FIELDS = ("label", "left", "top", "width", "height")
DEFAULT_SIZE = 32


class DigitStructError(BadRecordError):
    """digitStruct.mat as a whole is unusable (not HDF5, keys missing, corrupt)."""


@dataclasses.dataclass(frozen=True)
class Box:
    label: float     # as stored: 1-10, 10 = digit 0
    left: float
    top: float
    width: float
    height: float

    def square(self) -> Tuple[int, int, int]:
        """(left, top, side) of the square window SVHN's 32x32 crops use, in pixels."""
        side = max(self.width, self.height)
        cx, cy = self.left + self.width / 2.0, self.top + self.height / 2.0
        s = max(1, math.floor(side + 0.5))
        return math.floor(cx - s / 2.0 + 0.5), math.floor(cy - s / 2.0 + 0.5), s

    def bounds(self) -> Tuple[float, float, float, float]:
        return self.left, self.top, self.left + self.width, self.top + self.height


@dataclasses.dataclass
class Photo:
    index: int          # 0-based position in digitStruct.mat
    name: str
    boxes: List[Box]


@dataclasses.dataclass
class Crop:
    where: str
    label: int                            # 0-9, or schema.NO_DIGIT
    square: Tuple[int, int, int]          # (left, top, side) in photo pixels
    pixels: Optional[np.ndarray] = None   # size x size x 3 uint8
    error: Optional[str] = None


# ------------------------------------------------------------------------- reading

def read_digit_struct(mat_path: str) -> Iterator[Photo]:
    """Opens and checks ``mat_path`` now; yields its photos (name and boxes) lazily."""
    import h5py
    mat_path = os.fspath(mat_path)
    if not files.is_file(mat_path):
        raise FileNotFoundError(f"{mat_path}: no such file")
    if not files.is_hdf5(mat_path):
        raise DigitStructError(f"{mat_path}: not a MATLAB v7.3 (HDF5) file, as SVHN's "
                               f"digitStruct.mat is")
    try:
        f = files.open_hdf5(mat_path)
    except OSError as e:
        raise DigitStructError(f"{mat_path}: cannot open ({e})") from None
    try:
        names, bboxes = f.get("digitStruct/name"), f.get("digitStruct/bbox")
        if not isinstance(names, h5py.Dataset) or not isinstance(bboxes, h5py.Dataset):
            raise DigitStructError(f"{mat_path}: no digitStruct/name and digitStruct/bbox")
        names, bboxes = names[()].reshape(-1), bboxes[()].reshape(-1)
        if len(names) != len(bboxes):
            raise DigitStructError(f"{mat_path}: {len(names)} names but {len(bboxes)} bboxes")
    except BaseException:
        f.close()
        raise

    def photos():
        with f:
            for i, (name_ref, bbox_ref) in enumerate(zip(names, bboxes)):
                where = f"{mat_path}#{i}"
                try:
                    name = "".join(chr(int(c)) for c in np.asarray(f[name_ref]).reshape(-1))
                    group = f[bbox_ref]
                    fields = {k: _values(f, group[k]) for k in FIELDS}
                except (KeyError, ValueError, TypeError, OSError) as e:
                    raise DigitStructError(f"{where}: malformed record ({e})") from None
                if len({len(v) for v in fields.values()}) != 1:
                    raise DigitStructError(f"{where}: bbox fields have different lengths")
                boxes = [Box(*(fields[k][j] for k in FIELDS))
                         for j in range(len(fields["label"]))]
                yield Photo(i, name, boxes)
    return photos()


def _values(f, dataset) -> List[float]:
    """A bbox field: a 1x1 number, or a column of references to 1x1 numbers."""
    data = dataset[()]
    if data.dtype.kind == "O":
        return [float(np.asarray(f[ref]).reshape(-1)[0]) for ref in data.reshape(-1)]
    return [float(v) for v in np.asarray(data).reshape(-1)]


# -------------------------------------------------------------------------- crops

def crop_square(pixels: np.ndarray, square: Tuple[int, int, int], size: int) -> np.ndarray:
    """The square (left, top, side) of an HxWx3 photo, border-padded, resized to size."""
    left, top, side = square
    h, w = pixels.shape[:2]
    x0, y0, x1, y1 = max(left, 0), max(top, 0), min(left + side, w), min(top + side, h)
    if x0 >= x1 or y0 >= y1:
        raise ValueError(f"square {square} lies outside the {w}x{h} photo")
    region = pixels[y0:y1, x0:x1]
    pad = ((y0 - top, top + side - y1), (x0 - left, left + side - x1), (0, 0))
    if any(p for pair in pad for p in pair):
        region = np.pad(region, pad, mode="edge")
    if side == size:
        return np.ascontiguousarray(region)
    return np.asarray(Image.fromarray(np.ascontiguousarray(region)).resize(
        (size, size), Image.LANCZOS))


def _overlaps(a: Tuple[float, float, float, float], b: Tuple[float, float, float, float]) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def background_squares(width: int, height: int, boxes: Sequence[Box], count: int,
                       rng: np.random.Generator) -> List[Tuple[int, int, int]]:
    """Up to ``count`` squares (left, top, side) inside the photo overlapping no box.

    Sides are drawn between the smallest and largest digit square, else the smallest is
    tried; a position is drawn uniformly among all positions where the square fits.
    """
    if count <= 0 or not boxes:
        return []
    sides = [b.square()[2] for b in boxes]
    lo, hi = min(sides), max(sides)
    occupied = np.zeros((height + 1, width + 1), np.int32)   # integral image of the boxes
    mask = np.zeros((height, width), bool)

    def block(bounds):
        x0, y0 = max(int(np.floor(bounds[0])), 0), max(int(np.floor(bounds[1])), 0)
        x1, y1 = min(int(np.ceil(bounds[2])), width), min(int(np.ceil(bounds[3])), height)
        if x0 < x1 and y0 < y1:
            mask[y0:y1, x0:x1] = True

    for b in boxes:
        block(b.bounds())
    chosen: List[Tuple[int, int, int]] = []
    for _ in range(count):
        occupied[1:, 1:] = mask.cumsum(0).cumsum(1)
        wanted = int(rng.integers(lo, hi + 1))
        for side in dict.fromkeys((wanted, lo)):
            if side > min(width, height):
                continue
            s = side
            inside = (occupied[s:, s:] - occupied[:-s, s:] - occupied[s:, :-s]
                      + occupied[:-s, :-s])           # box pixels in the square at (y, x)
            ys, xs = np.nonzero(inside == 0)
            if len(ys):
                k = int(rng.integers(len(ys)))
                square = (int(xs[k]), int(ys[k]), s)
                chosen.append(square)
                block((square[0], square[1], square[0] + s, square[1] + s))
                break
        else:
            break   # nothing fits any more
    return chosen


def iter_crops(directory: str, *, backgrounds_per_image: int = 1, seed: int = 0,
               size: int = DEFAULT_SIZE, mat_name: str = DIGIT_STRUCT) -> Iterator[Crop]:
    """Digit and no-digit crops of ``directory``'s photos, in digitStruct order.

    ``digitStruct.mat`` is opened and checked when this is called; photos are read lazily.
    """
    if backgrounds_per_image < 0 or size < 1:
        raise ValueError("backgrounds_per_image must be >= 0 and size >= 1")
    directory = os.fspath(directory)
    if not files.gfile.isdir(directory):
        raise FileNotFoundError(f"{directory}: no such directory")
    photos = read_digit_struct(os.path.join(directory, mat_name))

    def crops():
        for photo in photos:
            path = os.path.join(directory, photo.name)
            where = f"{path} ({mat_name}#{photo.index})"
            pixels, error = _load(path)
            if error:
                yield Crop(where, schema.NO_DIGIT, (0, 0, 0), error=error)
                continue
            h, w = pixels.shape[:2]
            valid = []
            for j, box in enumerate(photo.boxes):
                digit_where = f"{where} digit {j}"
                if not 1 <= box.label <= 10 or box.label != int(box.label):
                    yield Crop(digit_where, -1, (0, 0, 0),
                               error=f"label {box.label:g} is not 1-10 (10 = digit 0)")
                    continue
                if box.width <= 0 or box.height <= 0 or not _overlaps(
                        box.bounds(), (0, 0, w, h)):
                    yield Crop(digit_where, int(box.label) % 10, (0, 0, 0),
                               error=f"box {box.bounds()} is empty or outside the "
                                     f"{w}x{h} photo")
                    continue
                valid.append(box)
                square = box.square()
                yield Crop(digit_where, int(box.label) % 10, square,
                           crop_square(pixels, square, size))
            rng = np.random.default_rng([seed, photo.index])
            # every box counts as occupied, even one with a bad label
            for k, square in enumerate(background_squares(
                    w, h, photo.boxes, backgrounds_per_image, rng)):
                yield Crop(f"{where} background {k}", schema.NO_DIGIT, square,
                           crop_square(pixels, square, size))
    return crops()


def _load(path: str) -> Tuple[Optional[np.ndarray], Optional[str]]:
    try:
        data = files.read_bytes(path)
    except (FileNotFoundError, tf.errors.NotFoundError):
        return None, "image file not found"
    except (OSError, tf.errors.OpError) as e:
        return None, f"cannot read image file ({getattr(e, 'strerror', None) or e})"
    try:
        with Image.open(io.BytesIO(data)) as img:
            return np.asarray(img.convert("RGB")), None
    except Exception as e:  # PIL raises many types for corrupt data
        return None, f"not a readable image ({e})"


def read_digit_struct_dir(directory: str, *, backgrounds_per_image: int = 1, seed: int = 0,
                          size: int = DEFAULT_SIZE, mat_name: str = DIGIT_STRUCT
                          ) -> Iterator[schema.Record]:
    """Records (PNG crops) for ``write_split``; see ``iter_crops``."""
    crops = iter_crops(directory, backgrounds_per_image=backgrounds_per_image, seed=seed,
                       size=size, mat_name=mat_name)

    def records():
        for crop in crops:
            if crop.error:
                yield schema.Record(where=crop.where, image=None, label=crop.label, error=crop.error)
            else:
                yield schema.Record(where=crop.where, image=images.encode(crop.pixels), label=crop.label)
    return records()
