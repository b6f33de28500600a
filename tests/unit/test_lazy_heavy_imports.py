"""The workers of a FastAGI `hotline serve` do not import the report exporters or aiohttp at
start (issue 13, memory: openpyxl + reportlab + PIL ~16 MB, aiohttp ~10 MB of RSS each); the
forwarder posts with its own HTTP client."""

from __future__ import annotations

import subprocess
import sys

HEAVY = ("openpyxl", "reportlab", "PIL", "aiohttp")


def test_worker_modules_import_no_exporters_nor_http_client() -> None:
    code = (
        "import sys, service.serve, service.agi, reports.documents, bad_ratings.worker, "
        "ivr.call_ledger, forwarder.worker\n"
        f"print(','.join(m for m in {HEAVY!r} if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.strip()
    assert out == ""


def test_render_still_imports_its_exporter_when_asked() -> None:
    code = (
        "import sys\nfrom reports import service\n"
        "assert 'openpyxl' not in sys.modules\n"
        "try:\n    service.render(None, 'xlsx', 'figures', [])\nexcept Exception:\n    pass\n"
        "print('openpyxl' in sys.modules)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.strip()
    assert out == "True"
