"""GPU probe: is real-crop accuracy limited by training compute / model size, or by the generator?

One self-contained run for a lent GPU machine (no TensorFlow there, no network):

1. generates SVHN-like images with the repository's generator (a snapshot of the package
   ``svhn_tfx.components.generator`` with ``svhn_tfx.schema`` under ``.gpu/src/svhn_tfx``,
   copied from ``components/generator/`` and ``schema/``) in a pool of processes. The fonts
   (130 MB of fontpkg packages) cannot travel, so every glyph mask the default settings can
   ask ``text.glyph`` for was pre-rendered here into ``.gpu/glyphs.npz``
   (``python -m bench.gpu_probe_glyphs``; the real crops: ``python -m bench.gpu_probe_real``) and ``install_glyph_cache`` makes the generator read them (and
   replaces ``fonts``, which imports matplotlib and asks fontpkg for ``default_fonts()``, by
   a stub): the images are byte-identical to the font-rendering generator's (``--digest``);
2. decodes the bytes with PIL to uint8 32x32x3 (the project's graph decodes and divides by
   255; for 32x32 images its resize is the identity);
3. trains the project's CNN (``components/trainer/model.py``: per-image standardisation,
   conv(no bias, l2 1e-4) + BN + ReLU blocks with max pooling, GAP, dropout 0.3, dense 256,
   dropout 0.3, 11 logits; Adam with a cosine decay to 0.02 of 3e-3, batch 128, shuffled
   uniformly, no augmentation or sample weights, as the Trainer does) in Keras 3 on the JAX
   backend, with a jitted ``lax.scan`` over chunks of steps and the data on the device;
4. scores every few thousand steps on the 541 real SVHN dev crops (11-way argmax accuracy,
   share of real digits called "no digit", per-class accuracy), the 21 real background crops
   (no-digit AUROC) and a generated eval set (seed + 1000), and writes ``gpu_probe.json``
   after every evaluation, so a run cut short still leaves its curve.

The final weights of each finished run go to ``weights_<run>.npz`` in Keras ``get_weights()``
order (arrays ``w000``...; the project's tf_keras model can ``set_weights`` them).

``--plan variants`` trains generator variants on the large model as run b was trained
(``main_variants``; results in bench/results/gpu_probe_variants.json).

Device:   python bench/gpu_probe.py [--plan variants] --preset device --out $OUT
Dry run:  KERAS_BACKEND=jax python bench/gpu_probe.py [--plan variants] --preset dry --out /tmp/probe
Check:    .venv/bin/python bench/gpu_probe.py --digest 200 --no-glyph-cache   (installed svhn_tfx,
          fonts) against  /tmp/jaxenv/bin/python bench/gpu_probe.py --digest 200  (snapshot and
          glyph cache; a Python without svhn_tfx installed): the hashes must be equal
"""
import argparse
import ast
import dataclasses
import functools
import glob
import hashlib
import io
import json
import math
import multiprocessing
import os
import platform
import sys
import time
import types

import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SRC = os.path.join(REPO, ".gpu", "src")
GLYPHS = os.path.join(REPO, ".gpu", "glyphs.npz")
REAL = os.path.join(REPO, ".gpu", "real")
NO_DIGIT = 10
NUM_CLASSES = 11
TRAIN_SEED = 100            # make pretrain's generator seed
EVAL_SEED_OFFSET = 1000     # synthetic.EVAL_SEED_OFFSET
CHUNK = 500                 # images per generation task
EVAL_BATCH = 1024
ECE_BINS = 15

SMALL = dict(conv_filters=(32, 64, 128), convs_per_block=1, dense_units=256)   # model.py then
LARGE = dict(conv_filters=(64, 128, 256), convs_per_block=2, dense_units=512)
RECIPE = dict(learning_rate=3e-3, final_lr_fraction=0.02, batch_size=128, dropout=0.3,
              weight_decay=1e-4)
# the generator variant: the two best rows of bench/results/ablation.json combined
# ("half as many no-digit images" 0.673, "blur and low resolution as before" 0.640)
VARIANT = dict(no_digit_fraction=0.075, blur_sigma=1.0)

T0 = time.perf_counter()


def log(msg: str) -> None:
    print(f"[{time.perf_counter() - T0:7.1f}s] {msg}", flush=True)


# ---------------------------------------------------------------------------- generator

PKG = "svhn_tfx.components.generator"
_INSTALLED = None   # the patched synthetic module, once installed in this process


def install_glyph_cache(src: str = SRC, glyphs: str = GLYPHS):
    """Imports the snapshot's generator (``.gpu/src/svhn_tfx``) with fonts replaced by the
    pre-rendered glyph masks.

    ``svhn_tfx.components.generator.fonts`` becomes a stub with the snapshot's own
    ``is_bold`` and ``BOLD_WEIGHT`` (taken from its source, which imports matplotlib and
    fontpkg), the recorded ``default_fonts()`` (what ``GeneratorSettings().fonts`` asks for)
    and no ``load``; ``text.glyph`` reads the masks. Returns the ``synthetic`` module."""
    global _INSTALLED
    if _INSTALLED is not None:
        return _INSTALLED
    if src not in sys.path:
        sys.path.insert(0, src)
    import svhn_tfx
    if not any(os.path.abspath(p) == os.path.join(os.path.abspath(src), "svhn_tfx")
               for p in svhn_tfx.__path__):
        raise ImportError(f"svhn_tfx comes from {list(svhn_tfx.__path__)}, not the snapshot in "
                          f"{src} (an installed svhn_tfx shadows it: use a Python without it)")
    z = np.load(glyphs)
    buffer, offsets, shapes, tops = z["buffer"], z["offsets"], z["shapes"], z["tops"]
    index = {}
    for i, name in enumerate(z["names"]):
        face, char, weight = str(name).split("\t")
        index[(face, char, int(weight))] = i
    faces = tuple((f, float(w)) for f, w in json.loads(str(z["default_fonts"])))

    stub = types.ModuleType(PKG + ".fonts")
    with open(os.path.join(src, *PKG.split("."), "fonts.py")) as f:
        tree = ast.parse(f.read())
    keep = [n for n in tree.body if (isinstance(n, ast.FunctionDef) and n.name == "is_bold") or
            (isinstance(n, ast.Assign) and any(getattr(t, "id", "") == "BOLD_WEIGHT"
                                               for t in n.targets))]
    exec(compile(ast.Module(body=keep, type_ignores=[]), "fonts.py", "exec"), stub.__dict__)
    stub.default_fonts = lambda: faces

    def load(face, size):
        raise RuntimeError(f"fonts are not installed here: glyphs come from {glyphs}")
    stub.load = load
    import svhn_tfx.components.generator as generator
    if PKG + ".settings" in sys.modules or PKG + ".text" in sys.modules:
        raise RuntimeError("the generator was imported before the glyph cache")
    sys.modules[PKG + ".fonts"] = stub
    generator.fonts = stub
    from svhn_tfx.components.generator import scene, settings, synthetic, text
    assert text.typefaces is stub and settings.typefaces is stub and scene.typefaces is stub
    if int(z["glyph_px"]) != text.GLYPH_PX:
        raise ValueError(f"{glyphs} was rendered at {int(z['glyph_px'])} px, the generator "
                         f"asks for {text.GLYPH_PX}")

    @functools.lru_cache(maxsize=None)
    def glyph(font_name, char, weight):
        i = index.get((font_name, char, weight))
        if i is None:
            raise KeyError(f"no pre-rendered glyph for {(font_name, char, weight)} in {glyphs}")
        h, w = shapes[i]
        mask = buffer[offsets[i]:offsets[i] + h * w].reshape(h, w)
        return mask, int(tops[i])
    text.glyph = glyph   # compose_string looks it up in text's globals at each call
    _INSTALLED = synthetic
    return synthetic


_SYN = None


def _worker_init(src, glyphs):
    global _SYN
    _SYN = install_glyph_cache(src, glyphs)


def decode(blob: bytes) -> np.ndarray:
    from PIL import Image
    return np.asarray(Image.open(io.BytesIO(blob)).convert("RGB"))


def _generate_chunk(args):
    """(dataset, start, uint8 [n, 32, 32, 3], int8 [n], sha256 of the encoded bytes, when
    it was done as time.time())."""
    name, seed, start, n, change = args
    settings = dataclasses.replace(_SYN.GeneratorSettings(), **change)
    images = np.zeros((n, 32, 32, 3), np.uint8)
    labels = np.zeros((n,), np.int8)
    digest = hashlib.sha256()
    for k in range(n):
        blob, label = _SYN.generate_one(seed, start + k, settings)
        digest.update(blob)
        images[k] = decode(blob)
        labels[k] = label
    return name, start, images, labels, digest.hexdigest(), time.time()


class Datasets:
    """Generated data sets, rendered in a process pool in the order they were asked for."""

    def __init__(self, pool, specs, order):
        """``specs``: name -> (seed, n, settings change); ``order``: (name, up to) segments,
        queued in that order (the pool hands out tasks first in, first out)."""
        self.specs = specs
        self.arrays, self.pending, self.done, self.digests = {}, {}, {}, {}
        self.started, self.finished, self.last_done = {}, {}, {}
        for name, (seed, n, change) in specs.items():
            self.arrays[name] = (np.zeros((n, 32, 32, 3), np.uint8), np.zeros((n,), np.int32))
            self.pending[name], self.done[name], self.digests[name] = [], 0, {}
            self.started[name] = time.time()
        for name, end in order:
            seed, n, change = specs[name]
            end = min(end, n)
            for s in range(len(self.pending[name]) * CHUNK, end, CHUNK):
                self.pending[name].append(pool.apply_async(
                    _generate_chunk, ((name, seed, s, min(CHUNK, n - s), change),)))

    def wait(self, name, count=None):
        """Blocks until images [0, count) of ``name`` are in; returns (images, labels)."""
        images, labels = self.arrays[name]
        count = len(labels) if count is None else count
        while self.done[name] * CHUNK < count and self.done[name] < len(self.pending[name]):
            _, start, im, lb, digest, when = self.pending[name][self.done[name]].get()
            self.last_done[name] = max(self.last_done.get(name, 0.0), when)
            images[start:start + len(lb)] = im
            labels[start:start + len(lb)] = lb
            self.digests[name][start] = digest
            self.done[name] += 1
        if self.done[name] == len(self.pending[name]) and name not in self.finished:
            # seconds from the pool's start until its last chunk was rendered
            self.finished[name] = self.last_done[name] - self.started[name]
        return images, labels

    def ready(self, name) -> int:
        """Images of ``name`` rendered so far (in order), without blocking."""
        k = self.done[name]
        while k < len(self.pending[name]) and self.pending[name][k].ready():
            k += 1
        return min(k * CHUNK, len(self.arrays[name][1]))


def digest_mode(n: int, glyph_cache: bool) -> None:
    """Prints per-image sha256 of generate_one(100, i) for i < n: with the real fonts (the
    project venv's installed svhn_tfx) or from the snapshot and glyph cache (a Python without
    svhn_tfx installed); the two lists must be equal."""
    if glyph_cache:
        synthetic = install_glyph_cache()
    else:
        from svhn_tfx.components.generator import synthetic
    blobs = [synthetic.generate_one(TRAIN_SEED, i)[0] for i in range(n)]
    chunk = hashlib.sha256()   # as _generate_chunk hashes a chunk of CHUNK images
    for blob in blobs:
        chunk.update(blob)
    print(json.dumps({"glyph_cache": glyph_cache, "source": os.path.dirname(synthetic.__file__),
                      "n": n, "chunk_sha256": chunk.hexdigest(),
                      "hashes": [hashlib.sha256(b).hexdigest() for b in blobs]}))


# ---------------------------------------------------------------------------- real sets

def load_real(root: str = REAL):
    """(digits uint8 [n,32,32,3], labels [n], backgrounds uint8 [m,32,32,3])."""
    from PIL import Image
    digits, labels, backgrounds = [], [], []
    for path in sorted(glob.glob(os.path.join(root, "*", "*.png"))):
        folder = os.path.basename(os.path.dirname(path))
        with open(path, "rb") as f:
            image = decode(f.read())
        if image.shape != (32, 32, 3):   # the project's graph would resize; these are 32x32
            image = np.asarray(Image.fromarray(image).resize((32, 32), Image.BILINEAR))
        if folder == "none":
            backgrounds.append(image)
        else:
            digits.append(image)
            labels.append(int(folder))
    return (np.stack(digits), np.array(labels),
            np.stack(backgrounds) if backgrounds else np.zeros((0, 32, 32, 3), np.uint8))


# ---------------------------------------------------------------------------- metrics

def softmax(logits, t=1.0):
    z = np.asarray(logits, np.float64) / t
    z -= z.max(1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(1, keepdims=True)


def auroc(scores, positives) -> float:
    """P(score of a positive > score of a negative), ties 1/2."""
    scores, positives = np.asarray(scores, np.float64), np.asarray(positives, bool)
    pos, neg = scores[positives], scores[~positives]
    if not len(pos) or not len(neg):
        return None
    greater = (pos[:, None] > neg[None, :]).sum()
    ties = (pos[:, None] == neg[None, :]).sum()
    return float((greater + 0.5 * ties) / (len(pos) * len(neg)))


def ece(confidence, correct, bins=ECE_BINS) -> float:
    idx = np.clip(np.floor(confidence * bins), 0, bins - 1).astype(int)
    return float(np.abs(np.bincount(idx, correct.astype(float), bins) -
                        np.bincount(idx, confidence, bins)).sum() / len(confidence))


def fit_temperature(logits, labels) -> float:
    """T minimising NLL (golden-section search on log T; NLL is unimodal in log T)."""
    logits, rows = np.asarray(logits, np.float64), np.arange(len(labels))

    def nll(log_t):
        z = logits / math.exp(log_t)
        z = z - z.max(1, keepdims=True)
        return float(-(z[rows, labels] - np.log(np.exp(z).sum(1))).mean())
    a, b = math.log(0.05), math.log(20.0)
    g = (math.sqrt(5) - 1) / 2
    c, d = b - g * (b - a), a + g * (b - a)
    for _ in range(60):
        if nll(c) < nll(d):
            b, d = d, c
            c = b - g * (b - a)
        else:
            a, c = c, d
            d = a + g * (b - a)
    return math.exp((a + b) / 2)


def real_metrics(logits, labels, bg_logits, full=False) -> dict:
    p = softmax(logits)
    pred = p.argmax(1)
    out = {"real_acc": float(np.mean(pred == labels)),
           "real_digits_only_acc": float(np.mean(p[:, :NO_DIGIT].argmax(1) == labels)),
           "real_no_digit_share": float(np.mean(pred == NO_DIGIT))}
    if len(bg_logits):
        b = softmax(bg_logits)
        out["bg_auroc"] = auroc(np.r_[p[:, NO_DIGIT], b[:, NO_DIGIT]],
                                np.r_[np.zeros(len(p), bool), np.ones(len(b), bool)])
        out["bg_called_digit"] = float(np.mean(b.argmax(1) != NO_DIGIT))
    if full:
        out["per_class_real_acc"] = {str(d): round(float(np.mean(pred[labels == d] == d)), 4)
                                     for d in range(10) if (labels == d).any()}
        conf = {}
        for t, g in zip(labels, pred):
            if t != g:
                key = f"{t}->{'none' if g == NO_DIGIT else g}"
                conf[key] = conf.get(key, 0) + 1
        out["top_confusions"] = sorted(conf.items(), key=lambda kv: -kv[1])[:10]
    return out


# ---------------------------------------------------------------------------- model

def build_model(keras, conv_filters, convs_per_block, dense_units):
    """components/trainer/model.py in Keras 3 (same layers, defaults and order) as it was for
    the recorded runs: a global-average head; model.py has since added the centre cells."""
    from keras import layers, ops

    class PerImageStandardization(layers.Layer):
        """tf.image.per_image_standardization: (x - mean) / max(std, 1/sqrt(N)) per image."""

        def call(self, images):
            n = images.shape[1] * images.shape[2] * images.shape[3]
            mean = ops.mean(images, axis=(1, 2, 3), keepdims=True)
            std = ops.sqrt(ops.mean(ops.square(images - mean), axis=(1, 2, 3), keepdims=True))
            return (images - mean) / ops.maximum(std, 1.0 / math.sqrt(n))

    inputs = keras.Input(shape=(32, 32, 3), name="image")
    x = PerImageStandardization()(inputs)
    for filters in conv_filters:
        for _ in range(convs_per_block):
            x = layers.Conv2D(filters, 3, padding="same", use_bias=False,
                              kernel_regularizer=keras.regularizers.l2(RECIPE["weight_decay"]))(x)
            x = layers.BatchNormalization()(x)
            x = layers.ReLU()(x)
        x = layers.MaxPooling2D()(x)
    x = layers.GlobalAveragePooling2D()(x)
    x = layers.Dropout(RECIPE["dropout"])(x)
    x = layers.Dense(dense_units, activation="relu")(x)
    x = layers.Dropout(RECIPE["dropout"])(x)
    logits = layers.Dense(NUM_CLASSES, name="logits")(x)
    return keras.Model(inputs, logits, name="svhn_cnn")


class Trainer:
    """One run: the Keras 3 model trained with a jitted lax.scan over chunks of steps."""

    def __init__(self, name, model_cfg, steps, chunk, capacity, seed=0, mode="scan"):
        """``mode``: "scan" runs a chunk of steps as one jitted lax.scan; "loop" calls a jitted
        single step ``chunk`` times (XLA:CPU runs convolutions inside a loop ~20x slower)."""
        import jax
        import jax.numpy as jnp
        import keras
        self.name, self.steps, self.chunk, self.mode = name, steps, chunk, mode
        keras.utils.set_random_seed(seed)
        self.model = build_model(keras, **model_cfg)
        schedule = keras.optimizers.schedules.CosineDecay(
            RECIPE["learning_rate"], steps, alpha=RECIPE["final_lr_fraction"])
        self.opt = keras.optimizers.Adam(schedule)
        self.opt.build(self.model.trainable_variables)
        loss_obj = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
        model, opt = self.model, self.opt
        self.rng = np.random.default_rng(seed)
        self.stream = np.zeros((0,), np.int64)
        self.params = sum(int(np.prod(v.shape)) for v in model.trainable_variables)

        def loss_fn(tv, ntv, x, y):
            logits, ntv, losses = model.stateless_call(tv, ntv, x, training=True,
                                                       return_losses=True)
            ce = loss_obj(y, logits)
            return ce + sum(losses), (ntv, ce)

        grad_fn = jax.value_and_grad(loss_fn, has_aux=True)

        def make_step(images, labels):
            def step(carry, ix):
                tv, ntv, ov = carry
                x = images[ix].astype(jnp.float32) * (1.0 / 255.0)
                (_, (ntv, ce)), grads = grad_fn(tv, ntv, x, labels[ix])
                tv, ov = opt.stateless_apply(ov, grads, tv)
                return (tv, ntv, ov), ce
            return step

        def train_chunk(tv, ntv, ov, images, labels, idx):
            (tv, ntv, ov), ces = jax.lax.scan(make_step(images, labels), (tv, ntv, ov), idx)
            return tv, ntv, ov, ces.mean()

        def train_step(tv, ntv, ov, images, labels, idx, i):
            ix = jax.lax.dynamic_index_in_dim(idx, i, 0, keepdims=False)
            (tv, ntv, ov), ce = make_step(images, labels)((tv, ntv, ov), ix)
            return tv, ntv, ov, ce

        def predict(tv, ntv, x):
            logits, _ = model.stateless_call(tv, ntv, x.astype(jnp.float32) * (1.0 / 255.0),
                                             training=False)
            return logits

        self.state = ([v.value for v in model.trainable_variables],
                      [v.value for v in model.non_trainable_variables],
                      [v.value for v in opt.variables])
        sds = lambda s, d: jax.ShapeDtypeStruct(s, d)  # noqa: E731
        abstract = jax.tree_util.tree_map(lambda a: sds(a.shape, a.dtype), self.state)
        bs = RECIPE["batch_size"]
        t = time.perf_counter()
        data_args = (sds((capacity, 32, 32, 3), jnp.uint8), sds((capacity,), jnp.int32),
                     sds((chunk, bs), jnp.int32))
        if mode == "scan":
            self.train_chunk = jax.jit(train_chunk, donate_argnums=(0, 1, 2)).lower(
                *abstract, *data_args).compile()
        else:
            self.train_step = jax.jit(train_step, donate_argnums=(0, 1, 2)).lower(
                *abstract, *data_args, sds((), jnp.int32)).compile()
        self.predict = jax.jit(predict).lower(
            abstract[0], abstract[1], sds((EVAL_BATCH, 32, 32, 3), jnp.uint8)).compile()
        self.compile_s = time.perf_counter() - t

    def indices(self, n_data):
        need = self.chunk * RECIPE["batch_size"]
        while len(self.stream) < need:   # shuffle -> repeat -> batch, as the Trainer's tf.data
            self.stream = np.concatenate([self.stream, self.rng.permutation(n_data)])
        idx, self.stream = self.stream[:need], self.stream[need:]
        return idx.reshape(self.chunk, RECIPE["batch_size"]).astype(np.int32)

    def run_chunk(self, images_dev, labels_dev, n_data):
        import jax
        import jax.numpy as jnp
        tv, ntv, ov = self.state
        idx = self.indices(n_data)
        if self.mode == "scan":
            tv, ntv, ov, loss = self.train_chunk(tv, ntv, ov, images_dev, labels_dev, idx)
        else:
            idx = jax.device_put(idx)
            losses = []
            for i in range(self.chunk):
                tv, ntv, ov, ce = self.train_step(tv, ntv, ov, images_dev, labels_dev, idx,
                                                  np.int32(i))
                losses.append(ce)
            loss = jnp.mean(jnp.stack(losses))
        self.state = (tv, ntv, ov)
        return loss

    def logits(self, images):
        import jax
        out = []
        for i in range(0, len(images), EVAL_BATCH):
            batch = images[i:i + EVAL_BATCH]
            pad = EVAL_BATCH - len(batch)
            if pad:
                batch = np.concatenate([batch, np.zeros((pad, 32, 32, 3), np.uint8)])
            out.append(np.asarray(jax.device_get(
                self.predict(self.state[0], self.state[1], batch)))[:EVAL_BATCH - pad])
        return np.concatenate(out) if out else np.zeros((0, NUM_CLASSES))

    def get_weights(self):
        """Keras get_weights() order, from the trained state."""
        tv, ntv, _ = self.state
        values = {id(v): np.asarray(a) for v, a in zip(self.model.trainable_variables, tv)}
        values.update({id(v): np.asarray(a)
                       for v, a in zip(self.model.non_trainable_variables, ntv)})
        return [(w.path, values[id(w)]) for w in self.model.weights]


def train_with_curve(tr, run, name, data, steps, chunk, every, deadline, evals, describe,
                     save) -> None:
    """Trains ``tr`` for ``steps`` steps in chunks on ``data`` (images and labels on the
    device, and how many of them are real), evaluating every ``every`` steps into
    ``run["curve"]``; a run past ``deadline`` is cut there, so curves stay comparable step
    for step. ``evals``: (eval_x, eval_y, real_x, real_y, bg_x); ``describe(point)``: the
    log line's text."""
    x_dev, y_dev, n_data = data
    eval_x, eval_y, real_x, real_y, bg_x = evals
    start, done = time.perf_counter(), 0
    while done < steps:
        loss = tr.run_chunk(x_dev, y_dev, n_data)
        done += chunk
        if done % every == 0 or done >= steps:
            point = {"step": done, "train_ce": round(float(loss), 4),
                     "seconds": round(time.perf_counter() - start, 1)}
            gen = tr.logits(eval_x)
            point["gen_eval_acc"] = round(float(np.mean(gen.argmax(1) == eval_y)), 4)
            m = real_metrics(tr.logits(real_x), real_y, tr.logits(bg_x), full=True)
            point.update({k: (round(v, 4) if isinstance(v, float) else v)
                          for k, v in m.items()})
            run["curve"].append(point)
            log(f"{name} step {done}: {describe(point)}")
            save()
        if time.perf_counter() > deadline:
            run["status"] = f"cut at step {done} by the time budget"
            break
    else:
        run["status"] = "done"
    run["train_seconds"] = round(time.perf_counter() - start, 1)
    run["ms_per_step"] = round(1000 * run["train_seconds"] / max(done, 1), 3)


def finish_run(tr, run, evals) -> float:
    """Fits T on the generated eval set (as the Trainer fits it on generated held-out data;
    arg-max metrics do not depend on it) and records the run's final numbers; returns T."""
    eval_x, eval_y, real_x, real_y, _ = evals
    gen, real = tr.logits(eval_x), tr.logits(real_x)
    t = fit_temperature(gen, eval_y)
    pg, pr = softmax(gen, t), softmax(real, t)
    run["final"] = {**run["curve"][-1], "temperature": round(t, 4),
                    "gen_eval_ece": round(ece(pg.max(1), pg.argmax(1) == eval_y), 4),
                    "real_ece": round(ece(pr.max(1), pr.argmax(1) == real_y), 4),
                    "gen_eval_no_digit_auroc": auroc(pg[:, NO_DIGIT], eval_y == NO_DIGIT)}
    return t


def save_weights(tr, run, out: str, name: str) -> None:
    weights = tr.get_weights()
    path = os.path.join(out, f"weights_{name}.npz")
    np.savez(path, names=np.array([p for p, _ in weights]),
             config=np.array(json.dumps(run["config"])),
             **{f"w{i:03d}": w for i, (_, w) in enumerate(weights)})
    run["weights_file"] = os.path.basename(path)


# ---------------------------------------------------------------------------- variants

def variant_changes(synthetic) -> dict:
    """Run name -> (settings change of the generator, training seed), all on the large model.

    v1: no "partial" negatives (digits cut at the border with an empty centre): are real 1s
        (a narrow digit with neighbours at both sides) taught as "no digit" by them?
    v2: half the digits low-contrast instead of 0.15: generated digits are far more
        contrasted than real ones (median luminance std 42.6 vs 28.1 on the real dev
        digits) and generated "no digit" crops less so (33.3), so "faint" can be learnt as
        "no digit", the way faint real 1s and 3s are misread.
    b_rerun_seed1: run b's data and recipe with another initialisation and shuffle (seed 1):
        the run-to-run spread the variants' differences have to beat."""
    from svhn_tfx.components.generator.settings import NEGATIVE_KINDS
    weights = list(synthetic.GeneratorSettings().negative_weights)
    weights[NEGATIVE_KINDS.index("partial")] = 0.0
    return {"v1_no_partial": ({"negative_weights": tuple(weights)}, 0),
            "v2_low_contrast": ({"low_contrast_fraction": 0.5}, 0),
            "b_rerun_seed1": ({}, 1)}


def main_variants(args, cfg) -> None:
    """Generator variants on the large model, each trained as run b of the first probe
    (300k images of seed 100, long_steps steps, eval seed 1100), in order; a run that cannot
    finish is cut at the deadline (its curve stays comparable step for step)."""
    os.makedirs(args.out, exist_ok=True)
    deadline = T0 + cfg["budget_s"]
    synthetic = install_glyph_cache()
    changes = variant_changes(synthetic)
    names = [n for n in cfg["runs"].split(",") if n]
    pool = multiprocessing.get_context("fork").Pool(cfg["workers"], _worker_init, (SRC, GLYPHS))
    specs = {"eval": (TRAIN_SEED + EVAL_SEED_OFFSET, cfg["n_eval"], {})}
    for name in names:
        change = changes[name][0]
        specs["default" if not change else name] = (TRAIN_SEED, cfg["n_train"], change)
    dataset_of = {name: ("default" if not changes[name][0] else name) for name in names}
    order = [("eval", cfg["n_eval"])] + [(dataset_of[n], cfg["n_train"]) for n in names]
    data = Datasets(pool, specs, order)
    log(f"pool of {cfg['workers']} generating {len(specs) - 1} x {cfg['n_train']} + "
        f"{cfg['n_eval']} images for {names}")

    os.environ.setdefault("KERAS_BACKEND", "jax")
    import jax
    import keras
    import PIL
    large = dict(LARGE, conv_filters=tuple(max(1, int(f * cfg["large_scale"]))
                                           for f in LARGE["conv_filters"]),
                 dense_units=max(1, int(LARGE["dense_units"] * cfg["large_scale"])))
    results = {
        "what": "bench/gpu_probe.py --plan variants: generator variants on the large model, "
                "trained as run b of gpu_probe.json (generated data only)",
        "machine": {"device": str(jax.devices()[0].device_kind), "backend": jax.default_backend(),
                    "jax": jax.__version__, "keras": keras.__version__,
                    "pillow": PIL.__version__, "numpy": np.__version__,
                    "cpus": os.cpu_count(), "python": platform.python_version(),
                    "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())},
        "config": {**cfg, "recipe": RECIPE, "model": large, "train_seed": TRAIN_SEED,
                   "eval_seed": TRAIN_SEED + EVAL_SEED_OFFSET,
                   "variants": {n: {"settings_change": {k: list(v) if isinstance(v, tuple)
                                                        else v for k, v in changes[n][0].items()},
                                    "training_seed": changes[n][1]} for n in names}},
        "data": {}, "runs": {}}
    log(f"jax {jax.__version__} on {jax.devices()}, keras {keras.__version__}")

    def save():
        tmp = os.path.join(args.out, "gpu_probe_variants.json.tmp")
        with open(tmp, "w") as f:
            json.dump(results, f, indent=1)
        os.replace(tmp, os.path.join(args.out, "gpu_probe_variants.json"))

    if args.preset.endswith("device") and jax.default_backend() != "gpu":
        save()
        pool.terminate()
        raise SystemExit(f"no GPU: JAX runs on {jax.default_backend()}; stopping")
    real_x, real_y, bg_x = load_real()
    results["data"]["real"] = {"digits": int(len(real_y)), "backgrounds": int(len(bg_x))}
    eval_x, eval_y = data.wait("eval")
    eval_y = eval_y.copy()

    def data_info(dataset):
        if dataset in data.finished and dataset not in results["data"]:
            labels = data.arrays[dataset][1]
            counts = np.bincount(labels, minlength=NUM_CLASSES)
            results["data"][dataset] = {
                "seed": specs[dataset][0], "n": int(len(labels)),
                "settings_change": {k: list(v) if isinstance(v, tuple) else v
                                    for k, v in specs[dataset][2].items()},
                "no_digit_share": round(float(counts[NO_DIGIT] / len(labels)), 4),
                "all_rendered_after_s": round(data.finished[dataset], 1),
                "first_chunk_sha256": data.digests[dataset].get(0)}
    data_info("eval")
    n, chunk, steps = cfg["n_train"], cfg["chunk"], cfg["long_steps"]
    ms_per_step = None
    for name in names:
        dataset = dataset_of[name]
        left = deadline - time.perf_counter()
        # a run that would reach fewer than min_long_steps steps is not started
        if ms_per_step is not None and left < 20 + cfg["min_long_steps"] * ms_per_step / 1000:
            results["runs"][name] = {"status": f"skipped: {left:.0f} s left"}
            log(f"{name}: skipped ({left:.0f} s left)")
            save()
            continue
        wait_start = time.perf_counter()
        images, labels = data.wait(dataset)
        data_info(dataset)
        x_dev, y_dev = jax.device_put(images), jax.device_put(labels)
        waited = time.perf_counter() - wait_start
        tr = Trainer(name, large, steps, chunk, n, seed=changes[name][1], mode="scan")
        run = results["runs"][name] = {
            "config": {"model": {k: list(v) if isinstance(v, tuple) else v
                                 for k, v in large.items()},
                       "data": dataset, "images": n, "steps": steps,
                       "training_seed": changes[name][1],
                       "epochs": round(steps * RECIPE["batch_size"] / n, 1),
                       "trainable_parameters": tr.params},
            "status": "running", "waited_for_data_s": round(waited, 1),
            "compile_s": round(tr.compile_s, 1), "curve": []}
        log(f"{name}: {steps} steps on {n} {dataset} images (waited {waited:.0f} s for data, "
            f"compile {tr.compile_s:.0f} s)")
        evals = (eval_x, eval_y, real_x, real_y, bg_x)

        def describe(point):
            pc = point["per_class_real_acc"]
            return (f"real {point['real_acc']:.3f} (no digit {point['real_no_digit_share']:.3f}, "
                    f"1: {pc['1']:.2f}, 3: {pc['3']:.2f}), generated {point['gen_eval_acc']:.3f}, "
                    f"bg auroc {point['bg_auroc']:.3f}, ce {point['train_ce']:.3f}, "
                    f"{point['seconds']:.0f} s")
        train_with_curve(tr, run, name, (x_dev, y_dev, n), steps, chunk,
                         min(cfg["eval_every"], steps), deadline, evals, describe, save)
        ms_per_step = run["ms_per_step"]
        finish_run(tr, run, evals)
        if cfg["save_weights"]:
            save_weights(tr, run, args.out, name)
        save()
        log(f"{name}: {run['status']}, {run['train_seconds']:.0f} s "
            f"({run['ms_per_step']:.2f} ms/step)")
        del tr, x_dev, y_dev
    for dataset in specs:
        if data.ready(dataset) == specs[dataset][1]:
            data.wait(dataset)
            data_info(dataset)
    results["total_seconds"] = round(time.perf_counter() - T0, 1)
    save()
    pool.terminate()
    log("done")


# ---------------------------------------------------------------------------- main

PRESETS = {
    # sizes for the lent GPU (16 cores): see the dry run's timings in the report
    "device": dict(workers=15, n_train=300_000, n_eval=4000, n_variant=300_000,
                   short_images=90_000, short_steps=9000, long_steps=50_000, eval_every=2500,
                   chunk=500, budget_s=370, min_long_steps=15_000, large_scale=1.0,
                   modes="scan,loop", timing_reps=3, timing_chunk=100),
    "dry": dict(workers=2, n_train=1500, n_eval=500, n_variant=1500, short_images=1000,
                short_steps=60, long_steps=120, eval_every=40, chunk=4, budget_s=1200,
                min_long_steps=40, large_scale=0.25,   # a quarter of the filters on 2 CPUs
                modes="scan,loop", timing_reps=1, timing_chunk=2),
}
# --plan variants (bench/results/gpu_probe_variants.json): run b's sizes, one call of 420 s
VARIANT_PRESETS = {
    "device": dict(workers=15, n_train=300_000, n_eval=4000, long_steps=50_000,
                   eval_every=2500, chunk=500, budget_s=375, min_long_steps=15_000,
                   large_scale=1.0, save_weights=1,
                   runs="v1_no_partial,v2_low_contrast,b_rerun_seed1"),
    "dry": dict(workers=2, n_train=1500, n_eval=500, long_steps=120, eval_every=40, chunk=4,
                budget_s=1200, min_long_steps=40, large_scale=0.25, save_weights=1,
                runs="v1_no_partial,v2_low_contrast,b_rerun_seed1"),
}


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--preset", choices=sorted(PRESETS), default="device")
    ap.add_argument("--out", default=os.environ.get("OUT", "/tmp/gpu_probe"))
    ap.add_argument("--digest", type=int, default=0,
                    help="print per-image hashes of the first N images and exit")
    ap.add_argument("--no-glyph-cache", action="store_true")
    ap.add_argument("--plan", choices=("probe", "variants"), default="probe",
                    help="probe: runs a-c of gpu_probe.json; variants: gpu_probe_variants.json")
    for key, value in {**PRESETS["device"], **VARIANT_PRESETS["device"]}.items():
        ap.add_argument("--" + key.replace("_", "-"), type=type(value), default=None)
    args = ap.parse_args()
    if args.digest:
        return digest_mode(args.digest, not args.no_glyph_cache)
    if args.plan == "variants":
        cfg = dict(VARIANT_PRESETS[args.preset])
        cfg.update({k: v for k, v in vars(args).items() if k in cfg and v is not None})
        return main_variants(args, cfg)
    cfg = dict(PRESETS[args.preset])
    cfg.update({k: v for k, v in vars(args).items() if k in cfg and v is not None})
    os.makedirs(args.out, exist_ok=True)
    deadline = T0 + cfg["budget_s"]

    # the pool forks before JAX starts any thread
    pool = multiprocessing.get_context("fork").Pool(cfg["workers"], _worker_init, (SRC, GLYPHS))
    specs = {"default": (TRAIN_SEED, cfg["n_train"], {}),
             "eval": (TRAIN_SEED + EVAL_SEED_OFFSET, cfg["n_eval"], {}),
             "variant": (TRAIN_SEED, cfg["n_variant"], VARIANT)}
    # the first run's images first, then the eval set, then the rest
    data = Datasets(pool, specs, [("default", cfg["short_images"]), ("eval", cfg["n_eval"]),
                                  ("default", cfg["n_train"]), ("variant", cfg["n_variant"])])
    log(f"pool of {cfg['workers']} generating {cfg['n_train']} + {cfg['n_eval']} + "
        f"{cfg['n_variant']} images")

    os.environ.setdefault("KERAS_BACKEND", "jax")
    import jax
    import jax.numpy as jnp
    import keras
    import PIL
    results = {
        "what": "bench/gpu_probe.py: real-dev accuracy vs training steps and model size, "
                "generated data only (never trained on real crops)",
        "machine": {"device": str(jax.devices()[0].device_kind), "backend": jax.default_backend(),
                    "jax": jax.__version__, "keras": keras.__version__,
                    "keras_backend": keras.backend.backend(), "pillow": PIL.__version__,
                    "numpy": np.__version__, "cpus": os.cpu_count(),
                    "python": platform.python_version(),
                    "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())},
        "config": {**cfg, "recipe": RECIPE, "small": SMALL, "large": LARGE,
                   "variant": VARIANT, "train_seed": TRAIN_SEED,
                   "eval_seed": TRAIN_SEED + EVAL_SEED_OFFSET},
        "data": {}, "runs": {}}
    log(f"jax {jax.__version__} on {jax.devices()}, keras {keras.__version__}")

    def save():
        tmp = os.path.join(args.out, "gpu_probe.json.tmp")
        with open(tmp, "w") as f:
            json.dump(results, f, indent=1)
        os.replace(tmp, os.path.join(args.out, "gpu_probe.json"))

    if args.preset == "device" and jax.default_backend() != "gpu":
        save()
        pool.terminate()
        raise SystemExit(f"no GPU: JAX runs on {jax.default_backend()}; stopping")

    real_x, real_y, bg_x = load_real()
    results["data"]["real"] = {"digits": int(len(real_y)), "backgrounds": int(len(bg_x))}
    log(f"real: {len(real_y)} digits, {len(bg_x)} backgrounds")

    n, chunk = cfg["n_train"], cfg["chunk"]
    large = dict(LARGE, conv_filters=tuple(max(1, int(f * cfg["large_scale"]))
                                           for f in LARGE["conv_filters"]),
                 dense_units=max(1, int(LARGE["dense_units"] * cfg["large_scale"])))
    results["config"]["large"] = large
    plan = [("a_short_small", SMALL, "default", cfg["short_images"], cfg["short_steps"]),
            ("a_long_small", SMALL, "default", n, cfg["long_steps"]),
            ("b_long_large", large, "default", n, cfg["long_steps"]),
            ("c_long_small_variant", SMALL, "variant", cfg["n_variant"], cfg["long_steps"])]
    capacity = max(cfg["n_train"], cfg["n_variant"])

    def time_steps(model_cfg, mode, reps):
        """Seconds per step of a model (compiled, warm), on zeros; chunks of timing_chunk
        steps (a step costs the same whatever the chunk's length)."""
        t = Trainer("timing", model_cfg, 1000, cfg["timing_chunk"], capacity, seed=1, mode=mode)
        x = jnp.zeros((capacity, 32, 32, 3), jnp.uint8)
        y = jnp.zeros((capacity,), jnp.int32)
        jax.block_until_ready(t.run_chunk(x, y, 1000))
        start = time.perf_counter()
        for _ in range(reps):
            loss = t.run_chunk(x, y, 1000)
        jax.block_until_ready(loss)
        return (time.perf_counter() - start) / (reps * cfg["timing_chunk"]), t.compile_s

    step_s, modes, timing, compile_times = {}, {}, {}, []
    for key, model_cfg in (("small", SMALL), ("large", large)):
        # the large model is timed in the mode that won for the small one only
        for mode in cfg["modes"].split(",") if key == "small" else [modes["small"]]:
            timing[f"{key}_{mode}"], compile_s = time_steps(model_cfg, mode, cfg["timing_reps"])
            compile_times.append(compile_s)
            log(f"{key} model, {mode}: {1000 * timing[f'{key}_{mode}']:.2f} ms/step of 128 "
                f"(compile {compile_s:.1f} s)")
            if key not in step_s or timing[f"{key}_{mode}"] < step_s[key]:
                step_s[key], modes[key] = timing[f"{key}_{mode}"], mode
    results["timing"] = {"ms_per_step": {k: round(1000 * v, 3) for k, v in timing.items()},
                         "mode": modes, "compile_s": [round(c, 1) for c in compile_times]}
    save()

    eval_x, eval_y = None, None
    dev_cache = {}

    def device_data(dataset, count):
        images, labels = data.wait(dataset, count)
        key = (dataset, count)
        if key not in dev_cache:
            dev_cache.clear()
            x = np.zeros((capacity, 32, 32, 3), np.uint8)
            y = np.zeros((capacity,), np.int32)
            x[:count], y[:count] = images[:count], labels[:count]
            dev_cache[key] = (jax.device_put(x), jax.device_put(y))
        data_info(dataset)
        return dev_cache[key]

    def data_info(dataset):
        if dataset in data.finished and dataset not in results["data"]:
            labels = data.arrays[dataset][1]
            counts = np.bincount(labels, minlength=NUM_CLASSES)
            results["data"][dataset] = {
                "seed": specs[dataset][0], "n": int(len(labels)),
                "settings_change": specs[dataset][2],
                "no_digit_share": round(float(counts[NO_DIGIT] / len(labels)), 4),
                "all_rendered_after_s": round(data.finished[dataset], 1)}

    def plan_long_steps(left):
        """One step count for all long runs (comparable curves): the target if a, b and c fit
        in the time left, else the most that fits a, b and c, else a and b only, else a."""
        overhead = 3.0 + max(compile_times)   # per run: compile, evaluations, saving
        runs = [("a_long_small", step_s["small"]), ("b_long_large", step_s["large"]),
                ("c_long_small_variant", step_s["small"])]
        for k in (3, 2, 1):
            per = sum(t for _, t in runs[:k])
            fit = int((0.9 * left - k * overhead) / per) // cfg["eval_every"] * cfg["eval_every"]
            steps = min(cfg["long_steps"], fit)
            if steps >= cfg["min_long_steps"]:
                return steps, [name for name, _ in runs[:k]]
        return 0, []

    best, long_steps, long_runs = None, None, None
    for name, model_cfg, dataset, count, steps in plan:
        big = model_cfg is large
        wait_start = time.perf_counter()
        x_dev, y_dev = device_data(dataset, count)
        if eval_x is None:
            eval_x, eval_y = data.wait("eval")
            eval_y = eval_y.copy()
            data_info("eval")
        waited = time.perf_counter() - wait_start
        if name != plan[0][0]:
            if long_steps is None:   # fixed once, before the first long run starts
                left = deadline - time.perf_counter()
                long_steps, long_runs = plan_long_steps(left)
                results["long_plan"] = {"seconds_left": round(left), "steps": long_steps,
                                        "runs": long_runs}
                log(f"long runs: {long_steps} steps for {long_runs} ({left:.0f} s left)")
            if name not in long_runs:
                results["runs"][name] = {"status": "skipped: no time left for it"}
                log(f"{name}: skipped")
                save()
                continue
            steps = long_steps
        tr = Trainer(name, model_cfg, steps, chunk, capacity,
                     mode=modes["large" if big else "small"])
        run = results["runs"][name] = {
            "config": {"model": {k: list(v) if isinstance(v, tuple) else v
                                 for k, v in model_cfg.items()},
                       "data": dataset, "images": count, "steps": steps,
                       "epochs": round(steps * RECIPE["batch_size"] / count, 1),
                       "trainable_parameters": tr.params},
            "status": "running", "waited_for_data_s": round(waited, 1),
            "compile_s": round(tr.compile_s, 1), "mode": tr.mode, "curve": []}
        log(f"{name}: {steps} steps on {count} {dataset} images (waited {waited:.0f} s for data)")
        evals = (eval_x, eval_y, real_x, real_y, bg_x)

        def describe(point):
            return (f"real {point['real_acc']:.3f} (no digit {point['real_no_digit_share']:.3f}), "
                    f"generated {point['gen_eval_acc']:.3f}, ce {point['train_ce']:.3f}, "
                    f"{point['seconds']:.0f} s, gen. data ready {data.ready('variant')}")
        train_with_curve(tr, run, name, (x_dev, y_dev, count), steps, chunk,
                         min(cfg["eval_every"], steps), deadline, evals, describe, save)
        t = finish_run(tr, run, evals)
        save_weights(tr, run, args.out, name)
        if run["status"] == "done" and (best is None or run["final"]["real_acc"] >
                                        results["runs"][best]["final"]["real_acc"]):
            best = name
        results["best_run"] = best
        save()
        log(f"{name}: {run['status']}, {run['train_seconds']:.0f} s "
            f"({run['ms_per_step']:.2f} ms/step), T {t:.2f}")
        del tr
    for name in specs:
        if data.ready(name) == specs[name][1]:
            data.wait(name)
            data_info(name)
    # the generator on this machine against the one with fonts: hash of images 0..CHUNK-1
    results["data"]["default_first_chunk_sha256"] = data.digests["default"].get(0)
    results["total_seconds"] = round(time.perf_counter() - T0, 1)
    save()
    pool.terminate()
    log(f"done; best run {best}")


if __name__ == "__main__":
    main()
