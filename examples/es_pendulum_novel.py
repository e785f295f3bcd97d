"""OpenAI-ES on the velocity-masked Pendulum, where the LSTM must infer the angular velocity.

    python examples/es_pendulum_novel.py                 # ~3 minutes on 2 cores
    python examples/es_pendulum_novel.py --algo PGPE      # or SNES, CMAES
    python examples/es_pendulum_novel.py --env Pendulum-v1   # the full observation, for comparison

``rlstm/PendulumNoVel-v1`` observes only (cos theta, sin theta): the policy has to estimate the
velocity from successive observations, which is what its LSTM is for. Every member plays two
episodes (the start angle is random, so one episode is a noisy fitness) and antithetic pairs
share their episode seeds.
"""
import argparse

import agents
from agents import evaluate


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--algo", default="OpenAIES", choices=["OpenAIES", "PGPE", "SNES", "CMAES"])
    ap.add_argument("--env", default="rlstm/PendulumNoVel-v1")
    ap.add_argument("--timesteps", type=int, default=5_000_000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default="runs/es_pendulum_novel")
    args = ap.parse_args()

    cls = getattr(agents, args.algo)
    sigma = {"sigma": 0.1} if args.algo == "OpenAIES" else {"sigma_init": 0.1}
    model = cls(args.env, seed=args.seed, population_size=128,
                episodes_per_member=2, reward_threshold=-200, log_dir=args.out, **sigma)
    model.learn(args.timesteps, progress_bar=True)
    model.close()
    model.save(f"{args.out}/model.rlstm")
    mean, std = evaluate(model, args.env, n_episodes=20, seed=1000)
    print(f"{model.num_timesteps} steps; evaluation: {mean:.1f} +/- {std:.1f} "
          f"(a random policy gets about -1200, a good swing-up about -200)")


if __name__ == "__main__":
    main()
