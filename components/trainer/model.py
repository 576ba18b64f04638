"""The digit CNN, sized for 32x32 crops (not ImageNet): three conv blocks and a small head.

The head sees the last feature map twice: averaged over the whole crop, and its centre cells
kept in place. An SVHN crop is centred on the labelled digit but holds its neighbours too
(the box is widened to a square); averaged alone, a neighbouring 1 counts as much as the
centre digit, and real 4s, 3s and 2s next to a 1 were read as 1
(bench/results/ablation_head.json).

It trains on adversarially moved copies of its inputs (AdversarialModel): real crops' finest
detail is where generated digits differ most, and a network that cannot lean on it reads
real crops about 2.5 points better (components/trainer/recipe.py, ADVERSARIAL_EPSILON).

It outputs logits, not probabilities: softmax and the calibration temperature are
applied in the exported serving graph, so that temperature scaling can be fitted after
training without touching the weights.
"""
import svhn_tfx.components  # noqa: F401  (sets the Keras/TF environment before TensorFlow loads)
import tensorflow as tf
import tf_keras as keras

from svhn_tfx import schema
from svhn_tfx.components.trainer import recipe
from svhn_tfx.components.trainer.tried import (
    ADVERSARIAL_CONSISTENCY, AMPLITUDE_MIX_PROBABILITY, ANTIALIASED_POOLING, GREYSCALE_INPUT,
    INPUT_BLUR_SIGMA, INSTANCE_NORM_BLOCKS, LABEL_SMOOTHING, MIXSTYLE_BLOCKS, MIXSTYLE_PROBABILITY,
    RANDOM_CONV_PROBABILITY, RANDOM_ERASING_PROBABILITY, RELATIVE_ADVERSARIAL_EPSILON, SAM_RHO,
    SGD_MOMENTUM, SGD_WARMUP_FRACTION,
    SMOOTH_ADVERSARIAL_EPSILON, SMOOTH_ADVERSARIAL_GRID, AmplitudeMix, BlurPool,
    GaussianLowPass, Luminance, MixStyle, RandomConvolution, RandomErasing,
    SharpnessAwareModel, SmoothedSparseCrossentropy)
from svhn_tfx.components.transform.preprocessing import CHANNELS, IMAGE_SIZE, TRANSFORMED_IMAGE_KEY

CONV_FILTERS = (32, 64, 128)   # (32, 64, 256) at full length (12,000 adversarial steps, the hour)
# read real crops 0.906 alone and under the demo recipe against 0.909 / 0.909
# (docs/real-data-quality.md, "A wider last block at full length")
CONVS_PER_BLOCK = 2   # 1 until make pretrain trained 3.3x longer; both changed together, the
# demo recipe read real crops 0.837 against 0.815 (docs/real-data-quality.md, "A deeper
# network, trained longer")
DENSE_UNITS = 256
DROPOUT = 0.3
WEIGHT_DECAY = 1e-4
FINAL_LR_FRACTION = 0.02
CENTRE_CROP = 1   # feature-map cells cut from each side for the head's centre: 2x2 of 4x4
ADVERSARIAL_STEP = 1.25   # adversarial training's one signed-gradient step, in epsilons
# (Wong et al. 2020's)


class PerImageStandardization(keras.layers.Layer):
    """Zero mean, unit variance per image: house numbers come in every brightness and contrast."""

    def call(self, images):
        return tf.image.per_image_standardization(images)


class AdversarialModel(keras.Model):
    """A model trained on adversarial copies of its inputs (FGSM from a random start, Wong et
    al., ICLR 2020): each image moves by at most ``epsilon`` per pixel in the direction that
    raises the loss, and the step is taken on the moved images. The real crops' finest detail
    misleads a network trained on generated images (docs/real-data-quality.md, "fine
    detail"); inputs perturbed this way teach it not to lean on small pixel changes, and
    adversarially augmented digits carried models across digit domains (Volpi et al.,
    NeurIPS 2018). Serving is unchanged: the perturbation exists only in train_step."""

    def __init__(self, *args, epsilon: float = recipe.ADVERSARIAL_EPSILON,
                 smooth_epsilon: float = SMOOTH_ADVERSARIAL_EPSILON,
                 consistency: float = ADVERSARIAL_CONSISTENCY,
                 relative_epsilon: float = RELATIVE_ADVERSARIAL_EPSILON, **kwargs):
        super().__init__(*args, **kwargs)
        self.epsilon = float(epsilon)
        self.relative_epsilon = float(relative_epsilon)
        self.smooth_epsilon = float(smooth_epsilon)
        self.consistency = float(consistency)

    def perturbed(self, x, y):
        """The images moved within ``epsilon`` of ``x`` a pixel (and inside [0, 1]) to raise
        the loss; with ``smooth_epsilon``, plus a low-frequency field moved the same way; with
        ``relative_epsilon``, each image's bound is that share of its own pixel std."""
        bound = self.epsilon if not self.relative_epsilon else \
            self.relative_epsilon * tf.math.reduce_std(
                x, axis=tf.range(1, tf.rank(x)), keepdims=True)
        # each move: (its shape, its bound, how it spreads over the image)
        moves = [(tf.shape(x), bound, tf.identity)]
        if self.smooth_epsilon:
            grid = (tf.shape(x)[0], SMOOTH_ADVERSARIAL_GRID, SMOOTH_ADVERSARIAL_GRID,
                    tf.shape(x)[3])
            moves.append((grid, self.smooth_epsilon,
                          lambda d: tf.image.resize(d, tf.shape(x)[1:3], method="bilinear")))
        deltas = [tf.random.uniform(shape, -eps, eps) for shape, eps, _ in moves]

        def applied(ds):
            spread = [over_image(d) for d, (_, _, over_image) in zip(ds, moves)]
            return tf.clip_by_value(x + tf.add_n(spread), 0.0, 1.0)
        with tf.GradientTape() as tape:
            tape.watch(deltas)
            loss = self.compute_loss(x, y, self(applied(deltas), training=True))
        deltas = [tf.clip_by_value(d + ADVERSARIAL_STEP * eps * tf.sign(g), -eps, eps)
                  for d, g, (_, eps, _) in zip(deltas, tape.gradient(loss, deltas), moves)]
        return tf.stop_gradient(applied(deltas))

    def train_step(self, data):
        x, y = data[0], data[1]
        moved = self.perturbed(x, y)
        with tf.GradientTape() as tape:
            if self.consistency:
                clean, logits = tf.split(self(tf.concat([x, moved], 0), training=True), 2)
                loss = self.compute_loss(moved, y, logits) + self.consistency * tf.reduce_mean(
                    keras.losses.kl_divergence(tf.nn.softmax(clean), tf.nn.softmax(logits)))
            else:
                logits = self(moved, training=True)
                loss = self.compute_loss(moved, y, logits)
        self.optimizer.minimize(loss, self.trainable_variables, tape=tape)
        return self.compute_metrics(moved, y, logits, None)


def _conv_block(x, filters: int, convs: int, per_image: bool = False,
                antialiased: bool = ANTIALIASED_POOLING):
    for _ in range(convs):
        x = keras.layers.Conv2D(filters, 3, padding="same", use_bias=False,
                                kernel_regularizer=keras.regularizers.l2(WEIGHT_DECAY))(x)
        x = keras.layers.GroupNormalization(filters)(x) if per_image else \
            keras.layers.BatchNormalization()(x)
        x = keras.layers.ReLU()(x)
    if antialiased:
        return BlurPool()(keras.layers.MaxPooling2D(2, strides=1, padding="same")(x))
    return keras.layers.MaxPooling2D()(x)


def build_model(learning_rate: float, decay_steps: int = 0,
                num_classes: int = schema.NUM_CLASSES, centre_head: bool = True,
                conv_filters=CONV_FILTERS, convs_per_block: int = CONVS_PER_BLOCK,
                dense_units: int = DENSE_UNITS,
                input_blur_sigma: float = INPUT_BLUR_SIGMA,
                random_conv_probability: float = RANDOM_CONV_PROBABILITY,
                instance_norm_blocks: int = INSTANCE_NORM_BLOCKS,
                mixstyle_probability: float = MIXSTYLE_PROBABILITY,
                antialiased_pooling: bool = ANTIALIASED_POOLING,
                random_erasing_probability: float = RANDOM_ERASING_PROBABILITY,
                amplitude_mix_probability: float = AMPLITUDE_MIX_PROBABILITY,
                sam_rho: float = SAM_RHO,
                label_smoothing: float = LABEL_SMOOTHING,
                greyscale_input: bool = GREYSCALE_INPUT,
                adversarial_epsilon: float = recipe.ADVERSARIAL_EPSILON,
                smooth_adversarial_epsilon: float = SMOOTH_ADVERSARIAL_EPSILON,
                adversarial_consistency: float = ADVERSARIAL_CONSISTENCY,
                relative_adversarial_epsilon: float = RELATIVE_ADVERSARIAL_EPSILON,
                sgd_momentum: float = SGD_MOMENTUM) -> keras.Model:
    """Returns a compiled Keras model: float32 [batch, 32, 32, 3] in [0, 1] -> 11 logits
    (``num_classes=10`` gives the digits-only network "no digit" is compared against;
    ``centre_head=False`` the global-average head alone, as before; the sizes are keywords
    so that the benchmark can try others).

    With ``decay_steps``, the learning rate follows a cosine down to FINAL_LR_FRACTION of
    itself: a constant rate leaves the last weights (the ones exported) noisy by several
    points of accuracy from one epoch to the next.
    """
    warmup_steps = int(decay_steps * SGD_WARMUP_FRACTION) if sgd_momentum else 0
    if decay_steps:
        learning_rate = keras.optimizers.schedules.CosineDecay(
            0.0 if warmup_steps else learning_rate, decay_steps - warmup_steps,
            alpha=FINAL_LR_FRACTION, warmup_target=learning_rate if warmup_steps else None,
            warmup_steps=warmup_steps)
    inputs = keras.Input(shape=(IMAGE_SIZE, IMAGE_SIZE, CHANNELS), name=TRANSFORMED_IMAGE_KEY)
    x = Luminance()(inputs) if greyscale_input else inputs
    x = GaussianLowPass(input_blur_sigma)(x) if input_blur_sigma else x
    if random_conv_probability:
        x = RandomConvolution(random_conv_probability)(x)
    if random_erasing_probability:
        x = RandomErasing(random_erasing_probability)(x)
    if amplitude_mix_probability:
        x = AmplitudeMix(amplitude_mix_probability)(x)
    x = PerImageStandardization()(x)
    for block, filters in enumerate(conv_filters):
        x = _conv_block(x, filters, convs_per_block, per_image=block < instance_norm_blocks,
                        antialiased=antialiased_pooling)
        if mixstyle_probability and block < MIXSTYLE_BLOCKS:
            x = MixStyle(mixstyle_probability)(x)
    features = keras.layers.GlobalAveragePooling2D()(x)
    if centre_head:
        centre = keras.layers.Flatten()(keras.layers.Cropping2D(CENTRE_CROP)(x))
        features = keras.layers.Concatenate()([features, centre])
    x = keras.layers.Dropout(DROPOUT)(features)
    x = keras.layers.Dense(dense_units, activation="relu")(x)
    x = keras.layers.Dropout(DROPOUT)(x)
    logits = keras.layers.Dense(num_classes, name="logits")(x)
    if sam_rho and adversarial_epsilon:
        raise ValueError("sharpness-aware and adversarial steps are alternatives; pick one")
    if sam_rho:
        model = SharpnessAwareModel(inputs, logits, name="svhn_cnn", rho=sam_rho)
    elif adversarial_epsilon:
        model = AdversarialModel(inputs, logits, name="svhn_cnn", epsilon=adversarial_epsilon,
                                 smooth_epsilon=smooth_adversarial_epsilon,
                                 consistency=adversarial_consistency,
                                 relative_epsilon=relative_adversarial_epsilon)
    else:
        model = keras.Model(inputs, logits, name="svhn_cnn")
    model.compile(
        optimizer=keras.optimizers.SGD(learning_rate, momentum=sgd_momentum, nesterov=True)
        if sgd_momentum else keras.optimizers.Adam(learning_rate),
        loss=SmoothedSparseCrossentropy(num_classes, label_smoothing) if label_smoothing else
        keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=[keras.metrics.SparseCategoricalAccuracy(name="accuracy")])
    return model
