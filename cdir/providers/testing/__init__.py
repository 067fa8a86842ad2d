"""The conformance suite every provider passes (like rclone's fstests and fsspec's abstract tests).

A provider's test module is one class::

    import pytest
    from cdir.providers.local import LocalProvider
    from cdir.providers.testing import ProviderSuite

    class TestLocal(ProviderSuite):
        @pytest.fixture
        def provider(self, tmp_path):
            return LocalProvider("t", str(tmp_path))

The fixture contract:

- `provider` returns (or yields, then closes) a `Provider` whose root exists and is writable.
  It may be shared: the suite writes only below `<root>/<prefix><random>/`, one fresh directory
  per test, deleted after the test. To share one across tests, define the shared fixture at
  module level with scope="module"/"session" and let the class's `provider` return it (pytest 9
  deprecates class-scoped fixtures written as instance methods).
- The provider must be constructible as `type(p)(name, root, p.opts, p.secrets)` with a
  sub-path appended to `root` (used once, to test a fresh, empty root); else override
  `provider_at()`.
- Where the provider pages its listings, pass a small page size through its options, e.g.
  `options={"page_size": 7}`, so the listing tests span several pages (an option a provider
  does not declare is refused, so pass it only to providers that page).
- What is tested follows `provider.capabilities`, never the provider's kind: a test needing a
  feature the provider lacks is skipped with the flag in the reason; a flag that claims a
  feature is checked to work.

Class attributes a subclass may set: `large_file_size` (bytes, default 20 MiB),
`paging_files`/`paging_dirs` (entries in the paging test), `prefix` (name of the per-test
directories), `known_gaps` ({"test_name" or "test_name[id]": "why"}: a strict xfail, so gaps are
listed, not hidden, and a fix is noticed), `hash_functions` (hash kind → function of the bytes
giving the provider's lowercase-hex digest, for kinds beyond md5/sha1/sha256/sha512).

`AWKWARD_NAMES`, `stream()` (an unseekable, short-reading stream) and `listing()`/`kinds()`
are exported for a provider's own extra tests.
"""

import pytest

# Plain asserts in the suite then explain their failures as they do in test modules.
pytest.register_assert_rewrite("cdir.providers.testing.suite")

from cdir.providers.testing.data import AWKWARD_NAMES, HASH_FUNCTIONS, ChunkStream, stream  # noqa: E402
from cdir.providers.testing.suite import ProviderSuite, kinds, listing  # noqa: E402

__all__ = [
    "AWKWARD_NAMES",
    "HASH_FUNCTIONS",
    "ChunkStream",
    "ProviderSuite",
    "kinds",
    "listing",
    "stream",
]
