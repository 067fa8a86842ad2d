"""cdir.errors: the one exception tree, and the table that turns SDK errors into it."""

from __future__ import annotations

import pickle

import pytest

from cdir import errors
from cdir.errors import (
    AlreadyExists,
    AuthError,
    CdirError,
    ErrorRule,
    IsADirectory,
    NotADirectory,
    NotFound,
    ProviderError,
    Unavailable,
    translate,
    translated,
)


class SDKError(Exception):
    """Stands for an SDK's exception, with the HTTP status it would carry."""

    def __init__(self, message: str, status: int = 500) -> None:
        super().__init__(message)
        self.status = status


TABLE: list[ErrorRule] = [
    (lambda e: getattr(e, "status", None) == 404, NotFound, None),
    (lambda e: getattr(e, "status", None) == 403, AuthError, None),
    (lambda e: getattr(e, "status", None) == 503, Unavailable, None),
    (lambda e: getattr(e, "status", None) == 409, ProviderError, True),  # retryable by rule
    (lambda e: getattr(e, "status", None) == 429, Unavailable, False),  # rule overrides class
    (lambda e: isinstance(e, SDKError), ProviderError, None),
]


@pytest.mark.parametrize(
    ("cls", "builtin"),
    [
        (errors.InvalidPath, ValueError),
        (errors.UsageError, ValueError),
        (NotFound, FileNotFoundError),
        (AlreadyExists, FileExistsError),
        (NotADirectory, NotADirectoryError),
        (IsADirectory, IsADirectoryError),
        (errors.Unsupported, NotImplementedError),
        (errors.MissingDependency, ImportError),
        (AuthError, PermissionError),
    ],
)
def test_leaves_subclass_the_builtin_they_mean(cls: type[CdirError], builtin: type) -> None:
    with pytest.raises(builtin) as info:
        raise cls("it went wrong")
    assert isinstance(info.value, CdirError)
    assert str(info.value) == "it went wrong"


def test_tree() -> None:
    assert issubclass(AuthError, ProviderError)
    assert issubclass(Unavailable, ProviderError)
    for cls in (errors.Conflict, errors.VaultError, errors.CatalogError, ProviderError):
        assert issubclass(cls, CdirError)


def test_retryable_defaults_and_override() -> None:
    assert Unavailable("down").retryable is True
    assert ProviderError("odd").retryable is False
    assert NotFound("gone").retryable is False
    assert Unavailable("bad request", retryable=False).retryable is False
    assert ProviderError("flaky", retryable=True).retryable is True
    # the class default is untouched by an instance's override
    assert ProviderError("again").retryable is False


def test_errors_survive_pickling() -> None:
    # worker processes send errors back pickled
    exc = pickle.loads(pickle.dumps(ProviderError("flaky", retryable=True)))
    assert (type(exc), str(exc), exc.retryable) == (ProviderError, "flaky", True)
    assert isinstance(pickle.loads(pickle.dumps(NotFound("gone"))), FileNotFoundError)


@pytest.mark.parametrize(
    ("code", "cls", "retryable"),
    [
        (404, NotFound, False),
        (403, AuthError, False),
        (503, Unavailable, True),
        (409, ProviderError, True),
        (429, Unavailable, False),
        (500, ProviderError, False),  # the catch-all row
    ],
)
def test_translate_through_the_table(code: int, cls: type[CdirError], retryable: bool) -> None:
    exc = translate(SDKError("the service said no", code), TABLE, "s3://b/k")
    assert type(exc) is cls
    assert exc.retryable is retryable
    assert str(exc) == "s3://b/k: the service said no"


def test_translate_first_matching_row_wins() -> None:
    both: list[ErrorRule] = [
        (lambda e: True, AuthError, None),
        (lambda e: True, NotFound, None),
    ]
    assert type(translate(SDKError("x"), both, "w")) is AuthError
    assert type(translate(SDKError("x"), both[::-1], "w")) is NotFound


def test_translate_unmatched_is_a_plain_provider_error() -> None:
    exc = translate(KeyError("k"), TABLE, "w")
    assert type(exc) is ProviderError
    assert exc.retryable is False
    assert str(exc) == "w: 'k'"


def test_translate_keeps_cdir_errors() -> None:
    original = Unavailable("already ours")
    assert translate(original, TABLE, "w") is original


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("first line\nsecond line\nthird", "first line"),
        ("\n  \n  after blank lines\nmore", "after blank lines"),
        ("windows\r\nline end", "windows"),
        ("unicode\u2028line separator", "unicode"),
        ("", "SDKError"),  # no text: the type's name
        ("   \n\t", "SDKError"),
    ],
)
def test_message_is_one_line(text: str, shown: str) -> None:
    exc = translate(SDKError(text), TABLE, "w")
    assert str(exc) == f"w: {shown}"
    assert len(str(exc).splitlines()) == 1


def test_message_is_one_line_when_the_path_has_a_newline() -> None:
    exc = translate(SDKError("denied"), TABLE, "s3://b/odd\nkey")
    assert len(str(exc).splitlines()) == 1


def test_translated_raises_the_cdir_error_from_the_sdk_error() -> None:
    sdk = SDKError("missing", 404)
    with pytest.raises(NotFound) as info, translated(TABLE, "gcs://b/k"):
        raise sdk
    assert info.value.__cause__ is sdk
    assert str(info.value) == "gcs://b/k: missing"


def test_translated_lets_cdir_errors_through_unchanged() -> None:
    ours = errors.Conflict("changed meanwhile")
    with pytest.raises(errors.Conflict) as info, translated(TABLE, "w"):
        raise ours
    assert info.value is ours
    assert info.value.__cause__ is None


def test_translated_leaves_interrupts_alone() -> None:
    with pytest.raises(KeyboardInterrupt), translated(TABLE, "w"):
        raise KeyboardInterrupt


def test_translated_is_silent_without_an_error() -> None:
    with translated(TABLE, "w"):
        value = 1
    assert value == 1
