"""Live refresh: notice when another process changes the workspace or the config changes.

Only what must be watched is watched, and never recursively: every writer (a run, cron,
``lorchestra clean``) takes the lock in ``state/`` and records to ``state/lorch.sqlite``, so
the ``state`` folder alone says "the workspace changed"; the config file is watched through
its folder, filtered to that one file. Watching the vault recursively took seconds of
inotify set-up on a large workspace, and the config's folder recursively took minutes when
it was a big one. A watcher that fails says so (toast and header) instead of going quiet.
"""

from __future__ import annotations

from pathlib import Path

from watchfiles import Change, awatch

from engine.config.load import load
from engine.errors import ConfigError
from engine.store.fsutil import ensure_dir
from lorch_tui.host import Host


def watched_paths(host: Host) -> list[Path]:
    """The folders the watcher listens to (not recursively)."""
    return [host.ws.state, host.loaded.path.parent]


def watch_workspace(host: Host) -> None:
    """Rescan when another process changes the workspace; reload a changed config."""

    async def watcher() -> None:
        config_path = host.loaded.path
        state = host.ws.state

        def wanted(_change: Change, path: str) -> bool:
            p = Path(path)
            return p.parent == state or p == config_path

        try:
            ensure_dir(state)
            host.set_watch_state("live")
            async for changes in awatch(*map(str, watched_paths(host)), watch_filter=wanted,
                                        debounce=400, step=100, recursive=False):
                paths = {Path(p) for _, p in changes}
                if config_path in paths:
                    reload_config(host)
                if paths - {config_path}:
                    host.request_scan()
        except Exception as exc:  # noqa: BLE001 - any failure must be reported, not swallowed
            report_failure(host, exc)

    host.run_worker(watcher, group="watch", exclusive=True, exit_on_error=False)


def report_failure(host: Host, exc: BaseException) -> None:
    """Tell the user that live refresh stopped, and why (an OS reason, never data)."""
    reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else type(exc).__name__
    host.set_watch_state("live refresh OFF")
    host.notify(f"watching {host.ws.state} and {host.loaded.path} failed: {reason}. Changes made "
                "by other processes and config edits are no longer noticed; restart the dashboard "
                "(on Linux, a full inotify table: raise fs.inotify.max_user_watches).",
                title="live refresh stopped", severity="error", timeout=30, markup=False)


def reload_config(host: Host) -> None:
    """Load the config again; on error keep the old one and say why."""
    try:
        loaded = load(host.loaded.path, host.loaded.workspace)
    except ConfigError as exc:
        host.notify(exc.render(), title="config not reloaded: the old one stays in force",
                    severity="error", timeout=15, markup=False)
        return
    host.loaded = loaded
    cfg = loaded.config
    host.title = f"lorchestra · {cfg.pipeline.name} {cfg.pipeline.version}"
    reconfigure = getattr(host.engine, "reconfigure", None)
    if reconfigure is not None:
        reconfigure(loaded)
    host.notify(f"config reloaded: {len(loaded.config.extractors)} extractors")
    host.request_scan()
