"""The notebook harness' limits: an output-size cap per notebook and a wall-clock limit."""
from __future__ import annotations

import json

import nbformat
import pytest

from tests.notebooks.conftest import check_output_size, execute


def notebook(path, *sources):
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell("quick = False\noutput_dir = '.'", metadata={"tags": ["parameters"]}),
                *(nbformat.v4.new_code_cell(s) for s in sources)]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, path)
    return path


def test_outputs_over_the_cap_fail_naming_the_largest_cell(tmp_path):
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell("print('small')"), nbformat.v4.new_code_cell("print('x' * 3_000_000)")]
    nb.cells[0].outputs = [nbformat.v4.new_output("stream", name="stdout", text="small\n")]
    nb.cells[1].outputs = [nbformat.v4.new_output("stream", name="stdout", text="x" * 3_000_000)]
    path = tmp_path / "big.ipynb"
    path.write_text(json.dumps(nb))
    check_output_size(path, cap=4 * 2**20)  # under the cap: fine
    expected = r"outputs hold 2\.9 MiB, over the cap of 1\.0 MiB; largest: cell 1 \(2\.9 MiB\)\. "
    with pytest.raises(AssertionError, match=expected):
        check_output_size(path, cap=2**20)


def test_a_notebook_past_its_wall_clock_limit_fails(tmp_path):
    source = notebook(tmp_path / "slow.ipynb", "import time\ntime.sleep(30)")
    (tmp_path / "run").mkdir()
    with pytest.raises(Exception, match="(?i)timed? ?out|timeout"):
        execute(source, tmp_path / "run", timeout=300, wall=3)


def test_a_noisy_notebook_is_refused_by_the_output_cap(tmp_path):
    source = notebook(tmp_path / "noisy.ipynb", "print('y' * 2_000_000)")
    (tmp_path / "run").mkdir()
    expected = r"outputs hold 1\.9 MiB, over the cap of 1\.0 MiB; largest: cell 2 \(1\.9 MiB\)\. "  # 1: papermill's
    with pytest.raises(AssertionError, match=expected):
        execute(source, tmp_path / "run", wall=120, output_cap=2**20)
