"""SPD of TMS targets end to end: train the targets, decompose them in one batch, store the result.

The entry point of ``workbench spd`` and of ``benchmarks/spd_table.py``: targets are trained in the
paper's setting (:func:`~workbench.superposition.spd.train_targets`, one instance per seed), all
seeds are decomposed as one batched program (:func:`~workbench.superposition.spd.spd`) and the
decomposition is stored in the run store as the artifact ``spd/<name>`` (zarr), so the notebook,
the dashboard and later sessions can open it without recomputing.
"""
from __future__ import annotations

from dataclasses import replace

import xarray as xr

from workbench.store import RunStore
from workbench.superposition.spd import ProgressFn, SPDConfig, spd, train_targets
from workbench.superposition.spd_measures import summary
from workbench.validation import check_range

ARTIFACT_KIND = "spd"


def artifact_name(n_features: int, n_hidden: int, identity: bool, seeds: int, config: SPDConfig) -> str:
    """``tms_5-2[_id]_s3_C20_40000steps_b4096``: the variant, seeds and the settings that change the result."""
    variant = f"tms_{n_features}-{n_hidden}{'_id' if identity else ''}"
    return f"{variant}_s{seeds}_C{config.C}_{config.steps}steps_b{config.batch_size}_seed{config.seed}"


def decompose_tms(n_features: int, n_hidden: int, *, seeds: int = 3, identity: bool = False,
                  store: RunStore | None = None, target_steps: int = 10_000, progress: bool | ProgressFn = False,
                  **overrides: object) -> xr.Dataset:
    """Train ``seeds`` TMS ``n_features``-``n_hidden`` targets and decompose them with SPD in one batch.

    ``overrides`` replace fields of :meth:`SPDConfig.paper` (e.g. ``steps``, ``batch_size``).
    Returns the decomposition (:func:`~workbench.superposition.spd.spd`) with the per-seed
    :func:`~workbench.superposition.spd_measures.summary` merged in (``mmcs``, ``ml2r``, ``alive``,
    ``identity_ci_error``); with a ``store`` it is saved as ``spd/<attrs['artifact']>``.
    """
    check_range(n_features, "n_features", 1)
    check_range(n_hidden, "n_hidden", 1)
    check_range(seeds, "seeds", 1)
    config = replace(SPDConfig.paper(n_features, n_hidden), **overrides)
    if config.C < n_features:   # fail before the targets are trained
        raise ValueError(f"C={config.C} is smaller than the number of features {n_features}: "
                         "SPD needs at least one subcomponent per feature")
    targets = train_targets(n_features, n_hidden, seeds, steps=target_steps, seed=config.seed,
                            feature_probability=config.feature_probability)
    ds = spd(targets, identity=identity, config=config, progress=progress)
    ds = ds.merge(summary(ds))
    ds.attrs.update(n_features=n_features, n_hidden=n_hidden, target_steps=target_steps,  # spd() stored the config
                    artifact=artifact_name(n_features, n_hidden, identity, seeds, config))
    if store is not None:
        store.save_artifact(ARTIFACT_KIND, ds.attrs["artifact"], ds)
    return ds
