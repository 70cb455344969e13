"""Save a randomly initialised Llama of a chosen size (with the byte tokenizer) for speed work.

    python bench/make_random_model.py --out /tmp/llama-1b --layers 16 --hidden 2048 --d-ff 8192

Shapes are all a speed benchmark needs; load it like any local folder (``--model /tmp/llama-1b``).
"""
import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout

import torch
from transformers import LlamaForCausalLM

from neuronlab.models.tiny import byte_tokenizer, tiny_llama_config

if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True)
    parser.add_argument("--layers", type=int, default=16)
    parser.add_argument("--hidden", type=int, default=2048)
    parser.add_argument("--d-ff", type=int, default=8192)
    parser.add_argument("--dtype", default="bfloat16", choices=["float32", "bfloat16"])
    args = parser.parse_args()
    tok = byte_tokenizer()
    config = tiny_llama_config(len(tok), layers=args.layers, hidden=args.hidden, d_ff=args.d_ff)
    config.num_attention_heads, config.num_key_value_heads = args.hidden // 64, max(1, args.hidden // 256)
    config.eos_token_id = config.pad_token_id = tok.eos_token_id
    torch.manual_seed(0)
    model = LlamaForCausalLM(config).to(getattr(torch, args.dtype))
    model.save_pretrained(args.out)
    tok.save_pretrained(args.out)
    print(f"saved {sum(p.numel() for p in model.parameters()) / 1e6:.0f}M parameters to {args.out}")
