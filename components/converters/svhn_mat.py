"""SVHN "format 2" (``train_32x32.mat``, ``test_32x32.mat``, ``extra_32x32.mat``) as Records.

The files hold ``X`` (32x32x3xN uint8) and ``y`` (Nx1, 1-10 where 10 means the digit 0).
``extra_32x32.mat`` has 531,131 images (1.6 GB of pixels), so nothing here loads ``X``:

* MATLAB v5 files (what SVHN publishes, and what ``scipy.io.savemat`` writes with or
  without compression) are read by a small streaming parser. A first pass walks the
  top-level data elements, reads ``y`` and only the header of ``X`` (a compressed element
  that is not ``y`` is skipped with a seek, undecompressed); a second pass streams X's
  pixel data through ``zlib.decompressobj`` (or straight from the file) in chunks of
  ``chunk_images`` images. MATLAB stores arrays column-major, so with dims (32,32,3,N)
  each image is one contiguous 3072-byte block in Fortran order.
* MATLAB v7.3 files are HDF5; they are read with h5py one slice at a time. HDF5 holds the
  MATLAB array transposed: X is (N,3,32,32) there, y is (1,N).

Memory stays bounded by the chunk (about ``chunk_images * 3 KB``) plus ``y``, whatever N.
Each image becomes a PNG (lossless, as SVHN stores the pixels). A ``y`` value outside 1-10
gives a bad record named ``<path>#<index>`` (0-based); a file that is not what SVHN
publishes (no X or y, X not 32x32x3xN, N of X and y differ, truncated) raises
``MatFormatError`` naming the path, before anything is yielded where possible.
"""
import dataclasses
import os
import struct
import zlib
from typing import Iterator, List, Optional, Tuple

import numpy as np

from svhn_tfx import schema
from svhn_tfx.components.converters import files
from svhn_tfx.components.converters.records import BadRecordError
from svhn_tfx.schema.images import encode

IMAGE_SHAPE = (32, 32, 3)
IMAGE_BYTES = IMAGE_SHAPE[0] * IMAGE_SHAPE[1] * IMAGE_SHAPE[2]
DEFAULT_CHUNK_IMAGES = 256
_ZCHUNK = 1 << 16           # compressed bytes fed to zlib at a time
_OUT_CHUNK = 1 << 18        # most bytes one decompress call returns

# MAT v5 data types (miXXX) and array classes (mxXXX_CLASS)
miINT8, miUINT8, miINT16, miUINT16, miINT32, miUINT32 = 1, 2, 3, 4, 5, 6
miSINGLE, miDOUBLE, miINT64, miUINT64, miMATRIX, miCOMPRESSED = 7, 9, 12, 13, 14, 15
_NUMERIC = {miINT8: "i1", miUINT8: "u1", miINT16: "i2", miUINT16: "u2", miINT32: "i4",
            miUINT32: "u4", miSINGLE: "f4", miDOUBLE: "f8", miINT64: "i8", miUINT64: "u8"}
_NUMERIC_CLASSES = set(range(6, 16))   # mxDOUBLE_CLASS .. mxUINT64_CLASS
_COMPLEX_FLAG = 0x0800


class MatFormatError(BadRecordError):
    """The .mat file as a whole is unusable (not SVHN format 2, corrupt, truncated)."""


@dataclasses.dataclass
class _Var:
    name: str
    cls: int
    dims: Tuple[int, ...]
    complex: bool
    data_type: Optional[int] = None     # miXXX of the real part
    data_nbytes: int = 0
    small_data: Optional[bytes] = None  # real part packed into its tag


# ----------------------------------------------------------------------- byte sources

class _FileSource:
    """Exactly-n reads from an uncompressed region of the file."""

    def __init__(self, f, end: int, where: str):
        self.f, self.end, self.where = f, end, where

    def read(self, n: int) -> bytes:
        if self.f.tell() + n > self.end:
            raise MatFormatError(f"{self.where}: data element runs past its end (corrupt file)")
        data = self.f.read(n)
        if len(data) != n:
            raise MatFormatError(f"{self.where}: file is truncated")
        return data

    def skip(self, n: int) -> None:
        if self.f.tell() + n > self.end:
            raise MatFormatError(f"{self.where}: data element runs past its end (corrupt file)")
        self.f.seek(n, os.SEEK_CUR)


class _ZlibSource:
    """Exactly-n reads from a miCOMPRESSED element, decompressing only what is asked for.

    ``decompress`` is always called with ``max_length`` = what is still wanted, so no
    output is ever held over: memory is the requested block plus one input chunk.
    """

    def __init__(self, f, nbytes: int, where: str):
        self.f, self.remaining, self.where = f, nbytes, where
        self.z = zlib.decompressobj()

    def _more(self, limit: int) -> bytes:
        if self.z.eof:
            raise MatFormatError(f"{self.where}: compressed element ends early (corrupt file)")
        data = self.z.unconsumed_tail
        if not data and self.remaining > 0:
            data = self.f.read(min(_ZCHUNK, self.remaining))
            if not data:
                raise MatFormatError(f"{self.where}: file is truncated")
            self.remaining -= len(data)
        try:
            out = self.z.decompress(data, limit)   # (with no input: output zlib still holds)
        except zlib.error as e:
            raise MatFormatError(f"{self.where}: corrupt compressed data ({e})") from None
        if not out and not data and not self.z.eof:
            raise MatFormatError(f"{self.where}: compressed element is truncated")
        return out

    def read(self, n: int) -> bytearray:
        out = bytearray(n)
        view, pos = memoryview(out), 0
        while pos < n:
            chunk = self._more(min(n - pos, _OUT_CHUNK))
            view[pos:pos + len(chunk)] = chunk
            pos += len(chunk)
        return out

    def skip(self, n: int) -> None:
        while n > 0:
            step = min(n, _OUT_CHUNK)
            self.read(step)
            n -= step

    def finish(self) -> None:
        """Decompresses the rest of the element, so zlib checks the stream's checksum."""
        while not self.z.eof:
            self._more(_OUT_CHUNK)


# ---------------------------------------------------------------------------- parsing

def _read_tag(src, endian: str) -> Tuple[int, int, Optional[bytes]]:
    """(type, nbytes, small_data): small_data is set for the 4-byte small element format."""
    raw = src.read(8)
    first, second = struct.unpack(endian + "II", raw)
    if first >> 16:  # small data element: nbytes in the upper half, data in bytes 4-8
        nbytes = first >> 16
        if nbytes > 4:
            raise MatFormatError(f"{src.where}: bad small data element (corrupt file)")
        return first & 0xFFFF, nbytes, raw[4:4 + nbytes]
    return first, second, None


def _read_element(src, endian: str, expect: Tuple[int, ...], what: str) -> Tuple[int, bytes]:
    dtype, nbytes, small = _read_tag(src, endian)
    if dtype not in expect:
        raise MatFormatError(f"{src.where}: unexpected data type {dtype} for {what} (corrupt file)")
    if small is not None:
        return dtype, small
    if nbytes > 1 << 16:
        raise MatFormatError(f"{src.where}: implausible {what} of {nbytes} bytes (corrupt file)")
    data = src.read(nbytes)
    src.skip(-nbytes % 8)
    return dtype, data


def _matrix_header(src, endian: str) -> _Var:
    """Parses a miMATRIX's flags, dims and name, and the real part's tag (not its data)."""
    _, flags = _read_element(src, endian, (miUINT32,), "array flags")
    if len(flags) < 8:
        raise MatFormatError(f"{src.where}: short array flags (corrupt file)")
    word = struct.unpack(endian + "I", flags[:4])[0]
    cls, is_complex = word & 0xFF, bool(word & _COMPLEX_FLAG)
    if cls not in _NUMERIC_CLASSES:   # cell, struct, char, sparse, ...: only skipped
        return _Var("", cls, (), is_complex)
    dtype, dims_raw = _read_element(src, endian, (miINT32,), "dimensions")
    dims = struct.unpack(f"{endian}{len(dims_raw) // 4}i", dims_raw)
    _, name = _read_element(src, endian, (miINT8, miUINT8), "array name")
    var = _Var(name.decode("ascii", "replace"), cls, tuple(dims), is_complex)
    if int(np.prod(dims, dtype=np.int64)) == 0:
        return var
    var.data_type, var.data_nbytes, var.small_data = _read_tag(src, endian)
    if var.data_type not in _NUMERIC:
        raise MatFormatError(f"{src.where}: variable {var.name!r} has data type "
                             f"{var.data_type}, not a numeric type (corrupt file)")
    return var


def _data_count(var: _Var) -> int:
    return var.data_nbytes // np.dtype(_NUMERIC[var.data_type]).itemsize if var.data_type else 0


@dataclasses.dataclass
class _Layout:
    endian: str
    x_offset: Optional[int] = None
    x: Optional[_Var] = None
    y: Optional[np.ndarray] = None
    y_dims: Tuple[int, ...] = ()


def _open_element(f, offset: int, endian: str, where: str, file_size: int):
    """Reads the top-level tag at ``offset``: (source positioned after a miMATRIX tag, end)."""
    f.seek(offset)
    head = f.read(8)
    if len(head) < 8:
        raise MatFormatError(f"{where}: file is truncated")
    dtype, nbytes = struct.unpack(endian + "II", head)
    end = offset + 8 + nbytes
    if end > file_size:
        raise MatFormatError(f"{where}: data element at byte {offset} runs past the end of "
                             f"the file (truncated)")
    if dtype == miCOMPRESSED:
        src = _ZlibSource(f, nbytes, where)
        inner, _, small = _read_tag(src, endian)
        if inner != miMATRIX or small is not None:
            return None, end
        return src, end
    if dtype == miMATRIX:
        return _FileSource(f, end, where), end
    return None, end


def _scan_v5(f, where: str) -> _Layout:
    header = f.read(128)
    if len(header) < 128:
        raise MatFormatError(f"{where}: not a MATLAB .mat file (too short)")
    indicator = header[126:128]
    if indicator == b"IM":
        endian = "<"
    elif indicator == b"MI":
        endian = ">"
    else:
        raise MatFormatError(f"{where}: not a MATLAB v5/v7 or v7.3 .mat file "
                             f"(no MAT-file header; MATLAB v4 files are not supported)")
    file_size = files.size(where)
    layout = _Layout(endian)
    offset = 128
    while offset + 8 <= file_size:
        src, end = _open_element(f, offset, endian, where, file_size)
        if src is not None:
            var = _matrix_header(src, endian)
            if var.name == "X" and layout.x is None:
                layout.x_offset, layout.x = offset, var
            elif var.name == "y" and layout.y is None:
                layout.y, layout.y_dims = _read_values(src, var, endian), var.dims
                if isinstance(src, _ZlibSource):
                    src.finish()
        offset = end
    return layout


def _read_values(src, var: _Var, endian: str) -> np.ndarray:
    if var.complex:
        raise MatFormatError(f"{src.where}: variable {var.name!r} is complex")
    if var.data_type is None:
        return np.zeros((0,), np.float64)
    expected = int(np.prod(var.dims, dtype=np.int64))
    if _data_count(var) != expected:   # checked before reading: a corrupt size allocates nothing
        raise MatFormatError(f"{src.where}: {var.name} has dims {var.dims} but holds "
                             f"{_data_count(var)} values (corrupt file)")
    raw = var.small_data if var.small_data is not None else src.read(var.data_nbytes)
    return np.frombuffer(raw, endian + _NUMERIC[var.data_type]).astype(np.float64)


def _check_xy(where: str, x_dims, y_dims, y_size: int) -> int:
    """N, after checking X is 32x32x3xN (MATLAB order) and y holds N labels."""
    dims = tuple(x_dims)
    if len(dims) == 3:
        dims = dims + (1,)      # MATLAB drops a trailing singleton dimension
    if len(dims) != 4 or dims[:3] != IMAGE_SHAPE:
        raise MatFormatError(f"{where}: X has shape {'x'.join(map(str, x_dims))}, "
                             f"expected 32x32x3xN (SVHN format 2)")
    n = dims[3]
    if sum(1 for d in y_dims if d != 1) > 1:
        raise MatFormatError(f"{where}: y has shape {'x'.join(map(str, y_dims))}, expected Nx1")
    if y_size != n:
        raise MatFormatError(f"{where}: X holds {n} images but y holds {y_size} labels")
    return n


def _label(value: float) -> Tuple[int, Optional[str]]:
    if not 1 <= value <= 10 or value != int(value):  # (NaN fails the range test)
        return -1, f"label y={value:g} is not 1-10 (10 = digit 0)"
    return int(value) % 10, None


# ------------------------------------------------------------------------ public API

def iter_images(path: str, chunk_images: int = DEFAULT_CHUNK_IMAGES
                ) -> Iterator[Tuple[int, np.ndarray, int, Optional[str]]]:
    """Checks the file, then yields (index, 32x32x3 uint8 pixels, label, error) lazily.

    ``label`` is 0-9 (y=10 becomes 0); for a y outside 1-10, ``error`` says why and
    ``pixels`` is None. The file's structure is checked when this is called, so a missing,
    foreign or inconsistent file raises here, before any image is produced.
    """
    if chunk_images < 1:
        raise ValueError("chunk_images must be >= 1")
    path = os.fspath(path)
    if not files.is_file(path):
        raise FileNotFoundError(f"{path}: no such file")
    if files.is_hdf5(path):
        return _iter_hdf5(path, chunk_images)
    with files.open_binary(path) as f:
        layout = _scan_v5(f, path)
    if layout.x is None or layout.y is None:
        missing = " and ".join(k for k, v in (("X", layout.x), ("y", layout.y)) if v is None)
        raise MatFormatError(f"{path}: no variable {missing} (not an SVHN format 2 file)")
    if layout.x.complex:
        raise MatFormatError(f"{path}: X is complex, expected uint8 pixels")
    n = _check_xy(path, layout.x.dims, layout.y_dims, layout.y.size)
    if n and _data_count(layout.x) != n * IMAGE_BYTES:
        raise MatFormatError(f"{path}: X has dims {layout.x.dims} but its data holds "
                             f"{_data_count(layout.x)} values (corrupt file)")
    return _iter_v5(path, layout, n, chunk_images)


def _iter_v5(path, layout: _Layout, n: int, chunk_images: int):
    endian = layout.endian
    with files.open_binary(path) as f:
        size = files.size(path)
        src, _ = _open_element(f, layout.x_offset, endian, path, size)
        var = _matrix_header(src, endian)
        if n == 0:
            return
        dtype = np.dtype(endian + _NUMERIC[var.data_type])
        if var.small_data is not None:   # at most 4 bytes: cannot hold a 3072-byte image
            raise MatFormatError(f"{path}: X data is too small (corrupt file)")
        for start in range(0, n, chunk_images):
            k = min(chunk_images, n - start)
            raw = src.read(k * IMAGE_BYTES * dtype.itemsize)
            block = np.frombuffer(raw, dtype)
            if dtype != np.uint8:
                if block.size and (block.min() < 0 or block.max() > 255
                                   or not np.array_equal(block, np.round(block))):
                    raise MatFormatError(f"{path}: X images {start}-{start + k - 1} hold "
                                         f"values that are not 0-255 integers")
                block = block.astype(np.uint8)
            if start + k == n and isinstance(src, _ZlibSource):
                src.finish()   # before the last chunk is yielded: a corrupt stream fails the split
            yield from _emit(path, block.reshape(IMAGE_SHAPE + (k,), order="F"),
                             layout.y[start:start + k], start, lambda a, i: a[:, :, :, i])


def _emit(path, block, labels, start, take):
    for i, value in enumerate(labels):
        index = start + i
        label, error = _label(float(value))
        yield index, (None if error else np.ascontiguousarray(take(block, i))), label, error


def _iter_hdf5(path: str, chunk_images: int):
    import h5py
    try:
        f = files.open_hdf5(path)
    except OSError as e:
        raise MatFormatError(f"{path}: cannot open as MATLAB v7.3/HDF5 ({e})") from None
    try:
        missing = [k for k in ("X", "y") if not isinstance(f.get(k), h5py.Dataset)]
        if missing:
            raise MatFormatError(f"{path}: no variable {' and '.join(missing)} "
                                 f"(not an SVHN format 2 file)")
        x, y_ds = f["X"], f["y"]
        # HDF5 holds MATLAB's arrays transposed: reverse the dims to get MATLAB's view
        x_dims = tuple(reversed(x.shape))
        y_dims = tuple(reversed(y_ds.shape))
        if x.dtype.kind not in "uif" or y_ds.dtype.kind not in "uif":
            raise MatFormatError(f"{path}: X and y must be numeric, got {x.dtype}, {y_ds.dtype}")
        y = np.asarray(y_ds[()], np.float64).reshape(-1)
        n = _check_xy(path, x_dims, y_dims, y.size)
    except BaseException:
        f.close()
        raise

    def generate():
        with f:
            for start in range(0, n, chunk_images):
                k = min(chunk_images, n - start)
                raw = x[start:start + k] if x.ndim == 4 else x[()][None]
                block = np.asarray(raw)
                if block.dtype != np.uint8:
                    if block.min() < 0 or block.max() > 255 or \
                            not np.array_equal(block, np.round(block)):
                        raise MatFormatError(f"{path}: X images {start}-{start + k - 1} hold "
                                             f"values that are not 0-255 integers")
                    block = block.astype(np.uint8)
                # (k, 3, col, row) -> (k, row, col, 3)
                block = block.transpose(0, 3, 2, 1)
                yield from _emit(path, block, y[start:start + k], start, lambda a, i: a[i])
    return generate()


def read_mat(path: str, chunk_images: int = DEFAULT_CHUNK_IMAGES) -> Iterator[schema.Record]:
    """Records of an SVHN format 2 file: PNG bytes and label 0-9, ``where`` = ``path#index``.

    The file is checked when this is called (raises FileNotFoundError/MatFormatError);
    images are then read and encoded lazily, ``chunk_images`` at a time.
    """
    images = iter_images(path, chunk_images)

    def records():
        for index, pixels, label, error in images:
            where = f"{path}#{index}"
            if error:
                yield schema.Record(where=where, image=None, label=label, error=error)
            else:
                yield schema.Record(where=where, image=encode(pixels), label=label)
    return records()


__all__: List[str] = ["MatFormatError", "read_mat", "iter_images", "IMAGE_SHAPE"]
