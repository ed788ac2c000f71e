"""Every code block of README.md and docs/*.md runs as a reader would paste it.

One case per block (``README.md:123``), in a fresh directory holding a copy of
``examples/``, with this venv's interpreter and ``durable-ext`` first on PATH and the
embedded file store as the backend. Redis and PostgreSQL URLs in a block are pointed at
the test servers, AWS clients at moto, and the key variables it names get fresh keys. How
a block runs and how pages mark blocks that cannot run here: :mod:`docs_blocks`.
"""

from __future__ import annotations

import base64
import os
import re
import secrets
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from docs_blocks import SERVICES, Block, blocks, documents
from servers import TEST_CREDENTIALS, MotoServer

ROOT = Path(__file__).resolve().parents[2]
BLOCK_SECONDS = 60
"""Most a block may take: the slowest run a wait of a few real seconds."""

#: a command's comment that says which exit it must have: ``durable-ext stop o-2  # exits 1``
_EXITS = re.compile(r"#.*\bexits (\d+)\b")

CASES = [b for doc in documents(ROOT) for b in blocks(ROOT, doc)]


def _shell_script(code: str) -> str:
    """Bash that runs each command and stops at the first exit it should not have."""
    out = ["set -u"]
    logical = ""
    for line in code.splitlines():
        if line.rstrip().endswith("\\"):
            logical += line.rstrip()[:-1] + " "
            continue
        logical += line
        if logical.strip() and not logical.lstrip().startswith("#"):
            exits = _EXITS.search(logical)
            wrong = (f"[ $rc -ne {exits.group(1)} ]" if exits
                     else "[ $rc -ne 0 ] && [ $rc -ne 3 ]")
            out.append(f"{{ {logical}\n}}; rc=$?; if {wrong}; then "
                       f"echo \"exit $rc: {_quoted(logical)}\" >&2; exit 1; fi")
        logical = ""
    return "\n".join(out) + "\n"


def _quoted(command: str) -> str:
    return command.strip().replace("\\", "\\\\").replace('"', '\\"').replace("$", "\\$")[:120]


def _env(workdir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if k not in ("PYTHONPATH", "DURABLE_EXT_BACKEND") and not k.startswith("PYTEST")}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env["HOME"] = str(workdir / "home")  # no ~/.aws of the machine's
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    # pytest runs the durable_runtime plugin alone: the other installed plugins would
    # only slow each block down, and the entry-point path has tests of its own.
    env["PYTEST_DISABLE_PLUGIN_AUTOLOAD"] = "1"
    env["PYTEST_ADDOPTS"] = "-p durable_ext.testing.plugin -p no:cacheprovider -q"
    return env


def _aws_env(moto: MotoServer, aliases: list[str], buckets: list[str]) -> dict[str, str]:
    """Create what the block names in moto; the variables that send boto3 there."""
    kms, s3 = moto.client("kms"), moto.client("s3")
    known = {a["AliasName"] for page in kms.get_paginator("list_aliases").paginate()
             for a in page["Aliases"]}
    for alias in set(aliases) - known:
        kms.create_alias(AliasName=alias, TargetKeyId=kms.create_key()["KeyMetadata"]["KeyId"])
    known = {b["Name"] for b in s3.list_buckets()["Buckets"]}
    for bucket in set(buckets) - known:
        s3.create_bucket(Bucket=bucket)
    return {"AWS_ENDPOINT_URL": moto.endpoint_url,
            "AWS_ACCESS_KEY_ID": TEST_CREDENTIALS["aws_access_key_id"],
            "AWS_SECRET_ACCESS_KEY": TEST_CREDENTIALS["aws_secret_access_key"],
            "AWS_DEFAULT_REGION": TEST_CREDENTIALS["region_name"]}


def _point_at_servers(text: str, urls: dict[str, str]) -> str:
    for name, url in urls.items():
        text = SERVICES[name].sub(url, text)
    return text


def _write(workdir: Path, block: Block) -> list[str]:
    """Lay out the block's files in ``workdir``; return the command that runs it."""
    for name, code in block.files.items():
        if name != block.file_name:
            (workdir / name).parent.mkdir(parents=True, exist_ok=True)
            (workdir / name).write_text(code)
    if block.language == "shell":
        (workdir / "block.sh").write_text(block.code)
        return ["bash", "-c", _shell_script(block.code)]
    code = "\n".join((*block.before, block.code))
    name = block.file_name or ("test_block.py" if block.is_test else "block.py")
    (workdir / name).parent.mkdir(parents=True, exist_ok=True)
    (workdir / name).write_text(code)
    if block.is_test:
        return [sys.executable, "-m", "pytest", name]
    return [sys.executable, name]


@pytest.mark.parametrize("block", [
    pytest.param(b, id=b.id, marks=[pytest.mark.skip(reason=b.skip)] if b.skip else [])
    for b in CASES])
def test_block(block: Block, request: pytest.FixtureRequest, tmp_path: Path) -> None:
    urls = {name: request.getfixturevalue(f"{name}_server").url for name in block.services()}
    if urls:
        block = Block(path=block.path, line=block.line, language=block.language,
                      code=_point_at_servers(block.code, urls),
                      before=tuple(_point_at_servers(c, urls) for c in block.before),
                      files=block.files)
    shutil.copytree(ROOT / "examples", tmp_path / "examples",
                    ignore=shutil.ignore_patterns("__pycache__"))
    (tmp_path / "home").mkdir()
    argv = _write(tmp_path, block)
    env = _env(tmp_path)
    aws = block.aws()
    if aws is not None:
        env.update(_aws_env(request.getfixturevalue("moto_server"), *aws))
    env.update({name: f"docs:{base64.b64encode(secrets.token_bytes(32)).decode()}"
                for name in block.secrets()})
    try:
        done = subprocess.run(argv, cwd=tmp_path, env=env, capture_output=True,
                              text=True, timeout=BLOCK_SECONDS, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"{block.id} ran over {BLOCK_SECONDS} s:\n{exc.stdout}\n{exc.stderr}")
    assert done.returncode == 0, (
        f"{block.id} failed (exit {done.returncode}):\n--- code\n{block.code}"
        f"--- stdout\n{done.stdout[-3000:]}\n--- stderr\n{done.stderr[-3000:]}")
