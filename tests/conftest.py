import json
import signal
from contextlib import contextmanager
from pathlib import Path

import pytest

from virtio_lab.live.qemu import qemu_unavailable

DATA = Path(__file__).parent / "data"


def load_cases(folder: str) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted((DATA / folder).glob("*.json"))]


@pytest.fixture(scope="session")
def data_dir() -> Path:
    return DATA


#: Why real QEMU cannot run here ("" when it can): the one check the real-QEMU tests skip on.
NO_QEMU = qemu_unavailable()

#: Marks a test that runs a real qemu-system-x86_64; it skips with the install line without one.
needs_qemu = pytest.mark.skipif(bool(NO_QEMU), reason=NO_QEMU or "-")


@contextmanager
def time_limit(seconds: float):
    """Turn a hang into a failure (SIGALRM), so "ends without a hang" is checked, not hoped."""
    def _alarm(signum, frame):
        raise TimeoutError(f"still running after {seconds} s: a loop that does not end?")
    old = signal.signal(signal.SIGALRM, _alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)
