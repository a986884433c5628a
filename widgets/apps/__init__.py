"""One Panel page per lens plus the run browser; each module exposes ``page(store)``."""
from __future__ import annotations

from workbench.store import RunStore


def require_store(store: object) -> RunStore:
    """Return ``store`` if it is a :class:`RunStore`, else raise a TypeError naming what was passed."""
    if not isinstance(store, RunStore):
        raise TypeError(f"store must be a workbench.store.RunStore, got {type(store).__name__}")
    return store
