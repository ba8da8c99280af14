"""Hide installed modules from a test's subprocess, as if they were not installed.

Put this folder first on ``PYTHONPATH`` and list top-level module names in
``HEADWATER_TEST_HIDE`` (comma-separated): importing one of them, or asking
``importlib.util.find_spec`` for it, raises ``ModuleNotFoundError`` as a missing package does.
"""

import os
import sys

_HIDDEN = frozenset(name for name in os.environ.get("HEADWATER_TEST_HIDE", "").split(",") if name)


class _Hide:
    def find_spec(self, name, path=None, target=None):  # type: ignore[no-untyped-def]
        if name.split(".")[0] in _HIDDEN:
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None


if _HIDDEN:
    sys.meta_path.insert(0, _Hide())
