"""NeuronLab: find, look at, switch and move the safety neurons of Hugging Face causal LMs."""
from neuronlab.errors import ModelSpecError
from neuronlab.models.loading import LoadedModel, ModelInfo, load_model
from neuronlab.neurons.interventions import Intervention, intervene
from neuronlab.neurons.patches import fingerprint
from neuronlab.neurons.scores import Scores
from neuronlab.neurons.sets import Neuron, NeuronSet, NeuronSetError, load_neuron_set
from neuronlab.neurons.sites import SITES, Architecture, architecture_of

__all__ = [
    "SITES", "Architecture", "Intervention", "LoadedModel", "ModelInfo", "ModelSpecError", "Neuron",
    "NeuronSet", "NeuronSetError", "Scores", "architecture_of", "fingerprint", "intervene", "load_model",
    "load_neuron_set",
]
