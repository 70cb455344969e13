"""The models a long-lived host (the app) keeps loaded for all its callers: one ``HostedModel`` per
``ModelKey``, loaded once, the most recently loaded few kept."""
from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable
from typing import NamedTuple

from neuronlab.models.host import HostedModel
from neuronlab.models.loading import LoadedModel, load_model
from neuronlab.progress import Progress, no_progress


class ModelKey(NamedTuple):
    """Everything a loaded model depends on; one loaded model per key."""

    spec: str
    dtype: str = "float32"
    device: str = "cpu"
    trust_remote_code: bool = False


Loader = Callable[..., LoadedModel]  # load_model's signature: (spec, dtype, device, trust_remote_code, progress=)


class ModelRegistry:
    """Loaded models shared by every caller: one HostedModel per ModelKey, the ``size`` most recently loaded
    kept (the oldest is dropped first). Callers reach the weights only through ``HostedModel.use``."""

    def __init__(self, size: int = 4, loader: Loader = load_model):
        self._models: OrderedDict[ModelKey, HostedModel] = OrderedDict()
        self._lock = threading.Lock()
        self._size = size
        self._load = loader

    def get(self, key: ModelKey, progress: Progress = no_progress) -> HostedModel:
        """The model for ``key``, loaded on first use (one load at a time). Raises ModelSpecError."""
        if (shared := self._models.get(key)) is not None:
            return shared
        with self._lock:
            if key not in self._models:
                self._models[key] = HostedModel(self._load(key.spec, key.dtype, key.device, key.trust_remote_code,
                                                           progress=progress))
                while len(self._models) > self._size:
                    self._models.popitem(last=False)
            return self._models[key]

    def __contains__(self, key: ModelKey) -> bool:
        return key in self._models
