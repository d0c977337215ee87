"""The PyTorch peer of the GPT-2 124M training step: the same model as ours (GPT-2 small, vocabulary
50257, tied embeddings, tanh GELU, causal attention), B16 T1024, bf16 autocast with f32 master
weights, fused AdamW; eager, then torch.compile. Writes result lines like cuda_bench's.
Timing: CUDA events around whole steps, median of 10 after 3 warm-up steps (compile included in those).
"""
import argparse
import json
import math
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

from torch_reference import time_ms


class Block(nn.Module):
    def __init__(self, c, heads):
        super().__init__()
        self.heads = heads
        self.ln1, self.ln2 = nn.LayerNorm(c), nn.LayerNorm(c)
        self.qkv, self.proj = nn.Linear(c, 3 * c), nn.Linear(c, c)
        self.fc, self.out = nn.Linear(c, 4 * c), nn.Linear(4 * c, c)

    def forward(self, x):
        b, t, c = x.shape
        q, k, v = self.qkv(self.ln1(x)).split(c, dim=2)
        q, k, v = (z.view(b, t, self.heads, c // self.heads).transpose(1, 2) for z in (q, k, v))
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True).transpose(1, 2).reshape(b, t, c)
        x = x + self.proj(y)
        return x + self.out(F.gelu(self.fc(self.ln2(x)), approximate="tanh"))


class Gpt2(nn.Module):
    def __init__(self, vocab=50257, c=768, layers=12, heads=12, positions=1024):
        super().__init__()
        self.wte, self.wpe = nn.Embedding(vocab, c), nn.Embedding(positions, c)
        self.blocks = nn.ModuleList(Block(c, heads) for _ in range(layers))
        self.ln_f = nn.LayerNorm(c)

    def forward(self, ids):
        x = self.wte(ids) + self.wpe(torch.arange(ids.shape[1], device=ids.device))
        for block in self.blocks:
            x = block(x)
        logits = self.ln_f(x) @ self.wte.weight.T
        return F.cross_entropy(logits[:, :-1].reshape(-1, logits.shape[-1]).float(), ids[:, 1:].reshape(-1))


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", required=True)
    parser.add_argument("--batch", type=int, default=16)
    args = parser.parse_args()
    torch.manual_seed(0)
    batch, t = args.batch, 1024
    name = f"gpt2-124M train step B{batch} T{t}"
    results = []
    ids = torch.randint(0, 50257, (batch, t), device="cuda")
    for impl in ("torch-eager", "torch-compile"):
        model = Gpt2().cuda()
        optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4, weight_decay=0.1, fused=True)
        forward = torch.compile(model) if impl == "torch-compile" else model

        def step():
            optimizer.zero_grad(set_to_none=True)
            with torch.autocast("cuda", dtype=torch.bfloat16):
                loss = forward(ids)
            loss.backward()
            optimizer.step()

        began = time.time()
        try:
            ms = time_ms(step, repeats=10, warmup=3)
        except Exception as error:  # a compile failure is reported, not fatal to the eager number
            print(f"skip  {impl}: {str(error).splitlines()[0]}", flush=True)
            continue
        tokens = batch * t / (ms / 1e3)
        print(f"time  {impl:14s} {name}  {ms:8.2f} ms  {tokens:9.0f} tokens/s  (wall incl. warm-up {time.time() - began:.0f} s)", flush=True)
        results.append({"kind": "time", "impl": impl, "name": name, "ms": ms, "tflops": 0.0, "extra_mb": -1.0, "tokens_per_s": tokens})
        del model, optimizer, forward
        torch.cuda.empty_cache()
    with open(args.out, "w") as f:
        json.dump({"device": torch.cuda.get_device_name(), "torch": torch.__version__, "results": results}, f, indent=1)


if __name__ == "__main__":
    main()
