"""Tests of the data converters (components/converters/{svhn_mat,digit_struct,folder,cli}.py).

Fixtures are generated in tmp_path; the real SVHN format 1 samples are read from
``<repo>/../shared/data`` and those tests skip where that folder is absent.
"""
import io
import os
import struct
import subprocess
import sys
import tracemalloc
import zlib

import numpy as np
import pytest
import scipy.io
from PIL import Image

from svhn_tfx import schema
from svhn_tfx.schema import images
from svhn_tfx.components.converters import cli, digit_struct, folder, records, svhn_mat
from svhn_tfx.components.converters.records import BadRecordError, read_split, write_split

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHARED_FORMAT1 = os.path.join(REPO, os.pardir, "shared", "data", "svhn-format1")
h5py = pytest.importorskip("h5py")


# ------------------------------------------------------------------------- helpers

def _decode(image_bytes):
    with Image.open(io.BytesIO(image_bytes)) as img:
        img.load()
        return img.format, np.asarray(img.convert("RGB"))


def _svhn_arrays(n, seed=0):
    """X in MATLAB's dims (32,32,3,N) uint8 and y (N,1) double in 1..10, like SVHN."""
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 256, (32, 32, 3, n), dtype=np.uint8)
    y = rng.integers(1, 11, (n, 1)).astype(np.float64)
    y[0, 0] = 10   # the digit 0
    return x, y


def _savemat(path, x, y, compress, y_first=False):
    variables = {"y": y, "X": x} if y_first else {"X": x, "y": y}
    scipy.io.savemat(str(path), variables, do_compression=compress)
    return str(path)


def _v73(path, x, y):
    """A MATLAB v7.3-style file: HDF5 with a 512-byte user block, arrays transposed."""
    with h5py.File(path, "w", userblock_size=512) as f:
        f.create_dataset("X", data=np.ascontiguousarray(x.T), chunks=True, compression="gzip")
        f.create_dataset("y", data=np.ascontiguousarray(y.T))
    with open(path, "r+b") as f:
        f.write(b"MATLAB 7.3 MAT-file, Platform: GLNXA64, Created on: test HDF5 schema 1.00 .")
    return str(path)


def _v5_element(endian, dtype, data, small_ok=True):
    if small_ok and len(data) <= 4:   # small data element: one uint32 (nbytes << 16 | type)
        return struct.pack(endian + "I", len(data) << 16 | dtype) + data.ljust(4, b"\0")
    return struct.pack(endian + "II", dtype, len(data)) + data + b"\0" * (-len(data) % 8)


def _v5_matrix(endian, name, array, cls, mi_type, compress=False):
    """One variable as MATLAB v5 writes it (a second, independent writer for the tests)."""
    dims = array.shape
    body = (_v5_element(endian, 6, struct.pack(endian + "II", cls, 0), small_ok=False)
            + _v5_element(endian, 5, struct.pack(f"{endian}{len(dims)}i", *dims), small_ok=False)
            + _v5_element(endian, 1, name.encode())
            + _v5_element(endian, mi_type, array.astype(array.dtype.newbyteorder(endian))
                          .tobytes(order="F")))
    element = struct.pack(endian + "II", 14, len(body)) + body
    if compress:
        packed = zlib.compress(element)
        return struct.pack(endian + "II", 15, len(packed)) + packed
    return element


def _v5_file(path, endian, elements):
    header = b"MATLAB 5.0 MAT-file, written by the tests".ljust(116, b" ") + b"\0" * 8
    header += struct.pack(endian + "H", 0x0100) + (b"IM" if endian == "<" else b"MI")
    with open(path, "wb") as f:
        f.write(header + b"".join(elements))
    return str(path)


def _assert_no_output(out, split):
    """A failed conversion leaves neither the split nor a hidden partial folder."""
    assert not os.path.exists(os.path.join(out, split))
    if os.path.isdir(out):
        assert os.listdir(out) == []


def _records(path, **kwargs):
    return [(r.where, r.image, r.label, r.error) for r in svhn_mat.read_mat(path, **kwargs)]


# ------------------------------------------------------------ SVHN format 2 (.mat)

@pytest.mark.parametrize("compress", [False, True], ids=["plain", "compressed"])
@pytest.mark.parametrize("y_first", [False, True], ids=["X-then-y", "y-then-X"])
def test_mat_v5_matches_scipy_loadmat(tmp_path, compress, y_first):
    x, y = _svhn_arrays(41)
    path = _savemat(tmp_path / "train_32x32.mat", x, y, compress, y_first)
    expected = scipy.io.loadmat(path)
    records = _records(path, chunk_images=8)   # several chunks, the last one partial
    assert len(records) == 41
    for i, (where, image, label, error) in enumerate(records):
        assert error is None and where == f"{path}#{i}"
        fmt, pixels = _decode(image)
        assert fmt == "PNG"
        np.testing.assert_array_equal(pixels, expected["X"][:, :, :, i])
        assert label == int(expected["y"][i, 0]) % 10
    assert records[0][2] == 0   # y = 10 is the digit 0


def test_mat_v73_hdf5_is_read_in_matlab_orientation(tmp_path):
    x, y = _svhn_arrays(19, seed=1)
    path = _v73(tmp_path / "extra_32x32.mat", x, y)
    records = _records(path, chunk_images=5)
    assert [r[2] for r in records] == [int(v) % 10 for v in y[:, 0]]
    for i, (_, image, _, _) in enumerate(records):
        np.testing.assert_array_equal(_decode(image)[1], x[:, :, :, i])


@pytest.mark.parametrize("compress", [False, True], ids=["plain", "compressed"])
def test_mat_big_endian_small_elements_and_other_storage_types(tmp_path, compress):
    """MATLAB-style storage: y of class double stored as uint8 in a small element (N=3),
    X of class double stored as uint8, big-endian byte order, an extra variable first."""
    x, y = _svhn_arrays(3, seed=2)
    path = _v5_file(tmp_path / "be.mat", ">", [
        _v5_matrix(">", "note", np.array([[1.5, 2.5]]), cls=6, mi_type=9, compress=compress),
        _v5_matrix(">", "y", y.astype(np.uint8), cls=6, mi_type=2, compress=compress),
        _v5_matrix(">", "X", x, cls=6, mi_type=2, compress=compress),
    ])
    records = _records(path)
    assert [r[2] for r in records] == [int(v) % 10 for v in y[:, 0]]
    for i, record in enumerate(records):
        np.testing.assert_array_equal(_decode(record[1])[1], x[:, :, :, i])


@pytest.mark.parametrize("compress", [False, True], ids=["plain", "compressed"])
def test_mat_reader_streams_with_bounded_memory(tmp_path, compress):
    n = 3000                                    # 9.2 MB of pixels
    x, y = _svhn_arrays(n, seed=3)
    path = _savemat(tmp_path / "big.mat", x, y, compress)
    del x
    tracemalloc.start()
    try:
        seen = 0
        for record in svhn_mat.read_mat(path):
            seen += 1
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert seen == n
    # loading X would need >= 9.2 MB; streaming holds one 256-image chunk (786 KB) and y
    assert peak < 3 * 2**20, f"peak traced memory {peak / 2**20:.1f} MiB"


def test_mat_label_out_of_range_is_a_bad_record_naming_the_index(tmp_path):
    x, y = _svhn_arrays(12, seed=4)
    y[5, 0], y[9, 0] = 11, 0
    path = _savemat(tmp_path / "test_32x32.mat", x, y, compress=True)
    out = str(tmp_path / "out")
    with pytest.raises(BadRecordError, match=rf"test_32x32\.mat#5: label y=11 is not 1-10"):
        write_split(svhn_mat.read_mat(path), out, "test")
    _assert_no_output(out, "test")

    stats = write_split(svhn_mat.read_mat(path), out, "test", skip_bad=True)
    assert (stats.written, stats.skipped) == (10, 2)
    assert "#9: label y=0" in stats.skipped_examples[1]
    written = list(read_split(os.path.join(out, "test")))
    kept = [i for i in range(12) if i not in (5, 9)]
    assert [label for _, label in written] == [int(y[i, 0]) % 10 for i in kept]
    np.testing.assert_array_equal(_decode(written[5][0])[1], x[:, :, :, kept[5]])


@pytest.mark.parametrize("writer", ["v5", "v73"])
@pytest.mark.parametrize("case, message", [
    ("shape", r"X has shape 28x28x3x4, expected 32x32x3xN"),
    ("gray", r"X has shape 32x32x4, expected 32x32x3xN"),
    ("count", r"X holds 4 images but y holds 3 labels"),
    ("no_y", r"no variable y \(not an SVHN format 2 file\)"),
])
def test_mat_wrong_structure_is_a_clear_error(tmp_path, writer, case, message):
    x, y = _svhn_arrays(4, seed=5)
    if case == "shape":
        x = x[2:30, 2:30]
    elif case == "gray":
        x = x[:, :, 0, :]
    elif case == "count":
        y = y[:3]
    path = str(tmp_path / "odd.mat")
    if writer == "v5":
        scipy.io.savemat(path, {"X": x} if case == "no_y" else {"X": x, "y": y})
    else:
        with h5py.File(path, "w") as f:
            f["X"] = x.T
            if case != "no_y":
                f["y"] = y.T
    with pytest.raises(svhn_mat.MatFormatError, match=rf"odd\.mat: {message}"):
        svhn_mat.read_mat(path)


def test_mat_missing_foreign_and_truncated_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="nothere.mat"):
        svhn_mat.read_mat(str(tmp_path / "nothere.mat"))
    foreign = tmp_path / "foreign.mat"
    foreign.write_bytes(b"%PDF-1.4" + bytes(300))
    with pytest.raises(svhn_mat.MatFormatError, match="foreign.mat: not a MATLAB"):
        svhn_mat.read_mat(str(foreign))
    x, y = _svhn_arrays(50, seed=6)
    for compress in (False, True):
        data = open(_savemat(tmp_path / "whole.mat", x, y, compress), "rb").read()
        cut = tmp_path / f"cut{int(compress)}.mat"
        cut.write_bytes(data[:len(data) * 2 // 3])
        with pytest.raises(svhn_mat.MatFormatError, match=rf"cut{int(compress)}\.mat: .*trunc"):
            list(svhn_mat.read_mat(str(cut)))


@pytest.mark.parametrize("where", ["middle", "end"])
def test_mat_corrupt_compressed_pixels_fail_the_whole_split(tmp_path, where):
    """Random pixels are stored uncompressed inside the deflate stream: a flipped byte near
    the end is only caught by the stream's adler32 checksum."""
    x, y = _svhn_arrays(30, seed=7)
    path = tmp_path / "flip.mat"
    _v5_file(path, "<", [_v5_matrix("<", "y", y, 6, 9, compress=True),
                         _v5_matrix("<", "X", x, 9, 2, compress=True)])
    data = bytearray(path.read_bytes())
    data[len(data) // 2 if where == "middle" else len(data) - 10] ^= 0xFF   # in X's stream
    path.write_bytes(bytes(data))
    out = str(tmp_path / "out")
    with pytest.raises(svhn_mat.MatFormatError, match=r"flip\.mat: corrupt compressed data"):
        write_split(svhn_mat.read_mat(str(path)), out, "train", skip_bad=True)
    _assert_no_output(out, "train")


# -------------------------------------------------- SVHN format 1 (digitStruct.mat)

def _write_digit_struct(path, photos):
    """digitStruct.mat as SVHN publishes it: HDF5 object references, 1x1 datasets for
    photos with one digit, columns of references for several. photos: [(name, boxes)]."""
    with h5py.File(path, "w") as f:
        refs = f.create_group("#refs#")
        counter = iter(range(10**6))

        def ref(data):
            return refs.create_dataset(f"r{next(counter)}", data=data).ref

        names, bboxes = [], []
        for name, boxes in photos:
            names.append(ref(np.array([[ord(c)] for c in name], np.uint16)))
            group = refs.create_group(f"g{next(counter)}")
            for k, field in enumerate(digit_struct.FIELDS):
                values = [float(b[k]) for b in boxes]
                if len(values) == 1:
                    group.create_dataset(field, data=np.array([[values[0]]]))
                else:
                    group.create_dataset(field, data=np.array(
                        [[ref(np.array([[v]]))] for v in values], dtype=h5py.ref_dtype))
            bboxes.append(group.ref)
        f.create_dataset("digitStruct/name", data=np.array([[r] for r in names],
                                                           dtype=h5py.ref_dtype))
        f.create_dataset("digitStruct/bbox", data=np.array([[r] for r in bboxes],
                                                           dtype=h5py.ref_dtype))


def _photo(w, h, seed):
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


@pytest.fixture()
def format1_dir(tmp_path):
    """1.png (one digit, 1x1 fields), 2.png (three digits, one at the border, references),
    3.png named but missing, 4.png corrupt."""
    d = tmp_path / "photos"
    d.mkdir()
    p1, p2 = _photo(60, 40, 1), _photo(80, 50, 2)
    Image.fromarray(p1).save(d / "1.png")
    Image.fromarray(p2).save(d / "2.png")
    (d / "4.png").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(20))
    _write_digit_struct(d / "digitStruct.mat", [
        ("1.png", [(7, 10, 5, 8, 16)]),                                       # label, l, t, w, h
        ("2.png", [(10, 2, 30, 6, 16), (3, 20, 10, 12, 12), (1, 70, 2, 10, 4)]),
        ("3.png", [(5, 1, 1, 5, 5)]),
        ("4.png", [(4, 1, 1, 5, 5)]),
    ])
    return str(d), p1, p2


def test_digit_struct_crops_are_squares_around_the_box_centre(format1_dir):
    d, p1, p2 = format1_dir
    photos = list(digit_struct.read_digit_struct(os.path.join(d, "digitStruct.mat")))
    assert [p.name for p in photos] == ["1.png", "2.png", "3.png", "4.png"]
    assert photos[1].boxes[0] == digit_struct.Box(10, 2, 30, 6, 16)
    crops = [c for c in digit_struct.iter_crops(d, backgrounds_per_image=0, size=16)
             if c.label != schema.NO_DIGIT]
    assert [c.label for c in crops] == [7, 0, 3, 1]
    # 8x16 box at (10,5): extended to 16x16 centred on x = 14 -> columns 6..22
    assert crops[0].square == (6, 5, 16)
    np.testing.assert_array_equal(crops[0].pixels, p1[5:21, 6:22])
    # 6x16 box at (2,30) of the 80x50 photo: square (-3, 30, 16) runs off the left and
    # bottom edges; the missing pixels repeat the border
    assert crops[1].square == (-3, 30, 16)
    expected = np.pad(p2[30:46, 0:13], ((0, 0), (3, 0), (0, 0)), mode="edge")
    np.testing.assert_array_equal(crops[1].pixels, expected)
    # 10x4 box: extended vertically to 10x10 around y = 4, rows -1..9, then resized 10 -> 16
    assert crops[3].square == (70, -1, 10)
    assert crops[3].pixels.shape == (16, 16, 3)


def test_digit_struct_bad_photos_and_labels(format1_dir, tmp_path):
    d, _, _ = format1_dir
    out = str(tmp_path / "out")
    with pytest.raises(BadRecordError, match=r"3\.png \(digitStruct\.mat#2\): image file not found"):
        write_split(digit_struct.read_digit_struct_dir(d), out, "train")
    _assert_no_output(out, "train")
    stats = write_split(digit_struct.read_digit_struct_dir(d, backgrounds_per_image=0),
                        out, "train", skip_bad=True)
    assert (stats.written, stats.skipped) == (4, 2)
    assert "4.png (digitStruct.mat#3): not a readable image" in stats.skipped_examples[1]
    assert [label for _, label in read_split(os.path.join(out, "train"))] == [7, 0, 3, 1]


def test_digit_struct_label_out_of_range_is_a_bad_digit(tmp_path):
    Image.fromarray(_photo(40, 30, 3)).save(tmp_path / "1.png")
    _write_digit_struct(tmp_path / "digitStruct.mat", [("1.png", [(11, 2, 2, 8, 10),
                                                                  (2, 20, 2, 8, 10)])])
    records = list(digit_struct.read_digit_struct_dir(str(tmp_path), backgrounds_per_image=0))
    assert [r.error for r in records][0] == "label 11 is not 1-10 (10 = digit 0)"
    assert records[0].where.endswith("1.png (digitStruct.mat#0) digit 0")
    with pytest.raises(BadRecordError, match=r"digit 0: label 11"):
        write_split(iter(records), str(tmp_path / "out"), "x")


def test_digit_struct_not_hdf5_or_missing(tmp_path):
    with pytest.raises(FileNotFoundError, match="digitStruct.mat"):
        digit_struct.iter_crops(str(tmp_path))
    scipy.io.savemat(str(tmp_path / "digitStruct.mat"), {"a": np.zeros(2)})
    with pytest.raises(digit_struct.DigitStructError, match="not a MATLAB v7.3"):
        digit_struct.iter_crops(str(tmp_path))


def test_background_squares_avoid_boxes_and_each_other():
    boxes = [digit_struct.Box(1, 10, 10, 10, 20), digit_struct.Box(2, 22, 12, 10, 18)]
    for seed in range(20):
        squares = digit_struct.background_squares(120, 60, boxes, 4, np.random.default_rng(seed))
        assert len(squares) == 4
        for i, (x, y, s) in enumerate(squares):
            assert 0 <= x and x + s <= 120 and 0 <= y and y + s <= 60 and 18 <= s <= 20
            assert not any(digit_struct._overlaps((x, y, x + s, y + s), b.bounds()) for b in boxes)
            for (x2, y2, s2) in squares[:i]:
                assert not digit_struct._overlaps((x, y, x + s, y + s), (x2, y2, x2 + s2, y2 + s2))
    again = digit_struct.background_squares(120, 60, boxes, 4, np.random.default_rng(3))
    assert again == digit_struct.background_squares(120, 60, boxes, 4, np.random.default_rng(3))
    # a photo the boxes fill leaves no room: none, rather than an overlapping crop
    assert digit_struct.background_squares(40, 30, boxes, 3, np.random.default_rng(0)) == []


def _real(split):
    path = os.path.join(SHARED_FORMAT1, split)
    if not os.path.isfile(os.path.join(path, "digitStruct.mat")):
        pytest.skip(f"real SVHN format 1 samples not found at {os.path.abspath(path)} "
                    f"(only present on the project's machines)")
    return path


@pytest.mark.parametrize("split, digits, missing", [
    ("train", [1, 9, 2, 3, 2, 5], 36), ("test", [5, 2, 1, 0, 6], 37)])
def test_real_digit_struct_crops(split, digits, missing):
    d = _real(split)
    photos = {p.index: p for p in
              digit_struct.read_digit_struct(os.path.join(d, "digitStruct.mat"))}
    crops = list(digit_struct.iter_crops(d, backgrounds_per_image=2, seed=1))
    bad = [c for c in crops if c.error]
    assert len(bad) == missing and all(c.error == "image file not found" for c in bad)
    assert bad[0].where == f"{os.path.join(d, '4.png')} (digitStruct.mat#3)"
    good = [c for c in crops if not c.error]
    assert [c.label for c in good if c.label != schema.NO_DIGIT] == digits
    backgrounds = [c for c in good if c.label == schema.NO_DIGIT]
    assert len(backgrounds) == 6   # two per photo: each photo has room outside its boxes
    for c in good:
        assert c.pixels.shape == (32, 32, 3)
    for c in backgrounds:
        index = int(c.where.split("#")[1].split(")")[0])
        x, y, s = c.square
        with Image.open(os.path.join(d, photos[index].name)) as img:
            w, h = img.size
        assert 0 <= x and x + s <= w and 0 <= y and y + s <= h
        assert not any(digit_struct._overlaps((x, y, x + s, y + s), b.bounds())
                       for b in photos[index].boxes)
    again = [c.square for c in digit_struct.iter_crops(d, backgrounds_per_image=2, seed=1)]
    assert again == [c.square for c in crops]


@pytest.mark.parametrize("split, missing", [("train", 36), ("test", 37)])
def test_real_digit_struct_cli_stops_or_skips_missing_images(tmp_path, capsys, split, missing):
    d = _real(split)
    out = str(tmp_path / "out")
    assert cli.main(["digitstruct", d, "--out", out, "--split", split]) == 1
    err = capsys.readouterr().err
    assert f"error: {os.path.join(d, '4.png')} (digitStruct.mat#3): image file not found" in err
    assert "Traceback" not in err
    _assert_no_output(out, split)

    assert cli.main(["digitstruct", d, "--out", out, "--split", split, "--skip-bad",
                     "--backgrounds-per-image", "1", "--seed", "5"]) == 0
    stdout = capsys.readouterr().out
    assert f"skipped {missing} bad records" in stdout
    written = list(read_split(os.path.join(out, split)))
    assert len(written) == (6 if split == "train" else 5) + 3
    assert all(_decode(image)[1].shape == (32, 32, 3) for image, _ in written)


# ----------------------------------------------------------------------- folder tree

def _image_bytes(fmt, seed, size=(12, 10)):
    buf = io.BytesIO()
    img = Image.fromarray(np.random.default_rng(seed).integers(0, 256, size[::-1] + (3,),
                                                               dtype=np.uint8))
    (img.convert("P") if fmt == "GIF" else img).save(buf, format=fmt)
    return buf.getvalue()


@pytest.fixture()
def tree(tmp_path):
    root = tmp_path / "tree"
    files = {
        "0/a.png": _image_bytes("PNG", 0), "0/b.JPG": _image_bytes("JPEG", 1),
        "7/deep/c.jpeg": _image_bytes("JPEG", 2), "7/d.bmp": _image_bytes("BMP", 3),
        "none/e.gif": _image_bytes("GIF", 4), "10/f.png": _image_bytes("PNG", 5),
    }
    for rel, data in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(data)
    (root / "7" / "notes.txt").write_text("not an image")
    (root / "7" / ".DS_Store").write_bytes(b"\0\1")
    (root / "README").write_text("files at the root are not images of a class")
    return root, files


def test_folder_tree_keeps_bytes_and_labels_in_sorted_order(tree, tmp_path):
    root, files = tree
    records = list(folder.read_folder(str(root)))
    order = ["0/a.png", "0/b.JPG", "10/f.png", "7/d.bmp", "7/deep/c.jpeg", "none/e.gif"]
    assert [os.path.relpath(r.where, root) for r in records] == order
    assert [r.label for r in records] == [0, 0, 10, 7, 7, 10]
    assert all(r.image == files[rel] for r, rel in zip(records, order))
    write_split(iter(records), str(tmp_path / "out"), "train")
    assert [(image, label) for image, label in read_split(str(tmp_path / "out" / "train"))] == \
        [(files[rel], r.label) for r, rel in zip(records, order)]


def test_folder_unknown_label_folder(tree, tmp_path, capsys):
    root, _ = tree
    (root / "12").mkdir()
    (root / "12" / "x.png").write_bytes(_image_bytes("PNG", 9))
    (root / "12" / "y.png").write_bytes(_image_bytes("PNG", 8))
    out = str(tmp_path / "out")
    assert cli.main(["folder", str(root), "--out", out, "--split", "train"]) == 1
    err = capsys.readouterr().err
    assert f"error: {root / '12' / 'x.png'}: folder name '12' is not a label" in err
    _assert_no_output(out, "train")
    assert cli.main(["folder", str(root), "--out", out, "--split", "train", "--skip-bad"]) == 0
    assert "wrote 6 examples" in capsys.readouterr().out
    stats = write_split(folder.read_folder(str(root)), out, "t2", skip_bad=True)
    assert stats.skipped == 2 and stats.written == 6


def test_folder_corrupt_and_unreadable_files(tree, tmp_path, capsys):
    root, files = tree
    (root / "3").mkdir()
    (root / "3" / "truncated.png").write_bytes(files["0/a.png"][:-30])
    os.symlink(root / "gone.png", root / "3" / "unreadable.png")    # dangling link
    out = str(tmp_path / "out")
    assert cli.main(["folder", str(root), "--out", out, "--split", "eval"]) == 1
    err = capsys.readouterr().err
    assert f"error: {root / '3' / 'truncated.png'}: the model's decoder cannot read it " \
        f"(Invalid PNG data" in err
    _assert_no_output(out, "eval")
    records = {os.path.basename(r.where): r for r in folder.read_folder(str(root))}
    assert records["unreadable.png"].error.startswith("cannot read file")
    assert cli.main(["folder", str(root), "--out", out, "--split", "eval", "--skip-bad"]) == 0
    captured = capsys.readouterr()
    assert "skipped 2 bad records" in captured.out
    assert f"{root / '3' / 'unreadable.png'}: cannot read file" in captured.err
    assert len(list(read_split(os.path.join(out, "eval")))) == 6


def test_folder_root_errors(tmp_path, capsys):
    with pytest.raises(FileNotFoundError, match="no such directory"):
        folder.read_folder(str(tmp_path / "absent"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="no label folders"):
        folder.read_folder(str(tmp_path / "empty"))
    assert folder.folder_label("none") == folder.folder_label("10") == schema.NO_DIGIT
    assert [folder.folder_label(n) for n in ("0", "9", "12", "01", "None", "a")] == \
        [0, 9, None, None, None, None]


# ---------------------------------------------------------------------------- CLI

def test_cli_mat_writes_refuses_existing_and_overwrites(tmp_path, capsys):
    x, y = _svhn_arrays(9, seed=10)
    path = _savemat(tmp_path / "train_32x32.mat", x, y, compress=True)
    out = str(tmp_path / "data")
    assert cli.main(["mat", path, "--out", out, "--split", "train"]) == 0
    assert "train: wrote 9 examples" in capsys.readouterr().out
    written = list(read_split(os.path.join(out, "train")))
    assert [label for _, label in written] == [int(v) % 10 for v in y[:, 0]]
    np.testing.assert_array_equal(_decode(written[8][0])[1], x[:, :, :, 8])

    assert cli.main(["mat", path, "--out", out, "--split", "train"]) == 1
    assert "already exists; pass --overwrite" in capsys.readouterr().err
    assert cli.main(["mat", path, "--out", out, "--split", "train", "--overwrite"]) == 0


def test_cli_mat_writes_several_files_into_one_split(tmp_path, capsys):
    """train + extra into one train split; a missing second file stops before writing."""
    x1, y1 = _svhn_arrays(4, seed=12)
    x2, y2 = _svhn_arrays(3, seed=13)
    first = _savemat(tmp_path / "train_32x32.mat", x1, y1, compress=True)
    second = _savemat(tmp_path / "extra_32x32.mat", x2, y2, compress=False)
    out = str(tmp_path / "data")
    assert cli.main(["mat", first, str(tmp_path / "missing.mat"), "--out", out,
                     "--split", "train"]) == 1
    assert "missing.mat: no such file" in capsys.readouterr().err
    _assert_no_output(out, "train")
    assert cli.main(["mat", first, second, "--out", out, "--split", "train"]) == 0
    written = list(read_split(os.path.join(out, "train")))
    assert [label for _, label in written] == [int(v) % 10 for v in np.concatenate(
        [y1[:, 0], y2[:, 0]])]
    np.testing.assert_array_equal(_decode(written[6][0])[1], x2[:, :, :, 2])


def test_cli_mat_bad_label_stops_or_skips(tmp_path, capsys):
    x, y = _svhn_arrays(7, seed=11)
    y[3, 0] = 11
    path = _savemat(tmp_path / "extra_32x32.mat", x, y, compress=False)
    out = str(tmp_path / "data")
    assert cli.main(["mat", path, "--out", out, "--split", "extra"]) == 1
    err = capsys.readouterr().err
    assert f"error: {path}#3: label y=11 is not 1-10" in err and "Traceback" not in err
    _assert_no_output(out, "extra")
    assert cli.main(["mat", path, "--out", out, "--split", "extra", "--skip-bad"]) == 0
    assert "wrote 6 examples" in capsys.readouterr().out


def test_cli_missing_file_and_usage_errors(tmp_path, capsys):
    missing = str(tmp_path / "nope.mat")
    assert cli.main(["mat", missing, "--out", str(tmp_path / "o"), "--split", "a"]) == 1
    err = capsys.readouterr().err
    assert f"error: {missing}: no such file" in err and "Traceback" not in err
    assert not os.path.exists(tmp_path / "o")
    with pytest.raises(SystemExit) as e:
        cli.main(["mat", missing, "--split", "a"])   # --out is required
    assert e.value.code == 2


def test_cli_synthetic_writes_train_and_eval(tmp_path, capsys):
    pytest.importorskip("svhn_tfx.components.generator.synthetic")
    out = str(tmp_path / "data")
    assert cli.main(["synthetic", "--out", out, "--train", "5", "--eval", "3", "--seed", "2",
                     "--size", "24"]) == 0
    stdout = capsys.readouterr().out
    assert "train: wrote 5 examples" in stdout and "eval: wrote 3 examples" in stdout
    train = list(read_split(os.path.join(out, "train")))
    evals = list(read_split(os.path.join(out, "eval")))
    assert _decode(train[0][0])[1].shape == (24, 24, 3)
    assert not {image for image, _ in train} & {image for image, _ in evals}
    assert cli.main(["synthetic", "--out", out, "--train", "5", "--eval", "3"]) == 1
    assert "already exists" in capsys.readouterr().err
    # --overwrite rewrites even a split this generator made (e.g. to repair lost shards)
    shard = sorted(os.listdir(os.path.join(out, "train")))[0]
    os.remove(os.path.join(out, "train", shard))
    assert cli.main(["synthetic", "--out", out, "--train", "5", "--eval", "3", "--seed", "2",
                     "--size", "24", "--overwrite"]) == 0
    assert "train: wrote 5 examples" in capsys.readouterr().out
    assert [image for image, _ in read_split(os.path.join(out, "train"))] == \
        [image for image, _ in train]


def test_cli_synthetic_reuse_keeps_today_s_data_and_remakes_an_older_generator_s(tmp_path,
                                                                                   capsys):
    pytest.importorskip("svhn_tfx.components.generator.synthetic")
    out = tmp_path / "data"
    args = ["synthetic", "--out", str(out), "--train", "5", "--eval", "3", "--reuse"]

    def shards(split):
        return {p: (os.stat(p).st_ino, os.stat(p).st_mtime_ns) for p in (out / split).iterdir()}

    assert cli.main(args) == 0
    assert "train: wrote 5 examples" in capsys.readouterr().out
    first = shards("train")
    assert cli.main(args) == 0   # what make data runs on every make demo
    captured = capsys.readouterr()
    assert "reusing train" in captured.err and "reusing eval" in captured.err
    assert captured.out == "" and shards("train") == first

    # a split an older generator made (its fingerprint differs) is made again
    (out / ".train.generator").write_text("made by another generator\n")
    assert cli.main(args) == 0
    captured = capsys.readouterr()
    assert "train was made by another generator" in captured.err and "reusing eval" in captured.err
    assert shards("train") != first
    assert cli.main(args[:-1] + ["--seed", "3", "--reuse"]) == 0   # another seed: new images
    assert "train was made by another generator" in capsys.readouterr().err

    # a split that was not generated here (no fingerprint file) is the user's: kept
    (out / ".eval.generator").unlink()
    kept = shards("eval")
    assert cli.main(args) == 0
    assert "keeping eval" in capsys.readouterr().err
    assert shards("eval") == kept


def test_cli_entry_point_exit_status_in_a_subprocess(tmp_path):
    missing = str(tmp_path / "nope")
    result = subprocess.run(
        [sys.executable, "-m", "svhn_tfx.components.converters.cli", "folder", missing, "--out",
         str(tmp_path / "o"), "--split", "train"],
        cwd=REPO, capture_output=True, text=True, timeout=120)
    assert result.returncode == 1
    assert f"error: {missing}: no such directory" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_user_split_is_found_beside_train_and_eval_and_bad_names_are_refused(tree, tmp_path,
                                                                               capsys):
    from svhn_tfx.components.converters.records import find_splits
    root, _ = tree
    out = tmp_path / "data"
    for split in ("real", "eval", "train", "calibration"):
        assert cli.main(["folder", str(root), "--out", str(out), "--split", split]) == 0
    (out / ".real.partial-123").mkdir()    # a conversion in progress is not a split
    (out / "empty").mkdir()
    assert find_splits(str(out)) == ["train", "eval", "calibration", "real"]
    with pytest.raises(SystemExit):
        cli.main(["folder", str(root), "--out", str(out), "--split", "../Real"])
    assert "split name '../Real' must be" in capsys.readouterr().err
    assert not (tmp_path / "Real").exists()
    import shutil
    shutil.rmtree(out / "eval")
    with pytest.raises(FileNotFoundError, match="has no 'eval' split"):
        find_splits(str(out))


def _blank_records(labels, where="gen"):
    png = images.encode(np.zeros((8, 8, 3), np.uint8))
    return [schema.Record(f"{where}#{i}", png, label) for i, label in enumerate(labels)]


def test_overwriting_a_split_keeps_the_old_one_whole_until_the_new_one_is_in(tmp_path,
                                                                             monkeypatch):
    out = str(tmp_path)
    write_split(_blank_records([1, 2, 3]), out, "train")
    real_rename = records.gfile.rename

    def rename_fails_for_the_new_split(src, dst, overwrite=False):
        if ".partial-" in src:
            raise OSError("disk full")
        real_rename(src, dst, overwrite)

    monkeypatch.setattr(records.gfile, "rename", rename_fails_for_the_new_split)
    with pytest.raises(OSError, match="disk full"):
        write_split(_blank_records([7, 7]), out, "train", overwrite=True)
    monkeypatch.undo()
    assert [label for _, label in read_split(os.path.join(out, "train"))] == [1, 2, 3]
    assert sorted(os.listdir(out)) == ["train"]   # nothing half-done left behind
    write_split(_blank_records([7, 7]), out, "train", overwrite=True)
    assert [label for _, label in read_split(os.path.join(out, "train"))] == [7, 7]


def test_a_replacement_killed_between_its_renames_is_restored_by_the_next_write(tmp_path):
    out = str(tmp_path)
    write_split(_blank_records([4, 5]), out, "eval")
    os.rename(os.path.join(out, "eval"), os.path.join(out, ".eval.replaced"))  # killed here
    log = io.StringIO()
    with pytest.raises(FileExistsError):
        write_split(_blank_records([9]), out, "eval", log=log)
    assert "restored" in log.getvalue()
    assert [label for _, label in read_split(os.path.join(out, "eval"))] == [4, 5]
