"""Check interventions on a model split over GPU and CPU by accelerate (what device="auto" gives a
model too big for one GPU). Needs a CUDA GPU.

    python bench/dispatch_check.py --model /tmp/llama-1b --gpu-memory 2GiB
"""
import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout

import torch
from accelerate import infer_auto_device_map, init_empty_weights
from transformers import AutoConfig, AutoModelForCausalLM

from neuronlab import Intervention, NeuronSet, intervene, load_model

if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True, help="a local folder")
    parser.add_argument("--gpu-memory", default="2GiB", help="GPU budget that forces the split")
    args = parser.parse_args()
    config = AutoConfig.from_pretrained(args.model)
    with init_empty_weights():
        empty = AutoModelForCausalLM.from_config(config)
    device_map = infer_auto_device_map(empty, max_memory={0: args.gpu_memory, "cpu": "100GiB"},
                                       no_split_module_classes=[type(empty.model.layers[0]).__name__],
                                       dtype=torch.bfloat16)
    split = load_model(args.model, dtype="bfloat16", device_map=device_map)
    whole = load_model(args.model, dtype="bfloat16", device="cuda")
    last = split.arch.n_layers - 1
    print("split:", split.info.device, "| layer 0 on", next(split.arch.layer(split.model, 0).parameters()).device,
          "| layer", last, "on", next(split.arch.layer(split.model, last).parameters()).device)
    neurons = NeuronSet.from_indices(0, "mlp", [1, 2]) | NeuronSet.from_indices(last, "mlp", [5, 6])
    ivs = [Intervention(neurons, "suppress")]
    ids = torch.randint(0, 250, (2, 20))
    seen = []
    with torch.no_grad(), intervene(split.model, ivs):
        hook = split.arch.layer(split.model, last).mlp.down_proj.register_forward_pre_hook(
            lambda m, a: seen.append(a[0]))
        out = split.model(input_ids=ids.to(split.device)).logits.float().cpu()
        hook.remove()
    with torch.no_grad(), intervene(whole.model, ivs):
        expected = whole.model(input_ids=ids.cuda()).logits.float().cpu()
    with torch.no_grad():
        plain = split.model(input_ids=ids.to(split.device)).logits.float().cpu()
    print("suppressed channels are zero on", seen[0].device, bool((seen[0][..., [5, 6]] == 0).all()))
    print("split vs one GPU, max |logit diff|:", (out - expected).abs().max().item(),
          "| vs plain:", (out - plain).abs().max().item())
