"""The code blocks of README.md and docs/*.md, as the docs test runs them.

Every fenced ``python``, ``bash``, ``shell`` and ``console`` block is a case, named
``FILE:LINE`` (the line of its opening fence). An HTML comment on the lines just above a
fence (blank lines between are fine) says how it runs:

``<!-- docs-test: skip REASON -->``
    not run here (real AWS, a deploy, the test suite itself); the reason is the skip's.
``<!-- docs-test: continue -->``
    a Python block that builds on the previous Python block of the same file: it runs
    after that one's code (and whatever that one continued), in one process.
A Python block whose first line is a comment naming a file (``# handlers.py``) is that
file (``# app/handlers.py`` a module of a package): it is written into the working
directory of every later block of its page, so ``# test_order.py`` can import
``handlers``. Blocks are run as follows:

* a block that defines ``test_...`` functions or ``Test...`` classes is run by pytest
  (the durable_runtime fixture comes from the installed plugin), as the page tells its
  reader to;
* any other Python block by the interpreter, as a script;
* a shell block by bash, command by command (``\\`` continues a line); each command
  must exit 0, or 3, which durable-ext uses for "the execution is still waiting", or
  the code its comment names (``durable-ext stop o-2  # exits 1``).

Blocks find ``127.0.0.1:6379`` (Redis) and ``postgres://`` URLs rewritten to the
test's own servers: see :data:`SERVICES`. A block that names an AWS service (:data:`AWS`)
runs with ``AWS_ENDPOINT_URL`` pointing at the test's moto server and test credentials,
so boto3 and durable_ext's own clients talk to moto while the block reads like real
usage; the KMS aliases and S3 buckets it names exist there (in ``us-east-1``, the
region it gets). A block that names one of the key variables of :data:`SECRETS`, which
pages tell the reader to set in the function's environment, gets a fresh key in it.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["Block", "blocks", "documents"]

LANGUAGES = {"python": "python", "bash": "shell", "shell": "shell", "console": "shell"}
_FENCE = re.compile(r"^(?P<indent> {0,3})```(?P<lang>[A-Za-z0-9_+-]*)\s*$")
_DIRECTIVE = re.compile(r"^\s*<!--\s*docs-test:\s*(?P<verb>skip|continue)\b"
                        r"(?P<arg>.*?)-->\s*$")
_FILE_NAME = re.compile(r"^#\s*(?P<name>(?:[A-Za-z_]\w*/){0,3}[A-Za-z_]\w*\.py)\b")
_TEST_FUNCTION = re.compile(r"^(?:def test_\w*\(|class Test\w*[(:])", re.M)

#: what a shell block's text names, and the fixture of tests/servers.py that stands in
SERVICES = {"redis": re.compile(r"redis://127\.0\.0\.1:6379(/\d+)?"),
            "postgres": re.compile(r"postgres://[^\s'\"?]+")}
#: what names an AWS service in a block's text: it runs against the test's moto server
AWS = re.compile(r"\bboto3\b|\bkms[:=]alias/|\bs3://|\bdynamodb://")
_ALIAS = re.compile(r"\balias/[A-Za-z0-9/_-]+")
_BUCKET = re.compile(r"\bs3://([a-z0-9][a-z0-9.-]{1,61}[a-z0-9])")
#: environment variables holding keys (``[ID:]BASE64``) that pages tell the reader to set
SECRETS = ("DURABLE_EXT_PICKLE_KEY", "DURABLE_EXT_REDACT_KEY", "MY_REDACT_KEY")


@dataclass(frozen=True)
class Block:
    """One fenced block and how it runs."""

    path: Path
    line: int
    language: str  # "python" or "shell"
    code: str
    skip: str | None = None
    #: the code of the blocks it continues, oldest first
    before: tuple[str, ...] = ()
    #: files earlier blocks of the page define: name -> code
    files: dict[str, str] = field(default_factory=dict)

    @property
    def id(self) -> str:
        """``README.md:123`` or ``docs/testing.md:45``."""
        return f"{self.path}:{self.line}"

    @property
    def file_name(self) -> str | None:
        """The file a Python block is (``# handlers.py`` on its first line), if any."""
        m = _FILE_NAME.match(self.code)
        return m.group("name") if m and self.language == "python" else None

    @property
    def is_test(self) -> bool:
        """Whether pytest runs it: a Python block defining test functions."""
        return self.language == "python" and bool(_TEST_FUNCTION.search(self.code))

    def services(self) -> list[str]:
        """The servers the block's text names (keys of :data:`SERVICES`)."""
        text = "\n".join((*self.before, self.code))
        return [name for name, pattern in SERVICES.items() if pattern.search(text)]

    def _text_with_files(self) -> str:
        return "\n".join((*self.files.values(), *self.before, self.code))

    def aws(self) -> tuple[list[str], list[str]] | None:
        """The KMS aliases and S3 buckets the block (or a file of its page) names.

        None when it names no AWS service.
        """
        text = self._text_with_files()
        if not AWS.search(text):
            return None
        return sorted(set(_ALIAS.findall(text))), sorted(set(_BUCKET.findall(text)))

    def secrets(self) -> list[str]:
        """The key variables of :data:`SECRETS` the block (or a file of its page) names."""
        text = self._text_with_files()
        return [name for name in SECRETS if re.search(rf"\b{name}\b", text)]


def documents(root: Path) -> list[Path]:
    """README.md and docs/*.md under ``root``, relative to it."""
    return [Path("README.md"), *sorted(p.relative_to(root)
                                       for p in (root / "docs").glob("*.md"))]


def blocks(root: Path, doc: Path) -> Iterator[Block]:
    """Yield the runnable blocks of one page, in order."""
    lines = (root / doc).read_text(encoding="utf-8").splitlines()
    files: dict[str, str] = {}
    chain: tuple[str, ...] = ()
    i = 0
    while i < len(lines):
        m = _FENCE.match(lines[i])
        if m is None:
            i += 1
            continue
        start, lang = i, m.group("lang").lower()
        end = next((j for j in range(i + 1, len(lines)) if lines[j].strip() == "```"),
                   len(lines))
        i = end + 1
        if lang not in LANGUAGES:
            continue
        indent = len(m.group("indent"))
        code = "\n".join(line[indent:] for line in lines[start + 1:end]) + "\n"
        verb, arg = _directive(lines, start)
        language = LANGUAGES[lang]
        before = chain if verb == "continue" else ()
        block = Block(path=doc, line=start + 1, language=language, code=code,
                      skip=(arg or "marked skip") if verb == "skip" else None, before=before,
                      files=dict(files))
        if verb == "continue" and (language != "python" or not chain):
            raise ValueError(f"{block.id}: 'continue' needs an earlier Python block")
        yield block
        if language == "python":
            chain = (*before, block.code)
            if block.file_name is not None:
                files[block.file_name] = block.code


def _directive(lines: list[str], fence: int) -> tuple[str | None, str]:
    """The docs-test comment just above line ``fence`` (blank lines skipped), if any."""
    j = fence - 1
    while j >= 0 and not lines[j].strip():
        j -= 1
    if j < 0 or not lines[j].rstrip().endswith("-->"):
        return None, ""
    m = _DIRECTIVE.match(lines[j])
    if m is None:
        return None, ""
    return m.group("verb"), m.group("arg").strip()
