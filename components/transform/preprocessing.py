"""The Transform ``preprocessing_fn``: encoded image bytes -> model input, in one graph.

This is the only place pixels are decoded, resized or rescaled. Transform runs it over
the training data and embeds the same graph in the exported model, so the serving
endpoint takes raw file bytes and a caller cannot skip (or repeat) the normalisation.

Aspect ratio: the image is scaled so its longer side is ``IMAGE_SIZE`` and the shorter
side is then extended to a square by repeating its edge pixels. That mirrors how SVHN's
own 32x32 crops were made (the digit box widened to a square of real surroundings), so
a non-square crop neither gets stretched digits nor black bars the model never saw.
"""
import svhn_tfx.components  # noqa: F401  (sets the Keras/TF environment before TensorFlow loads)
import tensorflow as tf

from svhn_tfx import schema

IMAGE_SIZE = 32
CHANNELS = 3
TRANSFORMED_IMAGE_KEY = "image"
TRANSFORMED_LABEL_KEY = "label"


def _square_by_edge_padding(image: tf.Tensor, size: int) -> tf.Tensor:
    """Resizes the longer side to ``size`` and fills the short side with edge pixels."""
    shape = tf.cast(tf.shape(image)[:2], tf.float32)
    scale = size / tf.reduce_max(shape)
    new_hw = tf.maximum(tf.cast(tf.round(shape * scale), tf.int32), 1)
    image = tf.image.resize(image, new_hw, method="bilinear", antialias=True)

    def edge_index(new_len):
        offset = (size - new_len) // 2
        return tf.clip_by_value(tf.range(size) - offset, 0, new_len - 1)

    image = tf.gather(image, edge_index(new_hw[0]), axis=0)
    return tf.gather(image, edge_index(new_hw[1]), axis=1)


def decode(image_bytes: tf.Tensor) -> tf.Tensor:
    """One encoded PNG/JPEG/GIF/BMP (grey, RGB or RGBA; a GIF's first frame) -> uint8
    [height, width, 3]. The one decoder: converters check records with it too."""
    return tf.io.decode_image(image_bytes, channels=CHANNELS, expand_animations=False)


def decode_and_resize(image_bytes: tf.Tensor) -> tf.Tensor:
    """One encoded image -> float32 [32, 32, 3] in [0, 1]."""
    image = tf.image.convert_image_dtype(decode(image_bytes), tf.float32)  # uint8 -> [0, 1]
    image = _square_by_edge_padding(image, IMAGE_SIZE)
    image = tf.clip_by_value(image, 0.0, 1.0)  # antialiased resize can overshoot slightly
    return tf.ensure_shape(image, [IMAGE_SIZE, IMAGE_SIZE, CHANNELS])


def preprocess_images(image_bytes: tf.Tensor) -> tf.Tensor:
    """A batch of encoded images, shape [batch] or [batch, 1] -> float32 [batch, 32, 32, 3]."""
    image_bytes = tf.reshape(image_bytes, [-1])
    return tf.map_fn(decode_and_resize, image_bytes,
                     fn_output_signature=tf.TensorSpec([IMAGE_SIZE, IMAGE_SIZE, CHANNELS],
                                                       tf.float32))


def preprocessing_fn(inputs):
    """tf.Transform entry point (named in the pipeline's Transform ``module_file``)."""
    outputs = {TRANSFORMED_IMAGE_KEY: preprocess_images(inputs[schema.IMAGE_KEY])}
    if schema.LABEL_KEY in inputs:  # absent at serving time
        outputs[TRANSFORMED_LABEL_KEY] = tf.reshape(inputs[schema.LABEL_KEY], [-1])
    return outputs
