"""The suite runs the tools of the environment it runs in, not a fixed `.venv` (issue 13, finding 12d)."""

import re
import sys
from pathlib import Path

from metro_assets_tests.ops import dagster_ui
from metro_assets_tests.ops.tools import tool

TESTS = Path(__file__).resolve().parents[1]


def test_tools_come_from_the_running_interpreters_environment():
    assert tool("dagster") == Path(sys.executable).parent / "dagster"
    assert dagster_ui.DAGSTER == tool("dagster")


def test_no_test_runs_a_tool_from_a_fixed_venv_path():
    fixed = re.compile(r"""["']\.venv["']|\.venv/bin""")
    offenders = [str(p.relative_to(TESTS)) for p in TESTS.rglob("*.py") if fixed.search(p.read_text())
                 and p.name != "test_tools.py"]
    assert offenders == []
