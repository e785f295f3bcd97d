"""CMA-ES (pycma) on Acrobot-v1 with an LSTM policy.

    python examples/cmaes_acrobot.py               # ~20 s on 2 cores

With 16 LSTM units the policy has ~1.5k parameters, so the trainer uses full-covariance CMA;
above ``diagonal_above`` (default 2000) it switches to separable CMA by itself
(try ``--hidden 32``).
"""
import argparse

from agents import CMAES, evaluate


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--hidden", type=int, default=16)
    ap.add_argument("--timesteps", type=int, default=500_000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default="runs/cmaes_acrobot")
    args = ap.parse_args()

    model = CMAES("Acrobot-v1", seed=args.seed, hidden_size=args.hidden, reward_threshold=-90,
                  log_dir=args.out)
    print(f"{model.num_params} parameters: {'separable' if model.diagonal else 'full'} CMA")
    model.learn(args.timesteps, progress_bar=True)
    model.close()
    model.save(f"{args.out}/model.rlstm")
    mean, std = evaluate(model, "Acrobot-v1", n_episodes=20, seed=1000)
    print(f"{model.num_timesteps} steps; evaluation: {mean:.1f} +/- {std:.1f}")


if __name__ == "__main__":
    main()
