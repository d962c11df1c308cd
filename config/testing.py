"""A pytest plugin loaded first (``-p config.testing``): keeps tests off the dev data.

Each test run gets its own folder ``var/test/run-<pid>`` (database, broker, media), so
the suite never touches ``make run``'s database, a running dev worker never sees test
tasks, and two test runs on one machine do not share a database or a broker. The folder
is removed when the run ends.
"""

import os
import shutil
from pathlib import Path

_root = Path(__file__).resolve().parent.parent
_run_dir = _root / "var" / "test" / f"run-{os.getpid()}"
# A folder set by a parent test process (pytest-xdist's controller) is not ours to share:
# each test process gets its own. A folder set by the caller (CONCORD_VAR_DIR) is kept.
_owns_run_dir = "CONCORD_VAR_DIR" not in os.environ or "CONCORD_TEST_RUN_OWNER" in os.environ
if _owns_run_dir:
    os.environ["CONCORD_VAR_DIR"] = str(_run_dir)
    os.environ["CONCORD_TEST_RUN_OWNER"] = str(os.getpid())
    os.environ["CONCORD_QUEUE"] = f"concord-test-{os.getpid()}"
    os.environ["CONCORD_CACHE_PREFIX"] = f"concord-test-{os.getpid()}"
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
# Tests split projects of a few items into chunks (the production minimum is 1000).
os.environ.setdefault("CONCORD_AGREEMENT_MIN_CHUNK_ITEMS", "1")
# Tests render templates without running collectstatic first.
os.environ.setdefault("CONCORD_STATIC_MANIFEST", "0")


def pytest_unconfigure(config):
    if _owns_run_dir:
        shutil.rmtree(_run_dir, ignore_errors=True)
