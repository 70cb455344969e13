"""Which loaded model refuses harmful requests: the shipped measurement of a built-in, else a quick check."""
from __future__ import annotations

from neuronlab.data.prompts import bundled_prompts
from neuronlab.evaluation.metrics import RefusalEstimate, quick_refusal_estimate
from neuronlab.models.registry import ModelKey
from webui import state
from webui.models import use
from webui.shipped import shipped_experiments


def refusal_estimates() -> dict[str, RefusalEstimate]:
    """{role: how often it refuses} for the loaded models: the shipped measurement of a built-in, else the quick
    check once it has run in this session."""
    known = {**state.refusal_estimates(), **shipped_refusals()}
    return {role: known[key] for role, key in state.loaded_keys().items() if key in known}


def shipped_refusals() -> dict[ModelKey, RefusalEstimate]:
    """The English refusal rates of the loaded built-ins, as measured (judged replies) by the shipped experiments."""
    by_spec = {key.spec: key for key in state.loaded_keys().values()}
    out = {}
    for doc in shipped_experiments("effects").values():
        measured = doc["models"]["model" if "model" in doc["models"] else "target"]["spec"]
        block = doc["result"]["evaluation"]["baseline"]["languages"].get("en")
        if measured in by_spec and block:
            out[by_spec[measured]] = RefusalEstimate(block["harmful"]["refusal_rate"], block["harmless"]["refusal_rate"],
                                                     block["harmful"]["n"], "judged replies, shipped")
    return out


def estimate_refusals() -> None:
    """Measure every loaded model's refusal quickly (fast score on 8 + 8 English scan prompts)."""
    known = state.refusal_estimates()
    prompts = bundled_prompts("en", split="scan")
    for role, key in state.loaded_keys().items():
        if key not in known:
            with use(role, with_patch=False) as lm:
                known[key] = quick_refusal_estimate(lm, prompts)
