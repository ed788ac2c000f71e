"""Worker marks: a locked file per live worker proves, on its host, when the worker ended.

A real child process holds a mark and is killed by its own pid; the proof is the kernel
dropping the child's lock. Every wait is bounded.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from durable_ext.runtime.marks import WorkerMarks, default_marks_dir

pytestmark = pytest.mark.integration

HOLDER = """
import sys
from durable_ext.runtime.marks import WorkerMarks
marks = WorkerMarks(sys.argv[1])
print("held" if marks.hold(sys.argv[2]) else "refused", flush=True)
sys.stdin.read()  # until the test closes stdin, or kills this process
"""


@pytest.fixture
def marks_dir(tmp_path: Path) -> Path:
    base = tmp_path / "run"
    base.mkdir(mode=0o700)
    return base / "workers"


@pytest.fixture
def holder(marks_dir: Path) -> Iterator[subprocess.Popen[str]]:
    """A child process holding the mark of owner ``child#1``."""
    proc = subprocess.Popen([sys.executable, "-c", HOLDER, str(marks_dir), "child#1"],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "held"
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(10)


def test_a_live_holder_is_not_ended_and_a_killed_one_is(marks_dir, holder) -> None:
    marks = WorkerMarks(marks_dir)
    assert not marks.ended("child#1")
    os.kill(holder.pid, signal.SIGKILL)
    holder.wait(10)
    assert marks.ended("child#1")
    assert not marks.ended("child#2")  # never held here: nothing proven


def test_marks_held_in_this_process_are_alive_until_released(marks_dir) -> None:
    one, other = WorkerMarks(marks_dir), WorkerMarks(marks_dir)
    assert one.hold("w#a") and one.hold("w#a")
    assert not other.ended("w#a") and not one.ended("w#a")
    one.release("w#a")
    assert not other.ended("w#a")  # released with its leases: no mark, no proof
    assert not any(marks_dir.iterdir())


def test_a_mark_naming_another_owner_or_a_link_proves_nothing(marks_dir, holder) -> None:
    holder.kill()
    holder.wait(10)
    marks = WorkerMarks(marks_dir)
    mark = marks_dir / WorkerMarks._name("child#1")
    assert marks.ended("child#1")
    mark.write_text("someone-else\n1\n")
    assert not marks.ended("child#1")
    target = marks_dir / "elsewhere"
    target.write_text("child#1\n1\n")
    mark.unlink()
    mark.symlink_to(target)
    assert not marks.ended("child#1")  # not followed


def test_a_directory_others_may_write_to_disables_marks(tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o777)
    marks = WorkerMarks(shared / "workers")
    assert not marks.hold("w#1")
    assert not marks.ended("w#1")
    assert not (shared / "workers").exists() or not any((shared / "workers").iterdir())


def test_the_default_directory_is_per_user(monkeypatch: pytest.MonkeyPatch,
                                           tmp_path: Path) -> None:
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path))
    assert default_marks_dir() == tmp_path / f"durable-ext-{os.getuid()}" / "workers"
    marks = WorkerMarks()
    assert marks.hold("w#default")
    marks.release("w#default")
