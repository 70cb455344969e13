"""NeuronLab: find, look at, switch and move the safety neurons of Hugging Face causal LMs."""
from .errors import ModelSpecError
from .interventions import Intervention, intervene
from .loading import LoadedModel, ModelInfo, fingerprint, load_model
from .neurons import Neuron, NeuronSet, NeuronSetError, load_neuron_set
from .sites import SITES, Architecture, architecture_of

__all__ = [
    "SITES", "Architecture", "Intervention", "LoadedModel", "ModelInfo", "ModelSpecError", "Neuron",
    "NeuronSet", "NeuronSetError", "architecture_of", "fingerprint", "intervene", "load_model",
    "load_neuron_set",
]
