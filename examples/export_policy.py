"""Train recurrent PPO on velocity-masked CartPole, export it to ONNX and to C, and play the
env with all three: ``predict``, the ONNX graph in onnxruntime, and a 20-line C program that
talks to Python through stdin and stdout. Same seeds, so the returns must be the same.

    python examples/export_policy.py [--timesteps 60000] [--episodes 3] [--out export_out]

Needs ``pip install 'rlstm[export]'`` and a C compiler (``cc``, or set ``CC``).
"""
from __future__ import annotations

import argparse
import os
import pathlib
import subprocess

import numpy as np

import rlstm.export
from agents import PPO
from rlstm.export.check import compile_c

ENV = "rlstm/CartPoleNoVel-v1"

# The whole C side: reads "start obs..." lines, answers with the action.
PLAYER_C = r"""#include <stdio.h>
#include "cartpole.h"

int main(void) {
    static cartpole_state s;
    float obs[CARTPOLE_OBS_SIZE], action[CARTPOLE_ACTION_SIZE];
    int start;
    while (scanf("%d", &start) == 1) {
        for (int i = 0; i < CARTPOLE_OBS_SIZE; ++i)
            if (scanf("%f", &obs[i]) != 1) return 1;
        if (start) cartpole_reset(&s);
        if (cartpole_step(&s, obs, action) != CARTPOLE_OK) return 2;
        for (int i = 0; i < CARTPOLE_ACTION_SIZE; ++i)
            printf(i ? " %.9g" : "%.9g", action[i]);
        printf("\n");
        fflush(stdout);
    }
    return 0;
}
"""


def play(act, episodes: int, seed: int) -> list[tuple[float, list]]:
    """``(return, actions)`` of each episode, ``act(obs, start) -> action``."""
    import gymnasium as gym
    env = gym.make(ENV)
    out = []
    for ep in range(episodes):
        obs, _ = env.reset(seed=seed + ep)
        start, done, total, actions = True, False, 0.0, []
        while not done:
            action = act(obs, start)
            obs, reward, terminated, truncated, _ = env.step(action)
            total, start, done = total + float(reward), False, terminated or truncated
            actions.append(int(action))
        out.append((total, actions))
    env.close()
    return out


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--timesteps", type=int, default=60_000)
    p.add_argument("--episodes", type=int, default=3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="export_out")
    args = p.parse_args(argv)
    out = pathlib.Path(args.out)

    model = PPO(ENV, seed=args.seed).learn(args.timesteps)
    model.save(out / "model.rlstm")
    predictor = model.predictor  # what model.predict runs: the policy and its normaliser

    # 1. export both formats from the saved file (and check them on recorded episodes)
    onnx_path = rlstm.export.to_onnx(out / "model.rlstm", out / "cartpole.onnx")
    _, c_path = rlstm.export.to_c(out / "model.rlstm", out / "cartpole")
    reports = [rlstm.export.check(predictor, artefact, env=ENV, steps=1000)
               for artefact in (onnx_path, c_path)]
    for report in reports:
        print(report)

    # 2. predict, as every trainer's predict does
    box = {}

    def by_predict(obs, start):
        action, box["state"] = model.predict(obs, None if start else box["state"],
                                             np.array([start]), deterministic=True)
        return action

    # 3. the ONNX graph in onnxruntime
    import onnxruntime as ort
    sess = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    state0 = np.zeros([d if isinstance(d, int) else 1 for d in sess.get_inputs()[1].shape],
                      np.float32)

    def by_onnx(obs, start):
        flat = rlstm.export.flatten_observation(predictor.observation_space, obs)
        action, _, box["onnx"] = sess.run(None, {
            "obs": flat[None], "state": state0 if start else box["onnx"],
            "episode_start": np.array([start])})
        return rlstm.export.unflatten_action(predictor.action_space, action[0])

    # 4. the C program, fed through a pipe
    exe = compile_c(c_path, out / "cartpole_player", main_source=PLAYER_C)
    player = subprocess.Popen([str(exe)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                              text=True, bufsize=1)

    def by_c(obs, start):
        flat = rlstm.export.flatten_observation(predictor.observation_space, obs)
        player.stdin.write(f"{int(start)} " + " ".join(f"{v:.9g}" for v in flat.tolist())
                           + "\n")
        player.stdin.flush()
        return rlstm.export.unflatten_action(predictor.action_space,
                                             np.array(player.stdout.readline().split(), float))

    results = {name: play(fn, args.episodes, args.seed + 1000)
               for name, fn in (("predict", by_predict), ("onnxruntime", by_onnx),
                                ("C", by_c))}
    player.stdin.close()
    player.wait()
    returns = {name: [r for r, _ in res] for name, res in results.items()}
    same = all(results[name] == results["predict"] for name in results)
    for name, r in returns.items():
        print(f"{name:>12}: returns {r}")
    print("identical actions at every step: " + ("yes" if same else "NO"))
    size = os.path.getsize(c_path)
    print(f"files: {onnx_path} ({os.path.getsize(onnx_path)} bytes), {c_path} ({size} bytes)")
    return {"returns": returns, "identical": same, "checks_passed": all(r.ok for r in reports),
            "onnx": onnx_path, "c": c_path}


if __name__ == "__main__":
    main()
