"""STYLE.md principle 10: the code is type-checked, and everything linted, in CI."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_mypy_passes() -> None:
    proc = subprocess.run([sys.executable, str(ROOT / "scripts" / "typecheck.py")], cwd=ROOT,
                          capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    # Both runs checked something: the import root and the Blender-side scripts.
    assert proc.stdout.count("Success: no issues found") == 2, proc.stdout


def test_pyflakes_passes() -> None:
    packages = ["tilefarm", "pipelines", "splitter", "renderer", "merger", "encoder", "bench",
                "tests", "scripts"]
    proc = subprocess.run([sys.executable, "-m", "pyflakes", *packages], cwd=ROOT,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
