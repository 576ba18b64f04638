"""The image contract: what ``read_header`` accepts, the model's decoder reads exactly;
what it refuses, the decoder would misread or could not afford, and it refuses from the
header alone."""
import io
import struct
import time

import numpy as np
import pytest
from PIL import Image

from svhn_tfx import schema
from svhn_tfx.components.converters import records
from svhn_tfx.components.transform import preprocessing
from svhn_tfx.schema import images

RNG = np.random.default_rng(0)
PIXELS = RNG.integers(0, 256, (24, 20, 3), dtype=np.uint8)
PICTURE = Image.fromarray(PIXELS)


def _bmp(bits: int, compression: int, pixel_data: bytes, palette: bytes = b"",
         width: int = 4, height: int = 4) -> bytes:
    """A BMP with a BITMAPINFOHEADER, built by hand (Pillow writes only some variants)."""
    info = struct.pack("<IiiHHIIiiII", 40, width, height, 1, bits, compression,
                       len(pixel_data), 2835, 2835, len(palette) // 4, 0)
    offset = 14 + len(info) + len(palette)
    return b"BM" + struct.pack("<IHHI", offset + len(pixel_data), 0, 0, offset) + info + \
        palette + pixel_data


RAINBOW_PALETTE = b"".join(struct.pack("BBBB", 255 - i, i, (7 * i) % 256, 0) for i in range(256))

# Variants the graph decodes to the same pixels Pillow sees (JPEG: within IDCT rounding).
ACCEPTED = {
    "PNG RGB": images.encode(PICTURE, "PNG"),
    "PNG RGBA": images.encode(PICTURE.convert("RGBA"), "PNG"),
    "PNG grey": images.encode(PICTURE.convert("L"), "PNG"),
    "PNG grey+alpha": images.encode(PICTURE.convert("LA"), "PNG"),
    "PNG palette": images.encode(PICTURE.convert("P"), "PNG"),
    "PNG 1-bit": images.encode(PICTURE.convert("1"), "PNG"),
    "PNG interlaced": images.encode(PICTURE, "PNG", interlace=True),
    "JPEG RGB": images.encode(PICTURE, "JPEG", quality=95),
    "JPEG grey": images.encode(PICTURE.convert("L"), "JPEG", quality=95),
    "JPEG progressive": images.encode(PICTURE, "JPEG", quality=95, progressive=True),
    "GIF": images.encode(PICTURE.convert("P"), "GIF"),
    "BMP 24-bit": images.encode(PICTURE, "BMP"),
    "BMP 32-bit": _bmp(32, 0, bytes(range(64))),
}
# Variants Pillow opens but the graph misreads or cannot decode.
REFUSED = {
    "BMP 8-bit palette (read as grey indices)": _bmp(8, 0, bytes(range(16)), RAINBOW_PALETTE),
    "BMP 8-bit run-length": _bmp(8, 1, b"\x04\x05\x00\x00" * 3 + b"\x00\x01", RAINBOW_PALETTE),
    "BMP 16-bit": _bmp(16, 0, bytes(range(32))),
    "BMP 1-bit": images.encode(PICTURE.convert("1"), "BMP"),
    "TIFF": images.encode(PICTURE, "TIFF"),
    "WebP": images.encode(PICTURE, "WEBP"),
}


@pytest.mark.parametrize("name", ACCEPTED)
def test_accepted_encodings_decode_in_the_graph_to_the_pixels_in_the_file(name):
    data = ACCEPTED[name]
    header = images.read_header(data)
    with Image.open(io.BytesIO(data)) as image:
        expected = np.asarray(image.convert("RGB"), np.int32)
    decoded = preprocessing.decode(data).numpy().astype(np.int32)
    assert decoded.shape == expected.shape == (header.height, header.width, 3)
    tolerance = 8 if header.format == "JPEG" else 0   # two IDCTs round differently
    assert np.abs(decoded - expected).max() <= tolerance


@pytest.mark.parametrize("name", REFUSED)
def test_encodings_the_graph_would_misread_are_refused_from_the_header(name):
    with pytest.raises(images.ImageRejected):
        images.read_header(REFUSED[name])


def test_a_palette_bmp_really_is_misread_by_the_graph():
    """Why 8-bit BMPs are refused: TensorFlow returns the palette indices as grey."""
    data = REFUSED["BMP 8-bit palette (read as grey indices)"]
    with Image.open(io.BytesIO(data)) as image:
        expected = np.asarray(image.convert("RGB"), np.int32)
    decoded = preprocessing.decode(data).numpy().astype(np.int32)
    assert np.abs(decoded - expected).max() > 100


def _gif_declaring(frames: int, width: int, height: int) -> bytes:
    """A GIF whose frames each declare width x height, with one byte of pixel data each."""
    screen = b"GIF89a" + struct.pack("<HHBBB", width, height, 0x80, 0, 0) + b"\x00" * 6
    frame = b"\x2c" + struct.pack("<HHHHB", 0, 0, width, height, 0) + b"\x02\x01\x00\x00"
    return screen + frame * frames + b"\x3b"


def test_gif_cost_counts_every_frame_and_a_frame_bomb_is_refused_fast():
    assert images.read_header(_gif_declaring(3, 10, 10)).decoded_pixels == 100 + 3 * 100
    bomb = _gif_declaring(5000, 4000, 4000)    # 80 Gpx of frames in 70 kB
    start = time.perf_counter()
    with pytest.raises(images.ImageRejected, match="refused before decoding"):
        images.read_header(bomb, max_pixels=4096 * 4096)
    assert time.perf_counter() - start < 1.0


@pytest.mark.parametrize("data, reason", [
    (b"", "empty"),
    (b"<html>hello</html>", "not a PNG, JPEG, GIF or BMP"),
    (ACCEPTED["JPEG RGB"][:30], "corrupt or truncated JPEG"),
    (_gif_declaring(2, 8, 8)[:-6], "truncated GIF"),
])
def test_broken_bytes_are_refused_with_a_reason(data, reason):
    with pytest.raises(images.ImageRejected, match=reason):
        images.read_header(data)


def test_converters_refuse_what_the_graph_cannot_decode_exactly_naming_the_file():
    palette_bmp = schema.Record("photos/7.bmp", REFUSED["BMP 8-bit palette (read as grey "
                                                          "indices)"], 7)
    with pytest.raises(records.BadRecordError, match=r"photos/7\.bmp: BMP with 8-bit pixels"):
        records.check_record(palette_bmp)
    png = ACCEPTED["PNG RGB"]
    nearly_whole = schema.Record("photos/3.png", png[:-20], 3)   # Pillow still opens it
    with pytest.raises(records.BadRecordError, match=r"photos/3\.png: the model's decoder"):
        records.check_record(nearly_whole)
    records.check_record(schema.Record("photos/ok.png", png, 1))
