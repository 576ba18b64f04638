"""Training-time augmentation of decoded batches: what a house number may look like that the
training images do not show.

Only the training input goes through it; evaluation, calibration and the serving graph see
images as they are. House numbers come light on dark and dark on light, in any colour pair,
and a crop is centred on its digit to within a pixel or two. Each training image gets its
own draw: inverted or not, its colour channels in a random order (or grey), shifted and
scaled slightly. From scratch on generated images, this read 1.5-2 points more of the real
development crops on each of two seeds (bench/results/ablation_augment.json).
"""
import itertools

import svhn_tfx.components  # noqa: F401  (sets the Keras/TF environment before TensorFlow loads)
import tensorflow as tf

INVERT_PROBABILITY = 0.5      # light digits on dark <-> dark on light
GREY_PROBABILITY = 0.2        # colour dropped
MAX_SHIFT_PIXELS = 2.0        # of the 32-pixel crop, each axis
SCALE_RANGE = (0.9, 1.1)      # zoom about the crop's centre
_PERMUTATIONS = tf.constant([[[float(i == j) for j in order] for i in range(3)]
                             for order in itertools.permutations(range(3))])  # [6, 3, 3]


def _uniform(seed: tf.Tensor, shape, minval=0.0, maxval=1.0, dtype=tf.float32) -> tf.Tensor:
    return tf.random.stateless_uniform(shape, seed, minval, maxval, dtype=dtype)


def _colour(images: tf.Tensor, seeds: tf.Tensor) -> tf.Tensor:
    batch = tf.shape(images)[0]
    invert = tf.cast(_uniform(seeds[0], [batch, 1, 1, 1]) < INVERT_PROBABILITY, images.dtype)
    images = invert * (1.0 - images) + (1.0 - invert) * images
    chosen = _uniform(seeds[1], [batch], 0, len(_PERMUTATIONS), dtype=tf.int32)
    permutation = tf.gather(tf.cast(_PERMUTATIONS, images.dtype), chosen)
    images = tf.einsum("bhwc,bcd->bhwd", images, permutation)
    grey = tf.cast(_uniform(seeds[2], [batch, 1, 1, 1]) < GREY_PROBABILITY, images.dtype)
    mean = tf.reduce_mean(images, axis=3, keepdims=True)
    return grey * mean + (1.0 - grey) * images


def _shift_and_scale(images: tf.Tensor, seeds: tf.Tensor) -> tf.Tensor:
    batch = tf.shape(images)[0]
    size = tf.cast(tf.shape(images)[1:3], tf.float32)
    centre = size / 2.0
    inverse_scale = 1.0 / _uniform(seeds[0], [batch], *SCALE_RANGE)
    shift = _uniform(seeds[1], [batch, 2], -MAX_SHIFT_PIXELS, MAX_SHIFT_PIXELS)
    # output (x, y) samples input (a0 x + a2, b1 y + b2): a zoom about the centre, then a shift
    offset = centre[None, ::-1] * (1.0 - inverse_scale[:, None]) + shift
    zeros = tf.zeros([batch])
    transforms = tf.stack([inverse_scale, zeros, offset[:, 0], zeros, inverse_scale,
                           offset[:, 1], zeros, zeros], axis=1)
    return tf.raw_ops.ImageProjectiveTransformV3(
        images=images, transforms=transforms, output_shape=tf.shape(images)[1:3],
        fill_value=0.0, interpolation="BILINEAR", fill_mode="REFLECT")


def augment(images: tf.Tensor, labels: tf.Tensor, seed: tf.Tensor):
    """A batch of float32 [batch, 32, 32, 3] images in [0, 1] (and its labels, unchanged).

    ``seed``: int [2], e.g. (run seed, batch number). The draws are stateless, so a run is
    the same whatever order tf.data's parallel calls take."""
    seeds = tf.random.experimental.stateless_split(tf.cast(seed, tf.int64), 5)
    images = _shift_and_scale(_colour(images, seeds[:3]), seeds[3:])
    return tf.clip_by_value(images, 0.0, 1.0), labels


def augmented_batches(batches: tf.data.Dataset, seed: int) -> tf.data.Dataset:
    """(images, labels) batches through ``augment``, each batch seeded by its number."""
    return batches.enumerate().map(
        lambda number, batch: augment(*batch, seed=tf.stack([tf.cast(seed, tf.int64), number])),
        num_parallel_calls=tf.data.AUTOTUNE)
