from aws_durable_execution_sdk_python.exceptions import RetryableSerDesError, SerDesError

from durable_ext import errors


def test_serialization_errors_are_the_sdk_classes_the_sdk_dispatches_on():
    err = errors.IntegrityError("bad tag in operation 'op1'")
    assert isinstance(err, SerDesError)
    assert isinstance(err, errors.DurableExtError)
    assert err.message == "bad tag in operation 'op1'"
    assert str(err) == "bad tag in operation 'op1'"
    retry = errors.RetryableSerializationError("throttled")
    assert isinstance(retry, RetryableSerDesError)
    assert not isinstance(retry, SerDesError)  # the SDK retries only this one


def test_config_errors_are_value_errors_and_missing_deps_import_errors():
    assert issubclass(errors.SpecError, ValueError)
    assert issubclass(errors.UnknownPluginError, errors.ConfigError)
    assert issubclass(errors.MissingDependencyError, ImportError)
    assert issubclass(errors.ConflictError, errors.StoreError)
    assert str(errors.NotFoundError("no execution 'x'")) == "no execution 'x'"


def test_every_public_error_is_documented_in_the_tree():
    for name in errors.__all__:
        cls = getattr(errors, name)
        assert issubclass(cls, errors.DurableExtError)
        assert name in errors.__doc__
        assert cls.__doc__
