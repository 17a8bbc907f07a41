"""streams: an event-stream log and metrics processor."""

from pathlib import Path

__version__ = "0.1.0"

# Data folders live beside the package in the source tree (installed editable); a wheel
# carries patterns/ inside the package (pyproject.toml).
PROJECT_ROOT = Path(__file__).resolve().parent.parent
_PACKAGED_PATTERNS = Path(__file__).resolve().parent / "patterns"
PATTERNS_DIR = _PACKAGED_PATTERNS if _PACKAGED_PATTERNS.is_dir() else PROJECT_ROOT / "patterns"
SAMPLES_DIR = PROJECT_ROOT / "samples"
