"""What a token cache holds, read from its files' headers: `stillmotion cache info CACHE`."""

from __future__ import annotations

from pathlib import Path

from stillmotion.cache.store import TokenStore


def cache_info(path: str | Path) -> dict:
    """The cache's settings (encoder, fingerprint, grid, precision, views, ...), its videos and
    frames, bytes on disk and the videos that could not be read. No token is loaded."""
    store = TokenStore(path)
    frames = sum(store.num_frames(v) for v in store.videos())
    size = sum(p.stat().st_size for p in store.path.rglob("*") if p.is_file())
    return {
        "path": str(store.path),
        "settings": dict(store.meta),
        "videos": len(store),
        "frames": frames,
        "bytes": size,
        "failures": store.failures(),
    }


def format_info(info: dict) -> str:
    s = info["settings"]
    lines = [
        f"token cache {info['path']}",
        f"  encoder     {s.get('encoder')} ({s.get('fingerprint')})",
        f"  tokens      {s.get('grid', ['?', '?'])[0]}x{s.get('grid', ['?', '?'])[1]}x{s.get('dim')} per frame"
        f" at {s.get('image_size')} px, stored {s.get('dtype')}, computed {s.get('compute')}",
        f"  views       {s.get('views')} (view 0 plain{', then augmented' if s.get('views', 1) > 1 else ''})",
        f"  videos      {info['videos']} ({info['frames']} frames, {info['bytes'] / 1e6:.1f} MB)",
        f"  failed      {len(info['failures'])}",
    ]
    lines += [f"    {f['path']}: {f['reason']}" for f in info["failures"][:20]]
    if len(info["failures"]) > 20:
        lines.append(f"    ... and {len(info['failures']) - 20} more")
    shown = {"encoder", "fingerprint", "grid", "dim", "image_size", "dtype", "compute", "views"}
    other = {k: v for k, v in s.items() if k not in shown}
    if other:
        lines.append("  settings    " + ", ".join(f"{k}={v}" for k, v in sorted(other.items())))
    return "\n".join(lines)
