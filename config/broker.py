"""kombu's filesystem transport with messages published atomically.

The embedded default's broker is a folder (no server to install). kombu's own
``filesystem`` transport creates the message file under its final name and then writes
it; a worker polling the folder can take the file in between and read nothing, and the
``JSONDecodeError`` that follows stops the worker ("Unrecoverable error"): seen in CI
when a beat message was published while the worker polled. Here a message is written
under a name the reader ignores and renamed to its final name once complete (a rename
within one folder is atomic on POSIX and Windows), so a reader only ever sees whole
messages. Everything else (ordering by the millisecond prefix, the processed folder,
fanout) is kombu's. Selected by the URL ``concordfs://`` (the alias is registered when
this module is imported, which ``config.celery`` does in every process).
"""

from __future__ import annotations

import contextlib
import os
import uuid
from pathlib import Path
from time import monotonic

from kombu.exceptions import ChannelError
from kombu.transport import TRANSPORT_ALIASES, filesystem
from kombu.utils.encoding import str_to_bytes
from kombu.utils.json import dumps


def folder_transport_options(base: Path) -> dict:
    """Transport options of a broker living in folder ``base`` (subfolders created):
    messages in and out of ``out``, processed ones not kept, fanout in ``control``."""
    for sub in ("out", "processed", "control"):
        (base / sub).mkdir(parents=True, exist_ok=True)
    return {
        "data_folder_in": str(base / "out"),
        "data_folder_out": str(base / "out"),
        "processed_folder": str(base / "processed"),
        "control_folder": str(base / "control"),
        "store_processed": False,
    }


# A reader takes "<ms>_<uuid>.<queue>.msg" files; this prefix and suffix never match.
PARTIAL_SUFFIX = ".partial"


class Channel(filesystem.Channel):
    def _put(self, queue, payload, **kwargs):
        """Put ``payload`` onto ``queue``: written in full, then made visible."""
        name = f"{int(round(monotonic() * 1000))}_{uuid.uuid4()}.{queue}.msg"
        final = os.path.join(self.data_folder_out, name)
        partial = os.path.join(self.data_folder_out, f"_{uuid.uuid4().hex}{PARTIAL_SUFFIX}")
        try:
            with open(partial, "wb", buffering=0) as f:
                f.write(str_to_bytes(dumps(payload)))
            os.replace(partial, final)
        except OSError as exc:
            with contextlib.suppress(OSError):
                os.remove(partial)
            raise ChannelError(f"Cannot add file {final!r} to directory") from exc


class Transport(filesystem.Transport):
    Channel = Channel


SCHEME = "concordfs"
TRANSPORT_ALIASES.setdefault(SCHEME, f"{__name__}:Transport")
