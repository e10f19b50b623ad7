"""`torchrun(args)`: `python -m torch.distributed.run --standalone ARGS` for the tests, in a
process group of its own, so that ranks which hang (a collective one rank never reaches) fail
the test after `timeout` seconds, killed with their launcher, instead of holding the suite for ever."""

from __future__ import annotations

import os
import signal
import subprocess
import sys


def torchrun(args: list[str], timeout: float = 900, env: dict | None = None) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", *map(str, args)]
    with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                          start_new_session=True) as process:
        try:
            out, err = process.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            out, err = process.communicate()
            raise AssertionError(f"torchrun did not finish in {timeout} s (a rank waiting in a collective?); "
                                 f"its ranks were killed: {' '.join(map(str, args))}\n{err[-3000:]}") from None
    return subprocess.CompletedProcess(command, process.returncode, out, err)
