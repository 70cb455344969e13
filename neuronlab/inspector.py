"""A neuron inspected as every front end shows it: its profile (``analysis.profile``), its causal effect
(``evaluation.neuron_effect``), how a donor differs from the target there, and the sets it belongs to. The
``inspect`` verb and the app's neuron card both call ``inspect_neuron``, so both show the same figures.
"""
from __future__ import annotations

import csv
import io
from collections.abc import Mapping
from dataclasses import dataclass

from neuronlab.analysis.activations import ActivationPass
from neuronlab.analysis.profile import NeuronProfile, profile_neuron
from neuronlab.data.prompts import LABELS
from neuronlab.evaluation.neuron_effect import NeuronEffect
from neuronlab.models.loading import LoadedModel
from neuronlab.neurons.scores import Scores
from neuronlab.neurons.sets import Neuron, NeuronSet


@dataclass(frozen=True)
class DonorComparison:
    """The neuron in a donor against the target: the L2 norm of its (donor − target) weights, that norm's rank
    among all neurons of its site (1 = the most changed), and donor − target mean activations at the last prompt
    token per language and label (on the same prompts)."""

    donor: str
    weight_change: float
    rank: int
    of: int
    activation_change: dict[str, dict[str, float]]

    def to_dict(self) -> dict:
        return {"donor": self.donor, "weight_change": self.weight_change, "rank": self.rank, "of": self.of,
                "activation_change": self.activation_change}


def compare_in_donor(neuron: Neuron, donor: str, diff: Scores, target_pass: ActivationPass,
                     donor_pass: ActivationPass) -> DonorComparison:
    """``diff``: ``transfer.ranking.weight_diff_scores(donor, target)`` of at least the neuron's site; the two
    passes: the same prompts, in the same order, on the target and on the donor."""
    if [p.id for p in target_pass.prompts] != [p.id for p in donor_pass.prompts]:
        raise ValueError("the donor's and the target's activation passes are of different prompts")
    scores = diff[neuron.site]  # [layers, neurons]
    value = float(scores[neuron.layer, neuron.index])
    change = donor_pass.column("last", neuron).float() - target_pass.column("last", neuron).float()  # [prompts]
    groups = {(p.lang, p.label) for p in target_pass.prompts}
    means = {lang: {label: float(change[target_pass.rows(lang, label)].mean()) for label in LABELS
                    if (lang, label) in groups} for lang, _ in sorted(groups)}
    return DonorComparison(donor, value, int((scores > value).sum()) + 1, scores.numel(), means)


@dataclass(frozen=True)
class Inspection:
    """Everything known about one neuron of one model; ``effect`` and ``donor`` only when asked for."""

    profile: NeuronProfile
    membership: dict[str, bool]  # {set name: the neuron is in it}
    effect: NeuronEffect | None = None
    donor: DonorComparison | None = None

    def to_dict(self) -> dict:
        return {"profile": self.profile.to_dict(), "membership": self.membership,
                "effect": self.effect.to_dict() if self.effect else None,
                "donor": self.donor.to_dict() if self.donor else None}

    def to_csv(self) -> str:
        """The figures as one long table: section, lang, label, name, value."""
        rows: list[tuple] = []
        for lang, labels in self.profile.stats.items():
            for label, measures in labels.items():
                for measure, stats in measures.items():
                    rows += [("activation", lang, label, f"{measure} {k}", v) for k, v in vars(stats).items()]
        for kind, hits in (("top prompt", self.profile.top), ("most negative prompt", self.profile.negative)):
            rows += [(kind, h.lang, h.label, f"{h.id} @ {h.token!r}", h.value) for h in hits]
        for kind, tokens in (("promoted token", self.profile.promoted), ("suppressed token", self.profile.suppressed)):
            rows += [(kind, "", "", t.token, t.logit) for t in tokens]
        if self.effect:
            for mode in ("suppress", "activate"):
                controls = self.effect.control_change(mode)
                for lang, by_label in self.effect.change(mode).items():
                    for label, value in by_label.items():
                        rows.append((f"{self.effect.score} change ({mode})", lang, label, "this neuron", value))
                        rows.append((f"{self.effect.score} change ({mode})", lang, label, "random neurons (mean)",
                                     controls[lang][label][0]))
        if self.donor:
            rows += [("donor", "", "", "weight change", self.donor.weight_change),
                     ("donor", "", "", "weight change rank", self.donor.rank)]
            rows += [("donor", lang, label, "activation change", v)
                     for lang, by_label in self.donor.activation_change.items() for label, v in by_label.items()]
        rows += [("membership", "", "", name, int(inside)) for name, inside in self.membership.items()]
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(("section", "lang", "label", "name", "value"))
        writer.writerows(rows)
        return out.getvalue()


def inspect_neuron(lm: LoadedModel, acts: ActivationPass, neuron: Neuron | tuple,
                   sets: Mapping[str, NeuronSet] = {}, effect: NeuronEffect | None = None,
                   donor: DonorComparison | None = None, top_k: int = 5, tokens: str = "top") -> Inspection:
    """The neuron's profile from the pass ``acts`` (see ``profile_neuron``), whether it is in each of ``sets``
    (scan sets, the patch's neurons, the user's), with its causal ``effect`` and ``donor`` comparison when the
    caller measured them (``neuron_effect``, ``compare_in_donor``: they cost forward passes, the rest does not)."""
    profile = profile_neuron(lm, acts, neuron, top_k=top_k, tokens=tokens)
    inside = {name: profile.neuron in s for name, s in sets.items()}
    return Inspection(profile, inside, effect, donor)
