import pytest

from durable_ext.errors import SpecError
from durable_ext.spec import PipelineSpec, StageSpec, parse_pipeline, parse_store


@pytest.mark.parametrize(
    ("spec", "stages"),
    [
        ("msgpack", [StageSpec("msgpack")]),
        ("msgpack+zstd", [StageSpec("msgpack"), StageSpec("zstd")]),
        ("msgpack+zstd:9", [StageSpec("msgpack"), StageSpec("zstd", "9")]),
        # the argument runs to the next '+', so ARNs with colons survive
        (
            "msgpack+kms:arn:aws:kms:eu-west-1:111122223333:key/abc+zstd",
            [
                StageSpec("msgpack"),
                StageSpec("kms", "arn:aws:kms:eu-west-1:111122223333:key/abc"),
                StageSpec("zstd"),
            ],
        ),
        # a name:// stage takes the rest of the spec, '+' included
        (
            "msgpack+s3://bucket/a+b",
            [StageSpec("msgpack"), StageSpec("s3", "bucket/a+b", url=True)],
        ),
    ],
)
def test_valid_specs_parse_and_round_trip(spec, stages):
    parsed = parse_pipeline(spec)
    assert list(parsed.stages) == stages
    assert str(parsed) == spec
    assert parse_pipeline(parsed) is parsed


@pytest.mark.parametrize(
    ("spec", "position", "words"),
    [
        ("", None, "empty"),
        ("msgpack++zstd", 8, "empty stage"),
        ("+msgpack", 0, "empty stage"),
        ("msgpack+", 8, "empty stage"),
        ("Msgpack", 0, "bad character 'M'"),
        ("msgpack zstd", 7, "expected '+'"),
        ("msgpack+zstd:", 13, "empty argument"),
        ("msgpack+s3://", 13, "needs a location"),
        ("msgpack+msgpack", None, "appears twice"),
    ],
)
def test_invalid_specs_point_at_the_bad_part(spec, position, words):
    with pytest.raises(SpecError) as info:
        parse_pipeline(spec)
    message = str(info.value)
    assert words in message
    if position is not None:
        assert f"position {position}" in message
        lines = message.splitlines()
        assert lines[-1].index("^") - 2 == position  # caret under the offending character


def test_non_string_spec_is_refused():
    with pytest.raises(SpecError):
        parse_pipeline(42)  # type: ignore[arg-type]
    assert isinstance(parse_pipeline("json"), PipelineSpec)


def test_store_urls_parse_and_mask_passwords():
    spec = parse_store("redis://user:s3cret@127.0.0.1:6380/2?prefix=app")
    assert (spec.scheme, spec.host, spec.port, spec.path) == ("redis", "127.0.0.1", 6380, "/2")
    assert spec.options == {"prefix": "app"}
    assert "s3cret" not in str(spec) and "s3cret" not in repr(spec)
    assert str(spec) == "redis://user:***@127.0.0.1:6380/2?prefix=app"
    assert parse_store("file://.durable").path == ".durable"
    assert parse_store("file:///var/lib/durable").path == "/var/lib/durable"
    assert parse_store("memory://").scheme == "memory"
    assert parse_store("dynamodb://table?region=eu-west-1").location == "table"
    fn = parse_store("lambda://MyFunction:live?region=eu-west-1")
    assert (fn.scheme, fn.path) == ("lambda", "MyFunction:live")
    assert fn.options == {"region": "eu-west-1"}


@pytest.mark.parametrize("url", ["redis", "", "://x", "Redis Server://x", "redis://h:notaport/0"])
def test_bad_store_urls_are_refused(url):
    with pytest.raises(SpecError):
        parse_store(url)
