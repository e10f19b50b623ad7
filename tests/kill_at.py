"""Run the stillmotion command line and SIGKILL it at an exact point, for the resume tests: a kill
that lands where the test says, however busy the machine is (tools/resume_stress.py kills at
random moments instead).

    python tests/kill_at.py POINT N ARGS...

POINT: `checkpoint` (just after the N-th checkpoint is written), `log-line` (halfway through the
N-th line of log.jsonl), `renamed` (just after the N-th rename into a run's checkpoints folder),
`video` (just after the N-th video's tokens are in the token cache), `video-part` (the N-th
video's tokens written to their temporary file, not yet renamed into place). The process ends
with the command's own exit status when the kill point never came.
"""

import os
import signal
import sys
from pathlib import Path


def _die() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def main() -> int:
    point, count, args = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
    calls = {"n": 0}

    def reached() -> bool:
        calls["n"] += 1
        return calls["n"] == count

    if point == "checkpoint":
        from stillmotion.model import checkpoint

        save = checkpoint.save

        def save_then_die(*a, **kw):
            out = save(*a, **kw)
            if reached():
                _die()
            return out

        checkpoint.save = save_then_die
    elif point == "log-line":
        from stillmotion.train.logs import RunLog

        write = RunLog.write

        def write_half(self, step, kind, values):
            if reached():
                with self.path.open("a") as f:
                    f.write(f'{{"step": {step}, "kind": "{kind}", "lo')
                _die()
            return write(self, step, kind, values)

        RunLog.write = write_half
    elif point == "renamed":
        replace = os.replace

        def replace_then_die(src, dst):
            replace(src, dst)
            if Path(dst).parent.name == "checkpoints" and reached():
                _die()

        os.replace = replace_then_die
    elif point in ("video", "video-part"):
        from stillmotion.cache import store

        save = store.save_file

        def save_then_die(arrays, path):
            save(arrays, path)
            if point == "video-part" and reached():
                _die()

        store.save_file = save_then_die
        write = store.TokenStore.write

        def write_then_die(self, *a, **kw):
            write(self, *a, **kw)
            if point == "video" and reached():
                _die()

        store.TokenStore.write = write_then_die
    else:
        sys.exit(f"unknown kill point {point!r}")
    from stillmotion.cli import main as cli

    return cli(args)


if __name__ == "__main__":
    sys.exit(main())
