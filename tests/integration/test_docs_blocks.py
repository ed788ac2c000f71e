"""The docs test's rules for what a block needs and how its commands must exit."""

from __future__ import annotations

import subprocess
from pathlib import Path

from docs_blocks import Block, blocks
from test_docs_run import _shell_script


def _page(tmp_path: Path, text: str) -> list[Block]:
    (tmp_path / "page.md").write_text(text)
    return list(blocks(tmp_path, Path("page.md")))


def test_aws_names_give_moto_with_the_aliases_and_buckets_named(tmp_path: Path) -> None:
    aws, plain = _page(tmp_path, (
        '```python\n# orders.py\nS = serdes("msgpack+fields:kms=alias/pii;paths=a"\n'
        '           "+s3://my-bucket/x")\n```\n\n'
        "```python\nimport json\n```\n"))
    assert aws.aws() == (["alias/pii"], ["my-bucket"])
    # a later block gets what the page's files name, since it may import them
    assert plain.aws() == (["alias/pii"], ["my-bucket"])
    assert _page(tmp_path, "```python\nprint(1)\n```\n")[0].aws() is None


def test_key_variables_named_get_keys(tmp_path: Path) -> None:
    (block,) = _page(tmp_path, "```python\n# DURABLE_EXT_PICKLE_KEY=... in the environment\n```\n")
    assert block.secrets() == ["DURABLE_EXT_PICKLE_KEY"]


def test_test_classes_run_under_pytest(tmp_path: Path) -> None:
    cls, func, script = _page(tmp_path, (
        "```python\nclass TestStore(Base):\n    pass\n```\n"
        "```python\ndef test_x():\n    pass\n```\n"
        "```python\nclass Store:\n    def test_x(self): ...\n```\n"))
    assert cls.is_test and func.is_test
    assert not script.is_test


def _exit(code: str) -> int:
    return subprocess.run(["bash", "-c", _shell_script(code)], capture_output=True).returncode


def test_a_command_exits_as_its_comment_says() -> None:
    assert _exit("false  # exits 1, as it should\ntrue\n") == 0
    assert _exit("true  # exits 1\n") != 0
    assert _exit("(exit 3)\n") == 0  # still waiting
    assert _exit("false\ntrue\n") != 0
