"""Request limits, checked before the work they protect.

Every input that carries images (raw bytes, or tf.Examples holding them, whichever
signature a request names) is checked image by image from its header alone
(``schema.images``): an encoding the graph would misread, a "decompression bomb" (a small
file declaring gigapixels), and a request whose images together decode to more than
``max_request_pixels`` are refused before a single pixel is decoded. The model's graph then
decodes each image once; bytes it cannot decode are refused by it, named by row.
"""
import dataclasses

from svhn_tfx import schema
from svhn_tfx.schema import images
from svhn_tfx.serving.errors import invalid, too_large

MIB = 1 << 20


@dataclasses.dataclass(frozen=True)
class Limits:
    max_images_per_request: int = 1024
    max_image_bytes: int = 4 * MIB
    max_image_pixels: int = schema.MAX_IMAGE_PIXELS
    max_request_pixels: int = schema.MAX_IMAGE_PIXELS   # decoded, all images of a request
    max_request_bytes: int = 64 * MIB

    def check_request_size(self, count: int) -> None:
        if count > self.max_images_per_request:
            raise too_large(f"the request has {count} images; the limit is "
                            f"{self.max_images_per_request} per request (--max_images_per_request)")

    def check_image(self, data: bytes, item: str) -> int:
        """The pixels decoding ``data`` will cost; INVALID_ARGUMENT naming ``item`` unless it
        is an image the model's graph decodes exactly, within the per-image limits."""
        if isinstance(data, bytes) and len(data) > self.max_image_bytes:
            raise invalid(f"{item}: {len(data)} bytes is over the limit of "
                          f"{self.max_image_bytes} bytes per image (--max_image_bytes)")
        try:
            header = images.read_header(data)
        except images.ImageRejected as e:
            raise invalid(f"{item}: {e}") from None
        if header.decoded_pixels > self.max_image_pixels:
            raise invalid(f"{item}: {header.format} of {header.width}x{header.height} decodes "
                          f"to {header.decoded_pixels} pixels, over the limit of "
                          f"{self.max_image_pixels} (--max_image_pixels); refused before "
                          f"decoding")
        return header.decoded_pixels

    def check_request_pixels(self, pixels: int) -> None:
        if pixels > self.max_request_pixels:
            raise too_large(f"the request's images decode to {pixels} pixels in all; the limit "
                            f"is {self.max_request_pixels} (--max_request_pixels); send fewer "
                            f"or smaller images per request")
