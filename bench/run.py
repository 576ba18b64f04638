"""svhn-tfx benchmarks: ``python -m bench.run [--quick] [--only NAMES] [--svhn-test-mat PATH]``.

Each benchmark writes its numbers to ``bench/results/<name>.json`` (with the machine and date)
and ``bench/RESULTS.md`` is rebuilt from every stored result, so benchmarks can be rerun one
at a time. Headlines are ratios measured in the same run; absolute numbers are for context.
The ablation tables (issue 10's research: 144 rows of 12-25 minutes each) and the real-label
learning curve run only when named (``--only ablation_sam``, ``--only ablations``,
``--only real_labels``); ``--quick`` is a smoke check of everything,
ablations included (tiny sizes); its results go to ``bench/results/quick/`` and do not replace
the full ones.
"""
import argparse
import datetime
import glob
import json
import os
import platform
import shutil
import subprocess
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

import svhn_tfx.components  # noqa: E402,F401
from bench import (abuse, ablation, domain_gap, portable, quality, real_labels,  # noqa: E402
                   scaling, serving, training, transform)
from bench.component_times import component_seconds  # noqa: E402
from svhn_tfx.components.trainer.recipe import FINE_TUNE_STEPS  # noqa: E402
from svhn_tfx.pipeline import configs  # noqa: E402

RESULTS_DIR = os.path.join(REPO, "bench", "results")
RESULTS_MD = os.path.join(REPO, "bench", "RESULTS.md")
FORMAT1_DIR = os.path.join(REPO, "..", "shared", "data", "svhn-format1")
DEV_DIR = os.path.join(REPO, "..", "shared", "data", "svhn-real-dev")
ORDER = ["quality", "ablation", "ablation_warm", "domain_gap", "ablation_head",
         "ablation_negatives", "ablation_size", "ablation_digit_size", "ablation_no_digit",
         "ablation_aspect", "ablation_blur", "ablation_camera", "ablation_warm_camera",
         "ablation_augment", "ablation_geometry", "ablation_warm_blur", "ablation_box_fit",
         "ablation_surround", "ablation_lettering", "ablation_data", "ablation_warm_data",
         "ablation_longer_data", "ablation_camera_order", "ablation_norm", "ablation_served_blur",
         "ablation_average", "ablation_shape", "ablation_mixup",
         "ablation_contrast", "ablation_source", "ablation_fade",
         "ablation_blur_cap", "ablation_mixstyle", "ablation_antialias",
         "ablation_erasing", "ablation_sam", "real_labels", "ablation_warm_grey",
         "ablation_grey", "ablation_fine_tune_steps", "ablation_adversarial",
         "ablation_warm_adversarial", "ablation_warm_rate", "ablation_warm_base",
         "ablation_warm_amplitude", "ablation_warm_smooth", "ablation_warm_light",
         "ablation_warm_consistency", "ablation_photo_wall",
         "ablation_more_blur", "ablation_relative_adversarial", "ablation_warm_half_steps",
         "ablation_sgd", "ablation_style_and_relative", "training", "transform",
         "portable", "serving", "abuse",
         "end_to_end", "scaling"]
TITLES = {
    "quality": "1. Real-data quality from synthetic training",
    "ablation": "1b. Generator ablations on real crops",
    "ablation_warm": "1c. Generator changes on real crops, fine-tuned from pretrained/ as make demo is",
    "ablation_head": "1e. The model's head on real crops, from scratch",
    "ablation_negatives": "1f. The no-digit kinds on real crops, from scratch, two seeds",
    "ablation_size": "1g. The network's size on real crops, from scratch",
    "ablation_digit_size": "1h. The digit's size in the crop, real crops, from scratch, two seeds",
    "ablation_no_digit": "1i. The share of no-digit images, real crops, from scratch, two seeds",
    "ablation_aspect": "1j. The digits' width for their height, real crops, from scratch, two seeds",
    "ablation_blur": "1k. A low-pass on the model's input, real crops, from scratch, two seeds",
    "ablation_camera": "1l. The camera's fine detail in the generator, real crops, from scratch, "
                       "two seeds (today's default: the 0.6 rows of 1h)",
    "ablation_warm_camera": "1m. The source JPEG, fine-tuned from pretrained/ as make demo is, "
                            "real crops, two seeds",
    "ablation_augment": "1n. Training-only augmentation of the model's input, real crops, from "
                        "scratch, two seeds (today's default: the 0.6 rows of 1h)",
    "ablation_geometry": "1o. Slant and turn of the digits, real crops, from scratch, two seeds "
                         "(today's default: the 0.6 rows of 1h)",
    "ablation_warm_blur": "1p. A low-pass on the model's input, fine-tuned from pretrained/ as "
                          "make demo is, real crops, two seeds",
    "ablation_box_fit": "1q. How much of the crop's height the digit fills, real crops, from "
                        "scratch, two seeds (today's default: the 0.6 rows of 1h)",
    "ablation_surround": "1r. What surrounds the digit, real crops, from scratch, two seeds "
                         "(today's default: the 0.6 rows of 1h)",
    "ablation_lettering": "1s. How the lettering is finished, real crops, from scratch, two seeds "
                          "(today's default: the clutter rows of 1r, 0.841 / 0.865)",
    "ablation_data": "1t. More distinct images for the same steps, real crops, from scratch, "
                     "four seeds (seeds 0 and 1 of today's default: the clutter rows of 1r)",
    "ablation_warm_data": "1u. More distinct images for the same steps, fine-tuned from "
                          "pretrained/ as make demo is, real crops, two seeds",
    "ablation_longer_data": "1v. More distinct images at four times the steps, real crops, "
                            "from scratch, one seed",
    "ablation_camera_order": "1w. The order of the camera's steps, real crops, from scratch, "
                             "four seeds (today's default at seeds 0-3: 0.841 / 0.865 in 1r, "
                             "0.839 / 0.837 in 1t)",
    "ablation_norm": "1x. Normalisation per image in the first conv block, real crops, from "
                     "scratch, four seeds (today's default at seeds 0-3: 0.841 / 0.865 in 1r, "
                     "0.839 / 0.837 in 1t)",
    "ablation_served_blur": "1y. The blur that helps real crops, in the served graph, with less "
                            "blur in the generator, real crops, from scratch, four seeds "
                            "(today's default at seeds 0-3: 0.841 / 0.865 in 1r, 0.839 / 0.837 "
                            "in 1t)",
    "ablation_average": "1z. Weights averaged over the last half of training, real crops, "
                        "from scratch, four seeds (today's default at seeds 0-3: 0.841 / 0.865 "
                        "in 1r, 0.839 / 0.837 in 1t)",
    "ablation_shape": "1za. Glyphs bent (elastic) and smoothed targets, real crops, from "
                      "scratch, four seeds (today's default at seeds 0-3: 0.841 / 0.865 in 1r, "
                      "0.839 / 0.837 in 1t)",
    "ablation_mixup": "1zb. Mixup, real crops, from scratch, four seeds (today's default at "
                      "seeds 0-3: 0.841 / 0.865 in 1r, 0.839 / 0.837 in 1t)",
    "ablation_contrast": "1zc. More low-contrast digits, real crops, from scratch, four seeds "
                         "(today's default at seeds 0-3: 0.841 / 0.865 in 1r, 0.839 / 0.837 "
                         "in 1t)",
    "ablation_source": "1zd. Smaller sources, real crops, from scratch, four seeds (today's "
                       "default at seeds 0-3: 0.841 / 0.865 in 1r, 0.839 / 0.837 in 1t)",
    "ablation_fade": "1ze. Blur that fades colour and contrast, real crops, from scratch, four "
                     "seeds (today's default at seeds 0-3: 0.841 / 0.865 in 1r, 0.839 / 0.837 "
                     "in 1t)",
    "ablation_blur_cap": "1zf. The heaviest blurs capped, real crops, from scratch, four seeds "
                         "(today's default at seeds 0-3: 0.841 / 0.865 in 1r, 0.839 / 0.837 "
                         "in 1t)",
    "ablation_mixstyle": "1zg. Feature statistics mixed between images (MixStyle), real crops, "
                         "from scratch, four seeds (today's default at seeds 0-3: 0.841 / 0.865 "
                         "in 1r, 0.839 / 0.837 in 1t)",
    "ablation_antialias": "1zh. Anti-aliased downsampling (max-blur-pool), real crops, from "
                          "scratch, four seeds (today's default at seeds 0-3: 0.841 / 0.865 in "
                          "1r, 0.839 / 0.837 in 1t)",
    "ablation_erasing": "1zi. Random erasing (occluded digits), real crops, from scratch, four "
                        "seeds (today's default at seeds 0-3: 0.841 / 0.865 in 1r, 0.839 / "
                        "0.837 in 1t)",
    "ablation_sam": "1zj. Sharpness-aware minimisation, real crops, from scratch, four "
                    "seeds (today's default at seeds 0-3: 0.841 / 0.865 in 1r, 0.839 / "
                    "0.837 in 1t)",
    "ablation_adversarial": "1zo. Adversarial training inputs, real crops, from scratch, four "
                            "seeds (today's default at seeds 0-3: 0.841 / 0.865 in 1r, 0.839 / "
                            "0.837 in 1t)",
    "ablation_warm_adversarial": "1zp. Adversarial training inputs, real crops, fine-tuned from "
                                 "pretrained/ as make demo does, four seeds (today's 800 steps "
                                 "at seeds 0-3: 0.867 / 0.867 / 0.860 / 0.854 in 1zl)",
    "ablation_warm_rate": "1zq. The fine-tuning rate and length with adversarial inputs, real "
                          "crops, fine-tuned from pretrained/ as make demo does, four seeds "
                          "(the recipe then, in memory, 1e-3 at 600 steps: 0.904 / 0.895 / "
                          "0.895 / 0.902 in 1zp)",
    "ablation_warm_base": "1zr. The fine-tuning's rate and length from the adversarially "
                          "pretrained weights (0.909 alone), real crops, four seeds",
    "ablation_warm_amplitude": "1zs. Amplitude spectra mixed between training images (FACT), "
                               "real crops, fine-tuned from pretrained/ as make demo does, "
                               "four seeds (the recipe, in memory: 0.904 / 0.908 / 0.908 / "
                               "0.904 in 1zr)",
    "ablation_warm_smooth": "1zt. A low-frequency adversarial field on top of the per-pixel "
                            "move, real crops, fine-tuned from pretrained/ as make demo does, "
                            "four seeds (the recipe, in memory: 0.904 / 0.908 / 0.908 / 0.904 "
                            "in 1zr)",
    "ablation_warm_light": "1zu. Light faces (weight 300) in the generator, real crops, "
                           "fine-tuned from pretrained/ as make demo does, four seeds (the "
                           "recipe, in memory: 0.904 / 0.908 / 0.908 / 0.904 in 1zr)",
    "ablation_warm_consistency": "1zv. The answer on each moved image pulled towards the "
                                 "clean one's (TRADES-style consistency), real crops, "
                                 "fine-tuned from pretrained/ as make demo does, four seeds "
                                 "(the recipe, in memory: 0.904 / 0.908 / 0.908 / 0.904 in "
                                 "1zr)",
    "ablation_photo_wall": "1zw. Walls shaded by patches of real photographs (none of house "
                           "numbers), real crops, from scratch, four seeds (today's default at "
                           "seeds 0-3: 0.874 / 0.874 / 0.854 / 0.882 in 1zo)",
    "ablation_more_blur": "1zx. More blur in the generator, real crops, from scratch, four "
                          "seeds (today's default at seeds 0-3: 0.874 / 0.874 / 0.854 / 0.882 "
                          "in 1zo; 0.872 at seed 0 in 1zw)",
    "ablation_relative_adversarial": "1zy. The adversarial move bounded by each image's own "
                                     "contrast, real crops, from scratch, four seeds (today's "
                                     "default at seeds 0-3: 0.874 / 0.874 / 0.854 / 0.882 in "
                                     "1zo; 0.872 at seed 0 in 1zw)",
    "ablation_warm_half_steps": "1zz. Half the demo's fine-tuning steps, real crops, "
                                "fine-tuned from pretrained/ as make demo does, four seeds",
    "ablation_sgd": "1zza. Nesterov SGD with warm-up instead of Adam, real crops, from scratch, "
                    "four seeds",
    "ablation_style_and_relative": "1zzb. The amplitude mix and the contrast-bounded move "
                                   "together, real crops, from scratch, four seeds",
    "real_labels": "1zk. A user's own real crops, labelled or pseudo-labelled, added to the "
                   "demo's fine-tuning, scored on other photos' crops",
    "ablation_warm_grey": "1zl. Luminance only (greyscale input), real crops, fine-tuned from "
                          "pretrained/ as make demo does, four seeds",
    "ablation_grey": "1zm. Luminance only (greyscale input), real crops, from scratch, four "
                     "seeds (today's default at seeds 0-3: 0.841 / 0.865 in 1r, 0.839 / "
                     "0.837 in 1t)",
    "ablation_fine_tune_steps": "1zn. Fewer fine-tuning steps, real crops, fine-tuned from "
                                "pretrained/ as make demo does, four seeds (today's 800 "
                                "steps at seeds 0-3: 0.867 / 0.867 / 0.860 / 0.854 in 1zl)",
    "domain_gap": "1d. Generated digits against real ones, image statistics (no training)",
    "training": "2. Training throughput",
    "transform": "3. Transform throughput",
    "portable": "3b. Beam components on the portable runner (separate worker processes)",
    "serving": "4. Serving",
    "abuse": "4b. Hostile input (abuse run against svhn-tfx-serve)",
    "end_to_end": "5. End to end (`make demo` on a fresh root)",
    "scaling": "6. Scaling",
}
FULL = dict(train=20_000, eval=2_000, steps=configs.TRAIN_STEPS, training_steps=200,
            serving_seconds=5, scaling_sizes=(10_000, 30_000, 100_000),
            ablation_train=20_000, ablation_steps=1_500, ablation_warm_train=10_000,
            ablation_warm_steps=800, real_labels_train=20_000,   # make demo's
            real_labels_steps=FINE_TUNE_STEPS,
            domain_gap_images=2_000, abuse_requests=10_000,
            abuse_burst=256, abuse_idle=100, portable_train=2_000, portable_eval=500)
QUICK = dict(train=1_000, eval=200, steps=60, training_steps=50, serving_seconds=1,
             scaling_sizes=(), ablation_train=300, ablation_steps=10, ablation_warm_train=300,
             ablation_warm_steps=10, real_labels_train=300,
             real_labels_steps=10,
             domain_gap_images=50, abuse_requests=60,
             abuse_burst=16, abuse_idle=10, portable_train=100, portable_eval=50)
PRETRAIN_PIPELINE_ROOT = os.path.join(configs.ARTIFACTS_ROOT, "pretrain", "pipeline")
# what make demo warm-starts from (the trainer's WEIGHTS_FILE; its module is not loaded here)
PRETRAINED_WEIGHTS = os.path.join(configs.PRETRAINED_DIR, "weights.h5")
# Each ablation's rows and base weights: from scratch as make pretrain trains (the sizes
# ablation_train/_steps), or fine-tuning pretrained/ as make demo does (ablation_warm_*).
ABLATIONS = {
    "ablation": (ablation.ROWS, None),
    "ablation_warm": (ablation.WARM_ROWS, PRETRAINED_WEIGHTS),
    "ablation_head": (ablation.HEAD_ROWS, None),
    "ablation_negatives": (ablation.NEGATIVE_ROWS, None),
    "ablation_size": (ablation.SIZE_ROWS, None),
    "ablation_digit_size": (ablation.DIGIT_SIZE_ROWS, None),
    "ablation_no_digit": (ablation.NO_DIGIT_ROWS, None),
    "ablation_aspect": (ablation.ASPECT_ROWS, None),
    "ablation_blur": (ablation.BLUR_ROWS, None),
    "ablation_camera": (ablation.CAMERA_ROWS, None),
    "ablation_warm_camera": (ablation.WARM_CAMERA_ROWS, PRETRAINED_WEIGHTS),
    "ablation_augment": (ablation.AUGMENT_ROWS, None),
    "ablation_geometry": (ablation.GEOMETRY_ROWS, None),
    "ablation_warm_blur": (ablation.WARM_BLUR_ROWS, PRETRAINED_WEIGHTS),
    "ablation_box_fit": (ablation.BOX_FIT_ROWS, None),
    "ablation_surround": (ablation.SURROUND_ROWS, None),
    "ablation_lettering": (ablation.LETTERING_ROWS, None),
    "ablation_data": (ablation.DATA_ROWS, None),
    "ablation_warm_data": (ablation.WARM_DATA_ROWS, PRETRAINED_WEIGHTS),
    "ablation_longer_data": (ablation.LONGER_DATA_ROWS, None),
    "ablation_camera_order": (ablation.CAMERA_ORDER_ROWS, None),
    "ablation_norm": (ablation.NORM_ROWS, None),
    "ablation_served_blur": (ablation.SERVED_BLUR_ROWS, None),
    "ablation_average": (ablation.AVERAGE_ROWS, None),
    "ablation_shape": (ablation.SHAPE_ROWS, None),
    "ablation_mixup": (ablation.MIXUP_ROWS, None),
    "ablation_contrast": (ablation.CONTRAST_ROWS, None),
    "ablation_source": (ablation.SOURCE_ROWS, None),
    "ablation_fade": (ablation.FADE_ROWS, None),
    "ablation_blur_cap": (ablation.BLUR_CAP_ROWS, None),
    "ablation_mixstyle": (ablation.MIXSTYLE_ROWS, None),
    "ablation_antialias": (ablation.ANTIALIAS_ROWS, None),
    "ablation_erasing": (ablation.ERASING_ROWS, None),
    "ablation_sam": (ablation.SAM_ROWS, None),
    "ablation_adversarial": (ablation.ADVERSARIAL_ROWS, None),
    "ablation_warm_adversarial": (ablation.WARM_ADVERSARIAL_ROWS, PRETRAINED_WEIGHTS),
    "ablation_warm_rate": (ablation.WARM_RATE_ROWS, PRETRAINED_WEIGHTS),
    "ablation_warm_base": (ablation.WARM_BASE_ROWS, PRETRAINED_WEIGHTS),
    "ablation_warm_amplitude": (ablation.WARM_AMPLITUDE_ROWS, PRETRAINED_WEIGHTS),
    "ablation_warm_smooth": (ablation.WARM_SMOOTH_ROWS, PRETRAINED_WEIGHTS),
    "ablation_warm_light": (ablation.WARM_LIGHT_ROWS, PRETRAINED_WEIGHTS),
    "ablation_warm_consistency": (ablation.WARM_CONSISTENCY_ROWS, PRETRAINED_WEIGHTS),
    "ablation_photo_wall": (ablation.PHOTO_WALL_ROWS, None),
    "ablation_more_blur": (ablation.MORE_BLUR_ROWS, None),
    "ablation_relative_adversarial": (ablation.RELATIVE_ADVERSARIAL_ROWS, None),
    "ablation_warm_half_steps": (ablation.WARM_HALF_STEPS_ROWS, PRETRAINED_WEIGHTS),
    "ablation_sgd": (ablation.SGD_ROWS, None),
    "ablation_style_and_relative": (ablation.STYLE_AND_RELATIVE_ROWS, None),
    "ablation_warm_grey": (ablation.WARM_GREY_ROWS, PRETRAINED_WEIGHTS),
    "ablation_grey": (ablation.GREY_ROWS, None),
    "ablation_fine_tune_steps": (ablation.FINE_TUNE_STEPS_ROWS, PRETRAINED_WEIGHTS),
}
RESEARCH = set(ABLATIONS) | {"real_labels"}   # run only when named (or with --quick)


def machine() -> dict:
    return {"date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
            "cpus": os.cpu_count(), "platform": platform.platform(),
            "python": platform.python_version()}


def save(name: str, result: dict, quick: bool) -> None:
    out = os.path.join(RESULTS_DIR, "quick") if quick else RESULTS_DIR
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, f"{name}.json"), "w") as f:
        json.dump({"machine": machine(), "result": result}, f, indent=2)


def stored_result(results_dir: str, name: str):
    """The result ``save`` stored for ``name``, or None."""
    path = os.path.join(results_dir, f"{name}.json")
    if not os.path.exists(path):
        return None
    with open(path) as f:
        return json.load(f)["result"]


def write_results_md(results_dir: str) -> None:
    """bench/RESULTS.md from every benchmark's latest results (also after merging one by hand)."""
    with open(RESULTS_MD, "w") as f:
        f.write("# Benchmark results\n\nWritten by `make bench` (`python -m bench.run`); "
                "each section is the latest run of that benchmark. A row called today's "
                "default is the default on the date above its table: a default changed "
                "since (e.g. the generator's source JPEG, 2026-11-30 17:30 UTC) makes a "
                "rerun read differently.\n\n" + tables(results_dir))


def tables(results_dir: str) -> str:
    modules = {"quality": quality, **{name: ablation for name in ABLATIONS},
               "real_labels": real_labels, "domain_gap": domain_gap, "training": training,
               "transform": transform, "portable": portable, "serving": serving, "abuse": abuse,
               "scaling": scaling}
    parts = []
    for name in ORDER:
        path = os.path.join(results_dir, f"{name}.json")
        if not os.path.exists(path):
            continue
        with open(path) as f:
            stored = json.load(f)
        m = stored["machine"]
        body = end_to_end_table(stored["result"]) if name == "end_to_end" else \
            modules[name].table(stored["result"])
        for plotted in ("scaling", "domain_gap"):
            if name == plotted and os.path.exists(os.path.join(results_dir, f"{name}.png")):
                body += f"\n\n![{name}](results/{name}.png)"
        parts.append(f"### {TITLES[name]}\n\n_{m['date']}, {m['cpus']} CPUs, {m['platform']}_"
                     f"\n\n{body}\n")
    return "\n".join(parts)


def end_to_end(root: str) -> dict:
    """Runs `make demo` on a fresh root and reads each component's time from MLMD."""
    shutil.rmtree(root, ignore_errors=True)
    env = dict(os.environ, SVHN_TFX_ROOT=root)
    env.pop("LOCAL_HOME", None)
    start = time.perf_counter()
    subprocess.run(["make", "-C", REPO, "demo"], env=env, check=True,
                   stdout=subprocess.DEVNULL if not os.environ.get("BENCH_VERBOSE") else None)
    wall = time.perf_counter() - start
    metadata = os.path.join(root, "metadata", configs.PIPELINE_NAME, "metadata.db")
    from svhn_tfx.components.evaluator.component import newest_report
    with open(newest_report(os.path.join(root, "pipelines", configs.PIPELINE_NAME))) as f:
        metrics = json.load(f)
    return {"wall_seconds": round(wall, 1), "components": component_seconds(metadata),
            "blessed": metrics["blessed"], "eval_accuracy": metrics["candidate"]["calibrated"][
                "accuracy"]}


def end_to_end_table(result: dict) -> str:
    rows = ["| stage | seconds |", "|---|---|"]
    rows += [f"| {name} | {seconds} |" for name, seconds in result["components"].items()]
    rows.append(f"| **make demo, total** (data, TFX CLI, pipeline, serving, requests) | "
                f"**{result['wall_seconds']}** |")
    return "\n".join(rows) + (f"\n\nTarget: under 600 s. Blessed: {result['blessed']}; "
                              f"eval accuracy (generated data) {result['eval_accuracy']:.3f}.")


def pretrained_source_model():
    """The serving model of the `make pretrain` run that pretrained/ was copied from, if it is
    on this machine and its weights are pretrained/'s (a later remake may not have been kept)."""
    from tfx.utils import path_utils
    from svhn_tfx.components.trainer.component import WEIGHTS_FILE, weights_fingerprint
    from svhn_tfx.pipeline.pretrain_runner import RECIPE_FILE
    with open(os.path.join(configs.PRETRAINED_DIR, RECIPE_FILE)) as f:
        source = json.load(f)["source_model"]
    if not os.path.exists(os.path.join(source, WEIGHTS_FILE)) or \
            weights_fingerprint(source) != weights_fingerprint(configs.PRETRAINED_DIR):
        print(f"bench: {source} (where pretrained/ came from) is not here, or holds other "
              f"weights; the quality table leaves the pretrain recipe out", flush=True)
        return None
    return path_utils.serving_model_path(source)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="tiny sizes: a smoke check")
    p.add_argument("--only", help=f"comma-separated names of {ORDER}, or 'ablations' for "
                                  "every ablation table; default: all but the ablation tables "
                                  "(with --quick: all)")
    p.add_argument("--svhn-test-mat", help="path to test_32x32.mat, if you have it")
    p.add_argument("--work", default=os.path.join(configs.ARTIFACTS_ROOT, "bench"))
    p.add_argument("--resume", action="store_true",
                   help="ablations and real_labels: keep the rows already in bench/results at "
                        "the same sizes and train only the missing ones")
    args = p.parse_args(argv)
    size = QUICK if args.quick else FULL
    if args.only:
        names = set(args.only.split(","))
        names |= set(ABLATIONS) if "ablations" in names else set()
        unknown = names - set(ORDER) - {"ablations"}
        if unknown:
            p.error(f"unknown benchmarks {sorted(unknown)}; known: {ORDER} or 'ablations'")
    else:   # the research tables: 144 training rows, about 30 hours on 2 cores
        names = set(ORDER) if args.quick else set(ORDER) - RESEARCH
    selected = [n for n in ORDER if n in names]
    if args.quick:
        selected = [n for n in selected if n not in ("end_to_end", "scaling")]
    work = os.path.join(args.work, "quick" if args.quick else "full")
    os.makedirs(work, exist_ok=True)
    results_dir = os.path.join(RESULTS_DIR, "quick") if args.quick else RESULTS_DIR
    os.makedirs(results_dir, exist_ok=True)   # plots are written before save() makes it

    model_dir = None
    quality_root = os.path.join(work, "quality")
    if {"quality", "training", "transform", "portable", "serving", "abuse", "scaling"} & \
            set(selected):
        if "quality" in selected or not glob.glob(os.path.join(quality_root, "pipeline")):
            print(f"bench: quality (the make demo recipe: {size['train']} images, "
                  f"{size['steps']} steps)", flush=True)
            demo_model = quality.train_demo_recipe(quality_root, size["train"], size["eval"],
                                                   size["steps"],
                                                   [] if args.quick else None)  # quick: in-process
            models = {"make demo recipe": (demo_model, os.path.join(quality_root, "pipeline"))}
            pretrained_model = pretrained_source_model()
            if pretrained_model:
                models["make pretrain recipe (the weights demo warm-starts from)"] = (
                    pretrained_model, PRETRAIN_PIPELINE_ROOT)
            result = quality.run(models, DEV_DIR, FORMAT1_DIR, args.svhn_test_mat)
            save("quality", result, args.quick)
            print(quality.table(result), flush=True)
        default_root = quality_root

        def newest(*parts):
            found = glob.glob(os.path.join(default_root, "pipeline", *parts))
            return max(found, key=lambda u: int(u.split(os.sep)[-1 if parts[-1] == "*" else -2]))
        model_dir = newest("SvhnTrainer", "model", "*", "Format-Serving")

    for name, (all_rows, warm_start) in ABLATIONS.items():
        if name in selected:
            print(f"bench: {TITLES[name]}", flush=True)
            rows = all_rows if not args.quick else dict(list(all_rows.items())[:1])
            recipe = "ablation_warm" if warm_start else "ablation"
            measured = stored_result(results_dir, name) if args.resume else None
            result = ablation.run(DEV_DIR, FORMAT1_DIR, size[f"{recipe}_train"],
                                  size[f"{recipe}_steps"], rows, warm_start=warm_start,
                                  measured=measured,
                                  checkpoint=lambda partial, name=name: save(name, partial,
                                                                             args.quick))
            save(name, result, args.quick)
            print(ablation.table(result), flush=True)
    if "real_labels" in selected:
        print(f"bench: {TITLES['real_labels']}", flush=True)
        rows = dict(list(real_labels.ROWS.items())[-1:]) if args.quick else None  # both sides
        measured = stored_result(results_dir, "real_labels") if args.resume else None
        result = real_labels.measure(PRETRAINED_WEIGHTS, DEV_DIR, FORMAT1_DIR,
                                     size["real_labels_train"], size["real_labels_steps"], rows,
                                     measured=measured)
        save("real_labels", result, args.quick)
        print(real_labels.table(result), flush=True)
    if "domain_gap" in selected:
        print("bench: generated digits against real ones", flush=True)
        result = domain_gap.run(DEV_DIR, size["domain_gap_images"], domain_gap.rows(),
                                os.path.join(results_dir, "domain_gap.png"))
        save("domain_gap", result, args.quick)
        print(domain_gap.table(result), flush=True)
    if "training" in selected:
        print("bench: training throughput", flush=True)
        result = training.run(newest("ImportExampleGen", "examples", "*"),
                              newest("Transform", "transform_graph", "*"), size["training_steps"])
        save("training", result, args.quick)
        print(training.table(result), flush=True)
    if "transform" in selected:
        print("bench: transform throughput", flush=True)
        images = size["train"] + size["eval"]
        result = transform.run(os.path.join(work, "transform"),
                               os.path.join(default_root, "data"), images,
                               quick=args.quick)
        save("transform", result, args.quick)
        print(transform.table(result), flush=True)
    if "portable" in selected:
        print("bench: Beam components, DirectRunner and portable runner", flush=True)
        result = portable.run(os.path.join(work, "portable"), newest("SvhnTrainer", "model", "*"),
                              size["portable_train"], size["portable_eval"])
        save("portable", result, args.quick)
        print(portable.table(result), flush=True)
    base = os.path.join(work, "serving", "models")
    if {"serving", "abuse"} & set(selected):
        shutil.rmtree(base, ignore_errors=True)
        shutil.copytree(model_dir, os.path.join(base, "1"))
    if "serving" in selected:
        print("bench: serving", flush=True)
        real = quality.real_dev_sets(DEV_DIR, FORMAT1_DIR)
        sample = real["digits"][0] if real else None
        if sample is None:
            from svhn_tfx.components.generator.synthetic import generate
            sample = next(generate(1, seed=0)).image
        result = serving.run(base, os.path.join(base, "1"), sample, size["serving_seconds"])
        save("serving", result, args.quick)
        print(serving.table(result), flush=True)
    if "abuse" in selected:
        print(f"bench: abuse ({size['abuse_requests']} hostile requests)", flush=True)
        result = abuse.run(base, size["abuse_requests"], size["abuse_burst"], size["abuse_idle"])
        save("abuse", result, args.quick)
        print(abuse.table(result), flush=True)
    if "end_to_end" in selected:
        print("bench: end to end (make demo on a fresh root)", flush=True)
        result = end_to_end(os.path.join(work, "demo-root"))
        save("end_to_end", result, args.quick)
        print(end_to_end_table(result), flush=True)
    if "scaling" in selected:
        print(f"bench: scaling {size['scaling_sizes']}", flush=True)
        result = scaling.run(os.path.join(work, "scaling"), size["scaling_sizes"], model_dir)
        save("scaling", result, args.quick)
        scaling.plot(result, os.path.join(results_dir, "scaling.png"))
        print(scaling.table(result), flush=True)

    if not args.quick:
        write_results_md(results_dir)
    print(f"\nbench: results in {results_dir}" + ("" if args.quick else f" and {RESULTS_MD}"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
