"""Every dataset layout becomes one list of `Sample`.

Each format and what it reads:

- `folder`: `ROOT/<class>/.../<video>`: the folder under ROOT is the label
- `jsonl`: a JSONL manifest (`path`, optional `label`, `split`, `start`, `end`, `caption`, `id`, `annotations`)
- `csv`: the same columns as a CSV file with a header row
- `ucf101`: `classInd.txt`, `trainlist0K.txt`, `testlist0K.txt` (split K) over `ROOT/<Class>/<video>.avi`
- `hmdb51`: `<class>_test_splitK.txt` (1 = train, 2 = test, 0 = unused) over `ROOT/<class>/<video>.avi`
- `ssv2`: Something-Something v2: the labels JSON plus the train / validation JSON lists (label = template
  without brackets) over `ROOT/<id>.webm`
- `kinetics`: Kinetics CSV (`label, youtube_id, time_start, time_end[, split]`) over
  `ROOT/[<label>/]<youtube_id>_<start:06d>_<end:06d>.<ext>`
- `diving48`: Diving48 JSON (`vid_name`, `label`, `start_frame`, `end_frame`) over `ROOT/<vid_name>.mp4`
- `webvid`: WebVid CSV (`videoid`, `name` = the caption, `page_dir`) over `ROOT/<page_dir>/<videoid>.mp4` (or
  `ROOT/<videoid>.mp4`); split from the file name (`..._val.csv`: val)
- `msrvtt`: MSR-VTT annotations JSON (`videos` with `video_id` and `split`, `sentences` with `video_id` and
  `caption`: every caption of a video) over `ROOT/<video_id>.mp4`; with `--splits` naming the 1k-A test list
  (video ids one per line, or the JSFusion CSV with `video_id` and `sentence`), those 1,000 videos are the test
  split (one caption each, the CSV's) and all others train
- `msvd`: MSVD `AllVideoDescriptions.txt` (`<video> <caption>` per line, `#` comments) over `ROOT/<video>.avi`;
  with `--splits` a folder holding `train_list.txt`, `val_list.txt`, `test_list.txt` (video names one per line)

A listed video whose file is absent still becomes a Sample at its expected path, so that
`stillmotion data check` can report it as missing.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

from stillmotion.data.manifest import Sample, beside, read_manifest
from stillmotion.errors import UsageError

VIDEO_EXTENSIONS = (".mp4", ".avi", ".webm", ".mkv", ".mov", ".m4v", ".mpg", ".mpeg", ".wmv", ".flv", ".3gp")
FORMATS = ("folder", "jsonl", "csv", "ucf101", "hmdb51", "ssv2", "kinetics", "diving48", "webvid", "msrvtt", "msvd")


class ManifestError(UsageError):
    """A manifest or split file that cannot be understood; the message names the file."""


def _lines(path: Path) -> list[str]:
    if not path.is_file():
        raise ManifestError(f"{path}: file not found")
    return [line.strip() for line in path.read_text().splitlines() if line.strip()]


def _json(path: Path):
    if not path.is_file():
        raise ManifestError(f"{path}: file not found")
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise ManifestError(f"{path}: not valid JSON ({exc.msg} at line {exc.lineno})") from exc


def folder(root: str | Path, extensions=VIDEO_EXTENSIONS) -> list[Sample]:
    """Videos under ROOT/<class>/ (any depth below the class folder), labelled with the class,
    and videos directly in ROOT, unlabelled (for self-supervised tasks); sorted."""
    root = Path(root)
    if not root.is_dir():
        raise ManifestError(f"{root}: not a folder")
    samples = [Sample(id=video.stem, path=str(video))
               for video in sorted(p for p in root.iterdir() if p.is_file() and p.suffix.lower() in extensions)]
    for class_dir in sorted(p for p in root.iterdir() if p.is_dir()):
        for video in sorted(p for p in class_dir.rglob("*") if p.suffix.lower() in extensions):
            rel = video.relative_to(root)
            samples.append(Sample(id=str(rel.with_suffix("")), path=str(video), label=class_dir.name))
    if not samples:
        raise ManifestError(f"{root}: no videos ({', '.join(extensions)}) in it or in class folders ROOT/<class>/")
    return samples


def csv_manifest(path: str | Path) -> list[Sample]:
    """A CSV with a header: `path` required; `id`, `label`, `split`, `start`, `end`, `caption`,
    `annotations` optional."""
    path = Path(path)
    with open(path, newline="") as fh:
        reader = csv.DictReader(fh)
        if not reader.fieldnames or "path" not in reader.fieldnames:
            raise ManifestError(f"{path}: the header row must name a 'path' column (found {reader.fieldnames})")
        samples = []
        for lineno, row in enumerate(reader, 2):
            video = beside(path, row["path"])
            try:
                start = float(row["start"]) if row.get("start") else None
                end = float(row["end"]) if row.get("end") else None
            except ValueError as exc:
                raise ManifestError(f"{path}:{lineno}: start/end must be seconds ({exc})") from exc
            notes = str(beside(path, row["annotations"])) if row.get("annotations") else None
            samples.append(Sample(id=row.get("id") or video.stem, path=str(video), label=row.get("label") or None,
                                  split=row.get("split") or None, start=start, end=end,
                                  caption=row.get("caption") or None, annotations=notes))
    return samples


def ucf101(root: str | Path, splits: str | Path, fold: int = 1) -> list[Sample]:
    """UCF101's official split number `fold` (1-3): training and test lists; labels from classInd.txt."""
    root, splits = Path(root), Path(splits)
    classes = {}
    for line in _lines(splits / "classInd.txt"):
        number, name = line.split()
        classes[int(number)] = name
    samples = []
    for list_name, part in ((f"trainlist0{fold}.txt", "train"), (f"testlist0{fold}.txt", "test")):
        list_path = splits / list_name
        for lineno, line in enumerate(_lines(list_path), 1):
            fields = line.split()
            rel = fields[0]
            label = rel.split("/")[0]
            if label not in classes.values():
                raise ManifestError(f"{list_path}:{lineno}: class folder {label!r} is not in classInd.txt")
            if len(fields) > 1 and classes.get(int(fields[1])) != label:
                raise ManifestError(f"{list_path}:{lineno}: class number {fields[1]} is not {label!r} in classInd.txt")
            samples.append(Sample(id=str(Path(rel).with_suffix("")), path=str(root / rel), label=label, split=part))
    return samples


def hmdb51(root: str | Path, splits: str | Path, fold: int = 1) -> list[Sample]:
    """HMDB51's official split number `fold` (1-3) from the per-class files `<class>_test_split<K>.txt`."""
    root, splits = Path(root), Path(splits)
    files = sorted(splits.glob(f"*_test_split{fold}.txt"))
    if not files:
        raise ManifestError(f"{splits}: no '*_test_split{fold}.txt' files")
    samples = []
    for list_path in files:
        label = list_path.name[: -len(f"_test_split{fold}.txt")]
        for lineno, line in enumerate(_lines(list_path), 1):
            name, _, code = line.rpartition(" ")
            if code not in ("0", "1", "2"):
                raise ManifestError(f"{list_path}:{lineno}: expected '<video> <0|1|2>', got {line!r}")
            if code != "0":
                samples.append(Sample(id=f"{label}/{Path(name).stem}", path=str(root / label / name), label=label,
                                      split="train" if code == "1" else "test"))
    return samples


def ssv2(root: str | Path, labels: str | Path, lists: dict[str, str | Path], extension: str = ".webm") -> list[Sample]:
    """Something-Something v2: `labels` maps template -> class number; `lists` maps a split name
    to its JSON list of {"id", "template", ...}. The label is the template without brackets."""
    root = Path(root)
    names = _json(Path(labels))
    samples = []
    for part, list_path in lists.items():
        for k, entry in enumerate(_json(Path(list_path))):
            template = entry.get("template")
            label = template.replace("[", "").replace("]", "") if template else None
            if label is not None and label not in names:
                raise ManifestError(f"{list_path}: entry {k} (id {entry.get('id')}) has template {label!r}, "
                                    f"not in {labels}")
            samples.append(Sample(id=str(entry["id"]), path=str(root / f"{entry['id']}{extension}"), label=label,
                                  split=part, caption=entry.get("label")))
    return samples


def kinetics(csv_path: str | Path, root: str | Path, split: str | None = None) -> list[Sample]:
    """Kinetics annotations CSV. Files are found as <youtube_id>_<start:06d>_<end:06d>.<ext>
    anywhere under ROOT (usually ROOT/<label>/)."""
    csv_path, root = Path(csv_path), Path(root)
    on_disk = {p.stem: p for p in root.rglob("*") if p.suffix.lower() in VIDEO_EXTENSIONS} if root.is_dir() else {}
    with open(csv_path, newline="") as fh:
        reader = csv.DictReader(fh)
        need = {"label", "youtube_id", "time_start", "time_end"}
        if not reader.fieldnames or not need <= set(reader.fieldnames):
            raise ManifestError(f"{csv_path}: the header must name {sorted(need)} (found {reader.fieldnames})")
        samples = []
        for lineno, row in enumerate(reader, 2):
            try:
                start, end = int(float(row["time_start"])), int(float(row["time_end"]))
            except ValueError as exc:
                raise ManifestError(f"{csv_path}:{lineno}: time_start/time_end must be numbers ({exc})") from exc
            stem = f"{row['youtube_id']}_{start:06d}_{end:06d}"
            path = on_disk.get(stem, root / row["label"] / f"{stem}.mp4")
            samples.append(Sample(id=stem, path=str(path), label=row["label"], split=row.get("split") or split))
    return samples


def diving48(json_path: str | Path, root: str | Path, split: str | None = None) -> list[Sample]:
    """Diving48 list of {"vid_name", "label", "start_frame", "end_frame"} over ROOT/<vid_name>.mp4."""
    root = Path(root)
    samples = []
    for k, entry in enumerate(_json(Path(json_path))):
        if "vid_name" not in entry or "label" not in entry:
            raise ManifestError(f"{json_path}: entry {k} lacks 'vid_name' or 'label'")
        extra = {key: entry[key] for key in ("start_frame", "end_frame") if key in entry}
        samples.append(Sample(id=entry["vid_name"], path=str(root / f"{entry['vid_name']}.mp4"),
                              label=str(entry["label"]), split=split, extra=extra))
    return samples


def webvid(csv_path: str | Path, root: str | Path) -> list[Sample]:
    """WebVid's results CSV: one video per row, its `name` the caption."""
    csv_path, root = Path(csv_path), Path(root)
    split = "val" if "val" in csv_path.stem else "train"
    samples = []
    with open(csv_path, newline="") as fh:
        for lineno, row in enumerate(csv.DictReader(fh), 2):
            if not row.get("videoid") or not row.get("name"):
                raise ManifestError(f"{csv_path}:{lineno}: each row needs 'videoid' and 'name' (the caption)")
            nested = root / (row.get("page_dir") or "") / f"{row['videoid']}.mp4"
            flat = root / f"{row['videoid']}.mp4"
            path = nested if nested.exists() or not flat.exists() else flat
            samples.append(Sample(id=row["videoid"], path=str(path), split=split, caption=row["name"].strip()))
    return samples


def msrvtt(json_path: str | Path, root: str | Path, test_list: str | Path | None = None) -> list[Sample]:
    """MSR-VTT: every video with all its captions; the 1k-A test list, when given, makes its
    videos the test split (with the list's caption when it has one) and every other video train."""
    json_path, root = Path(json_path), Path(root)
    data = _json(json_path)
    if not isinstance(data, dict) or "videos" not in data or "sentences" not in data:
        raise ManifestError(f"{json_path}: not an MSR-VTT annotation file (needs 'videos' and 'sentences')")
    captions: dict[str, list[str]] = {}
    for k, s in enumerate(data["sentences"]):
        if "video_id" not in s or "caption" not in s:
            raise ManifestError(f"{json_path}: sentence {k} lacks 'video_id' or 'caption'")
        captions.setdefault(s["video_id"], []).append(s["caption"].strip())
    names = {"train": "train", "validate": "val", "val": "val", "test": "test"}
    videos = {v["video_id"]: names.get(v.get("split"), v.get("split")) for v in data["videos"]}
    chosen: dict[str, str | None] | None = None
    if test_list is not None:
        chosen = _msrvtt_test_list(Path(test_list))
        missing = sorted(set(chosen) - set(videos))
        if missing:
            raise ManifestError(f"{test_list}: {len(missing)} videos not in {json_path}, e.g. {missing[0]}")
    samples = []
    for vid, split in videos.items():
        caption = captions.get(vid) or None
        if chosen is not None:
            split = "test" if vid in chosen else "train"
            if vid in chosen and chosen[vid]:
                caption = [chosen[vid]]
        samples.append(Sample(id=vid, path=str(root / f"{vid}.mp4"), split=split, caption=caption))
    return samples


def _msrvtt_test_list(path: Path) -> dict[str, str | None]:
    """video id -> its test caption (None for a plain list of ids)."""
    if path.suffix.lower() == ".csv":
        with open(path, newline="") as fh:
            rows = list(csv.DictReader(fh))
        if not rows or "video_id" not in rows[0]:
            raise ManifestError(f"{path}: the 1k-A CSV needs a 'video_id' column (and 'sentence')")
        return {r["video_id"]: (r.get("sentence") or "").strip() or None for r in rows}
    return {line: None for line in _lines(path)}


def msvd(captions_txt: str | Path, root: str | Path, splits: str | Path | None = None) -> list[Sample]:
    """MSVD: captions grouped by video, in file order; splits from train/val/test_list.txt."""
    captions_txt, root = Path(captions_txt), Path(root)
    captions: dict[str, list[str]] = {}
    for line in _lines(captions_txt):
        if line.startswith("#"):
            continue
        video, _, text = line.partition(" ")
        if not text.strip():
            raise ManifestError(f"{captions_txt}: line {line!r} has a video name but no caption")
        captions.setdefault(video, []).append(text.strip())
    split_of: dict[str, str] = {}
    if splits is not None:
        for name in ("train", "val", "test"):
            listed = Path(splits) / f"{name}_list.txt"
            if listed.is_file():
                split_of |= {line: name for line in _lines(listed)}
        if not split_of:
            raise ManifestError(f"{splits}: no train_list.txt, val_list.txt or test_list.txt there")
    return [Sample(id=v, path=str(root / f"{v}.avi"), split=split_of.get(v), caption=c) for v, c in captions.items()
            if not split_of or v in split_of]


def detect_format(source: str | Path) -> str:
    """Guess the format of a manifest file or folder (the ones that need no other argument)."""
    source = Path(source)
    if source.is_dir():
        return "folder"
    suffix = source.suffix.lower()
    if suffix == ".jsonl":
        return "jsonl"
    if suffix == ".csv":
        with open(source, newline="") as fh:
            header = next(csv.reader(fh), [])
        if "youtube_id" in header:
            return "kinetics"
        return "webvid" if {"videoid", "name"} <= set(header) else "csv"
    if source.name == "AllVideoDescriptions.txt":
        return "msvd"
    if suffix == ".json":
        data = _json(source)
        if isinstance(data, dict) and {"videos", "sentences"} <= set(data):
            return "msrvtt"
        first = data[0] if isinstance(data, list) and data else {}
        if isinstance(first, dict) and "vid_name" in first:
            return "diving48"
        if isinstance(first, dict) and "template" in first:
            return "ssv2"
    raise ManifestError(f"{source}: cannot tell its format; pass --format (one of {', '.join(FORMATS)})")


def load_samples(source: str | Path, format: str = "auto", root: str | Path | None = None,
                 splits: str | Path | None = None, fold: int = 1, labels: str | Path | None = None,
                 split: str | None = None) -> list[Sample]:
    """Samples from any supported layout. `root` is the video folder (default: the manifest's
    folder); `splits` the official split files (UCF101, HMDB51: their folder) and `fold` which
    official split (1-3); `labels` the SSv2 labels JSON. `split` keeps only the samples of that
    split (train, val, test, ...): the one meaning `--split` has in every command."""
    samples = _load(Path(source), format, root, splits, fold, labels)
    if split is None:
        return samples
    kept = [s for s in samples if s.split == split]
    if not kept:
        present = sorted({str(s.split) for s in samples})
        raise ManifestError(f"{source}: no videos in split {split!r}; its splits: {', '.join(present)}")
    return kept


def _load(source: Path, format: str, root, splits, fold: int, labels) -> list[Sample]:
    fmt = detect_format(source) if format == "auto" else format
    base = Path(root) if root is not None else (source if source.is_dir() else source.parent)
    if fmt == "folder":
        return folder(source)
    if fmt == "jsonl":
        return read_manifest(source)
    if fmt == "csv":
        return csv_manifest(source)
    if fmt in ("ucf101", "hmdb51"):
        loader = ucf101 if fmt == "ucf101" else hmdb51
        return loader(root or source, splits or source, fold)
    if fmt == "ssv2":
        if labels is None:
            raise ManifestError(f"{source}: Something-Something v2 needs the labels JSON (--labels)")
        part = "validation" if "validation" in source.name else "train" if "train" in source.name else "test"
        return ssv2(base, labels, {part: source})
    if fmt == "kinetics":
        return kinetics(source, base)
    if fmt == "diving48":
        part = "test" if "test" in source.name else "train" if "train" in source.name else None
        return diving48(source, base, part)
    if fmt == "webvid":
        return webvid(source, base)
    if fmt == "msrvtt":
        return msrvtt(source, base, splits)
    if fmt == "msvd":
        return msvd(source, base, splits)
    raise ManifestError(f"unknown format {fmt!r}; choose one of {', '.join(FORMATS)}")
