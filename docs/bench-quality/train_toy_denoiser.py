"""Train the `trained` toy world's denoiser (dreamer/toy/denoiser_training.py) and write its weights.

    python docs/bench-quality/train_toy_denoiser.py OUT_DIR --minutes 60 [--refs-per-object 1000]
        [--decay-from STEP --decay-steps 2000] [--threads 2]

Resumable: OUT_DIR/state.pt (our own file, written atomically every 200 steps) carries the network,
its EMA, the optimizer and the random state; a second call continues it. Each call ends by writing
OUT_DIR/denoiser.safetensors (the EMA weights), which `prior.world=trained prior.denoiser=...` loads.
The references are the toy world's renders from its camera distribution, --refs-per-object per
object (cached like the prior's). On the project's 2-core CPU a step of 64 images takes 0.6 s.
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

from dreamer.atomic import write_with
from dreamer.toy.catalogue import Catalogue
from dreamer.toy.denoiser import save_denoiser
from dreamer.toy.denoiser_training import Captions, new_state, train_steps, training_facts
from dreamer.toy.references import load_references


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out", type=Path)
    ap.add_argument("--minutes", type=float, default=60.0)
    ap.add_argument("--refs-per-object", type=int, default=1000)
    ap.add_argument("--decay-from", type=int, default=None, help="step where the cosine decay to 1e-4 starts")
    ap.add_argument("--decay-steps", type=int, default=2000)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    catalogue = Catalogue()
    refs = load_references(catalogue, args.refs_per_object, 64, print)
    captions = Captions()
    state, g = new_state(catalogue.names()), torch.Generator().manual_seed(0)
    args.out.mkdir(parents=True, exist_ok=True)
    saved = args.out / "state.pt"
    if saved.exists():  # our own file from an earlier call of this script
        s = torch.load(saved, weights_only=True)
        state.net.load_state_dict(s["net"]), state.ema.load_state_dict(s["ema"]), state.opt.load_state_dict(s["opt"])
        state.step = s["step"]
        g.set_state(s["g"])
    start, end = time.monotonic(), time.monotonic() + 60 * args.minutes
    log = lambda step, loss: print(f"step {step} loss {loss:.4f} {(time.monotonic() - start) / 60:.1f} min", flush=True)  # noqa: E731
    while time.monotonic() < end:
        train_steps(state, refs, captions, g, seconds=end - time.monotonic(), max_steps=state.step + 200,
                    decay_from=args.decay_from, decay_steps=args.decay_steps, log=log)
        checkpoint = {"net": state.net.state_dict(), "ema": state.ema.state_dict(), "opt": state.opt.state_dict(),
                      "step": state.step, "g": g.get_state()}
        write_with(saved, lambda tmp: torch.save(checkpoint, tmp))
    weights = args.out / "denoiser.safetensors"
    write_with(weights, lambda tmp: save_denoiser(state.ema, tmp, training_facts(state, captions, args.refs_per_object)))
    print(f"step {state.step}: wrote {weights}")


if __name__ == "__main__":
    main()
