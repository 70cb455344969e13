"""Where NeuronLab reads and writes files: the one ``assets`` root every module reads bundled files from,
and the user's cache (converted models, scan parts)."""
import os
from pathlib import Path

ASSETS = Path(__file__).resolve().parent.parent / "assets"


def cache_root() -> Path:
    """``$NEURONLAB_CACHE``, else ``~/.cache/neuronlab``."""
    return Path(os.environ.get("NEURONLAB_CACHE") or Path.home() / ".cache" / "neuronlab")
