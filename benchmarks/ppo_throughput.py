"""PPO training throughput (env steps per second) on vector observations and on images.

Three runs of rlstm's recurrent PPO with its defaults (one BLAS thread), each for a fixed number
of steps, repeated in alternation and reported as medians:

- ``cartpole``: the velocity-masked CartPole (rlstm/CartPoleNoVel-v1);
- ``image-conv``: a 7x7x3 uint8 image task (MiniGrid's egocentric view size) through the conv
  encoder (``image_encoder="conv"``);
- ``image-flat``: the same task with the image flattened (``image_encoder="flatten"``).

The image task is a stand-in for MiniGrid that needs no extra package: the agent sees a random
7x7x3 image with a lit cue cell and is rewarded for naming the cue's row (3 actions), 16 steps
an episode, so the timing is the policy's and PPO's, not an environment's.

    python benchmarks/ppo_throughput.py [--steps 16384] [--repeats 3]
    # two builds in one run (each PATH a checkout with its extension built in place):
    python benchmarks/ppo_throughput.py --builds portable=.,native=../rlstm-native
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

import numpy as np

CASES = ("cartpole", "image-conv", "image-flat")


def _image_env():
    import gymnasium as gym
    from gymnasium import spaces

    class CueImage(gym.Env):
        observation_space = spaces.Box(0, 255, (7, 7, 3), np.uint8)
        action_space = spaces.Discrete(3)

        def reset(self, *, seed=None, options=None):
            super().reset(seed=seed)
            self.t = 0
            return self._obs(), {}

        def _obs(self):
            img = self.np_random.integers(0, 64, (7, 7, 3), dtype=np.uint8)
            self.row = int(self.np_random.integers(3))
            img[2 * self.row + 1, 3] = 255
            return img

        def step(self, action):
            reward = float(action == self.row)
            self.t += 1
            return self._obs(), reward, False, self.t >= 16, {}

    return CueImage()


def run_case(case: str, steps: int, seed: int = 0) -> float:
    """Env steps per second of ``PPO(...).learn(steps)`` for one case (in this process)."""
    from agents import PPO
    if case == "cartpole":
        model = PPO("rlstm/CartPoleNoVel-v1", seed=seed)
    else:
        encoder = "conv" if case == "image-conv" else "flatten"
        model = PPO(_image_env, seed=seed, policy_kwargs={"image_encoder": encoder})
    model.learn(1024)   # warm up: allocations, first calls
    t0 = time.perf_counter()
    model.learn(steps)
    return steps / (time.perf_counter() - t0)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--steps", type=int, default=16384)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--cases", default=",".join(CASES))
    p.add_argument("--builds", default=None, help="NAME=PATH,NAME=PATH")
    p.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.worker:
        print(json.dumps(run_case(args.worker, args.steps)))
        return
    cases = args.cases.split(",")
    builds = (dict(b.split("=", 1) for b in args.builds.split(",")) if args.builds
              else {"this": os.path.dirname(os.path.dirname(os.path.abspath(__file__)))})
    samples = {(b, c): [] for b in builds for c in cases}
    for _ in range(args.repeats):
        for c in cases:
            for b, path in builds.items():
                env = {**os.environ, "PYTHONPATH": os.path.abspath(path)}
                out = subprocess.run([sys.executable, os.path.abspath(__file__), "--worker", c,
                                      "--steps", str(args.steps)], capture_output=True,
                                     text=True, env=env, cwd=os.path.abspath(path), check=True)
                samples[(b, c)].append(json.loads(out.stdout.strip().splitlines()[-1]))
    print(f"PPO env steps/s, {args.steps} steps after a 1024-step warm-up, median of "
          f"{args.repeats} alternating processes\n")
    print("| case | " + " | ".join(builds) + " |")
    print("|---|" + "---|" * len(builds))
    for c in cases:
        print(f"| {c} | " + " | ".join(f"{np.median(samples[(b, c)]):.0f}" for b in builds)
              + " |")
    if "image-conv" in cases and "image-flat" in cases:
        for b in builds:
            ratio = np.median(samples[(b, "image-conv")]) / np.median(samples[(b, "image-flat")])
            print(f"\n{b}: conv encoder / flat encoder = {ratio:.2f}")


if __name__ == "__main__":
    main()
