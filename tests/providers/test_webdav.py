"""The webdav provider against wsgidav (mtime by PROPPATCH) and `rclone serve webdav` (mtime by
X-OC-Mtime): the conformance suite, plus what only WebDAV shows (presets, URL quoting, errors)."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest

from cdir.errors import Conflict, NotFound, UsageError
from cdir.providers.testing import ProviderSuite, kinds, stream
from cdir.providers.webdav import WebDAVProvider, href_path, quote_path
from tests.providers.helpers import auth_refused, unavailable
from tests.servers.util import free_port, provider_from
from tests.servers.webdav import WebDAVServer, provider_config


def make(server: WebDAVServer, root: str | None = None, **options: object) -> WebDAVProvider:
    return provider_from(WebDAVProvider, "t", provider_config(server, root), **options)


class TestWebDAV(ProviderSuite):
    @pytest.fixture
    def provider(self, webdav_server: WebDAVServer) -> Iterator[WebDAVProvider]:
        p = make(webdav_server, page_size=7)
        yield p
        p.close()


class TestWebDAVOcMtime(ProviderSuite):
    @pytest.fixture
    def provider(self, webdav_oc_server: WebDAVServer) -> Iterator[WebDAVProvider]:
        p = make(webdav_oc_server, page_size=7)
        yield p
        p.close()


# --- options and presets (no network) ---------------------------------------------------------
def test_presets_build_urls_and_pick_the_mtime_method() -> None:
    nc = WebDAVProvider(
        "n",
        "",
        {"preset": "nextcloud", "host": "cloud.example.com/nc", "username": "ann@example.com"},
    )
    assert nc.url == "https://cloud.example.com/nc/remote.php/dav/files/ann%40example.com"
    assert (nc.mtime_method, nc.capabilities.set_mtime) == ("x-oc-mtime", True)
    pc = WebDAVProvider("p", "", {"preset": "pcloud"})
    assert pc.url == "https://webdav.pcloud.com"
    assert (pc.mtime_method, pc.capabilities.set_mtime) == ("none", False)
    # the class stays as declared: capabilities follow each instance's configuration
    assert WebDAVProvider.capabilities.set_mtime is True
    generic = WebDAVProvider("g", "a/b", {"url": "http://h:8080/dav/", "mtime_method": "none"})
    assert generic.url == "http://h:8080/dav"
    assert generic.capabilities.set_mtime is False
    with pytest.raises(UsageError):
        WebDAVProvider("x", "", {"preset": "owncloud", "username": "u"})  # no host
    with pytest.raises(UsageError):
        WebDAVProvider("x", "", {"url": "ftp://h/"})
    with pytest.raises(UsageError):
        WebDAVProvider("x", "", {"url": "http://h/", "mtime_method": "touch"})


@pytest.mark.parametrize(
    ("option", "value"),
    [
        ("preset", "dropbox"),
        ("mtime_method", "touch"),
        ("verify_tls", "maybe"),
        ("max_connections", "0"),
        ("max_connections", "many"),
        ("timeout", "soon"),
        ("page_size", "0"),
        ("colour", "blue"),
    ],
)
def test_bad_option_values_are_refused_naming_the_option(option: str, value: str) -> None:
    with pytest.raises(UsageError, match=option):
        WebDAVProvider("x", "", {"url": "http://h/", option: value})


def test_options_arrive_typed_with_their_defaults() -> None:
    p = WebDAVProvider(
        "t",
        "",
        {"url": "http://h/", "verify_tls": "false", "timeout": "2.5", "max_connections": "4"},
    )
    assert {k: p.conf[k] for k in ("verify_tls", "timeout", "max_connections", "preset")} == {
        "verify_tls": False,
        "timeout": 2.5,
        "max_connections": 4,
        "preset": "generic",
    }
    client = p._dav.http()
    assert client.timeout.read == 2.5
    defaults = WebDAVProvider("d", "", {"url": "http://h/"}).conf
    assert (defaults["verify_tls"], defaults["timeout"], defaults["max_connections"]) == (
        True,
        60.0,
        16,
    )
    p.close()


def test_credentials_in_the_url_are_moved_out_of_it() -> None:
    p = WebDAVProvider("c", "", {"url": "https://bob:s3cret@h/dav"})
    assert p.url == "https://h/dav"
    assert "s3cret" not in repr(p) and "s3cret" not in p.url
    assert p.secrets["password"] == "s3cret"
    assert "s3cret" not in repr(p._dav.settings)


def test_href_quoting_round_trip() -> None:
    names = [
        "a b",
        "a#b",
        "100% sure",
        "what?",
        "a:b",
        "a%41b%2Fc",
        "日本語",
        "smile 😀",
        "a&b=c;d",
        'it\'s "q"',
        "[x]+~",
    ]
    for name in names:
        quoted = quote_path(f"dir/{name}")
        assert quoted.startswith("dir/") and "/" not in quoted[4:]
        assert not set(quoted[4:]) & set(" #%?:&=;'\"[]+") - {"%"}
        assert href_path("/dav/" + quoted) == f"/dav/dir/{name}"
        # absolute hrefs, a collection's trailing slash and doubled slashes are read alike
        assert href_path(f"http://h:1/dav//{quoted}/") == f"/dav/dir/{name}"
    assert quote_path("é") == "%C3%A9"  # UTF-8, as servers expect


# --- against the servers -----------------------------------------------------------------------
def test_wrong_password_is_auth_error(webdav_server: WebDAVServer) -> None:
    p = WebDAVProvider(
        "t",
        "x",
        {"url": webdav_server.url, "username": webdav_server.username},
        {"password": "wrong"},
    )
    try:
        auth_refused(p.check, "wrong")
        auth_refused(lambda: p.put_stream(stream(b"x"), "f"), "wrong")
    finally:
        p.close()


def test_closed_port_is_unavailable_and_retryable() -> None:
    p = WebDAVProvider(
        "t", "", {"url": f"http://127.0.0.1:{free_port()}/", "timeout": 5}, {"password": "p"}
    )
    try:
        unavailable(lambda: p.stat("f"))
    finally:
        p.close()


def test_missing_base_url_is_not_found_naming_it(webdav_server: WebDAVServer) -> None:
    cfg = provider_config(webdav_server)
    url = webdav_server.url + "/no-such-account"
    p = WebDAVProvider("t", "", {**cfg["options"], "url": url}, cfg["secrets"])
    try:
        with pytest.raises(NotFound, match="no-such-account"):
            p.check()
    finally:
        p.close()


@pytest.mark.parametrize("flavour", ["webdav_server", "webdav_oc_server"])
def test_put_onto_a_directory_keeps_the_tree(flavour: str, request: pytest.FixtureRequest) -> None:
    # MOVE with Overwrite: T onto a collection would delete the whole tree under it
    server: WebDAVServer = request.getfixturevalue(flavour)
    p = make(server)
    try:
        p.put_stream(stream(b"keep"), "d/inner")
        with pytest.raises(IsADirectoryError):
            p.put_stream(stream(b"x"), "d", 1)
        with pytest.raises(IsADirectoryError):
            p.delete("d")
        p.put_stream(stream(b"y"), "other")
        with pytest.raises(IsADirectoryError):
            p.move("other", "d")
        assert p.read_bytes("d/inner") == b"keep"
        with pytest.raises(NotADirectoryError):  # a file where a parent should be
            p.put_stream(stream(b"z"), "other/z", 1)
        with pytest.raises(NotADirectoryError):
            p.mkdir("other/sub/deeper")
    finally:
        p.delete_tree("")
        p.close()


def test_stale_collection_cache_recovers(webdav_server: WebDAVServer) -> None:
    # another client removed a directory this process had created: puts must still work
    p = make(webdav_server)
    other = WebDAVProvider("o", p.root, p.opts, p.secrets)
    try:
        p.put_stream(stream(b"1"), "a/b/f1", 1)
        other.delete_tree("a")
        p.put_stream(stream(b"2"), "a/b/f2", 1)  # one piece: sent again after the 409
        p.put_stream(stream(b"3" * 3_000_000), "a/c/f3")  # streamed: MKCOLs, then one PUT
        other.delete_tree("a")
        p.put_stream(stream(b"4"), "a/b/f4")  # size unknown but short: one piece, sent again
        assert p.read_bytes("a/b/f4") == b"4"
        other.delete_tree("a")
        with pytest.raises(Conflict) as err:  # a long unseekable stream cannot be sent again
            p.put_stream(stream(b"5" * 3_000_000), "a/b/f5")
        assert err.value.retryable
        p.put_stream(stream(b"5" * 3_000_000), "a/b/f5")  # the retry works
        assert p.stat("a/b/f5").size == 3_000_000
    finally:
        p.delete_tree("")
        p.close()
        other.close()


@pytest.mark.parametrize(
    ("flavour", "mangles"), [("webdav_server", True), ("webdav_oc_server", False)]
)
def test_destination_bug_is_probed_and_worked_around(
    flavour: str, mangles: bool, request: pytest.FixtureRequest
) -> None:
    # wsgidav 4.4 decodes Destination before splitting off "?query" and ";params", so a MOVE
    # to "a?b" lands on "a". The provider probes this once and writes such names in place.
    p = make(request.getfixturevalue(flavour))
    try:
        p.put_stream(stream(b"innocent"), "what", 8)
        p.put_stream(stream(b"q"), "what?", 1)
        assert p._dav.mangles_destination is mangles
        p.copy("what?", "copy;1")
        p.move("copy;1", "d#/moved?")
        assert (p.read_bytes("what"), p.read_bytes("what?"), p.read_bytes("d#/moved?")) == (
            b"innocent",
            b"q",
            b"q",
        )
        assert kinds(p, "", recursive=True) == {
            "what": "file",
            "what?": "file",
            "d#": "dir",
            "d#/moved?": "file",
        }
    finally:
        p.delete_tree("")
        p.close()


def test_parallel_puts_make_each_collection_once(webdav_server: WebDAVServer) -> None:
    # wsgidav answers 500 to a MKCOL racing another one; one MKCOL per collection avoids that
    p = make(webdav_server, max_connections=8)
    made: list[str] = []
    p._dav.http().event_hooks["request"].append(
        lambda req: made.append(req.url.path) if req.method == "MKCOL" else None
    )
    try:
        with ThreadPoolExecutor(8) as pool:
            list(pool.map(lambda i: p.put_stream(stream(b"x"), f"x/y/z/f{i}", 1), range(32)))
        assert sorted(made) == sorted(set(made)) and len(made) == 4  # root, x, x/y, x/y/z
        assert len(list(p.list("x/y/z"))) == 32
    finally:
        p.delete_tree("")
        p.close()
