"""The ResultWriter's process (actors/writer.py): what it imports."""

import subprocess
import sys

from tests.conftest import ROOT


def test_the_results_writer_process_imports_neither_torch_nor_transformers():
    """A sweep starts one ResultWriter process per variant it opens, on its critical path. Through the record keys
    it imported torch (2.6 s on this CPU); a finished variant of a resumed sweep took 3.2-5.8 s on 4 x H200."""
    script = "import sys, actors.writer; print(sorted(m for m in ('torch', 'transformers') if m in sys.modules))"
    imported = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, check=True)
    assert imported.stdout.strip() == "[]"
