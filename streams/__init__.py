"""streams: an event-stream log and metrics processor."""

from pathlib import Path

__version__ = "0.1.0"

# the data the package reads lives inside it (the top-level patterns/ and mappings/ of the
# source tree are links to these); the samples stay in the source tree
PROJECT_ROOT = Path(__file__).resolve().parent.parent
PATTERNS_DIR = Path(__file__).resolve().parent / "patterns"
SAMPLES_DIR = PROJECT_ROOT / "samples"
