"""A pytest plugin loaded first (``-p config.testing``): keeps tests off the dev data.

Tests get their own ``var/test`` folder (database, broker, media), so running the suite
never touches ``make run``'s database and a running dev worker never sees test tasks.
"""

import os
from pathlib import Path

_root = Path(__file__).resolve().parent.parent
os.environ.setdefault("CONCORD_VAR_DIR", str(_root / "var" / "test"))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
