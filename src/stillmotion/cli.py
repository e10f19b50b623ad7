"""The `stillmotion` command: one entry point, one sub-command per stage."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from stillmotion.cache.store import CacheMismatchError
from stillmotion.video.errors import VideoDecodeError


def _demo(args: argparse.Namespace) -> int:
    from stillmotion.data.synthetic import MotionTaskConfig
    from stillmotion.demo import DemoConfig, run_demo
    from stillmotion.train.loop import TrainConfig

    task = MotionTaskConfig(
        size=args.size, frames=args.frames, train_per_class=args.train_per_class,
        val_per_class=args.val_per_class, test_per_class=args.test_per_class, seed=args.seed,
    )
    cfg = DemoConfig(task=task, core=args.core, core_hidden=args.hidden,
                     train=TrainConfig(epochs=args.epochs, seed=args.seed))
    report = run_demo(args.out, cfg, progress=not args.quiet)
    out = Path(args.out)
    print()
    print((out / "report.md").read_text())
    print(f"Report: {out / 'report.md'} (data in {out / 'report.json'}, curves in {out / 'curves.png'}, "
          f"annotated test clips in {out / 'predictions.gif'}); took {report['total_seconds']:.0f} s.")
    return 0


#: exit status of a batch job that finished every good file but could not read some
EXIT_SOME_FAILED = 3


def _data_check(args: argparse.Namespace) -> int:
    from stillmotion.data.check import check_samples, write_failures
    from stillmotion.data.sources import load_samples

    samples = load_samples(args.source, args.format, root=args.root, splits=args.splits, split=args.split,
                           labels=args.labels)
    report = check_samples(samples, workers=args.workers, progress=not args.quiet)
    print(report.format())
    if args.json:
        Path(args.json).write_text(json.dumps(report.to_dict(), indent=2))
    if report.failures:
        path = write_failures(args.failures, report.failures)
        print(f"\n{len(report.failures)} of {report.total} files failed; listed in {path}")
        return EXIT_SOME_FAILED
    return 0


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive whole number, got {text}")
    return value


def build_parser() -> argparse.ArgumentParser:
    from stillmotion import __version__
    from stillmotion.temporal import REGISTRY as CORES

    parser = argparse.ArgumentParser(
        prog="stillmotion",
        description="Video models from frozen image encoders: token cache, temporal cores, streaming readouts.",
    )
    parser.add_argument("--version", action="version", version=f"stillmotion {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    demo = sub.add_parser(
        "demo",
        help="end-to-end demo on the embedded default encoder (CPU, a few minutes)",
        description="Generate the two-mover direction-of-motion task as real .mp4 files, cache the frozen "
        "EfficientNet-Lite0 tokens of every frame, train a temporal core and the mean-over-time baseline, "
        "and write report.json, report.md, curves.png and predictions.gif into --out.",
    )
    demo.add_argument("--out", default="stillmotion-demo", help="output folder (default: %(default)s); reused if it exists")
    demo.add_argument("--core", default="gru", choices=sorted(set(CORES) - {"identity", "mean"}),
                      help="temporal core to compare with the mean baseline (default: %(default)s)")
    demo.add_argument("--hidden", type=_positive, default=128, help="core width (default: %(default)s)")
    demo.add_argument("--epochs", type=_positive, default=15, help="training epochs per model (default: %(default)s)")
    demo.add_argument("--frames", type=_positive, default=12, help="frames per clip (default: %(default)s)")
    demo.add_argument("--size", type=_positive, default=128, help="frame size in pixels, a multiple of 32 (default: %(default)s)")
    demo.add_argument("--train-per-class", type=_positive, default=120, help="training clips per class (default: %(default)s)")
    demo.add_argument("--val-per-class", type=_positive, default=20, help="validation clips per class (default: %(default)s)")
    demo.add_argument("--test-per-class", type=_positive, default=30, help="test clips per class (default: %(default)s)")
    demo.add_argument("--seed", type=int, default=0, help="seed for the data and the training (default: %(default)s)")
    demo.add_argument("--quiet", action="store_true", help="no progress bars")
    demo.set_defaults(func=_demo)

    from stillmotion.data.sources import FORMATS

    data = sub.add_parser("data", help="inspect datasets and manifests", description="Inspect datasets and manifests.")
    data_sub = data.add_subparsers(dest="data_command", metavar="COMMAND", required=True)
    check = data_sub.add_parser(
        "check", help="probe every video of a dataset: counts per class, missing, undecodable, durations",
        description="Probe every video of a manifest or dataset folder and report counts per class, missing and "
        f"undecodable files and a duration histogram. Exits with status {EXIT_SOME_FAILED} when any file failed, "
        "after listing the failures in --failures.",
    )
    check.add_argument("source", help="a manifest (.jsonl, .csv, Kinetics .csv, SSv2 / Diving48 .json), a class-per-folder "
                       "root, or for ucf101 / hmdb51 the video root")
    check.add_argument("--format", default="auto", choices=("auto", *FORMATS), help="dataset format (default: guessed)")
    check.add_argument("--root", help="folder holding the videos (default: the manifest's folder)")
    check.add_argument("--splits", help="folder of the official split files (ucf101, hmdb51)")
    check.add_argument("--split", type=int, default=1, help="official split number (default: %(default)s)")
    check.add_argument("--labels", help="Something-Something v2 labels JSON")
    check.add_argument("--failures", default="failures.jsonl", help="where to list failed files (default: %(default)s)")
    check.add_argument("--json", help="also write the report as JSON here")
    check.add_argument("--workers", type=_positive, default=4, help="parallel probes (default: %(default)s)")
    check.add_argument("--quiet", action="store_true", help="no progress bar")
    check.set_defaults(func=_data_check)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    try:
        return args.func(args)
    except (VideoDecodeError, CacheMismatchError, FileNotFoundError, ValueError) as exc:
        print(f"stillmotion {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"stillmotion {args.command}: interrupted; run the same command again to resume", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
