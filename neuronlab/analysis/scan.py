"""Safety-neuron scans per language (Who Transfers Safety?, arXiv 2602.01283).

Per language and label (harmful / harmless) a scan scores every neuron (``scoring``); per layer the top
p% by importance form S(D) (``Scores.top_per_layer``); monolingual safety neurons MS = S(harmful) \\ S(harmless); shared safety
neurons SS(lang) = MS(high-resource) ∩ MS(lang) for every other language. Scores are cached on disk per
(model fingerprint, prompts, method, sites, settings), so a repeat scan is a cache hit and a changed prompt
set or model never is; after the user's cache, the results shipped for the built-in models
(``shipped.scan_part``, same keys) are looked up. Any behaviour scans the same way with its own two labels
(``labels``, the first being the behaviour's side): MS = S(first) \\ S(second).
"""
from __future__ import annotations

import functools
import hashlib
import json
import operator
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from neuronlab.analysis.scoring import ablation_scores, activation_scores, attribution_scores
from neuronlab.data import shipped
from neuronlab.data.prompts import PromptSet
from neuronlab.files import write_atomic
from neuronlab.models.loading import LoadedModel
from neuronlab.neurons.scores import Scores
from neuronlab.neurons.sets import NeuronSet
from neuronlab.neurons.sites import ATTN_SITES, SITES
from neuronlab.paths import cache_root
from neuronlab.progress import Progress, language_name, no_progress

METHODS = ("activation", "ablation", "attribution")
SITE_GROUPS = {"mlp": ("mlp",), "attn": ATTN_SITES, "all": SITES}
LABELS = ("harmful", "harmless")
HIGH_RESOURCE = "en"
DEFAULT_TOP_P = 0.03
CACHE_FORMAT = 1


@dataclass
class ScanResult:
    """Scores of one scan: ``importance[lang][label]`` and ``contrast[lang]`` (the first label minus the second,
    harmful minus harmless for refusal; for ``activation`` the difference of mean activations), each float32
    [layers, neurons] per site."""

    model: str
    fingerprint: str
    method: str
    sites: tuple[str, ...]
    importance: dict[str, dict[str, Scores]]
    contrast: dict[str, Scores]
    n_prompts: dict[str, dict[str, int]]
    settings: dict
    cache_hits: int = 0  # (language, label) parts read from the user's cache
    shipped: int = 0  # parts read from the results shipped in assets/results

    @property
    def languages(self) -> list[str]:
        return list(self.importance)

    @property
    def labels(self) -> tuple[str, ...]:
        """The function's two labels, the contrasted one first (harmful, harmless for refusal)."""
        return tuple(next(iter(self.importance.values()), LABELS))

    @property
    def n_layers(self) -> int:
        return next(iter(self.contrast[self.languages[0]].values())).shape[0]

    def table(self, lang: str) -> pd.DataFrame:
        """One row per neuron of a scanned language: layer, site, index, the importance on each label, contrast."""
        frames = []
        first, second = self.labels
        for site in self.sites:
            on_first = self.importance[lang][first][site].float().numpy()  # [layers, neurons]
            layers, width = on_first.shape
            frames.append(pd.DataFrame({
                "layer": np.repeat(np.arange(layers), width), "site": site, "index": np.tile(np.arange(width), layers),
                f"importance {first}": on_first.ravel(),
                f"importance {second}": self.importance[lang][second][site].float().numpy().ravel(),
                "contrast": self.contrast[lang][site].float().numpy().ravel()}))
        return pd.concat(frames, ignore_index=True)

    def to_tensors(self) -> dict[str, torch.Tensor]:
        out = {f"importance.{lang}.{label}.{site}": t for lang, labels in self.importance.items()
               for label, sites in labels.items() for site, t in sites.items()}
        out.update({f"contrast.{lang}.{site}": t for lang, sites in self.contrast.items() for site, t in sites.items()})
        return {k: v.contiguous() for k, v in out.items()}

    def metadata(self) -> dict:
        return {"model": self.model, "fingerprint": self.fingerprint, "method": self.method,
                "sites": list(self.sites), "n_prompts": self.n_prompts, "settings": self.settings}

    def save(self, path: str | Path) -> Path:
        tensors, meta = self.to_tensors(), {"neuronlab": json.dumps(self.metadata())}
        return write_atomic(path, lambda tmp: save_file(tensors, str(tmp), metadata=meta))


def _read_part(path: Path, lm: LoadedModel, method: str, sites: tuple[str, ...]) -> dict[str, torch.Tensor] | None:
    """A cached scan part, or None (after deleting it, with a warning) when it cannot be used: cut short by a
    killed writer, not safetensors, or not the tensors this scan makes. The part is then scanned again."""
    shape = {s: (lm.arch.n_layers, lm.arch.sites[s].size) for s in sites}
    try:
        tensors = load_file(str(path))
        names = shipped.expected_names(method, sites)
        odd = sorted(set(tensors) ^ names)
        bad = [k for k in names - set(odd) if tuple(tensors[k].shape) != shape[k.split(".", 1)[1]]]
        problem = (f"tensors {', '.join(odd)} unexpected or missing" if odd
                   else f"tensors {', '.join(sorted(bad))} of the wrong shape" if bad else "")
    except (SafetensorError, OSError, ValueError, RuntimeError) as e:
        problem = f"unreadable: {e}"
    if not problem:
        return tensors
    warnings.warn(f"scan cache part {path} is damaged ({problem}); deleting it and scanning again", stacklevel=3)
    path.unlink(missing_ok=True)
    return None


def _cache_key(lm: LoadedModel, prompts: PromptSet, method: str, sites: tuple[str, ...], settings: dict) -> str:
    key = json.dumps({"fingerprint": lm.info.fingerprint, "prompts": prompts.content_hash(), "method": method,
                      "sites": sites, "settings": settings, "format": CACHE_FORMAT}, sort_keys=True)
    return hashlib.sha256(key.encode()).hexdigest()[:24]


def _score(lm: LoadedModel, texts: list[str], method: str, sites: tuple[str, ...], settings: dict,
           neurons: NeuronSet | None, progress: Progress) -> dict[str, torch.Tensor]:
    """{"importance.SITE": [L, N], and for activation "mean.SITE": [L, N]} for one prompt subset."""
    batch = settings["batch_size"]
    if method == "activation":
        stats = activation_scores(lm, texts, sites, batch, progress)
        return {f"{kind}.{s}": stats[s][src] for s in sites for kind, src in (("importance", "mean_abs"), ("mean", "mean"))}
    if method == "attribution":
        scores = attribution_scores(lm, texts, sites, batch, settings["probes"], progress=progress)
    else:
        scores = ablation_scores(lm, texts, neurons, batch, progress=progress)
    return {f"importance.{s}": scores[s] for s in sites}


def _ablation_neurons(lm: LoadedModel, sites: tuple[str, ...], layers, neurons) -> NeuronSet:
    if neurons is not None:
        return NeuronSet(n for n in neurons.validate(lm.arch) if n.site in sites)
    if layers is None:
        raise ValueError("method 'ablation' costs one forward pass per neuron: choose layers or a neuron set "
                         "(or use 'attribution', its one-pass estimate)")
    return NeuronSet((layer, s, i) for layer in layers for s in sites for i in range(lm.arch.sites[s].size))


PartHook = Callable[[dict, dict[str, torch.Tensor]], None]


def run_scan(lm: LoadedModel, prompts: PromptSet, langs: list[str] | None = None, method: str = "activation",
             site: str = "mlp", split: str | None = "scan", batch_size: int = 8, probes: int = 4,
             layers: list[int] | None = None, neurons: NeuronSet | None = None, use_cache: bool = True,
             progress: Progress = no_progress, on_part: PartHook | None = None,
             on_language: Callable[[ScanResult], None] | None = None, compute: bool = True,
             labels: tuple[str, str] = LABELS) -> ScanResult | None:
    """Score every neuron of ``site`` ("mlp", "attn" or "all") on each language's prompts of the two ``labels``
    (a function's contrast: harmful and harmless for refusal; the first is the one its neurons serve).
    ``ablation`` scores only ``neurons`` (or all neurons of ``layers``); the rest are NaN.
    ``use_cache=False`` computes everything (no user cache, no shipped results). ``on_part(info, tensors)``
    sees each (language, label) part: info {key, method, sites, lang, label, n_prompts, prompts, settings}
    and tensors {"importance.SITE" (and "mean.SITE" for activation): [L, N]}. ``on_language`` gets the result
    of the languages finished so far after each one (to keep them if the scan is stopped). ``compute=False``
    returns the scan only when every part is cached or shipped, and None otherwise (no model pass)."""
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; use one of {', '.join(METHODS)}")
    if site not in SITE_GROUPS:
        raise ValueError(f"unknown site {site!r}; use one of {', '.join(SITE_GROUPS)}")
    sites = SITE_GROUPS[site]
    langs = langs or prompts.languages
    chosen = prompts.filter(lang=langs, split=split) if split else prompts.filter(lang=langs)
    missing = [f"{lang}/{label}" for lang in langs for label in labels if not len(chosen.filter(lang=lang, label=label))]
    if missing:
        raise ValueError(f"no prompts for {', '.join(missing)} (split {split!r})")
    settings = {"batch_size": batch_size, "split": split}
    subset = None
    if method == "attribution":
        settings["probes"] = probes
    if method == "ablation":
        subset = _ablation_neurons(lm, sites, layers, neurons)
        settings["neurons"] = hashlib.sha256(json.dumps(subset.to_json()).encode()).hexdigest()[:16]

    importance, means, n_prompts, hits, from_assets = {}, {}, {}, 0, 0
    jobs = [(lang, label) for lang in langs for label in labels]

    def result(done: list[str]) -> ScanResult:
        source = means if method == "activation" else importance
        contrast = {lang: Scores({s: source[lang][labels[0]][s] - source[lang][labels[1]][s] for s in sites})
                    for lang in done}
        return ScanResult(lm.spec, lm.info.fingerprint, method, sites, {lang: importance[lang] for lang in done},
                          contrast, {lang: n_prompts[lang] for lang in done},
                          {**settings, "prompts": chosen.filter(lang=done).content_hash()}, hits, from_assets)

    for j, (lang, label) in enumerate(jobs):
        part = chosen.filter(lang=lang, label=label)
        key = _cache_key(lm, part, method, sites, settings)
        path = cache_root() / "scans" / f"{key}.safetensors"
        what = f"{language_name(lang)} {label} prompts ({j + 1}/{len(jobs)})"
        if use_cache and path.is_file() and (tensors := _read_part(path, lm, method, sites)) is not None:
            progress(j / len(jobs), f"Reading the saved scores of {what}")
            hits += 1
        elif use_cache and (tensors := shipped.scan_part(key, lm, method, sites, lang, label)) is not None:
            from_assets += 1
        elif not compute:
            return None
        else:
            def sub(f: float, msg: str, j=j, what=what) -> None:
                progress((j + f) / len(jobs), f"Scanning {what}: {msg}")
            sub(0.0, f"{len(part)} prompts")
            tensors = _score(lm, part.texts, method, sites, settings, subset, sub)
            if use_cache:
                write_atomic(path, lambda tmp, tensors=tensors: save_file(tensors, str(tmp)))
        if on_part:
            on_part({"key": key, "method": method, "sites": list(sites), "lang": lang, "label": label,
                     "n_prompts": len(part), "prompts": part.content_hash(), "settings": dict(settings)}, tensors)
        importance.setdefault(lang, {})[label] = Scores({s: tensors[f"importance.{s}"] for s in sites})
        means.setdefault(lang, {})[label] = {s: tensors.get(f"mean.{s}") for s in sites}
        n_prompts.setdefault(lang, {})[label] = len(part)
        progress((j + 1) / len(jobs), f"Scanned {what}")
        if on_language and label == labels[-1]:
            on_language(result(langs[:langs.index(lang) + 1]))
    return result(list(langs))


@dataclass
class SafetyNeurons:
    """MS per language, SS per non-high-resource language, their union and the all-language core."""

    ms: dict[str, NeuronSet]
    ss: dict[str, NeuronSet]
    shared: NeuronSet
    top_p: float
    high_resource: str
    total_neurons: int
    extra: dict = field(default_factory=dict)

    @property
    def ss_union(self) -> NeuronSet:
        return NeuronSet(n for s in self.ss.values() for n in s)

    def sets(self) -> dict[str, NeuronSet]:
        """Named sets as neuron references use them: LANG, ss-LANG, ss (union), shared (all languages)."""
        named = dict(self.ms)
        named.update({f"ss-{lang}": s for lang, s in self.ss.items()})
        if self.ss:
            named["ss"] = self.ss_union
        named["shared"] = self.shared
        return {k: v.renamed(k) for k, v in named.items()}

    def stats(self) -> dict:
        share = {name: len(s) / self.total_neurons for name, s in self.sets().items()}
        return {"total_neurons": self.total_neurons, "counts": {k: len(v) for k, v in self.sets().items()},
                "share": share}


def select_sets(result: ScanResult, top_p: float = DEFAULT_TOP_P, high_resource: str = HIGH_RESOURCE) -> SafetyNeurons:
    """Apply the paper's set definitions to a scan's scores."""
    if not 0 < top_p <= 1:
        raise ValueError(f"top-p is a fraction in (0, 1], got {top_p}")
    ms = {}
    for lang, labels in result.importance.items():
        chosen = {label: Scores(scores).top_per_layer(top_p) for label, scores in labels.items()}
        ms[lang] = (chosen[result.labels[0]] - chosen[result.labels[1]]).renamed(lang)
    ss = {lang: ms[high_resource] & s for lang, s in ms.items() if lang != high_resource} if high_resource in ms else {}
    shared = functools.reduce(operator.and_, ms.values()) if ms else NeuronSet()
    total = Scores(next(iter(result.importance.values()))[result.labels[0]]).size
    return SafetyNeurons(ms, ss, shared, top_p, high_resource, total)


def scan_document(result: ScanResult, safety: SafetyNeurons) -> str:
    """A scan's ``neurons.json``: its sets (read back by ``load_neuron_set("neurons.json#en")``), parameters,
    fingerprint and stats."""
    doc = {"format": "neuronlab.scan/1", **result.metadata(),
           "params": {"method": result.method, "sites": list(result.sites), "top_p": safety.top_p,
                      "high_resource": safety.high_resource, "languages": result.languages,
                      "labels": list(result.labels)},
           "stats": safety.stats(), "sets": {k: s.to_json() for k, s in safety.sets().items()}}
    return json.dumps(doc, indent=1)


def write_scan(out_dir: str | Path, result: ScanResult, safety: SafetyNeurons) -> tuple[Path, Path]:
    """Write ``neurons.json`` (``scan_document``) and ``scores.safetensors`` in out_dir."""
    out = Path(out_dir)
    neurons_path = write_atomic(out / "neurons.json", scan_document(result, safety))
    return neurons_path, result.save(out / "scores.safetensors")
