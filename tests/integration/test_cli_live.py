"""``durable-ext run`` in a real terminal: the live view counts down, the summary stays.

Each test starts its own tmux server (a socket of its own), types the command into a
shell there as a user would, and reads the screen with ``capture-pane``.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
import textwrap
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

pytestmark = pytest.mark.skipif(shutil.which("tmux") is None,
                                reason="tmux is not installed: no terminal to drive")

WIDTH, HEIGHT = 110, 40
#: the longest a screen is waited for (the machine may be loaded)
SCREEN_SECONDS = 60

APP = textwrap.dedent(
    """
    import logging

    from aws_durable_execution_sdk_python import DurableContext, durable_execution
    from aws_durable_execution_sdk_python.config import Duration, StepConfig

    import durable_ext

    PACKED = durable_ext.serdes("msgpack+zstd")


    def price(_):
        logging.getLogger("app").warning("priced the order")
        return {"total": 42, "note": "n" * 200}


    @durable_execution
    def flow(event, ctx: DurableContext):
        total = ctx.step(price, name="price", config=StepConfig(serdes=PACKED))
        rest, approved = ctx.parallel([
            lambda c: c.wait(Duration.from_seconds(16), name="cool-down"),
            lambda c: c.create_callback(name="approval").result(),
        ], name="together").get_results()
        return {"total": total["total"], "approved": approved}


    @durable_execution
    def ask(event, ctx: DurableContext):
        return {"answer": ctx.create_callback(name="answer").result()}
    """
)


class Terminal:
    """A tmux session of its own: keys in, the screen out."""

    def __init__(self, cwd: Path) -> None:
        self.socket = f"durable-ext-live-{uuid.uuid4().hex[:12]}"
        self.env = {k: v for k, v in os.environ.items()
                    if k not in ("PYTHONPATH", "DURABLE_EXT_BACKEND", "TMUX")}
        self.cwd = cwd
        self.socket_path: Path | None = None

    def tmux(self, *args: str) -> str:
        done = subprocess.run(["tmux", "-L", self.socket, *args], env=self.env, cwd=self.cwd,
                              capture_output=True, text=True, timeout=30, check=True)
        return done.stdout

    def start(self) -> None:
        self.tmux("-f", "/dev/null", "new-session", "-d", "-s", "live", "-x", str(WIDTH),
                  "-y", str(HEIGHT), "bash --norc --noprofile")
        self.socket_path = Path(self.tmux("display-message", "-p", "#{socket_path}").strip())

    def type(self, line: str) -> None:
        self.tmux("send-keys", "-t", "live", "-l", line)
        self.tmux("send-keys", "-t", "live", "Enter")

    def screen(self) -> str:
        # -J joins the lines the terminal wrapped, so long commands read whole
        return self.tmux("capture-pane", "-p", "-J", "-t", "live")

    def wait_for(self, found: Callable[[str], bool], what: str) -> str:
        deadline = time.monotonic() + SCREEN_SECONDS
        screen = ""
        while time.monotonic() < deadline:
            screen = self.screen()
            if found(screen):
                return screen
            time.sleep(0.2)
        raise AssertionError(f"no {what} on the screen within {SCREEN_SECONDS} s:\n{screen}")

    def close(self) -> None:
        subprocess.run(["tmux", "-L", self.socket, "kill-server"], env=self.env,
                       capture_output=True, timeout=30, check=False)
        if self.socket_path is not None:  # the server leaves its socket file behind
            self.socket_path.unlink(missing_ok=True)


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / "app.py").write_text(APP)
    return tmp_path


@pytest.fixture
def terminal(project: Path) -> Iterator[Terminal]:
    term = Terminal(project)
    try:
        term.start()
        yield term
    finally:
        term.close()


def command(*argv: str) -> str:
    return " ".join(shlex.quote(a) for a in (sys.executable, "-m", "durable_ext.cli", *argv))


EXITED = re.compile(r"^EXIT=(\d+)$", re.M)
COUNTDOWN = re.compile(r"^next timer  cool-down \(wait\)  in (\d+) s", re.M)


def start_run(terminal: Terminal, project: Path, handler: str, name: str, *options: str) -> str:
    """Type ``durable-ext run HANDLER --name NAME`` on the project's store; return the store."""
    store = f"file://{project / 'store'}"
    terminal.type(command("run", handler, "--name", name, "--backend", store, *options)
                  + "; echo EXIT=$?")
    return store


def test_the_countdown_moves_and_the_summary_stays(terminal: Terminal, project: Path) -> None:
    store = start_run(terminal, project, "app.py:flow", "t-1",
                      "--timeout", "6", "--serdes", "msgpack+zstd")
    first = terminal.wait_for(COUNTDOWN.search, "countdown")
    # one frame, redrawn in place; the handler's log line went above it
    assert first.count("t-1  RUNNING  elapsed") == 1
    assert first.index("WARNING app: priced the order") < first.index("t-1  RUNNING")
    left = int(COUNTDOWN.findall(first)[-1])
    assert 0 < left <= 16
    # a later screen shows fewer seconds left: the view moves while the wait waits
    later = terminal.wait_for(
        lambda s: any(int(n) < left for n in COUNTDOWN.findall(s)), "lower countdown")
    callback = f"durable-ext callback succeed t-1 approval '<json>' --backend {store}"
    for shown in (later, first):
        assert "waiting for callback  approval  complete it with:" in shown
        assert callback in " ".join(shown.split())  # the frame wraps it at a space
        assert "parallel  together  0/2 done" in shown
        assert re.search(r"cool-down +Wait +WAITING +16 s", shown)
        # the step's msgpack+zstd result, decoded and cut to the line
        assert re.search(r"price +Step +SUCCEEDED +1 +\{\"total\": 42, \"note\": \"n+…$",
                         shown, re.M)

    summary = terminal.wait_for(EXITED.search, "exit")
    assert EXITED.findall(summary) == ["3"]
    head = next(x for x in summary.splitlines() if x.startswith("execution t-1: "))
    assert re.fullmatch(r"execution t-1: RUNNING after \d+\.\d s, "
                        r"still running when --timeout 6 s ran out", head.rstrip())
    assert re.search(r"^operations: 2 ParallelBranch, 1 Callback, 1 Parallel, 1 Step, 1 Wait"
                     r" · \d+ invocations?$", summary, re.M)
    assert re.search(r"^next timer: cool-down \(wait\) in \d+ s$", summary, re.M)
    assert f"waiting for callback approval: {callback}" in summary
    assert (f"run it on: durable-ext run app.py:flow --name t-1 --backend {store}"
            in summary)
    # the live frame is gone, the summary is what stays
    assert "operation  type" not in summary and "elapsed" not in summary

    # the command the summary shows completes the callback and runs the execution on
    terminal.type(command(*shlex.split(callback)[1:]).replace("'<json>'", "yes"))
    done = terminal.wait_for(lambda s: "execution t-1: SUCCEEDED" in s, "success")
    assert 'result: {"total": 42, "approved": "yes"}' in done


def test_a_callback_alone_ends_the_command_with_how_to_complete_it(
    terminal: Terminal, project: Path
) -> None:
    store = start_run(terminal, project, "app.py:ask", "q-1")
    summary = terminal.wait_for(EXITED.search, "exit")
    assert EXITED.findall(summary) == ["3"]
    assert re.search(r"^execution q-1: RUNNING after \d+\.\d s, waiting for a callback$",
                     summary, re.M)
    shown = (f"waiting for callback answer: durable-ext callback succeed q-1 answer "
             f"'<json>' --backend {store}")
    assert shown in summary
    assert "operations: 1 Callback · 1 invocation" in summary
    assert "run it on" not in summary  # running it again would wait for the same callback
    terminal.type(command("callback", "succeed", "q-1", "answer", "42", "--backend", store))
    done = terminal.wait_for(lambda s: "execution q-1: SUCCEEDED" in s, "success")
    assert 'result: {"answer": "42"}' in done


def test_ctrl_c_leaves_the_summary_and_the_command_to_go_on(
    terminal: Terminal, project: Path
) -> None:
    store = start_run(terminal, project, "app.py:flow", "c-1")
    terminal.wait_for(COUNTDOWN.search, "countdown")
    terminal.tmux("send-keys", "-t", "live", "C-c")
    summary = terminal.wait_for(EXITED.search, "exit")
    assert EXITED.findall(summary) == ["130"]
    assert re.search(r"^execution c-1: RUNNING after \d+\.\d s, "
                     r"still running when the command was interrupted$", summary, re.M)
    assert f"run it on: durable-ext run app.py:flow --name c-1 --backend {store}" in summary
    assert re.search(r"^durable-ext: interrupted after \d+\.\d s$", summary, re.M)
    assert "operation  type" not in summary
