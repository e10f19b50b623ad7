"""The `stillmotion` command: one entry point, one sub-command per stage."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from stillmotion.errors import UsageError
from stillmotion.failures import EXIT_SOME_FAILED, write_failures
from stillmotion.video.errors import VideoDecodeError
from stillmotion.video.sampling import RESAMPLE_RULES

# The demo's settings: the full task (`make demo`, the README's figures) and --quick, the same
# pipeline on a small task in under a minute on 2 cores (the wheel test's; accuracy near chance).
DEMO_FULL = {"epochs": 15, "frames": 12, "size": 128, "train_per_class": 120, "val_per_class": 20,
             "test_per_class": 30}
DEMO_QUICK = {"epochs": 2, "frames": 6, "size": 64, "train_per_class": 6, "val_per_class": 2,
              "test_per_class": 2}


def _demo(args: argparse.Namespace) -> int:
    from stillmotion.data.synthetic import MotionTaskConfig
    from stillmotion.demo import DemoConfig, run_demo

    preset = DEMO_QUICK if args.quick else DEMO_FULL
    for name, value in preset.items():  # a flag given on the command line wins over the preset
        if getattr(args, name) is None:
            setattr(args, name, value)
    task = MotionTaskConfig(
        size=args.size, frames=args.frames, train_per_class=args.train_per_class,
        val_per_class=args.val_per_class, test_per_class=args.test_per_class, seed=args.seed,
    )
    if args.hidden is not None and args.core != "gru":
        raise SystemExit(f"stillmotion demo: --hidden sets the gru core's width; size {args.core} with --core-size")
    core_kw = {} if args.hidden is None else {"hidden": args.hidden}
    cfg = DemoConfig(task=task, core=args.core, core_size=args.core_size, core_kw=core_kw,
                     epochs=args.epochs, seed=args.seed)
    report = run_demo(args.out, cfg, progress=not args.quiet)
    out = Path(args.out)
    print()
    print((out / "report.md").read_text())
    print(f"Report: {out / 'report.md'} (data in {out / 'report.json'}, curves in {out / 'curves.png'}, "
          f"annotated test clips in {out / 'predictions.gif'}); took {report['total_seconds']:.0f} s.")
    return 0


def _data_check(args: argparse.Namespace) -> int:
    from stillmotion.data.check import check_samples
    from stillmotion.data.sources import load_samples

    samples = load_samples(args.source, args.format, root=args.root, splits=args.splits, fold=args.fold,
                           labels=args.labels, split=args.split)
    report = check_samples(samples, workers=args.workers, progress=not args.quiet)
    print(report.format())
    if args.json:
        Path(args.json).write_text(json.dumps(report.to_dict(), indent=2))
    if report.failures:
        path = write_failures(args.failures, report.failures)
        print(f"\n{len(report.failures)} of {report.total} files failed; listed in {path}")
        return EXIT_SOME_FAILED
    return 0


def _data_scenes(args: argparse.Namespace) -> int:
    from stillmotion.data.scenes import SceneConfig, generate_scenes

    cfg = SceneConfig(size=args.size, frames=args.frames, train=args.train, val=args.val, seed=args.seed,
                      pan=args.pan, roll=args.roll, zoom=args.zoom)
    manifest = generate_scenes(args.out, cfg, progress=not args.quiet)
    print(f"{cfg.train} training and {cfg.val} validation scenes of {cfg.frames} frames, with boxes, points, "
          f"depth and camera poses: {manifest}")
    return 0


def _data_captions(args: argparse.Namespace) -> int:
    from stillmotion.data.captions import CaptionSuiteConfig, generate_caption_suite

    cfg = CaptionSuiteConfig(train=args.train, val=args.val, frames=args.frames, size=args.size, seed=args.seed)
    manifest = generate_caption_suite(args.out, cfg, progress=not args.quiet)
    print(f"{2 * cfg.train} training and {2 * cfg.val} validation clips of {cfg.frames} frames with captions (each "
          f"clip and its reversal): {manifest}")
    return 0


def _extract(args: argparse.Namespace) -> int:
    import torch

    from stillmotion import dist, runtime
    from stillmotion.cache.decoding import decode_pool
    from stillmotion.cache.extract import ExtractConfig, cache_meta, default_batch, default_workers, extract
    from stillmotion.cache.store import TokenStore
    from stillmotion.data.sources import load_samples
    from stillmotion.encoders import encoder_options, load

    here = dist.start("gloo")
    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    if device.type == "cuda" and here.world > 1:
        device = torch.device("cuda", here.local_rank)
    workers = default_workers(device) if args.workers is None else args.workers
    threads = runtime.set_threads(args.threads) if device.type == "cpu" else torch.get_num_threads()
    cfg = ExtractConfig(fps=args.fps, rule=args.resample, views=args.views,
                        pool_space=args.pool_space, pool_channels=args.pool_channels,
                        dtype=_DTYPE_NAMES[args.dtype], seed=args.seed,
                        batch_frames=args.batch_frames or default_batch(device),
                        workers=workers, compile=args.compile)
    samples = load_samples(args.source, args.format, root=args.root, splits=args.splits, fold=args.fold,
                           labels=args.labels, split=args.split)
    with decode_pool(workers) as pool:  # the workers start while the encoder loads
        options = encoder_options(args.size, args.tokens, args.layers, args.resize)
        encoder = load(args.encoder, device=str(device), **options)
        store = TokenStore(args.out, cache_meta(encoder, cfg))
        if here.is_main:
            store.remove_partial()
        dist.barrier()
        if here.is_main and not args.quiet:
            print(f"{len(samples)} videos -> {args.out}: {encoder.name} at {encoder.image_size} px on {device} "
                  f"({threads} threads), {workers} decode workers, tokens {_token_layout(store)} "
                  f"{cfg.dtype}, {1 + cfg.views} view(s) per video", file=sys.stderr)
        report = extract(samples, encoder, store, cfg, progress=not args.quiet, rank=here.rank, world=here.world,
                         pool=pool)
    written, skipped, failed, frames, seconds = dist.sum_over_ranks(
        [report.written, report.skipped, len(report.failed), report.frames, report.seconds])
    dist.barrier()
    code = 0
    if here.is_main:
        rate = frames / (seconds / here.world) if seconds else 0.0
        print(f"extracted {written:.0f} videos ({frames:.0f} frames, {rate:.0f} frames/s), skipped {skipped:.0f} "
              f"already in the cache, {failed:.0f} failed; cache: {args.out} ({len(store)} videos)")
        failures = store.failures()
        if failures:
            path = write_failures(store.path / "failures.jsonl", [(f["path"], f["reason"]) for f in failures])
            print(f"{len(failures)} videos could not be read; listed in {path}; run the same command again after "
                  "fixing them (finished videos are skipped)")
            code = EXIT_SOME_FAILED
        else:
            (store.path / "failures.jsonl").unlink(missing_ok=True)
    dist.stop()
    return code


def _token_layout(store) -> str:
    """"14x14x768", with the leading tokens and layers when there are any."""
    text = f"{store.grid[0]}x{store.grid[1]}x{store.dim}"
    if store.extra:
        text += f" + {store.extra} leading"
    return text + (f", {store.num_layers} layers" if store.num_layers > 1 else "")


def _train(args: argparse.Namespace) -> int:
    from stillmotion.config import load_config, to_yaml
    from stillmotion.train.trainer import train

    cfg = load_config(args.config, args.overrides)
    if args.print_config:
        print(to_yaml(cfg), end="")
        return 0
    out = Path(args.out or Path("runs") / Path(args.config).stem)
    result = train(cfg, out, progress=not args.quiet)
    if dist_main():
        _print_result(result, out)
    return 0


def _eval(args: argparse.Namespace) -> int:
    from stillmotion.train.evaluate import evaluate_run

    result = evaluate_run(args.run, data=args.data, split=args.split, step=args.step, device=args.device,
                          overrides=args.overrides, predictions=args.predictions, progress=not args.quiet)
    if dist_main():
        print(json.dumps(result, indent=2))
        if args.predictions:
            print(f"per-clip outputs: {args.predictions}", file=sys.stderr)
    return EXIT_SOME_FAILED if result["failed"] else 0


def _stream(args: argparse.Namespace) -> int:
    from stillmotion.model import load_model
    from stillmotion.stream.run import run_stream

    loaded = load_model(args.model, device=args.device, step=args.step)
    # the run's own rate (what it was trained or released at) unless --fps says otherwise
    fps = loaded.cfg.data.fps if args.fps is None else None if args.fps == "source" else args.fps
    rule = args.resample or loaded.cfg.data.resample
    report = run_stream(loaded, args.source, out=args.out, jsonl=args.jsonl, fps=fps, rule=rule, realtime=args.realtime,
                        queries=args.queries, progress=not args.quiet)
    print(report.format())
    for path, what in ((report.out, "annotated video"), (report.jsonl, "per-frame outputs")):
        if path:
            print(f"{what}: {path}")
    return EXIT_SOME_FAILED if report.unreadable else 0


def _videos(args: argparse.Namespace):
    from stillmotion.data.sources import load_samples

    return load_samples(args.videos, args.format, root=args.root, splits=args.splits, fold=args.fold,
                        labels=args.labels, split=args.split)


def _report_failed(failed: list) -> int:
    for path, why in failed:
        print(f"skipped {path}: {why}", file=sys.stderr)
    return EXIT_SOME_FAILED if failed else 0


def _zeroshot(args: argparse.Namespace) -> int:
    from stillmotion.videotext import TEMPLATES, open_video_text, zero_shot

    classes = [line.strip() for line in Path(args.classes).read_text().splitlines() if line.strip()]
    if len(classes) < 2:
        raise UsageError(f"{args.classes}: give two or more class names, one per line")
    vt = open_video_text(args.run, step=args.step, device=args.device)
    result = zero_shot(vt, classes, _videos(args), tuple(args.template or TEMPLATES), progress=not args.quiet)
    lines = [{"path": s.path, "label": s.label, "top": [[c, round(v, 4)] for c, v in top]}
             for s, top in result["predictions"]]
    if args.out:
        Path(args.out).write_text("".join(json.dumps(line) + "\n" for line in lines))
    for line in lines[: args.show]:
        print(f"{line['top'][0][0]:<30} {line['top'][0][1]:.3f}  {line['path']}")
    summary = {k: result[k] for k in ("top1", "top5", "chance_top1", "scored") if k in result}
    print(json.dumps({"videos": len(lines), **summary}))
    return _report_failed(result["failed"])


def _search(args: argparse.Namespace) -> int:
    from stillmotion.videotext import open_video_text, search

    vt = open_video_text(args.run, step=args.step, device=args.device)
    ranked = search(vt, args.query, _videos(args), progress=not args.quiet)
    for score, sample in ranked[: args.top]:
        print(f"{score:.4f}  {sample.path}" + (f"  ({sample.caption})" if args.captions and sample.caption else ""))
    return 0


def _choose(args: argparse.Namespace) -> int:
    from stillmotion.videotext import choose, open_video_text

    vt = open_video_text(args.run, step=args.step, device=args.device)
    result = choose(vt, _videos(args), progress=not args.quiet)
    for sample, chosen in result["choices"][: args.show]:
        print(f"{chosen}  {sample.extra['options'][chosen]}  {sample.path}")
    print(json.dumps({k: result[k] for k in ("accuracy", "chance", "scored") if k in result}))
    return _report_failed(result["failed"])


def _class_names(path: Path) -> list[str]:
    """--classes: a text file, one name per line in output order, or SSv2's labels.json
    ({"name": "index"}, as the dataset ships it)."""
    what = ("--classes takes a text file with one class name per line, in the readout's order, or SSv2's "
            "labels.json")
    if not path.is_file():
        raise UsageError(f"{path}: no such file; {what}")
    text = path.read_text(errors="replace")
    if path.suffix != ".json":
        return [line.strip() for line in text.splitlines() if line.strip()]
    try:
        table = json.loads(text)
        order = {int(index): name for name, index in table.items()}
    except (ValueError, AttributeError, TypeError):
        raise UsageError(f"{path}: not a JSON object of class name -> index; {what}") from None
    if sorted(order) != list(range(len(table))):
        raise UsageError(f"{path}: the indices are not 0..{len(table) - 1}, each once; {what}")
    return [order[i] for i in range(len(order))]


def _import_reference(args: argparse.Namespace) -> int:
    from stillmotion.reference.release import import_reference

    classes = _class_names(Path(args.classes)) if args.classes else None
    folder = import_reference(args.checkpoint, args.arch, args.task, args.size, args.out, encoder=args.encoder,
                              core_heads=args.core_heads, readout_heads=args.readout_heads, classes=classes,
                              box_format=args.box_format, rvm=args.rvm)
    print(f"imported {args.checkpoint} -> {folder}; score it with `stillmotion eval {args.out} --data VIDEOS`")
    return 0


def _convert_rvm(args: argparse.Namespace) -> int:
    from stillmotion.encoders.rvm import NAMES, default_folder
    from stillmotion.reference.rvm import convert

    if not (args.out or args.size):
        raise UsageError("convert-rvm: give --size base|large (the rvm-b / rvm-l folder), --out FOLDER, or both")
    out = Path(args.out) if args.out else default_folder(args.size)
    folder = convert(args.npz, out, args.size)
    name = next((n for n, size in NAMES.items() if args.out is None and size == args.size), str(folder))
    print(f"converted {args.npz} -> {folder} (the ViT, and the frozen RVM core in rvm_core.safetensors); extract with "
          f"`stillmotion extract VIDEOS --encoder {name} --tokens all --size 224`")
    return 0


def dist_main() -> bool:
    from stillmotion import dist

    return dist.current().is_main


def _rounded(metrics: dict) -> dict:
    return {k: round(v, 4) if isinstance(v, float) else v for k, v in metrics.items()}


def _print_result(result: dict, out: Path) -> None:
    speed = f"{result['clips_per_second']:.0f} clips/s" if result["clips_per_second"] else "trained before"
    print(f"{result['task']} with the {result['core']} core, {result['steps']} steps ({speed}): "
          f"validation {_rounded(result['val'])}")
    if "fit" in result:
        print(f"training videos, fixed clips (fit, not generalisation): {_rounded(result['fit'])}")
    elif result.get("val_shares_training"):
        print(f"warning: {result['val_shares_training']} validation videos are training videos too: the validation "
              "figure measures fit, not generalisation")
    if result.get("best"):
        best = result["best"]
        print(f"best validation {best['metric']} {best['value']:.4f} at step {best['step']} (checkpoints/best)")
    if "test" in result:
        print(f"test ({result['test_videos']} videos): {_rounded(result['test'])}")
    for key, name in (("delta", "Delta (pretrained - scratch)"), ("delta_test", "Delta on test")):
        if key in result:
            print(f"{name}: " + ", ".join(f"{k} {v:+.4f}" for k, v in result[key].items()))
    print(f"run folder: {out} (metrics.json, log.jsonl, curves.png, tensorboard/, checkpoints/)")


def _configs_list(args: argparse.Namespace) -> int:
    from stillmotion import configs

    for name in configs.names():
        print(f"{name:<34} {configs.summary(name)}")
    print("\nrun one: stillmotion train NAME data.train=VIDEOS/ (the name alone, e.g. prp); "
          f"see it: stillmotion configs show NAME; files in {configs.FOLDER}")
    return 0


def _configs_show(args: argparse.Namespace) -> int:
    from stillmotion import configs

    print(configs.get(args.name).read_text(), end="")
    return 0


def _encoders_list(args: argparse.Namespace) -> int:
    from stillmotion.encoders.catalog import entries, table

    print(table(entries()))
    return 0


def _cache_info(args: argparse.Namespace) -> int:
    from stillmotion.cache.info import cache_info, format_info

    info = cache_info(args.cache)
    print(json.dumps(info, indent=2) if args.json else format_info(info))
    return 0


def _temporal_summary(args: argparse.Namespace) -> int:
    from stillmotion.temporal.summary import summary_table

    print(summary_table(args.dim, args.tokens, args.cores or None, size=args.size))
    return 0


_DTYPE_NAMES = {"fp16": "float16", "fp32": "float32", "int8": "int8"}


def _rate(text: str) -> float | str:
    """A frame rate: a positive number, or `source`."""
    if text == "source":
        return text
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"give frames per second (a number) or `source`, not {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be positive, got {text}")
    return value


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive whole number, got {text}")
    return value


def build_parser() -> argparse.ArgumentParser:
    from stillmotion import __version__
    from stillmotion.temporal import REGISTRY as CORES, SIZES

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
    demo.add_argument("--out", default="stillmotion-demo",
                      help="output folder (default: %(default)s); reused if it exists")
    demo.add_argument("--core", default="gru", choices=sorted(set(CORES) - {"identity", "mean"}),
                      help="temporal core to compare with the mean baseline (default: %(default)s)")
    demo.add_argument("--core-size", choices=list(SIZES), default="small",
                      help="named size of the core (default: %(default)s)")
    demo.add_argument("--hidden", type=_positive, help="the gru core's width (default: its size's, 128 when small)")
    demo.add_argument("--quick", action="store_true",
                      help="a small task (64 px, 6 frames, 6/2/2 clips per class, 2 epochs) that runs the whole "
                      "pipeline in under a minute; flags given beside it win")
    for flag, name, what in (("--epochs", "epochs", "training epochs per model"),
                             ("--frames", "frames", "frames per clip"),
                             ("--size", "size", "frame size in pixels, a multiple of 32"),
                             ("--train-per-class", "train_per_class", "training clips per class"),
                             ("--val-per-class", "val_per_class", "validation clips per class"),
                             ("--test-per-class", "test_per_class", "test clips per class")):
        demo.add_argument(flag, type=_positive, default=None,
                          help=f"{what} (default: {DEMO_FULL[name]}, {DEMO_QUICK[name]} with --quick)")
    demo.add_argument("--seed", type=int, default=0, help="seed for the data and the training (default: %(default)s)")
    demo.add_argument("--quiet", action="store_true", help="no progress bars")
    demo.set_defaults(func=_demo)

    data = sub.add_parser("data", help="inspect datasets and manifests", description="Inspect datasets and manifests.")
    data_sub = data.add_subparsers(dest="data_command", metavar="COMMAND", required=True)
    check = data_sub.add_parser(
        "check", help="probe every video of a dataset: counts per class, missing, undecodable, durations",
        description="Probe every video of a manifest or dataset folder and report counts per class, missing and "
        f"undecodable files and a duration histogram. Exits with status {EXIT_SOME_FAILED} when any file failed, "
        "after listing the failures in --failures.",
    )
    check.add_argument("source", help="a manifest (.jsonl, .csv, Kinetics .csv, SSv2 / Diving48 .json), "
                       "a class-per-folder root, or for ucf101 / hmdb51 the video root")
    check.add_argument("--failures", default="failures.jsonl", help="where to list failed files (default: %(default)s)")
    check.add_argument("--json", help="also write the report as JSON here")
    check.add_argument("--workers", type=_positive, default=4, help="parallel probes (default: %(default)s)")
    check.add_argument("--quiet", action="store_true", help="no progress bar")
    check.set_defaults(func=_data_check)
    _add_source_args(check)

    scenes = data_sub.add_parser(
        "scenes", help="write synthetic tracking scenes: videos with boxes, point tracks, depth and camera poses",
        description="Render scenes of two moving objects over a texture, filmed by a moving camera, as H.264 videos, "
        "each with an annotation file (boxes, point tracks with visibility, depth maps, camera poses) and a manifest "
        "with train/val splits: data for the box_tracking, point_tracking, depth and camera_pose tasks. A rerun "
        "keeps the scenes already written.")
    scenes.add_argument("out", help="folder to write (OUT/manifest.jsonl, OUT/train/, OUT/val/)")
    scenes.add_argument("--train", type=_positive, default=48, help="training scenes (default: %(default)s)")
    scenes.add_argument("--val", type=_positive, default=16, help="validation scenes (default: %(default)s)")
    scenes.add_argument("--frames", type=_positive, default=16, help="frames per scene (default: %(default)s)")
    scenes.add_argument("--size", type=_positive, default=128, help="frame size in pixels, even (default: %(default)s)")
    scenes.add_argument("--pan", type=float, default=0.25, help="the camera's largest move along each axis over a "
                        "scene, as a fraction of the frame (default: %(default)s)")
    scenes.add_argument("--roll", type=float, default=10.0, help="its largest roll over a scene, degrees "
                        "(default: %(default)s)")
    scenes.add_argument("--zoom", type=float, default=0.15, help="its largest relative scale change over a scene "
                        "(default: %(default)s)")
    scenes.add_argument("--seed", type=int, default=0, help="(default: %(default)s)")
    scenes.add_argument("--quiet", action="store_true", help="no progress bar")
    scenes.set_defaults(func=_data_scenes)

    caps = data_sub.add_parser(
        "captions", help="write the synthetic caption suite: clips whose captions depend on the order of events",
        description="Render clips of two objects that move one after the other, captioned in order (\"the red disc "
        "goes left, then the blue square goes up\"), each written as filmed and reversed in time (the reversal's "
        "caption names the undone moves in the opposite order), with a manifest of captions, train/val splits and "
        "pairs: data for the video_text task that an order-blind video tower cannot solve. A rerun keeps the clips "
        "already written.")
    caps.add_argument("out", help="folder to write (OUT/manifest.jsonl, OUT/train/, OUT/val/)")
    caps.add_argument("--train", type=_positive, default=160,
                      help="training clips before reversal (default: %(default)s)")
    caps.add_argument("--val", type=_positive, default=40,
                      help="validation clips before reversal (default: %(default)s)")
    caps.add_argument("--frames", type=_positive, default=16, help="frames per clip (default: %(default)s)")
    caps.add_argument("--size", type=_positive, default=128, help="frame size in pixels, even (default: %(default)s)")
    caps.add_argument("--seed", type=int, default=0, help="(default: %(default)s)")
    caps.add_argument("--quiet", action="store_true", help="no progress bar")
    caps.set_defaults(func=_data_captions)

    ext = sub.add_parser(
        "extract", help="encode every frame of every video once into a token cache",
        description="Decode every video of a manifest or dataset (in worker processes), encode its frames with a "
        "frozen encoder in batches of each video's own frames, and write the tokens into a token cache folder, one "
        "file per video. A rerun skips finished videos and writes the same tokens as a run never interrupted; "
        f"unreadable videos are listed in CACHE/failures.jsonl and the exit status is then {EXIT_SOME_FAILED}. "
        "Under `torchrun --nproc_per_node N` the ranks share the videos.",
    )
    ext.add_argument("source", help="a manifest or dataset folder, as for `data check`")
    ext.add_argument("--out", required=True, help="the token cache folder (created, or resumed when it exists)")
    ext.add_argument("--encoder", default="efficientnet-lite0", help="encoder name, hub id or local folder "
                     "(default: %(default)s; see README 'Choosing an encoder')")
    ext.add_argument("--size", type=_positive, help="encoder input size in pixels (default: the encoder's)")
    ext.add_argument("--tokens", choices=("patches", "all"), default="patches", help="patches, or all: the class "
                     "token and registers too, in front of each frame's patches (default: %(default)s)")
    ext.add_argument("--layers", type=_positive, metavar="K", help="store K blocks' outputs, evenly spaced, ending "
                     "at the last (4: the streaming paper's encoder mix); default: the last block only")
    ext.add_argument("--resize", choices=("antialias", "reference"), default="antialias", help="frames to the "
                     "square input: antialias (resized as uint8, antialiased; default) or reference (the streaming "
                     "paper's inference: float, plain bilinear); recorded in the cache")
    ext.add_argument("--fps", type=float,
                     help="resample every video to this many frames per second (default: keep every frame)")
    ext.add_argument("--resample", choices=RESAMPLE_RULES, default="time", help="how --fps is reached: time (the "
                     "frame on screen at each 1/fps tick; default) or stride (every round(native/fps)-th frame, "
                     "as the streaming paper's inference scripts); recorded in the cache")
    ext.add_argument("--views", type=int, default=0, help="augmented views per video (random crop, flip, colour) "
                     "besides the plain view 0 (default: %(default)s)")
    ext.add_argument("--pool-space", type=_positive, metavar="S", help="average-pool each frame's token grid to S x S")
    ext.add_argument("--pool-channels", type=_positive, metavar="C", help="average-pool the token width to C channels")
    ext.add_argument("--dtype", default="fp16", choices=sorted(_DTYPE_NAMES), help="stored precision; int8 keeps a "
                     "scale per token (default: %(default)s)")
    ext.add_argument("--seed", type=int, default=0, help="seed of the augmented views (default: %(default)s)")
    ext.add_argument("--batch-frames", type=_positive, help="frames per encoder batch, of one video at a time "
                     "(default: 16 on CPU, 128 on CUDA)")
    ext.add_argument("--workers", type=int,
                     help="decode processes (default: one on CPU, up to 8 on CUDA; 0 = a thread)")
    ext.add_argument("--threads", type=_positive, help="CPU threads for encoding (default: one per core)")
    ext.add_argument("--device", help="cpu, cuda or cuda:K (default: cuda when available)")
    ext.add_argument("--compile", action="store_true",
                     help="torch.compile the encoder (pays off on CUDA for long jobs)")
    ext.add_argument("--quiet", action="store_true", help="no progress bar")
    _add_source_args(ext)
    ext.set_defaults(func=_extract)

    tr = sub.add_parser(
        "train", help="train a temporal core and readout on a task",
        description="Train from a YAML config file or a shipped config by name (`stillmotion configs list`); "
        "key=value overrides any setting, e.g. data.train=videos/ temporal.name=gmmix train.steps=300. Rerunning "
        "with the same --out resumes from the last checkpoint. Writes OUT/metrics.json, log.jsonl, curves.png, "
        "tensorboard/ and checkpoints/.")
    tr.add_argument("config", help="a YAML config file, or a shipped config's name (prp, cpu/classify, ...)")
    tr.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="settings over the file's (anywhere on the "
                    "command line, before or after the options)")
    tr.add_argument("--out", help="run folder (default: runs/<config name>)")
    tr.add_argument("--print-config", action="store_true", help="print the resolved config (file, then overrides, "
                    "checked) and stop: nothing is run")
    tr.add_argument("--quiet", action="store_true", help="no progress bars")
    tr.set_defaults(func=_train)

    ev = sub.add_parser(
        "eval", help="evaluate a trained run or checkpoint",
        description="Score a run's checkpoint on its validation videos, its test split (--split test), or the videos "
        "of --data, from the checkpoint alone (the training videos are not read). Prints the metrics as JSON under "
        "the split's name; videos not in the run's cache are extracted into it first. Exits with status "
        f"{EXIT_SOME_FAILED} when some videos could not be read (they are listed).")
    ev.add_argument("run", help="a run folder (its latest checkpoint) or a checkpoint folder")
    ev.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="settings over the run's (data, clip and batch "
                    "settings, e.g. task.eval_clips=5 train.batch_size=8; not those that shape the model), anywhere on "
                    "the command line")
    ev.add_argument("--data", help="a folder or manifest of videos to evaluate on instead")
    ev.add_argument("--split", help="val (default), test or train of the run's own videos; with --data, that split "
                    "of the manifest")
    ev.add_argument("--step", help="which checkpoint of the run: a step number or best (default: the latest)")
    ev.add_argument("--device", help="cpu, cuda or cuda:K (default: cuda when available)")
    ev.add_argument("--predictions", metavar="FILE.jsonl",
                    help="also write each clip's outputs here, one JSON line per clip")
    ev.add_argument("--quiet", action="store_true", help="no progress bars")
    ev.set_defaults(func=_eval)

    st = sub.add_parser(
        "stream", help="run a trained or imported model over a video, image folder, camera or URL, frame by frame",
        description="Stream SOURCE through a run's model one frame at a time, as the video arrives: a video file, a "
        "folder of images, a camera (/dev/videoN) or a URL (rtsp://, http://, file:). Writes an annotated video "
        "(--out) and one JSON line per frame (--jsonl), then prints frames, fps, dropped frames and the time of each "
        "stage per frame (p50 / p95). Box and point models start from --queries, or the .npz annotation file "
        "beside a video.")
    st.add_argument("source", help="a video file, a folder of images, /dev/videoN, or a URL")
    st.add_argument("--model", required=True, help="a run folder (its latest checkpoint) or a checkpoint folder")
    st.add_argument("--step", help="which checkpoint of the run: a step number or best (default: the latest)")
    st.add_argument("--out", help="write the annotated frames here (.mp4)")
    st.add_argument("--jsonl", help="write each frame's answer here, one JSON line per frame (pixels of the source)")
    st.add_argument("--fps", type=_rate, help="resample the source to this many frames per second; `source` keeps its "
                    "own rate (an image folder: 30). Default: the run's data.fps (an imported release's: its task's "
                    "rate), else the source's")
    st.add_argument("--resample", choices=RESAMPLE_RULES, help="how a video reaches that rate: time (the frame on "
                    "screen at each 1/fps tick) or stride (every round(native/fps)-th frame, as the streaming paper's "
                    "inference scripts). Default: the run's data.resample (an imported release's: stride)")
    st.add_argument("--realtime", action="store_true", help="decode in a thread at the source's pace and always answer "
                    "the newest frame, dropping the frames the model cannot keep up with (counted)")
    st.add_argument("--queries", help="boxes / points: a JSON file {\"box\": [x0, y0, x1, y1]} or {\"points\": "
                    "[[x, y], ...]} in pixels of the source's first frame, or an annotation .npz")
    st.add_argument("--device", help="cpu, cuda or cuda:K (default: cuda when available)")
    st.add_argument("--quiet", action="store_true", help="no progress bar")
    st.set_defaults(func=_stream)

    def video_text_command(name: str, help: str, description: str) -> argparse.ArgumentParser:
        command = sub.add_parser(name, help=help, description=description)
        command.add_argument("run", help="a video_text run folder (its latest checkpoint) or a checkpoint folder; "
                             "or an image-text model used as is (clip-b16, siglip-b, a hub id or folder): its vision "
                             "tower over 8 frames, averaged, and its text tower")
        return command

    def video_text_options(command: argparse.ArgumentParser) -> None:
        command.add_argument("videos", help="a folder or manifest of videos, as for `data check`")
        command.add_argument("--step", help="which checkpoint of the run: a step number or best (default: the latest)")
        command.add_argument("--device", help="cpu, cuda or cuda:K (default: cuda when available)")
        command.add_argument("--quiet", action="store_true", help="no progress bars")
        _add_source_args(command)

    zs = video_text_command(
        "zeroshot", "classify videos from class names with a video-text run",
        "Embed each class name (averaged over prompt templates) with the run's frozen text encoder and give each "
        "video the most similar; with labelled videos, prints top-1 and top-5 accuracy. Video embeddings are kept in "
        "RUN/embeddings/ for the next command.")
    zs.add_argument("--classes", required=True, help="a file of class names, one per line")
    video_text_options(zs)
    zs.add_argument("--template", action="append", help="a prompt with {} for the class name (repeatable; default: "
                    "'{}', 'a video of {}.', 'a video showing {}.')")
    zs.add_argument("--out", help="write each video's five best classes here (JSON lines)")
    zs.add_argument("--show", type=int, default=10, help="videos to print (default: %(default)s)")
    zs.set_defaults(func=_zeroshot)

    se = video_text_command(
        "search", "rank videos by a text query with a video-text run",
        "Rank the videos of VIDEOS by the cosine similarity of their embeddings with the query's. Video embeddings "
        "are kept in RUN/embeddings/, so a second query over the same videos reads none of them again.")
    se.add_argument("query", help="the text to search for, e.g. \"a person jumping\"")
    video_text_options(se)
    se.add_argument("--top", type=_positive, default=10, help="videos to print (default: %(default)s)")
    se.add_argument("--captions", action="store_true", help="print each video's caption from the manifest beside it")
    se.set_defaults(func=_search)

    ch = video_text_command(
        "choose", "multiple choice: pick each video's best candidate caption with a video-text run",
        "For each line of a manifest holding \"options\" (candidate captions) and optionally \"answer\" (the right "
        "one's index), choose the option most similar to the video; prints the accuracy over answered lines.")
    video_text_options(ch)
    ch.add_argument("--show", type=int, default=10, help="choices to print (default: %(default)s)")
    ch.set_defaults(func=_choose)

    from stillmotion.reference.release import ARCHS, SIZES, TASKS

    imp = sub.add_parser(
        "import-reference", help="turn a released checkpoint of the streaming paper into a run folder",
        description="Read a Lightning .ckpt of the released models of the streaming paper (\"Towards "
        "Data-Efficient Video Pre-training with Frozen Image Foundation Models\"; "
        "huggingface.co/tue-mps/towards-video-image-frozen), or a safetensors / state-dict file with its keys, "
        "without running pickled code, and write a run folder that `eval` and streaming use like any trained run. "
        "The frozen ViT comes from transformers (dinov3-s/b/l, or --encoder); with --arch rvm it is RVM's own, "
        "converted by `stillmotion convert-rvm` (--rvm).")
    imp.add_argument("checkpoint", help="the released .ckpt, .pt or .safetensors file")
    imp.add_argument("--arch", required=True, choices=ARCHS, help="the reference's architecture name")
    imp.add_argument("--task", required=True, choices=list(TASKS), help="the task the checkpoint was trained on")
    imp.add_argument("--size", required=True, choices=list(SIZES), help="the DINOv3 size (the released models: large)")
    imp.add_argument("--out", required=True, help="the run folder to write")
    imp.add_argument("--encoder", help="the frozen ViT: a hub id or local folder (default: dinov3-s/b/l by --size)")
    imp.add_argument("--rvm", help="--arch rvm: the converted RVM (rvm-b, rvm-l or a `convert-rvm` folder; default "
                     "rvm-b / rvm-l by --size)")
    imp.add_argument("--classes", help="ssv2: the class names in the model's output order: a text file, one per "
                     "line, or the dataset's something-something-v2-labels.json ({\"name\": \"index\"})")
    imp.add_argument("--box-format", choices=("cxcywh", "xyxy"), default="cxcywh", help="waymo: the boxes the "
                     "readout reads and writes: centre and size, as the reference's modules and its Waymo script "
                     "(which converts the corner boxes on the way in and out) have them (default), or corners, for "
                     "weights trained that way")
    imp.add_argument("--core-heads", type=_positive, help="the core's attention heads (default: the release's)")
    imp.add_argument("--readout-heads", type=_positive, help="the readout's attention heads (default: the release's)")
    imp.set_defaults(func=_import_reference)

    from stillmotion.reference.rvm import SIZES as RVM_SIZES

    rvm = sub.add_parser(
        "convert-rvm", help="turn DeepMind's RVM checkpoint (.npz) into an encoder folder",
        description="Convert DeepMind's JAX checkpoint of RVM (pretrain_rvm_{base,large}16_256.npz) as the "
        "streaming paper's reference code does: the frozen ViT becomes a transformers ViT folder (pixels / 255, "
        "[CLS | patches] after the final LayerNorm), the frozen recurrent core goes beside it. Only arrays are read. "
        "Without --out it goes where the encoder names rvm-b / rvm-l find it ($STILLMOTION_HOME/encoders, default "
        "~/.cache/stillmotion).")
    rvm.add_argument("npz", help="the released .npz file")
    rvm.add_argument("--size", choices=list(RVM_SIZES), help="which release it is, checked against the file (base "
                     "is ViT-B, large ViT-L); it picks the rvm-b / rvm-l folder when --out is not given")
    rvm.add_argument("--out", help="the folder to write (default: the rvm-b / rvm-l folder of --size)")
    rvm.set_defaults(func=_convert_rvm)

    cfgs = sub.add_parser("configs", help="the shipped run configs", description="The run configs shipped with "
                          "stillmotion: cpu/ for the embedded encoder on a CPU, gpu/ for the papers' settings.")
    cfgs_sub = cfgs.add_subparsers(dest="configs_command", metavar="COMMAND", required=True)
    cfgs_sub.add_parser("list", help="every shipped config with what it is for",
                        description="Every shipped config with what it is for.").set_defaults(func=_configs_list)
    show = cfgs_sub.add_parser("show", help="print a shipped config", description="Print a shipped config's YAML "
                               "(copy it to change more than key=value overrides can).")
    show.add_argument("name", help="its name: prp, cpu/prp or gpu/ssv2_dinov3_gmmix_stream")
    show.set_defaults(func=_configs_show)

    encs = sub.add_parser("encoders", help="the frozen image encoders", description="The frozen image encoders.")
    encs_sub = encs.add_subparsers(dest="encoders_command", metavar="COMMAND", required=True)
    encs_sub.add_parser("list", help="names, widths, grids, sizes and where the weights come from",
                        description="Every encoder known by name: its model, token width D, token grid at its size, "
                        "parameters and where its weights come from (a pip package, or the Hugging Face hub: "
                        "whether this machine's hub cache holds it).").set_defaults(func=_encoders_list)

    cache = sub.add_parser("cache", help="token caches", description="Token caches.")
    cache_sub = cache.add_subparsers(dest="cache_command", metavar="COMMAND", required=True)
    info = cache_sub.add_parser("info", help="what a token cache holds", description="A token cache's encoder and "
                                "settings, videos, frames, bytes on disk and the videos that could not be read (read "
                                "from file headers; no tokens are loaded).")
    info.add_argument("cache", help="the token cache folder")
    info.add_argument("--json", action="store_true", help="print it as JSON")
    info.set_defaults(func=_cache_info)

    temporal = sub.add_parser("temporal", help="temporal cores", description="Temporal cores.")
    temporal_sub = temporal.add_subparsers(dest="temporal_command", metavar="COMMAND", required=True)
    summary = temporal_sub.add_parser(
        "summary", help="parameters, FLOPs per frame and state size of each core",
        description="For each temporal core at a named size: trainable parameters, FLOPs of one streamed "
        "frame (matrix products and convolutions) and the bytes of its streaming state.")
    summary.add_argument("--size", choices=list(SIZES), default="small",
                         help="named size of every core (default: %(default)s, the constructors' defaults)")
    summary.add_argument("--dim", type=_positive, default=112,
                         help="token width D (default: %(default)s, the default encoder's)")
    summary.add_argument("--tokens", type=_positive, default=64, help="tokens per frame N (default: %(default)s)")
    summary.add_argument("cores", nargs="*", metavar="CORE",
                         help=f"cores to list (default: all of {', '.join(sorted(CORES))})")
    summary.set_defaults(func=_temporal_summary)
    return parser


def _add_source_args(parser: argparse.ArgumentParser) -> None:
    from stillmotion.data.sources import FORMATS

    parser.add_argument("--format", default="auto", choices=("auto", *FORMATS),
                        help="dataset format (default: guessed)")
    parser.add_argument("--root", help="folder holding the videos (default: the manifest's folder)")
    parser.add_argument("--splits", help="the official split files: their folder (ucf101, hmdb51, msvd) or the 1k-A "
                        "test list (msrvtt)")
    parser.add_argument("--fold", type=int, default=1, help="which official split: ucf101 / hmdb51 1-3 (default: "
                        "%(default)s)")
    parser.add_argument("--split", help="only the videos of this split of the manifest (train, val, test, ...)")
    parser.add_argument("--labels", help="Something-Something v2 labels JSON")


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra and hasattr(args, "overrides") and all("=" in a and not a.startswith("-") for a in extra):
        args.overrides = [*args.overrides, *extra]  # KEY=VALUE after an option (`--out runs/x train.steps=9`)
    elif extra:
        parser.parse_args(argv)  # argparse's own message for what is not KEY=VALUE
    if args.command is None:
        parser.print_help()
        return 2
    try:
        return args.func(args)
    except (UsageError, VideoDecodeError, FileNotFoundError) as exc:  # bad input; anything else is a bug: traceback
        if isinstance(exc, FileNotFoundError) and exc.filename:  # the OS's "[Errno 2] No such file ...: 'x'"
            exc = f"{exc.filename}: no such file or folder; check the path"
        print(f"stillmotion {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"stillmotion {args.command}: interrupted; run the same command again to resume", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
