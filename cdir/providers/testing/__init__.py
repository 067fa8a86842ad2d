"""The conformance suite every provider passes (like rclone's fstests and fsspec's abstract tests).

A provider's test module is one class::

    import pytest
    from cdir.providers.local import LocalProvider
    from cdir.providers.testing import ProviderSuite

    class TestLocal(ProviderSuite):
        @pytest.fixture
        def provider(self, tmp_path):
            return LocalProvider("t", str(tmp_path), {"page_size": 7})

The fixture contract:

- `provider` (any scope; a session-scoped one against a running server is fine) returns a
  `Provider` whose root exists and is writable, and closes it afterwards. The suite writes only
  below `<root>/<prefix><random>/`, one fresh directory per test, and deletes it after the test.
- Where the provider pages its listings, pass a small page size through its options, e.g.
  `options={"page_size": 7}`, so the listing tests span several pages (providers that do not
  page ignore the option).
- What is tested follows `provider.capabilities`, never the provider's kind: a test needing a
  feature the provider lacks is skipped with the flag in the reason; a flag that claims a
  feature is checked to work.

Class attributes a subclass may set: `large_file_size` (bytes, default 20 MiB),
`paging_files`/`paging_dirs` (entries in the paging test), `prefix` (name of the per-test
directories), `known_gaps` ({"test_name" or "test_name[id]": "why"}: a strict xfail, so gaps are
listed, not hidden, and a fix is noticed), `hash_functions` (hash kind → function of the bytes
giving the provider's lowercase-hex digest, for kinds beyond md5/sha1/sha256/sha512). Override
`provider_at()` if a provider's root is not a string that "/" extends with a sub-path.
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
