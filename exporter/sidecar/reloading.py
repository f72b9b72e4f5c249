"""Reloading the settings of a running sidecar: on SIGHUP, and when the JOBSIGHT_CONFIG file's
content changes (a Kubernetes ConfigMap volume is updated in place, by a symlink swap, some
seconds to a minute after the ConfigMap itself).

A reload loads and validates every setting as a start would, and checks that only settings that
may change at run time changed (settings/reload.py). Then it puts them in force at once, keeping
the held states of the triggers whose settings did not change; or it keeps the running settings
and says why, once, in the log and in jobsight_config_last_reload_successful.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import time
from collections.abc import Callable
from pathlib import Path

from jobsight.settings import SettingError, SidecarSettings
from jobsight.settings.reload import changed_triggers, check_reload
from jobsight.sidecar.poller import Poller, ReloadStatus

log = logging.getLogger("jobsight.reload")
WATCH_EVERY = 5.0  # seconds between two looks at the configuration file's content


def file_digest(path: str) -> str | None:
    """The content's hash (None: unreadable now; a swap in progress, or the file removed)."""
    try:
        return hashlib.sha256(Path(path).read_bytes()).hexdigest()
    except OSError:
        return None


class Reloader:
    def __init__(
        self, poller: Poller, load: Callable[[], SidecarSettings], config_path: str = ""
    ) -> None:
        self.poller = poller
        self.load = load  # the start's own loading: the environment over the file, the flags
        self.config_path = config_path
        self._digest = file_digest(config_path) if config_path else None

    def reload(self, why: str) -> bool:
        """Loads, checks and applies the settings; True when they are now in force."""
        old = self.poller.settings
        if self.config_path:  # this content is the one loaded: the watch need not load it again
            self._digest = file_digest(self.config_path)
        try:
            new = self.load()
            changed = check_reload(old, new)
        except SettingError as exc:
            log.error("reload (%s) refused, the running settings stay: %s", why, exc)
            self.poller.state.reload = ReloadStatus(False, self.poller.state.reload.success_at)
            self.poller.state.touch()
            return False
        retuned = changed_triggers(old, new)
        self.poller.reconfigure(new, retuned)
        if new.log_level != old.log_level:
            logging.getLogger().setLevel(new.log_level.upper())
        self.poller.state.reload = ReloadStatus(True, time.time())
        self.poller.state.touch()
        trigger_names = f"triggers ({', '.join(sorted(retuned))})"
        named = [trigger_names if c == "triggers" else c for c in changed]
        log.info("reloaded (%s): %s", why, ", ".join(named) if named else "nothing changed")
        return True

    async def watch(self, stop: asyncio.Event, every: float = WATCH_EVERY) -> None:
        """Reloads when the configuration file's content changes (a file that cannot be read for
        a moment is looked at again, not reloaded)."""
        if not self.config_path:
            return
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), every)
            digest = file_digest(self.config_path)
            if digest is not None and digest != self._digest:
                self._digest = digest
                self.reload(f"{self.config_path} changed")
