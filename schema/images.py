"""What ``image_raw`` may hold: encodings the model's graph decodes exactly, told from headers.

The serving graph decodes with TensorFlow (``tf.io.decode_image``), not Pillow, and the two
do not agree on everything Pillow opens: TensorFlow reads a palette or run-length BMP as
grey palette indices (silently wrong), fails on 1/4/16-bit BMPs, and decodes every frame of
a GIF. ``read_header`` accepts only what the graph decodes as the picture it is, and says
how many pixels decoding will cost, from the file's header alone: converters and the
server both call it before anything is decoded, so a bomb is refused for what it declares.
Truncation inside the pixel data is found by the one real decode (the graph's decoder).
"""
import dataclasses
import io
import struct
import warnings

from PIL import Image

# Pillow format name -> the encoding the graph decodes it as (MPO: a camera JPEG with extras).
FORMATS = {"PNG": "PNG", "JPEG": "JPEG", "MPO": "JPEG", "GIF": "GIF", "BMP": "BMP"}
BMP_BITS = (24, 32)          # TensorFlow ignores BMP palettes and bit masks
BMP_UNCOMPRESSED = 0         # BI_RGB; TensorFlow cannot decode RLE or bit-field BMPs
BMP_INFO_HEADER_SIZE = 40    # BITMAPINFOHEADER or larger: TensorFlow reads its fixed offsets
_MAGIC = {b"\x89PNG": "PNG", b"\xff\xd8": "JPEG", b"GIF8": "GIF", b"BM": "BMP"}
_GIF_TRAILER, _GIF_IMAGE, _GIF_EXTENSION = 0x3B, 0x2C, 0x21


def encode(picture, fmt: str = "PNG", **options) -> bytes:
    """An image file's bytes from an HxW(x3) uint8 array or a PIL image. PNG is lossless, as
    SVHN's pixels are stored; ``options`` go to Pillow (e.g. JPEG ``quality``)."""
    image = picture if isinstance(picture, Image.Image) else Image.fromarray(picture)
    buf = io.BytesIO()
    image.save(buf, format=fmt, **options)
    return buf.getvalue()


class ImageRejected(ValueError):
    """Bytes the model cannot read as a picture; the message says why and what to send."""


@dataclasses.dataclass(frozen=True)
class ImageHeader:
    format: str           # PNG, JPEG, GIF or BMP
    width: int
    height: int
    decoded_pixels: int   # what decoding allocates: width x height, more for a GIF's frames


def read_header(data: bytes, max_pixels: int = 0) -> ImageHeader:
    """The header of an encoded image the graph decodes exactly, or ImageRejected.

    With ``max_pixels``, an image whose decoding would allocate more pixels is refused
    before any decoding happens."""
    if not isinstance(data, bytes):
        raise ImageRejected(f"expected encoded image bytes, got {type(data).__name__}")
    if not data:
        raise ImageRejected("empty bytes; send the PNG, JPEG, GIF or BMP file's contents")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")     # Pillow's own bomb warning: we check below
            with Image.open(io.BytesIO(data)) as image:   # reads the header only
                pillow_format, (width, height) = image.format, image.size
    except Image.DecompressionBombError as e:
        raise ImageRejected(f"declares too many pixels ({e}); refused before decoding") from None
    except Exception:
        known = next((fmt for magic, fmt in _MAGIC.items() if data.startswith(magic)), None)
        if known:
            raise ImageRejected(f"corrupt or truncated {known} header") from None
        raise ImageRejected(f"not a PNG, JPEG, GIF or BMP file ({len(data)} bytes starting "
                            f"{data[:8]!r}); send the file's bytes, not decoded pixels") from None
    fmt = FORMATS.get(pillow_format)
    if fmt is None:
        raise ImageRejected(f"{pillow_format} images are not supported; send PNG, JPEG, GIF "
                            f"or BMP")
    decoded = width * height
    if fmt == "BMP":
        _check_bmp(data)
    elif fmt == "GIF":
        decoded = _gif_decoded_pixels(data)
    if width < 1 or height < 1:
        raise ImageRejected(f"{fmt} declares an empty {width}x{height} picture")
    if max_pixels and decoded > max_pixels:
        raise ImageRejected(f"{fmt} of {width}x{height} decodes to {decoded} pixels, over the "
                            f"limit of {max_pixels}; refused before decoding")
    return ImageHeader(fmt, width, height, decoded)


def _check_bmp(data: bytes) -> None:
    if len(data) < 14 + BMP_INFO_HEADER_SIZE:
        raise ImageRejected("truncated BMP header")
    info_size, = struct.unpack_from("<I", data, 14)
    bits, compression = struct.unpack_from("<HI", data, 28)
    if info_size < BMP_INFO_HEADER_SIZE or bits not in BMP_BITS or \
            compression != BMP_UNCOMPRESSED:
        raise ImageRejected(
            f"BMP with {bits}-bit pixels, compression {compression} and a {info_size}-byte "
            f"header: the model's decoder reads only uncompressed 24/32-bit BMPs (it would read "
            f"palette or run-length pixels as grey indices); convert it to PNG")


def _gif_decoded_pixels(data: bytes) -> int:
    """Canvas plus every frame's area: TensorFlow's GIF decoder reads all frames into memory
    even when only the first is returned. Walks the block structure; nothing is decoded."""
    def need(pos, count):
        if pos + count > len(data):
            raise ImageRejected("truncated GIF")
        return pos

    def skip_sub_blocks(pos):
        while True:
            size = data[need(pos, 1)]
            pos += 1 + size
            if size == 0:
                return pos

    need(0, 13)
    canvas_w, canvas_h, flags = struct.unpack_from("<HHB", data, 6)
    pos = 13 + (3 << ((flags & 7) + 1) if flags & 0x80 else 0)
    total, frames = canvas_w * canvas_h, 0
    while True:
        block = data[need(pos, 1)]
        if block == _GIF_TRAILER:
            break
        if block == _GIF_EXTENSION:
            pos = skip_sub_blocks(need(pos, 2) + 2)
        elif block == _GIF_IMAGE:
            need(pos, 10)
            _, _, w, h, flags = struct.unpack_from("<HHHHB", data, pos + 1)
            pos += 10 + (3 << ((flags & 7) + 1) if flags & 0x80 else 0)
            pos = skip_sub_blocks(need(pos, 1) + 1)   # LZW code size, then the pixel data
            total, frames = total + w * h, frames + 1
        else:
            raise ImageRejected(f"corrupt GIF (unknown block 0x{block:02x} at byte {pos})")
    if not frames:
        raise ImageRejected("GIF without a picture")
    return total
