"""``python -m neuronlab ship``: compute the results shipped for the built-in models (seeded, deterministic
settings) and write them where ``shipped`` reads them, with a manifest and a README.

Items: ``scan/MODEL/METHOD`` for every model and method of ``shipped.SCAN_MODELS`` / ``SCAN_METHODS`` (all
bundled languages, MLP, the scan split and ``run_scan``'s defaults; the user's scan cache is used where it
has a part), then every experiment of ``shipped.EXPERIMENTS``. Every file is written atomically.
"""
from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path

import torch

from neuronlab.analysis.scan import ScanResult, run_scan, select_sets
from neuronlab.data import shipped
from neuronlab.data.prompts import bundled_prompts
from neuronlab.evaluation.effects import BASELINE, EFFECT, Effect, copy_from, evaluate_effects
from neuronlab.evaluation.metrics import benign_texts
from neuronlab.files import check_output, write_atomic
from neuronlab.models.loading import LoadedModel, load_model
from neuronlab.neurons.scores import Scores
from neuronlab.progress import Progress, no_progress
from neuronlab.transfer.curve import minimal_subset
from neuronlab.transfer.plan import make_transfer
from neuronlab.transfer.ranking import rank_scores

MANIFEST_FORMAT = "neuronlab.shipped-manifest/1"
COMMAND = "python -m neuronlab ship"
Loader = Callable[[str], LoadedModel]


def scan_items() -> list[str]:
    return [f"scan/{m}/{method}" for method in shipped.SCAN_METHODS for m in shipped.SCAN_MODELS]


def items() -> list[str]:
    """Every item ``ship`` makes, in the order it makes them."""
    return scan_items() + list(shipped.EXPERIMENTS)


def chosen(only: Sequence[str] | None) -> list[str]:
    """The items named by ``--only`` ("scans" stands for every scan item), in ``items()`` order."""
    if not only:
        return items()
    wanted = {n for name in only for n in (scan_items() if name == "scans" else [name])}
    unknown = sorted(wanted - set(items()))
    if unknown:
        raise ValueError(f"unknown item(s) {', '.join(unknown)}; known: scans, {', '.join(items())}")
    return [n for n in items() if n in wanted]


# ---- scans ----------------------------------------------------------------------------------------

def ship_scan(lm: LoadedModel, method: str, out: Path, progress: Progress = no_progress) -> ScanResult:
    """Scan ``lm`` on every bundled language and write each part to ``out/scans``."""
    def write(info: dict, tensors: dict[str, torch.Tensor]) -> None:
        meta = {"model": lm.spec, "fingerprint": lm.info.fingerprint, **info}
        shipped.write_scan_part(out / "scans" / f"{info['key']}.safetensors", tensors, meta)
    return run_scan(lm, bundled_prompts(), list(shipped.SCAN_LANGS), method, shipped.SCAN_SITE, progress=progress,
                    on_part=write)


def as_shipped(result: ScanResult) -> ScanResult:
    """The scan with its importances rounded as they are shipped, so that sets chosen from it are the
    sets a shipped scan gives."""
    importance = {lang: {label: Scores({s: shipped.storable(t).float() for s, t in scores.items()})
                         for label, scores in labels.items()} for lang, labels in result.importance.items()}
    return replace(result, importance=importance)


# ---- experiments ------------------------------------------------------------------------------------

def _eval_prompts(settings: dict):
    return bundled_prompts(settings["langs"], split=settings["split"]).parallel_head(settings["limit"])


def _paired(rows: list[dict]) -> list[dict]:
    """Each prompt's reply from the plain model (``before``) and with the effect (``after``), judged."""
    out: dict[tuple, dict] = {}
    for r in rows:
        if r["variant"] in (BASELINE, EFFECT):
            entry = out.setdefault((r["lang"], r["label"], r["id"]), {k: r[k] for k in ("lang", "label", "id", "prompt")})
            entry["before" if r["variant"] == BASELINE else "after"] = {
                k: r[k] for k in ("reply", "refusal", "reply_lang")}
    return list(out.values())


def _effects(lm: LoadedModel, effect: Effect, settings: dict, progress: Progress) -> dict:
    """``evaluate_effects`` with the experiment's settings, and the paired replies."""
    prompts, rows = _eval_prompts(settings), []
    evaluation = evaluate_effects(lm, prompts, settings["langs"], [effect], seeds=range(settings["seeds"]),
                                  max_new_tokens=settings["max_new_tokens"], batch_size=settings["batch_size"],
                                  progress=progress, on_reply=rows.append)
    return {"neurons": effect.neurons.to_json(), "evaluation": evaluation, "replies": _paired(rows),
            "prompts": prompts.content_hash()}


def _suppress(lms: dict[str, LoadedModel], settings: dict, progress: Progress) -> dict:
    lm, scan = lms["model"], settings["scan"]
    progress(0.0, f"{scan['method']} scan of {lm.spec} ({scan['lang']})")
    result = run_scan(lm, bundled_prompts(scan["lang"]), [scan["lang"]], scan["method"], shipped.SCAN_SITE)
    neurons = select_sets(as_shipped(result), scan["top_p"]).ms[scan["lang"]]
    neurons = neurons.renamed(f"MS({scan['lang']}) top {scan['top_p']:.0%}")
    return _effects(lm, Effect("suppress", neurons, label=neurons.name), settings,
                    lambda f, m: progress(0.05 + 0.95 * f, m))


def _transfer(lms: dict[str, LoadedModel], settings: dict, progress: Progress) -> dict:
    donor, target = lms["donor"], lms["target"]
    progress(0.0, f"ranking by {settings['ranking']}")
    made = make_transfer(donor, target, settings["ranking"], "add", count=settings["count"])
    neurons, patch = made.neurons.renamed(f"top {settings['count']} by {settings['ranking']}"), made.patch
    other = copy_from(donor)  # controls: random neurons copied from the donor

    def make(n):
        return patch if n == neurons else other(n)
    effect = Effect("patch", neurons, make_patch=make, label=f"transfer {donor.spec} -> {target.spec}")
    out = _effects(target, effect, settings, lambda f, m: progress(0.05 + 0.95 * f, m))
    return {**out, "per_layer": {str(k): v for k, v in neurons.per_layer_counts().items()},
            "patch": {k: patch.meta[k] for k in ("values", "share_of_parameters")}}


def _curve(lms: dict[str, LoadedModel], settings: dict, progress: Progress) -> dict:
    donor, target, s = lms["donor"], lms["target"], settings
    progress(0.0, f"ranking by {s['ranking']}")
    scores = rank_scores(s["ranking"], donor, target)
    prompts = bundled_prompts(s["lang"], split="scan").head(s["prompts_per_label"])
    result = minimal_subset(donor, target, scores, prompts.filter(label="harmful").texts,
                            prompts.filter(label="harmless").texts, benign_texts(s["lang"]), s["lang"], "add",
                            s["goal"], s["max_ppl_change"], s["max_false_refusal"], s["max_fraction"], s["start"],
                            s["seeds"], s["threshold"], progress=progress)
    result.meta["ranking"] = s["ranking"]
    return result.to_dict()


RECIPES = {"suppress": _suppress, "transfer": _transfer, "curve": _curve}


def run_experiment(standard: shipped.Standard, load: Loader, progress: Progress = no_progress) -> dict:
    """The shipped document of one standard experiment."""
    lms = {role: load(spec) for role, spec in standard.models.items()}
    torch.manual_seed(0)
    result = RECIPES[standard.settings["action"]](lms, standard.settings, progress)
    return {"format": shipped.FORMAT, "name": standard.name, "kind": standard.kind,
            "models": {role: {"spec": lm.spec, "fingerprint": lm.info.fingerprint} for role, lm in lms.items()},
            "settings": standard.settings, "made_by": f"{COMMAND} --only {standard.name}", "result": result}


def write_experiment(out: Path, doc: dict) -> Path:
    text = json.dumps(doc, indent=1, ensure_ascii=False) + "\n"
    return write_atomic(out / "experiments" / f"{doc['name']}.json", text)


# ---- manifest and README ----------------------------------------------------------------------------

def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def write_manifest(out: Path, made: dict[str, dict]) -> dict:
    """``manifest.json``: every shipped file with its sha256 and size, and each item's command, time and
    notes ``made`` {name: {"seconds", ...}} (items made earlier keep their entries)."""
    path = out / "manifest.json"
    old = json.loads(path.read_text()) if path.is_file() else {}
    made = {name: {"made_by": f"{COMMAND} --only {name}", **entry} for name, entry in made.items()}
    files = {p.relative_to(out).as_posix(): {"sha256": _sha256(p), "bytes": p.stat().st_size}
             for p in sorted(out.rglob("*")) if p.is_file() and p.name not in ("manifest.json", "README.md")
             and not p.name.startswith(".")}
    doc = {"format": MANIFEST_FORMAT, "command": COMMAND, "items": {**old.get("items", {}), **made},
           "total_bytes": sum(f["bytes"] for f in files.values()), "files": files}
    text = json.dumps(doc, indent=1) + "\n"
    write_atomic(path, text)
    return doc


def readme_text(manifest: dict) -> str:
    made = manifest["items"]
    lines = [
        "# Shipped results for the built-in models", "",
        f"Made by `{COMMAND}` (all items; `--only NAME[,NAME]` for some, `scans` for every scan) and read by",
        "`neuronlab/data/shipped.py`: the app and the command line show them at once for the built-in models, and",
        "compute as before for any other model, prompt set or setting. Do not edit by hand: rerun the command.", "",
        "- `scans/<key>.safetensors`: one (language, label) part of a scan, under the key of the user's scan cache",
        "  (model fingerprint, prompts, method, sites, settings); float16 scores with metadata, checked on load.",
        "- `experiments/<name>.json`: a standard experiment (`neuronlab.data.shipped.EXPERIMENTS`), used only for the",
        "  models (fingerprints) and settings it was made with.",
        "- `manifest.json`: every file's sha256 and size, and each item's command and time.", "",
        f"Total: {manifest['total_bytes'] / 1e6:.1f} MB in {len(manifest['files'])} files.", "",
        "| item | what | seconds (this run) |", "|---|---|---|"]
    for name in items():
        if name in made:
            if name in shipped.EXPERIMENTS:
                what = shipped.EXPERIMENTS[name].about
            else:
                _, model, method = name.split("/")
                what = f"{method} scan of {model}: {', '.join(shipped.SCAN_LANGS)}, MLP, scan split"
            cached = made[name].get("parts_from_user_cache")
            note = f" ({cached} of its parts read from the user's scan cache)" if cached else ""
            lines.append(f"| `{name}` | {what} | {made[name]['seconds']:g}{note} |")
    missing = [n for n in items() if n not in made]
    if missing:
        lines += ["", f"Not shipped yet: {', '.join(missing)} (computed live)."]
    return "\n".join(lines) + "\n"


# ---- the command ------------------------------------------------------------------------------------

def ship(only: Sequence[str] | None = None, out: Path | None = None, load: Loader | None = None,
         log: Callable[[str], None] = print, progress: Callable[[], Progress] = lambda: no_progress) -> dict:
    """Make the chosen items into ``out`` (default ``shipped.RESULTS_DIR``); returns the manifest."""
    out = check_output(out or shipped.results_root(), "dir")
    names = chosen(only)
    loaded: dict[str, LoadedModel] = {}

    def get(spec: str) -> LoadedModel:
        if spec not in loaded:
            loaded[spec] = (load or load_model)(spec)
        return loaded[spec]

    for i, name in enumerate(names, 1):
        log(f"[{i}/{len(names)}] {name}")
        start, notes = time.perf_counter(), {}
        if name.startswith("scan/"):
            _, model, method = name.split("/")
            result = ship_scan(get(model), method, out, progress())
            notes["parts_from_user_cache"] = result.cache_hits
            log(f"    {2 * len(result.languages)} parts: {result.cache_hits} from the user cache, "
                f"{result.shipped} already shipped")
        else:
            write_experiment(out, run_experiment(shipped.EXPERIMENTS[name], get, progress()))
        seconds = time.perf_counter() - start
        # after every item, so that an interrupted run keeps what it finished
        manifest = write_manifest(out, {name: {"seconds": round(seconds, 1), **notes}})
        text = readme_text(manifest)
        write_atomic(out / "README.md", text)
        log(f"    done in {seconds:.0f} s; {len(manifest['files'])} files, {manifest['total_bytes'] / 1e6:.1f} MB "
            f"in {out}")
    return manifest
