"""``svhn-tfx-data``: converts a data source to GZIP TFRecords (one folder per split).

    svhn-tfx-data mat FILE... --out DIR --split NAME            SVHN format 2 (*_32x32.mat)
    svhn-tfx-data digitstruct DIR --out DIR --split NAME     SVHN format 1 (photos + digitStruct.mat)
        [--backgrounds-per-image K] [--seed S] [--size 32]
    svhn-tfx-data folder ROOT --out DIR --split NAME         ROOT/{0..9,none}/*.png|jpg|...
    svhn-tfx-data synthetic --out DIR --train N --eval N     generated SVHN-like data
        [--seed S] [--size 32] [--no-digit-fraction F] [--reuse]

Common flags: ``--skip-bad`` skips and counts bad records instead of stopping at the first
one; ``--overwrite`` replaces an existing split. Progress goes to stderr, the summary of
each split to stdout. A generated split has a fingerprint file beside it (``.SPLIT.generator``):
with ``--reuse``, a split this very generator, count and seed made is kept, one an older
generator made is generated again, and one without the file (not generated here) is kept.
Expected errors (bad record, missing file, existing output) print
``error: ...`` naming the file or record and exit with status 1, leaving no split behind.
"""
import argparse
import itertools
import os
import sys
from typing import List, Optional

EXIT_ERROR = 1


def _parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--out", required=True, help="output folder; splits go to OUT/SPLIT/")
    common.add_argument("--skip-bad", action="store_true",
                        help="skip and count bad records instead of stopping at the first")
    common.add_argument("--overwrite", action="store_true", help="replace an existing split")
    split = argparse.ArgumentParser(add_help=False)
    split.add_argument("--split", required=True,
                       help="split name: train, eval, calibration (labelled crops to fit the "
                            "temperature and abstention threshold on), or any other name for one "
                            "more eval split, e.g. real")

    parser = argparse.ArgumentParser(
        prog="svhn-tfx-data",
        description="Convert SVHN data to GZIP TFRecords of tf.Example "
                    "(image_raw: encoded PNG/JPEG bytes, label: 0-9, 10 = no digit).")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("mat", parents=[common, split],
                       help="SVHN format 2: train_32x32.mat, test_32x32.mat, extra_32x32.mat")
    p.add_argument("files", nargs="+", metavar="file",
                   help="*_32x32.mat files (MATLAB v5/v7 or v7.3), written into one split "
                        "in order, e.g. train_32x32.mat extra_32x32.mat")

    p = sub.add_parser("digitstruct", parents=[common, split],
                       help="SVHN format 1: a folder of photos with digitStruct.mat")
    p.add_argument("directory", help="folder holding digitStruct.mat and the photos")
    p.add_argument("--backgrounds-per-image", type=int, default=1, metavar="K",
                   help="'no digit' crops to take per photo (default 1)")
    p.add_argument("--seed", type=int, default=0, help="seed of the background crops")
    p.add_argument("--size", type=int, default=32, help="crop side in pixels (default 32)")

    p = sub.add_parser("folder", parents=[common, split],
                       help="a folder tree ROOT/<label>/<image>, labels 0-9 and none (or 10)")
    p.add_argument("root", help="the folder holding the label folders")

    p = sub.add_parser("synthetic", parents=[common],
                       help="generated SVHN-like images: writes the train and eval splits")
    p.add_argument("--train", type=int, required=True, metavar="N", help="train examples")
    p.add_argument("--eval", type=int, required=True, metavar="N", help="eval examples")
    p.add_argument("--seed", type=int, default=0,
                   help="seed of train; eval uses another seed derived from it")
    p.add_argument("--size", type=int, default=32, help="image side in pixels (default 32)")
    p.add_argument("--no-digit-fraction", type=float, default=None, metavar="F",
                   help="share of 'no digit' images (default: the generator's)")
    p.add_argument("--reuse", action="store_true",
                   help="keep a split that this generator, count and seed made (its fingerprint "
                        "file says so) and generate any other again; keep splits not generated "
                        "here")
    p.add_argument("--workers", type=int, default=os.cpu_count() or 1, metavar="K",
                   help="processes rendering images (default: one per CPU; the images are "
                        "the same for any K)")
    return parser


def _write(records, args, split: str):
    from svhn_tfx.components.converters.records import write_split
    stats = write_split(records, args.out, split, skip_bad=args.skip_bad,
                        overwrite=args.overwrite, log=sys.stderr)
    print(stats.summary(), flush=True)
    return stats


def _check_free(args, splits) -> None:
    if args.overwrite:
        return
    from svhn_tfx.components.converters.records import gfile
    for split in splits:
        final = os.path.join(args.out, split)
        if gfile.exists(final):
            raise FileExistsError(f"{final} already exists; pass --overwrite to replace it")


def _run(parser, args) -> None:
    from svhn_tfx.components.converters.records import check_split_name
    try:
        check_split_name(getattr(args, "split", "train"))
    except ValueError as e:
        parser.error(str(e))
    if args.command == "mat":
        from svhn_tfx.components.converters.svhn_mat import read_mat
        _check_free(args, [args.split])
        readers = [read_mat(f) for f in args.files]  # checks every file before writing
        _write(itertools.chain(*readers), args, args.split)
    elif args.command == "digitstruct":
        from svhn_tfx.components.converters.digit_struct import read_digit_struct_dir
        if args.backgrounds_per_image < 0 or args.size < 1:
            parser.error("--backgrounds-per-image must be >= 0 and --size >= 1")
        _check_free(args, [args.split])
        _write(read_digit_struct_dir(args.directory,
                                     backgrounds_per_image=args.backgrounds_per_image,
                                     seed=args.seed, size=args.size), args, args.split)
    elif args.command == "folder":
        from svhn_tfx.components.converters.folder import read_folder
        _check_free(args, [args.split])
        _write(read_folder(args.root), args, args.split)
    elif args.command == "synthetic":
        # the generator loads matplotlib fonts: imported only when asked for
        from svhn_tfx.components.generator import synthetic
        from svhn_tfx.components.generator.settings import GeneratorSettings
        if args.train < 1 or args.eval < 1 or args.workers < 1:
            parser.error("--train, --eval and --workers must be >= 1")
        kwargs = {"size": args.size}
        if args.no_digit_fraction is not None:
            kwargs["no_digit_fraction"] = args.no_digit_fraction
        try:
            settings = GeneratorSettings(**kwargs)
        except ValueError as e:
            parser.error(str(e))
        if not args.reuse:
            _check_free(args, ["train", "eval"])
        for split, n, seed in (("train", args.train, args.seed),
                               ("eval", args.eval, args.seed + synthetic.EVAL_SEED_OFFSET)):
            stats = synthetic.write_generated(
                args.out, split, n, seed, settings, workers=args.workers,
                reuse=args.reuse, remake_unmarked=False,
                log=lambda message: print(f"data: {message}", file=sys.stderr, flush=True))
            if stats is not None:
                print(stats.summary(), flush=True)


def main(argv: Optional[List[str]] = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    from svhn_tfx.components.converters.records import BadRecordError
    try:
        _run(parser, args)
    except (BadRecordError, OSError) as e:
        # expected failures: the message names the file or record; no traceback
        print(f"error: {e}", file=sys.stderr, flush=True)
        return EXIT_ERROR
    except KeyboardInterrupt:
        print("interrupted; no partial split was left behind", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
