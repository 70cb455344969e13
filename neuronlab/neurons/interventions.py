"""Live interventions: switch neurons off, scale them up, or set them, for the duration of a block.

``with intervene(model, [Intervention(neurons, "suppress")]): model(...)`` adds one hook per touched
module on entry and removes every one on exit (exceptions included). The hooks act only in the context
that entered the block (a ContextVar), so two threads sharing one model each see only their own
interventions, and no hook outlives its block.
"""
from __future__ import annotations

import contextvars
import weakref
from collections import OrderedDict, defaultdict
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field

import torch
from torch import nn

from neuronlab.neurons.sets import Neuron, NeuronSet
from neuronlab.neurons.sites import architecture_of

MODES = ("suppress", "activate", "set", "mean")
DEFAULT_SCALE = 2.0

# The intervention keys active in the current context; hooks of other contexts pass through.
_ACTIVE: contextvars.ContextVar[frozenset] = contextvars.ContextVar("neuronlab_active", default=frozenset())


@dataclass(frozen=True)
class Intervention:
    """(neurons, mode, value): ``suppress`` sets activations to 0, ``activate`` multiplies them by
    ``value`` (default 2), ``set`` replaces them by ``value`` (a number, or {Neuron: number} per neuron);
    ``mean`` is ``set`` with each neuron's mean activation on reference prompts ({Neuron: number}, see
    ``effects.mean_ablation``)."""

    neurons: NeuronSet
    mode: str = "suppress"
    value: float | Mapping[Neuron, float] | None = None
    label: str = field(default="", compare=False)

    def __post_init__(self):
        if self.mode not in MODES:
            raise ValueError(f"unknown intervention mode {self.mode!r}; use one of {', '.join(MODES)}")
        if self.mode == "set" and self.value is None:
            raise ValueError("mode 'set' needs a value")
        if self.mode == "mean" and not isinstance(self.value, Mapping):
            raise ValueError("mode 'mean' needs {neuron: mean activation}; effects.mean_ablation computes it")
        if self.mode == "activate" and isinstance(self.value, Mapping):
            raise ValueError("mode 'activate' takes one scale factor")

    def values_for(self, neurons: Iterable[Neuron]) -> list[float]:
        """The number each neuron's activation is scaled by (activate) or set to (suppress, set)."""
        if self.mode == "suppress":
            return [0.0 for _ in neurons]
        if self.mode == "activate":
            scale = DEFAULT_SCALE if self.value is None else float(self.value)
            return [scale for _ in neurons]
        if isinstance(self.value, Mapping):
            return [float(self.value[n]) for n in neurons]
        return [float(self.value) for _ in neurons]


class _ChannelEdit:
    """Edits channels ``pos`` of the last dim of a tensor as x * scale + shift, with dense [width]
    vectors (one fused elementwise kernel; untouched channels are multiplied by exactly 1)."""

    def __init__(self, pos: list[int], values: list[float], scale: bool):
        self._pos = torch.tensor(pos, dtype=torch.long)  # [k]
        self._values = torch.tensor(values, dtype=torch.float32)  # [k]
        self._scale_only = scale or not any(values)  # no shift needed
        self._factor = self._values if scale else torch.zeros_like(self._values)
        self._dense: dict[tuple, tuple[torch.Tensor, torch.Tensor | None]] = {}

    def _vectors(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        key = (x.device, x.dtype, x.shape[-1])
        if key not in self._dense:
            scale = torch.ones(x.shape[-1]).index_copy(0, self._pos, self._factor)  # [width]
            shift = None if self._scale_only else torch.zeros(x.shape[-1]).index_copy(0, self._pos, self._values)
            self._dense[key] = (scale.to(x.device, x.dtype), None if shift is None else shift.to(x.device, x.dtype))
        return self._dense[key]

    def __call__(self, x: torch.Tensor) -> torch.Tensor:  # x [..., width]
        scale, shift = self._vectors(x)
        return x * scale if shift is None else torch.addcmul(shift, x, scale)


Hook = tuple[nn.Module, str, Callable[[torch.Tensor], "torch.Tensor | None"]]


def _register(module: nn.Module, port: str, fn: Callable, key: object):
    """Hook ``fn`` on the module's first input (port "input") or its output, active only under ``key``."""
    if port == "input":
        def pre_hook(_module, args):
            if key in _ACTIVE.get():
                out = fn(args[0])
                if out is not None:
                    return (out, *args[1:])
            return None
        return module.register_forward_pre_hook(pre_hook)

    def post_hook(_module, _args, output):
        return fn(output) if key in _ACTIVE.get() else None
    return module.register_forward_hook(post_hook)


@contextmanager
def scoped_hooks(hooks: Iterable[Hook]) -> Iterator[None]:
    """Register (module, port, fn) hooks for the block: ``fn`` sees the module's input or output and may
    return a replacement. They act only in the context that opened the block and are all removed on exit."""
    key = object()
    handles = []
    token = _ACTIVE.set(_ACTIVE.get() | {key})
    try:
        for module, port, fn in hooks:  # a generator: its errors also land in finally
            handles.append(_register(module, port, fn, key))
        yield
    finally:
        for h in handles:
            h.remove()
        _ACTIVE.reset(token)


def _compile(model: nn.Module, iv: Intervention) -> list[Hook]:
    """(module, port, edit) for every module the intervention touches."""
    arch = architecture_of(model)
    iv.neurons.validate(arch)
    by_module: dict[tuple[int, str, str], tuple[list[int], list[Neuron]]] = defaultdict(lambda: ([], []))
    for n in iv.neurons:
        site = arch.sites[n.site]
        pos, neurons = by_module[(n.layer, site.module, site.port)]
        pos.append(site.offset + n.index)
        neurons.append(n)
    return [(arch.layer(model, layer).get_submodule(module), port,
             _ChannelEdit(pos, iv.values_for(neurons), iv.mode == "activate"))
            for (layer, module, port), (pos, neurons) in by_module.items()]


# Compiled hooks per model, so re-entering a block with the same intervention costs only the hook
# registration (a chat turn or a benchmark enters it once per call). Bounded per model.
_COMPILED: "weakref.WeakKeyDictionary[nn.Module, OrderedDict]" = weakref.WeakKeyDictionary()
_COMPILED_PER_MODEL = 32


def _edits(model: nn.Module, interventions: Iterable[Intervention]) -> Iterator[Hook]:
    """(module, port, edit) for every module each intervention touches, in order."""
    cache = _COMPILED.setdefault(model, OrderedDict())
    for iv in interventions:
        try:
            key = hash(iv)
        except TypeError:  # a per-neuron value mapping: compile it each time
            yield from _compile(model, iv)
            continue
        if key not in cache or cache[key][0] != iv:
            cache[key] = (iv, _compile(model, iv))
            if len(cache) > _COMPILED_PER_MODEL:
                cache.popitem(last=False)
        cache.move_to_end(key)
        yield from cache[key][1]


def intervene(model: nn.Module, interventions: Iterable[Intervention] | Intervention = ()):
    """Context manager applying ``interventions`` (in order) to every forward pass of ``model`` inside
    the block. ``model`` may be a LoadedModel or a transformers model, dispatched over devices or not."""
    model = model if isinstance(model, nn.Module) else model.model
    if isinstance(interventions, Intervention):
        interventions = [interventions]
    return scoped_hooks(_edits(model, list(interventions)))
