"""Request limits, and the per-image check that runs before any image reaches the model.

The model decodes images inside its graph, so a hostile or broken file would otherwise be
found only while a whole batch is running. Checking each image first lets the server
name the offending item, and refuse a "decompression bomb" (a small PNG that declares
gigapixel dimensions) from its header, before a single pixel is decoded.
"""
import dataclasses
import io
import warnings

from PIL import Image

import schema
from serving.errors import invalid, too_large

MIB = 1 << 20
_MAGIC = {b"\x89PNG": "PNG", b"\xff\xd8": "JPEG", b"GIF8": "GIF", b"BM": "BMP"}


@dataclasses.dataclass(frozen=True)
class Limits:
    max_images_per_request: int = 1024
    max_image_bytes: int = 4 * MIB
    max_image_pixels: int = 4096 * 4096
    max_request_bytes: int = 64 * MIB

    def check_request_size(self, count: int) -> None:
        if count > self.max_images_per_request:
            raise too_large(f"the request has {count} images; the limit is "
                            f"{self.max_images_per_request} per request (--max_images_per_request)")

    def check_image(self, data: bytes, item: str) -> None:
        """Raises INVALID_ARGUMENT naming ``item`` unless ``data`` is a whole, decodable image."""
        if not isinstance(data, bytes):
            raise invalid(f"{item}: expected encoded image bytes, got {type(data).__name__}")
        if not data:
            raise invalid(f"{item}: empty bytes; send the PNG/JPEG/GIF/BMP file's contents")
        if len(data) > self.max_image_bytes:
            raise invalid(f"{item}: {len(data)} bytes is over the limit of "
                          f"{self.max_image_bytes} bytes per image (--max_image_bytes)")
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", Image.DecompressionBombWarning)
                image = Image.open(io.BytesIO(data))  # reads the header only
        except Image.DecompressionBombError as e:
            raise invalid(f"{item}: declares more than the limit of {self.max_image_pixels} "
                          f"pixels (--max_image_pixels); refused before decoding ({e})") from None
        except Exception as e:
            known = next((fmt for magic, fmt in _MAGIC.items() if data.startswith(magic)), None)
            if known:
                raise invalid(f"{item}: corrupt or truncated {known} ({e})") from None
            raise invalid(f"{item}: not an image ({len(data)} bytes starting {data[:8]!r}); "
                          f"send PNG, JPEG, GIF or BMP file bytes, not pixels") from None
        with image:
            if image.format not in schema.IMAGE_FORMATS:
                raise invalid(f"{item}: {image.format} images are not supported; "
                              f"send PNG, JPEG, GIF or BMP")
            width, height = image.size
            if width * height > self.max_image_pixels:
                raise invalid(f"{item}: {width}x{height} = {width * height} pixels is over the "
                              f"limit of {self.max_image_pixels} (--max_image_pixels); refused "
                              f"before decoding")
            try:
                image.load()  # a full decode: catches truncated and corrupt files
            except Exception as e:
                raise invalid(f"{item}: corrupt or truncated {image.format} ({e})") from None
