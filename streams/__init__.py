"""streams: an event-stream log and metrics processor."""

from pathlib import Path

__version__ = "0.1.0"

# Data folders live beside the package in the source tree (installed editable).
PROJECT_ROOT = Path(__file__).resolve().parent.parent
PATTERNS_DIR = PROJECT_ROOT / "patterns"
SAMPLES_DIR = PROJECT_ROOT / "samples"
