"""Reading the converters' input files, local paths and URIs (gs://, s3://, ...) alike.

Local paths keep the fast local calls (h5py opens them itself); anything else goes through
``tf.io.gfile``, whose file objects h5py and the MAT-file reader can seek and read.
"""
import tensorflow as tf

gfile = tf.io.gfile
# An HDF5 file starts with this signature at byte 0, 512, 1024, ... (after a user block:
# MATLAB v7.3 files have a 512-byte one).
_HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"
_HDF5_SIGNATURE_OFFSETS = (0, 512, 1024, 2048)


def is_uri(path: str) -> bool:
    return "://" in path


def is_file(path: str) -> bool:
    return gfile.exists(path) and not gfile.isdir(path)


def size(path: str) -> int:
    return gfile.stat(path).length


def open_binary(path: str):
    return open(path, "rb") if not is_uri(path) else gfile.GFile(path, "rb")


def is_hdf5(path: str) -> bool:
    with open_binary(path) as f:
        head = f.read(_HDF5_SIGNATURE_OFFSETS[-1] + len(_HDF5_SIGNATURE))
    return any(head[o:o + len(_HDF5_SIGNATURE)] == _HDF5_SIGNATURE
               for o in _HDF5_SIGNATURE_OFFSETS)


def open_hdf5(path: str):
    import h5py
    return h5py.File(path if not is_uri(path) else gfile.GFile(path, "rb"), "r")


def read_bytes(path: str) -> bytes:
    with open_binary(path) as f:
        return f.read()
