"""The Koopman page: plain page logic (the page in Chromium: ``test_tour.py``)."""
from __future__ import annotations

import numpy as np
import pytest

from widgets.apps.koopman import (
    KoopmanPage,
    clip_settings,
    compute_view,
    koopman_runs,
    summary_line,
)
from workbench.koopman import DMD
from workbench.store import RunStore

pytestmark = pytest.mark.ui


def test_page_logic_without_browser(ui_data, ui_run_id):
    store = RunStore(ui_data)
    assert koopman_runs(store) == [ui_run_id]
    traj = store.open(ui_run_id).trajectory()
    n = traj.sizes["step"]
    s = clip_settings(n, window=20, rank=8, delays=1)
    assert s.window == min(20, n) and s.rank <= s.window - 2
    view = compute_view(traj, s)
    lam = (view["spectrum"].eig_real + 1j * view["spectrum"].eig_imag).values[-1]
    ref = DMD(s.rank, method="svd").fit(np.asarray(traj.values[-s.window:], dtype=np.float64))
    np.testing.assert_allclose(np.sort_complex(lam), np.sort_complex(ref.eigs_), atol=1e-6)
    page = KoopmanPage(store, threaded=False)
    assert page.run_id == ui_run_id and "reconstruction error" in page._status.object
    # the run is short: what was adapted is said, not done silently
    assert f"adapted to the run's {n} recorded trajectory steps" in page._status.object
    assert f"rank 8→{s.rank}" in page._status.object and f"window 20→{n}" in page._status.object
    assert "sketch coordinate" in page._panes["modes"].object.layout.xaxis.title.text
    bad = summary_line(ui_run_id, {**view, "reconstruction_error": 1.27}, s)
    assert "⚠️ relative reconstruction error 1.27 > 1" in bad
    assert "⚠️" not in summary_line(ui_run_id, {**view, "reconstruction_error": 0.2}, s)
    assert len(page._panes["eigs"].object.data[1].x) == s.rank
    with pytest.raises(ValueError, match="at least 3"):
        clip_settings(2, 20, 8, 1)
