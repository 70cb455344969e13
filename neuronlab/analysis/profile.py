"""What one neuron does: its activations per language and label, the prompts and tokens it fires on, and the
tokens it writes toward (logit lens).

The statistics and the top prompts are slices of an ``ActivationPass`` (``activations.activation_pass``):
no forward pass per neuron. Only the per-token activations of the few top prompts take a small pass over
those prompts, with one hook, stopped at the neuron's layer (``tokens="none"`` skips it).

Logit lens: the neuron's output direction d (its down_proj column for ``mlp``, its o_proj column for
``attn_o``) read as if it were the whole residual stream: logits = unembed(norm(d)) - unembed(norm(0)).
The model's own final-norm module is called on d, so every family's convention holds (Llama's w·x/rms(x),
Gemma's (1+w)·x/rms(x), GPT-2's centred LayerNorm); subtracting the image of 0 removes the norm's and the
unembedding's biases, which do not depend on the neuron. The norm rescales d to unit RMS, so logits are
comparable between neurons; the ranking is that of the direction alone, not of the activation's size.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field

import torch

from neuronlab.analysis.activations import ActivationPass
from neuronlab.data.prompts import LABELS
from neuronlab.models.generation import encode_prompts
from neuronlab.models.loading import LoadedModel
from neuronlab.neurons.interventions import scoped_hooks
from neuronlab.neurons.sets import Neuron, NeuronSet
from neuronlab.neurons.sites import final_norm, output_direction

QUANTILES = (0.05, 0.25, 0.5, 0.75, 0.95)
MEASURES = ("last", "max")  # last prompt token; highest over the prompt's own tokens
TOKEN_CHOICES = ("top", "both", "none")  # which prompts' per-token activations a profile computes


@dataclass(frozen=True)
class Stats:
    """Summary of one neuron's activations on a group of prompts (std with n - 1; 0 for one prompt)."""

    n: int
    mean: float
    std: float
    q05: float
    q25: float
    q50: float
    q75: float
    q95: float

    @classmethod
    def of(cls, values: torch.Tensor) -> Stats:  # values [n]
        v = values.double()
        if not len(v):
            return cls(0, *[float("nan")] * 7)
        q = torch.quantile(v, torch.tensor(QUANTILES, dtype=torch.float64)).tolist()
        return cls(len(v), float(v.mean()), float(v.std()) if len(v) > 1 else 0.0, *q)


@dataclass
class PromptHit:
    """A prompt the neuron fires on (or against): its highest (lowest) activation over its own tokens, the
    token there (``readable_token``) and its position among the templated tokens; ``last`` the last-token
    activation. ``tokens``/``values``: every templated token (``token_text``) and the neuron's activation
    there (from ``start`` on, the prompt's own tokens), when the token pass ran for this prompt."""

    id: str
    lang: str
    label: str
    text: str
    value: float
    token: str
    position: int
    last: float
    start: int
    tokens: list[str] | None = None
    values: list[float] | None = None


@dataclass(frozen=True)
class LensToken:
    id: int
    token: str
    logit: float


@dataclass
class NeuronProfile:
    """One neuron's profile. ``stats[lang][label][measure]`` with measure "last" or "max" (see MEASURES);
    ``top``: prompts by highest activation, ``negative``: by lowest; ``promoted`` / ``suppressed``: the
    logit lens's highest and lowest tokens (empty for sites that write no direction)."""

    neuron: Neuron
    model: str
    fingerprint: str
    n_prompts: int
    stats: dict[str, dict[str, dict[str, Stats]]]
    top: list[PromptHit]
    negative: list[PromptHit]
    promoted: list[LensToken] = field(default_factory=list)
    suppressed: list[LensToken] = field(default_factory=list)

    def to_dict(self) -> dict:
        """Plain JSON types only (``json.dumps`` works; NaN for an empty group)."""
        return {"neuron": dict(self.neuron._asdict()), "model": self.model, "fingerprint": self.fingerprint,
                "n_prompts": self.n_prompts,
                "stats": {lang: {label: {m: asdict(s) for m, s in by.items()} for label, by in labels.items()}
                          for lang, labels in self.stats.items()},
                "top": [asdict(h) for h in self.top], "negative": [asdict(h) for h in self.negative],
                "promoted": [asdict(t) for t in self.promoted], "suppressed": [asdict(t) for t in self.suppressed]}


def token_text(lm: LoadedModel, token_id: int) -> str:
    """A token as text (a byte-level piece of a longer character may show as �)."""
    return lm.tokenizer.decode([int(token_id)])


def readable_token(lm: LoadedModel, ids: Sequence[int], position: int) -> str:
    """Token ``position`` of ``ids`` as text; a byte piece of a longer character (a Chinese character is
    often two or three byte tokens) is widened to the fewest neighbours that decode to whole characters."""
    for width in range(4):
        for before in range(width + 1):
            lo, hi = position - before, position + width - before + 1
            if lo >= 0 and hi <= len(ids) and "\ufffd" not in (text := lm.tokenizer.decode(list(ids[lo:hi]))):
                return text
    return token_text(lm, ids[position])


def logit_lens(lm: LoadedModel, neuron: Neuron, k: int = 10) -> tuple[list[LensToken], list[LensToken]]:
    """The ``k`` tokens the neuron's output direction raises most and lowers most (see the module doc)."""
    layer, site, index = neuron
    norm, unembed = final_norm(lm.model), lm.model.get_output_embeddings()
    weight = next(norm.parameters(), None)
    device = weight.device if weight is not None else lm.device
    d = output_direction(lm.model, layer, site, index).to(device)  # [hidden]
    with torch.inference_mode():
        both = torch.stack([d, torch.zeros_like(d)])[:, None]  # [2, 1, hidden]: d and 0
        normed = norm(both.to(weight.dtype if weight is not None else d.dtype))
        logits = unembed(normed.to(unembed.weight.device, unembed.weight.dtype)).float()[:, 0]  # [2, vocab]
        logits = logits[0] - logits[1]  # [vocab]
    k = min(k, logits.shape[0])
    top, bottom = logits.topk(k), logits.topk(k, largest=False)
    return ([LensToken(int(i), token_text(lm, i), float(v)) for v, i in zip(*top)],
            [LensToken(int(i), token_text(lm, i), float(v)) for v, i in zip(*bottom)])


class _Enough(Exception):
    """Raised by the token pass's hook once it has the neuron's activations: the forward pass stops there."""


def token_activations(lm: LoadedModel, texts: Sequence[str], neuron: Neuron,
                      batch_size: int = 8) -> list[tuple[list[int], list[float]]]:
    """(token ids, the neuron's activation at each) for every chat-templated prompt in ``texts``: one
    forward pass per batch with one hook on the neuron's module, stopped at that module."""
    layer, site, index = neuron
    s = lm.arch.sites[site]
    module = lm.arch.module(lm.model, layer, site)
    seen: list[torch.Tensor] = []

    def keep(x: torch.Tensor) -> None:  # x [batch, seq, width]
        seen.append(x[..., s.offset + index].float().cpu())  # [batch, seq]
        raise _Enough  # the layers above are not needed

    out = []
    with scoped_hooks([(module, s.port, keep)]), torch.inference_mode():
        for first in range(0, len(texts), batch_size):
            batch = encode_prompts(lm, list(texts[first:first + batch_size]))
            seen.clear()
            try:
                lm.model.base_model(**batch)
            except _Enough:
                pass
            mask = batch["attention_mask"].bool().cpu()  # [batch, seq]
            ids = batch["input_ids"].cpu()
            for row in range(mask.shape[0]):
                out.append((ids[row, mask[row]].tolist(), seen[0][row, mask[row]].tolist()))
    return out


def _hits(lm: LoadedModel, acts: ActivationPass, neuron: Neuron, rows: list[int], kind: str) -> list[PromptHit]:
    value, at, last = acts.column(kind, neuron), acts.column(f"arg{kind}", neuron), acts.column("last", neuron)
    hits = []
    for r in rows:
        p, pos = acts.prompts[r], int(at[r])
        peak = readable_token(lm, acts.token_ids(r), pos)
        hits.append(PromptHit(p.id, p.lang, p.label, p.text, float(value[r]), peak, pos, float(last[r]), acts.start(r)))
    return hits


def profile_neuron(lm: LoadedModel, acts: ActivationPass, neuron: Neuron | tuple, top_k: int = 5,
                   lens_k: int = 10, tokens: str = "top", batch_size: int = 8) -> NeuronProfile:
    """The profile of ``neuron`` (layer, site, index) from the pass ``acts`` of ``lm``'s prompts. ``tokens``:
    the per-token activations of the "top" prompts, of "both" the top and the most negative ones (one small
    forward pass, up to the neuron's layer), or "none" (no forward pass at all)."""
    if tokens not in TOKEN_CHOICES:
        raise ValueError(f"tokens is one of {', '.join(TOKEN_CHOICES)}, not {tokens!r}")
    neuron = Neuron(*neuron)
    if acts.fingerprint != lm.info.fingerprint:
        raise ValueError(f"this activation pass is of the model with fingerprint {acts.fingerprint}, "
                         f"not {lm.spec} ({lm.info.fingerprint})")
    NeuronSet([neuron]).validate(lm.arch)  # NeuronSetError naming what the model does not have
    values = {m: acts.column(m, neuron) for m in MEASURES}  # [prompts] each
    langs = list(dict.fromkeys(p.lang for p in acts.prompts))
    present = list(dict.fromkeys(p.label for p in acts.prompts))  # a function's labels, refusal's in LABELS order
    labels = [label for label in LABELS if label in present] + [label for label in present if label not in LABELS]
    stats = {lang: {label: {m: Stats.of(values[m][acts.rows(lang, label)]) for m in MEASURES} for label in labels}
             for lang in langs}
    k = min(top_k, len(acts))
    top = _hits(lm, acts, neuron, values["max"].topk(k).indices.tolist(), "max")
    negative = _hits(lm, acts, neuron, acts.column("min", neuron).topk(k, largest=False).indices.tolist(), "min")
    chosen = {"top": top, "both": top + negative, "none": []}[tokens]
    if chosen:
        shown = list(dict.fromkeys(h.text for h in chosen))
        per_text = dict(zip(shown, token_activations(lm, shown, neuron, batch_size)))
        for h in chosen:
            ids, vals = per_text[h.text]
            h.tokens, h.values = [token_text(lm, i) for i in ids], vals
    promoted, suppressed = [], []
    if lm.arch.sites[neuron.site].port == "input":  # mlp, attn_o: a direction written into the residual stream
        promoted, suppressed = logit_lens(lm, neuron, lens_k)
    return NeuronProfile(neuron, lm.spec, lm.info.fingerprint, len(acts), stats, top, negative, promoted, suppressed)
