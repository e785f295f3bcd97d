"""The trainers, used the way a hostile user would: settings that must not be coerced, runs that
diverge, crafted trainer files, envs that do not fit or that misbehave, interrupts and kills.
Every case runs in its own process (``isolated``), so a crash or a hang fails that case alone;
the cases that could allocate a lot run under an address-space limit."""
import os
import re
import signal
import subprocess
import sys
import time

import pytest

ES = ("population_size=8, center_episodes=1, max_episode_steps=30, noise_table_size=50_000, "
      "hidden_size=4")
PG = "n_envs=2, n_steps=8, seq_len=4, hidden_size=8"


def expect(isolated, code, outcome, match="", **kw):
    got, message = isolated(code, **kw)
    assert got == outcome, f"{got}: {message}"
    assert re.search(match, message), message
    return message


# ---------------------------------------------------------------------------- settings
@pytest.mark.parametrize("call,outcome,match", [
    ('PPO("CartPole-v1", normalize_obs="no")', "TypeError",
     r"PPOConfig\.normalize_obs must be a bool \(True or False\), got 'no'"),
    ('REINFORCE("CartPole-v1", baseline="no")', "TypeError",
     r"REINFORCEConfig\.baseline must be a bool"),
    ('OpenAIES("CartPole-v1", normalize_obs="False")', "TypeError",
     r"OpenAIESConfig\.normalize_obs must be a bool"),
    ('PPO("CartPole-v1", learning_rate="abc")', "TypeError",
     r"PPOConfig\.learning_rate must be a number > 0, got 'abc' \(str\)"),
    ('PPO("CartPole-v1", gamma="0.9")', "TypeError", r"PPOConfig\.gamma must be a number in"),
    ('PPO("CartPole-v1", clip_range=None)', "TypeError", r"PPOConfig\.clip_range must be"),
    ('PPO("CartPole-v1", ent_coef=None)', "TypeError", r"PPOConfig\.ent_coef must be"),
    ('PPO("CartPole-v1", max_grad_norm=float("nan"))', "ValueError", r"max_grad_norm"),
    ('PPO("CartPole-v1", mlp_hidden="abc")', "TypeError", r"PPOConfig\.mlp_hidden must be a "
                                                          r"list of ints >= 1"),
    ('OpenAIES("CartPole-v1", sigma="a")', "TypeError", r"OpenAIESConfig\.sigma must be a "
                                                        r"number > 0"),
    ('PGPE("CartPole-v1", sigma_learning_rate=-1)', "ValueError", r"sigma_learning_rate"),
    ('OpenAIES("CartPole-v1", noise_table_size=2**33)', "ValueError",
     r"noise_table_size must be an int in \[1, 1073741824\]"),
    ('PPO(lambda: None)', "TypeError", r"the env factory returned NoneType, not a "
                                       r"gymnasium\.Env"),
    ('PPO("CartPole-v1", learnin_rate=0.1)', "TypeError", r"did you mean 'learning_rate'"),
    ('PPO("CartPole-v1", seed="1")', "TypeError", r"seed must be an int"),
    ('PPO("CartPole-v1").learn(10, progress_bar=False, callback=3)', "TypeError",
     r"callback must be a Callback"),
])
def test_a_setting_is_never_coerced(isolated, call, outcome, match):
    expect(isolated, f"from agents import *\n{call}", outcome, match, memory_gib=3)


def test_the_cli_types_set_values_by_the_field(isolated, tmp_path):
    code = f"""
from agents.cli import main
import agents
seen = {{}}
orig = agents.PPO.__init__
def spy(self, env, config=None, **kw):
    seen.update(kw)
    orig(self, env, config, **kw)
agents.PPO.__init__ = spy
main(["train", "ppo", "CartPole-v1", "--timesteps", "16", "--out", "{tmp_path}/r",
      "--no-progress", "--eval-episodes", "1", "--set", "normalize_obs=False",
      "--set", "n_envs=2", "--set", "n_steps=8", "--set", "mlp_hidden=[16,16]"])
assert seen["normalize_obs"] is False and seen["mlp_hidden"] == (16, 16), seen
"""
    expect(isolated, code, "ok")


# ---------------------------------------------------------------------------- divergence
def test_a_diverging_evolution_keeps_its_last_good_checkpoint(isolated, tmp_path):
    code = f"""
import warnings, numpy as np
warnings.simplefilter("ignore")
from agents import OpenAIES, TrainingDiverged
m = OpenAIES("CartPole-v1", seed=0, backend="serial", learning_rate=1e6, optimizer="sgd",
             log_dir="{tmp_path}", checkpoint_freq=1, {ES})
try:
    m.learn(100_000)
except TrainingDiverged as e:
    assert np.isfinite(m.policy.flat_params).all() and np.isfinite(m.center).all()
    saved = OpenAIES.load("{tmp_path}/checkpoint.rlstm")
    assert np.isfinite(saved.center).all() and saved.iterations == m.iterations
    saved.learn(10)  # and it resumes
    raise
"""
    expect(isolated, code, "TrainingDiverged", r"training diverged at timestep \d+: a "
                                               r"parameter became NaN or inf.*checkpoint")


def test_saving_a_diverged_model_keeps_the_good_file(isolated, tmp_path):
    code = f"""
import numpy as np
from agents import OpenAIES
m = OpenAIES("CartPole-v1", seed=0, backend="serial", {ES})
m.save("{tmp_path}/m.rlstm")
m.policy.flat_params[0] = np.nan
try:
    m.save("{tmp_path}/m.rlstm")
finally:
    OpenAIES.load("{tmp_path}/m.rlstm")
"""
    expect(isolated, code, "TrainingDiverged", r"refusing to write NaN/inf parameters")


# ---------------------------------------------------------------------------- trainer files
def crafted(tmp_path, make, edit) -> str:
    return f"""
import numpy as np
from agents import *
from rlstm.serialization import load_arrays, save_arrays
m = {make}
m.save("{tmp_path}/m.rlstm")
arrays, header = load_arrays("{tmp_path}/m.rlstm")
meta = {{k: v for k, v in header.items() if k not in ("format", "version", "kind")}}
{edit}
save_arrays("{tmp_path}/bad.rlstm", arrays, kind=header["kind"], meta=meta)
type(m).load("{tmp_path}/bad.rlstm")
"""


PPO_ = f'PPO("CartPole-v1", seed=0, {PG})'
ES_ = f'OpenAIES("CartPole-v1", seed=0, backend="serial", {ES})'


@pytest.mark.parametrize("make,edit,match", [
    (PPO_, 'meta["trainer"]["config"]["hidden_size"] = 20000',
     r"the trainer config says hidden_size=20000, its policy was built with 8"),
    (PPO_, 'meta["policy"]["config"]["hidden_size"] = 20000', r"do not fit the saved"),
    (PPO_, 'meta["policy"]["config"]["observation_space"] = {"type": "Discrete", '
           '"n": 10**9, "start": 0}', r"do not fit the saved parameters"),
    (ES_, 'meta["trainer"]["config"]["noise_table_size"] = 2**33',
     r"noise_table_size must be an int in \[1, 1073741824\]"),
    (PPO_, 'del meta["trainer"]["iterations"]', r"missing the entry 'iterations'"),
    (PPO_, 'meta["trainer"]["num_timesteps"] = "many"', r"num_timesteps must be an int"),
    (PPO_, 'arrays["obs_norm/var"][:] = -1', r"impossible: a negative variance"),
    (PPO_, 'arrays["obs_norm/mean"][0] = np.nan', r"obs_norm/mean must be finite"),
    (PPO_, 'arrays["algo/optim/t"] = np.asarray(-1)', r"impossible step count -1"),
    (ES_, 'arrays["algo/theta"][0] = np.nan', r"NaN or inf in the OpenAIES's state"),
    (PPO_, 'del arrays["trainer/rng"]', r"missing the entry 'trainer/rng'"),
    (PPO_, 'del meta["policy"]', r"no 'policy' section"),
])
def test_a_crafted_trainer_file_is_refused_before_allocating(isolated, tmp_path, make, edit,
                                                             match):
    message = expect(isolated, crafted(tmp_path, make, edit), "ValueError", match,
                     memory_gib=3)
    assert "bad.rlstm" in message


# ---------------------------------------------------------------------------- mismatches
OTHER_ENV = """
import gymnasium as gym, numpy as np
class Other(gym.Env):
    observation_space = gym.spaces.Box(-1, 1, (6,), np.float32)
    action_space = gym.spaces.Discrete(5)
    def reset(self, seed=None, options=None):
        return np.zeros(6, np.float32), {}
    def step(self, a):
        return np.zeros(6, np.float32), 1.0, False, True, {}
"""


@pytest.mark.parametrize("action", [
    'PPO.load("{d}/m.rlstm", env=Other).learn(16)',
    'agents.evaluate(PPO.load("{d}/m.rlstm"), Other)',
    'OpenAIES.load("{d}/e.rlstm", env=Other, backend="serial").learn(16)',
])
def test_an_env_of_other_spaces_is_refused_showing_both(isolated, tmp_path, action):
    code = OTHER_ENV + f"""
import agents
from agents import PPO, OpenAIES
PPO("CartPole-v1", seed=0, {PG}).save("{tmp_path}/m.rlstm")
OpenAIES("CartPole-v1", seed=0, backend="serial", {ES}).save("{tmp_path}/e.rlstm")
{action.format(d=tmp_path)}
"""
    expect(isolated, code, "ValueError", r"the env's observation space Box\(-1\.0, 1\.0, "
                                         r"\(6,\), float32\) differs from the model's Box")


def test_resume_from_the_cli_uses_the_saved_env_and_seed(tmp_path):
    env = {**os.environ, "PYTHONPATH": os.getcwd()}
    cli = [sys.executable, "-m", "agents.cli", "train", "ppo"]
    opts = ["--no-progress", "--eval-episodes", "1", "--set", "n_envs=2", "--set", "n_steps=8",
            "--timesteps", "16"]
    subprocess.run(cli + ["Acrobot-v1"] + opts + ["--seed", "7", "--out", str(tmp_path / "a")],
                   check=True, env=env, capture_output=True)
    p = subprocess.run(cli + opts + ["--resume", str(tmp_path / "a" / "model.rlstm"), "--out",
                                     str(tmp_path / "b")], env=env, capture_output=True,
                       text=True)
    assert p.returncode == 0, p.stderr
    assert "training PPO on Acrobot-v1 for 16 steps (seed 7)" in p.stdout


# ---------------------------------------------------------------------------- env faults
BAD_ENV = """
import gymnasium as gym, numpy as np
class Bad(gym.Env):
    observation_space = gym.spaces.Box(-np.inf, np.inf, (3,), np.float64)
    action_space = gym.spaces.Discrete(2)
    WHAT = {what!r}
    def reset(self, seed=None, options=None):
        super().reset(seed=seed)
        self.t = 0
        return np.zeros(3), {{}}
    def step(self, a):
        self.t += 1
        obs, r = np.full(3, 0.1 * self.t), 1.0
        if self.t == 5:
            if self.WHAT == "nan_reward":
                r = float("nan")
            elif self.WHAT == "inf_reward":
                r = float("inf")
            else:
                obs[1] = np.nan
        return obs, r, False, self.t >= 20, {{}}
"""


@pytest.mark.parametrize("what", ["nan_reward", "inf_reward", "nan_obs"])
@pytest.mark.parametrize("trainer", [
    f"PPO(Bad, seed=0, {PG})",
    f'OpenAIES(Bad, seed=0, backend="process", n_workers=2, reward_threshold=1.0, {ES})',
    f'CMAES(Bad, seed=0, backend="serial", {ES})',
    f'GA(Bad, seed=0, backend="serial", truncation=2, {ES})',
    f'Evolino(Bad, seed=0, backend="serial", {ES})',
])
def test_nan_or_inf_from_the_env_stops_every_trainer_naming_the_step(isolated, what, trainer):
    code = BAD_ENV.format(what=what) + f"""
import numpy as np
from agents import *
m = {trainer}
before = m.policy.flat_params.copy()
try:
    m.learn(2000)
finally:
    assert not getattr(m, "solved", False)  # an infinite reward never counts as solving
    assert np.array_equal(m.policy.flat_params, before) and m.iterations == 0
    m.close()
"""
    kind = "an observation with NaN or inf" if what == "nan_obs" else "a reward of"
    expect(isolated, code, "EnvOutputError", rf"the env returned {kind}.*step")


def test_a_dead_async_env_worker_is_a_clear_error(isolated):
    code = """
import os, signal
from agents import PPO
m = PPO("CartPole-v1", seed=0, vec_env="async", n_envs=2, n_steps=8, seq_len=4, hidden_size=8)
m.learn(16)
os.kill(m.workers.workers[0].rollout.envs.processes[0].pid, signal.SIGKILL)
try:
    m.learn(64)
finally:
    m.close()
"""
    expect(isolated, code, "RuntimeError", r"a worker process of the async vector env "
                                           r"\(CartPole-v1\) died")


# ---------------------------------------------------------------------------- interrupts
RUN = """
import signal, sys
# Python raises KeyboardInterrupt on SIGINT only if SIGINT was not ignored when it started, and
# a shell starts background jobs with SIGINT ignored: a suite run as `pytest &` (or under
# nohup in a script) would hand that on to this process, and the Ctrl-C below would be lost
signal.signal(signal.SIGINT, signal.default_int_handler)
from agents import PPO, OpenAIES
kind, d = sys.argv[1], sys.argv[2]
if kind == "ppo":
    m = PPO("CartPole-v1", seed=3, log_dir=d, n_envs=4, n_steps=64, hidden_size=32)
elif kind == "ppo-process":
    m = PPO("CartPole-v1", seed=3, log_dir=d, n_envs=4, n_steps=64, hidden_size=32,
            backend="process", n_workers=2)
else:
    m = OpenAIES("CartPole-v1", seed=3, log_dir=d, backend="process", n_workers=2,
                 population_size=64, hidden_size=16, noise_table_size=1_000_000)
print("started", flush=True)
m.learn(10_000_000)
"""


@pytest.mark.parametrize("kind", ["ppo", "ppo-process", "es"])
def test_sigint_checkpoints_a_whole_iteration_that_resumes_exactly(kind, tmp_path):
    """A real Ctrl-C, at a random point of a run (in a rollout, a generation, or a worker):
    the checkpoint holds the last whole iteration, resuming from it reproduces the run that
    stopped there, and no worker process is left behind."""
    env = {**os.environ, "PYTHONPATH": os.getcwd()}
    p = subprocess.Popen([sys.executable, "-c", RUN, kind, str(tmp_path)], env=env,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert p.stdout.readline().strip() == "started"
    # Wait for the first whole iteration (a row in progress.csv), however loaded the machine,
    # then interrupt at a point of a later one.
    progress, deadline = tmp_path / "progress.csv", time.monotonic() + 120
    while not (progress.exists() and len(progress.read_text().splitlines()) >= 2):
        assert p.poll() is None, p.stderr.read()[-3000:]
        assert time.monotonic() < deadline, "no iteration finished within 120 s"
        time.sleep(0.1)
    time.sleep(1.0)
    workers = subprocess.run(["pgrep", "-P", str(p.pid)], capture_output=True,
                             text=True).stdout.split()
    assert kind == "ppo" or workers  # the process backends have started their workers
    p.send_signal(signal.SIGINT)
    try:
        p.wait(timeout=60)
    except subprocess.TimeoutExpired:
        p.kill()
        pytest.fail("the run did not stop on Ctrl-C")
    assert "KeyboardInterrupt" in p.stderr.read()
    time.sleep(0.5)
    for pid in workers:  # no orphaned worker outlives the run
        assert not os.path.exists(f"/proc/{pid}") or \
            open(f"/proc/{pid}/stat").read().split()[2] == "Z", f"worker {pid} is still alive"
    check = f"""
import numpy as np
from agents import PPO, OpenAIES
cls = PPO if "{kind}".startswith("ppo") else OpenAIES
saved = cls.load("{tmp_path}/checkpoint.rlstm", backend="serial") if cls is OpenAIES else \\
    cls.load("{tmp_path}/checkpoint.rlstm")
assert saved.iterations >= 1
kw = dict(n_envs=4, n_steps=64, hidden_size=32) if "{kind}" == "ppo" else dict(
    n_envs=4, n_steps=64, hidden_size=32, backend="serial", n_workers=2) if cls is PPO else dict(
    backend="serial", population_size=64, hidden_size=16, noise_table_size=1_000_000)
k = saved.iterations
straight = cls("CartPole-v1", seed=3, **kw).learn(10_000_000, callback=lambda m: m.iterations < k)
assert straight.num_timesteps == saved.num_timesteps, (straight.num_timesteps, saved.num_timesteps)
np.testing.assert_array_equal(straight.policy.flat_params, saved.policy.flat_params)
assert straight.rng.bit_generator.state == saved.rng.bit_generator.state
"""
    r = subprocess.run([sys.executable, "-c", check], env=env, capture_output=True, text=True,
                       timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
