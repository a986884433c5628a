"""Input checks shared by the figure builders."""
from __future__ import annotations

import xarray as xr


def require_vars(ds: object, names: tuple[str, ...], what: str) -> None:
    """Raise TypeError unless ``ds`` is a Dataset, ValueError naming the missing ``names``; ``what``
    says which producer's output was expected (e.g. ``"trajectory_spectrum()"``)."""
    if not isinstance(ds, xr.Dataset):
        raise TypeError(f"ds must be an xarray.Dataset ({what}), got {type(ds).__name__}")
    missing = [n for n in names if n not in ds.variables]
    if missing:
        raise ValueError(f"ds lacks {missing} ({what})")
