"""STYLE.md principle 10: the pure code is type-checked, and everything linted, in CI."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_mypy_passes() -> None:
    proc = subprocess.run([sys.executable, "-m", "mypy", "--config-file", str(ROOT / "pyproject.toml")],
                          cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_pyflakes_passes() -> None:
    packages = ["pipelines", "splitter", "renderer", "merger", "encoder", "bench", "tests"]
    proc = subprocess.run([sys.executable, "-m", "pyflakes", *packages], cwd=ROOT,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
