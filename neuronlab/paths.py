"""Where NeuronLab's bundled files live: the one ``assets`` root every module reads from."""
from pathlib import Path

ASSETS = Path(__file__).resolve().parent.parent / "assets"
