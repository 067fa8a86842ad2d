"""Virtual paths are validated and normalised in one place."""

from __future__ import annotations

import unicodedata

import pytest

from cdir.errors import InvalidPath
from cdir.schema.paths import is_within, normalize, relative, split


@pytest.mark.parametrize(
    ("given", "cwd", "expected"),
    [
        ("/a/b", "/", "/a/b"),
        ("a/b/", "/x", "/x/a/b"),
        ("/a//b", "/", "/a/b"),
        ("./a/./b", "/x", "/x/a/b"),
        ("../y", "/x/z", "/x/y"),
        ("/", "/x", "/"),
        ("..", "/x", "/"),
        ("/dir with space/#%:.txt", "/", "/dir with space/#%:.txt"),
    ],
)
def test_normalize(given: str, cwd: str, expected: str) -> None:
    assert normalize(given, cwd) == expected


def test_unicode_is_nfc() -> None:
    decomposed = unicodedata.normalize("NFD", "/café")
    assert normalize(decomposed) == unicodedata.normalize("NFC", "/café")


@pytest.mark.parametrize(
    ("given", "message"),
    [
        ("", "invalid path: empty"),
        ("/..", "invalid path '/..': goes above the root"),
        ("a/../../b", "invalid path 'a/../../b': goes above the root"),
        ("/a\x00b", "invalid path '/a\\x00b': control character '\\x00' not allowed"),
        ("/a\nb", "invalid path '/a\\nb': control character '\\n' not allowed"),
        ("/" + "x" * 256, "a name is longer than 255 bytes"),
    ],
)
def test_bad_paths_give_one_clear_error(given: str, message: str) -> None:
    with pytest.raises(InvalidPath) as info:
        normalize(given)
    assert message in str(info.value)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize(
    ("given", "message"),
    [
        (
            "/" + "x" * 300,
            "invalid path '/" + "x" * 39 + "…' (301 bytes): a name is longer than 255 bytes",
        ),
        (
            "/a/" + "é" * 200,
            "invalid path '/a/" + "é" * 37 + "…' (403 bytes): a name is longer than 255 bytes",
        ),
        ("../" * 30, "invalid path '" + ("../" * 14)[:40] + "…' (90 bytes): goes above the root"),
        (
            "/" + "a" * 70 + "\x01",
            "invalid path '/" + "a" * 39 + "…' (72 bytes): control character '\\x01' not allowed",
        ),
    ],
)
def test_a_long_path_is_shown_shortened_in_messages(given: str, message: str) -> None:
    with pytest.raises(InvalidPath) as info:
        normalize(given)
    assert str(info.value) == message


def test_a_path_of_60_characters_is_still_shown_whole() -> None:
    with pytest.raises(InvalidPath) as info:
        normalize("/" + "a" * 58 + "\x01")
    shown = repr("/" + "a" * 58 + "\x01")
    assert str(info.value) == f"invalid path {shown}: control character '\\x01' not allowed"


def test_text_that_is_not_utf8_is_refused() -> None:
    """A non-UTF-8 byte in argv reaches Python as a lone surrogate (surrogateescape)."""
    with pytest.raises(InvalidPath) as info:
        normalize("/caf\udce9")
    assert str(info.value) == "invalid path '/caf\\udce9': not valid UTF-8"


def test_total_length_is_limited() -> None:
    with pytest.raises(InvalidPath, match="longer than 4096 bytes"):
        normalize("/" + "/".join(["d" * 200] * 25))


def test_helpers() -> None:
    assert split("/a/b") == ("/a", "b")
    assert split("/a") == ("/", "a")
    assert split("/") == ("/", "")
    assert is_within("/a/b", "/a") and not is_within("/ab", "/a") and is_within("/x", "/")
    assert relative("/a/b/c", "/a") == "b/c"
    assert relative("/a", "/") == "a"
