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
    classes = [getattr(errors, n) for n in errors.__all__ if n[0].isupper() and n[1].islower()]
    for cls in classes:
        if cls is errors.ServiceCode:
            continue
        assert issubclass(cls, errors.DurableExtError)
        assert cls.__name__ in errors.__doc__
        assert cls.__doc__


def test_every_error_class_is_answered_with_a_known_code_and_read_back_as_itself():
    for cls, known in errors.SERVICE_ERRORS:
        assert errors.SERVICE_CODES[known.code].code == known.code
        exc = cls("Invalid checkpoint token") if cls is errors.InvalidCheckpointTokenError \
            else cls("boom")
        assert errors.service_code(exc) is known
        back = errors.error_for_code(known.code, str(exc))
        if cls is errors.ConfigError:  # answered as a bad parameter, as the service does
            assert type(back) is errors.InvalidParameterValueError
        else:
            assert type(back) is cls
    assert errors.service_code(errors.InvalidCheckpointTokenError()).retryable
    assert not errors.service_code(errors.InvalidParameterValueError("x")).retryable
    assert errors.service_code(errors.StoreUnavailableError("x")).status == 503
    assert errors.service_code(RuntimeError("x")).code == "ServiceException"
    assert type(errors.error_for_code("AccessDeniedException", "no")) is errors.StoreError
    assert type(errors.error_for_code("CallbackTimeoutException", "x")) is errors.NotFoundError
