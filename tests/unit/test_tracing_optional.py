"""Without the ``otel`` extra everything else works, and tracing says which extra it needs."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from durable_ext.engine.trace import invocation_header, parse_header
from durable_ext.errors import ConfigError


def test_missing_extra_is_named_and_the_rest_works() -> None:
    code = textwrap.dedent("""
        import sys
        sys.modules["aws_durable_execution_sdk_python_otel"] = None  # as if not installed
        from aws_durable_execution_sdk_python import durable_execution
        import durable_ext
        from durable_ext.runtime import Runtime, VirtualClock
        from durable_ext.errors import MissingDependencyError

        @durable_execution
        def handler(event, ctx):
            return ctx.step(lambda _: 41, name="s") + 1

        with Runtime("memory://", clock=VirtualClock()) as rt:
            rt.register("fn", handler)
            assert rt.run("fn", {})["Status"] == "SUCCEEDED"
        from durable_ext import tracing  # importing the module is fine
        try:
            tracing.LocalTraces()
        except MissingDependencyError as exc:
            assert exc.extra == "otel", exc.extra
            print(exc)
        else:
            raise SystemExit("no error without the extra")
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr
    assert "pip install 'durable-ext[otel]'" in out.stdout


def test_unknown_view_is_refused() -> None:
    pytest.importorskip("aws_durable_execution_sdk_python_otel")
    from durable_ext.tracing import otel_plugin

    with pytest.raises(ConfigError, match="'execution' or 'invocation'"):
        otel_plugin("workflow")  # type: ignore[arg-type]


@pytest.mark.parametrize("header", [
    None, "", "Root=1-abc", "Parent=53995c3f42cd8ad8", "Root=1-5759e988-bd862e3fe1be46a9942727"
    + "x" * 300, "Root=2-5759e988-bd862e3fe1be46a994272793",
])
def test_headers_without_a_valid_root_are_not_read(header: str | None) -> None:
    assert parse_header(header) is None


def test_header_fields_are_read_case_insensitively_and_bad_parts_dropped() -> None:
    got = parse_header("root=1-5759E988-BD862E3FE1BE46A994272793;Parent=zz;Sampled=7;x=y")
    assert got is not None
    assert got.render() == "Root=1-5759e988-bd862e3fe1be46a994272793;Sampled=1"


def test_invocation_header_root_is_per_execution_and_parent_per_invocation() -> None:
    a1 = parse_header(invocation_header("arn:a", 1_700_000_000_000, {}, "inv-1"))
    a2 = parse_header(invocation_header("arn:a", 1_700_000_000_000, {}, "inv-2"))
    b1 = parse_header(invocation_header("arn:b", 1_700_000_000_000, {}, "inv-1"))
    assert a1 and a2 and b1
    assert a1.root == a2.root != b1.root
    assert a1.root.startswith("1-6553f100-")  # the execution's start second
    assert a1.parent != a2.parent and a1.sampled == "1"
