"""LatentActionVectorEnv: the same trajectories as N single wrappers, one forward per step."""

from __future__ import annotations

import gc
import time

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import data_equivalence
from gymnasium.vector import AutoresetMode, SyncVectorEnv

from bfm_gym.wrappers import _pool
from bfm_gym.wrappers.latent import LatentActionWrapper
from bfm_gym.wrappers.registration import make_inner_env, make_latent_env
from bfm_gym.wrappers.vector import LatentActionVectorEnv, make_latent_vector_env
from latent_testenvs import tiny_bfm

CAPS = (5, 7, 9)  # different inner episode lengths, so the envs end at different steps


@pytest.fixture(scope="module")
def bfm():
    return tiny_bfm("walker")


def _pair(bfm, mode: AutoresetMode, **kw):
    """The vector env and a SyncVectorEnv of single wrappers over the same inner envs."""
    vec = LatentActionVectorEnv(
        [make_inner_env("walker", "run", max_inner_steps=c) for c in CAPS], bfm, 3,
        autoreset_mode=mode, **kw,
    )  # fmt: skip
    sync = SyncVectorEnv(
        [lambda c=c: LatentActionWrapper(make_inner_env("walker", "run", max_inner_steps=c),
                                         bfm, 3, **kw) for c in CAPS],
        autoreset_mode=mode,
    )  # fmt: skip
    return vec, sync


@pytest.mark.parametrize("workers", [(1, "threads"), (2, "threads"), (3, "threads"),
                                     (2, "processes"), (3, "processes")],
                         ids=lambda w: f"workers{w[0]}-{w[1]}")  # fmt: skip
@pytest.mark.parametrize("mode", list(AutoresetMode), ids=lambda m: m.value)
def test_same_trajectories_as_single_wrappers(bfm, mode: AutoresetMode,
                                              workers: tuple[int, str]) -> None:  # fmt: skip
    """Bit for bit, also with the simulators stepped in worker threads or processes."""
    vec, sync = _pair(bfm, mode, record_state=True)
    k, parallel = workers
    if k > 1:
        vec.close()
        vec = LatentActionVectorEnv(
            [make_inner_env("walker", "run", max_inner_steps=c) for c in CAPS], bfm, 3,
            autoreset_mode=mode, record_state=True, workers=k, parallel=parallel,
        )  # fmt: skip
        assert vec._pool.workers == k
        assert type(vec._pool).__name__ == {"threads": "ThreadPool", "processes": "ProcessPool"}[parallel]
    assert vec.metadata["autoreset_mode"] == mode
    out_v, out_s = vec.reset(seed=3), sync.reset(seed=3)
    assert data_equivalence(out_v, out_s, exact=True)
    rng = np.random.default_rng(0)
    ended_seen = 0
    for _ in range(12):
        actions = rng.uniform(-1, 1, (3, 8)).astype(np.float32)
        out_v, out_s = vec.step(actions), sync.step(actions)
        assert data_equivalence(out_v, out_s, exact=True), (out_v, out_s)
        ended = out_v[2] | out_v[3]
        ended_seen += int(ended.sum())
        if mode == AutoresetMode.DISABLED and ended.any():
            assert data_equivalence(vec.reset(options={"reset_mask": ended}),
                                    sync.reset(options={"reset_mask": ended}), exact=True)  # fmt: skip
    assert ended_seen >= 4  # the episodes ended (and restarted) at different steps


def test_same_trajectories_as_independent_single_envs(bfm) -> None:
    """Against N wrappers stepped by hand with NEXT_STEP autoreset, seeds seed + i."""
    vec = make_latent_vector_env(3, "walker", "run", model=bfm, z_hold=2, max_inner_steps=9)
    singles = [make_latent_env("walker", "run", model=bfm, z_hold=2, max_inner_steps=9)
               for _ in range(3)]  # fmt: skip
    obs, _ = vec.reset(seed=10)
    for i, env in enumerate(singles):
        np.testing.assert_array_equal(env.reset(seed=10 + i)[0], obs[i])
    done = np.zeros(3, bool)
    rng = np.random.default_rng(1)
    for _ in range(8):
        actions = rng.uniform(-1, 1, (3, 8)).astype(np.float32)
        obs, rewards, terminated, truncated, info = vec.step(actions)
        for i, env in enumerate(singles):
            if done[i]:  # NEXT_STEP: this step resets env i and ignores its action
                o, _ = env.reset()
                r, te, tr = 0.0, False, False
                assert not info.get("_z", np.zeros(3, bool))[i]
            else:
                o, r, te, tr, single_info = env.step(actions[i])
                np.testing.assert_array_equal(info["z"][i], single_info["z"])
                assert info["transitions"][i] == single_info["transitions"]
            np.testing.assert_array_equal(obs[i], o)
            assert (rewards[i], terminated[i], truncated[i]) == (r, te, tr)
        done = terminated | truncated


class _CountingRunner:
    def __init__(self, runner) -> None:
        self.runner, self.calls = runner, 0
        self.obs, self.z = runner.obs, runner.z

    def __call__(self) -> np.ndarray:
        self.calls += 1
        return self.runner()


def test_one_batched_forward_per_low_level_step(bfm) -> None:
    vec = make_latent_vector_env(4, "walker", "run", model=bfm, z_hold=3)
    counter = _CountingRunner(vec._runner)
    vec._runner = counter
    assert counter.runner.batch == 4
    vec.reset(seed=0)
    vec.step(np.zeros((4, 8), np.float32))
    assert counter.calls == 3


def test_state_reset_option_goes_to_every_env(bfm) -> None:
    vec = make_latent_vector_env(2, "walker", "run", model=bfm, record_state=True)
    assert vec.supports_state_reset
    _, info = vec.reset(seed=0)
    state = info["state"][1]
    obs, _ = vec.reset(options={"state": state})
    np.testing.assert_array_equal(obs[0], obs[1])


def test_bad_input_and_lifecycle(bfm) -> None:
    vec = make_latent_vector_env(2, "walker", "run", model=bfm)
    with pytest.raises(gym.error.ResetNeeded, match="before reset"):
        vec.step(np.zeros((2, 8), np.float32))
    vec.reset(seed=0)
    with pytest.raises(ValueError, match=r"shape \(8,\) received; expected shape \(2, 8\)"):
        vec.step(np.zeros(8, np.float32))
    with pytest.raises(ValueError, match="NaN or inf"):
        vec.step(np.full((2, 8), np.nan, np.float32))
    with pytest.warns(UserWarning, match="clipping"):
        vec.step(np.full((2, 8), 2.0, np.float32))
    with pytest.raises(ValueError, match="reset_mask"):
        vec.reset(options={"reset_mask": np.zeros(2, bool)})
    vec.close()
    with pytest.raises(RuntimeError, match="closed"):
        vec.reset()
    with pytest.raises(ValueError, match="same spaces"):
        LatentActionVectorEnv([make_inner_env("walker"), make_inner_env("cheetah")], bfm)
    with pytest.raises(ValueError, match="does not match"):
        LatentActionVectorEnv([make_inner_env("cheetah")], bfm)


def test_render_returns_one_frame_per_env(bfm) -> None:
    vec = make_latent_vector_env(2, "walker", "run", model=bfm, render_mode="rgb_array",
                                 render_kwargs={"height": 24, "width": 32})  # fmt: skip
    vec.reset(seed=0)
    frames = vec.render()
    assert len(frames) == 2 and frames[0].shape == (24, 32, 3)


@pytest.mark.expensive
def test_async_make_vec_with_spawn(model_dirs) -> None:
    """Async workers must be spawned: forking after multi-threaded torch ops hangs them."""
    envs = gym.make_vec("bfm_gym/walker-run-latent-v0", num_envs=2, vectorization_mode="async",
                        vector_kwargs={"context": "spawn"}, model=str(model_dirs["walker"]))  # fmt: skip
    try:
        envs.reset(seed=0)
        obs, *_, info = envs.step(np.zeros((2, 8), np.float32))
        assert obs.shape == (2, 24) and len(info["transitions"][0]) == 1
    finally:
        envs.close()


def test_workers_reach_the_live_envs_and_report_their_errors(bfm) -> None:
    """With worker processes, call/get_attr/set_attr/state reset act on the envs the workers
    step, an env's error comes back as itself, and close ends the workers."""
    vec = LatentActionVectorEnv([make_inner_env("walker", "run") for _ in range(3)], bfm,
                                workers=3, parallel="processes")  # fmt: skip
    ref = LatentActionVectorEnv([make_inner_env("walker", "run") for _ in range(3)], bfm)
    vec.reset(seed=0)
    ref.reset(seed=0)
    actions = np.random.default_rng(0).uniform(-1, 1, (3, 8)).astype(np.float32)
    for _ in range(3):
        assert data_equivalence(vec.step(actions), ref.step(actions), exact=True)
    states = vec.call("get_state")
    for s_vec, s_ref in zip(states, ref.call("get_state"), strict=True):
        np.testing.assert_array_equal(s_vec, s_ref)
    assert not np.array_equal(states[2], vec.envs[2].unwrapped.get_state())  # parent's stale copy
    vec.set_attr("marker", [1, 2, 3])
    assert vec.get_attr("marker") == (1, 2, 3)
    obs, _ = vec.reset(options={"state": states[2]})
    np.testing.assert_array_equal(obs[0], obs[2])
    with pytest.raises(ValueError) as err:  # raised in worker 2, raised again here
        vec.reset(options={"state": np.zeros(2), "reset_mask": np.array([False, False, True])})
    assert "LatentActionVectorEnv worker 2" in str(err.value.__cause__)
    procs = list(vec._pool._procs)
    vec.close()
    ref.close()
    assert all(not p.is_alive() for p in procs)


def test_workers_argument_is_checked(bfm) -> None:
    envs = [make_inner_env("walker", "run") for _ in range(2)]
    for bad in (0, -1, 1.5, "many", True):
        with pytest.raises(ValueError, match="workers must be an int >= 1 or 'auto'"):
            LatentActionVectorEnv(envs, bfm, workers=bad)
    auto = LatentActionVectorEnv(envs, bfm, workers="auto")
    assert 1 <= auto._pool.workers <= 2
    auto.close()
    with pytest.raises(ValueError, match="rendering needs workers=1"):
        LatentActionVectorEnv([make_inner_env("walker", "run", render_mode="rgb_array")
                               for _ in range(2)], bfm, workers=2, parallel="processes")  # fmt: skip
    with pytest.raises(ValueError, match="parallel must be 'threads' or 'processes'"):
        LatentActionVectorEnv(envs, bfm, workers=2, parallel="fork")


class _Exploding(gym.Wrapper):
    """Raises on its third step (an env whose simulator diverged)."""

    def __init__(self, env: gym.Env) -> None:
        super().__init__(env)
        self.steps = 0

    def step(self, action):
        self.steps += 1
        if self.steps == 3:
            raise RuntimeError("simulator diverged")
        return self.env.step(action)


def test_worker_threads_step_the_live_envs_and_raise_their_errors(bfm) -> None:
    """With threads, self.envs are the envs being stepped (state and attributes are live), an
    env's error in a worker thread is raised as itself in the caller, rendering works, and
    close ends the threads."""
    vec = LatentActionVectorEnv([make_inner_env("walker", "run", render_mode="rgb_array")
                                 for _ in range(3)], bfm, workers=3, parallel="threads")  # fmt: skip
    ref = LatentActionVectorEnv([make_inner_env("walker", "run") for _ in range(3)], bfm)
    vec.reset(seed=0)
    ref.reset(seed=0)
    actions = np.random.default_rng(0).uniform(-1, 1, (3, 8)).astype(np.float32)
    for _ in range(3):
        assert data_equivalence(vec.step(actions), ref.step(actions), exact=True)
    for i, (s_vec, s_ref) in enumerate(zip(vec.call("get_state"), ref.call("get_state"),
                                           strict=True)):  # fmt: skip
        np.testing.assert_array_equal(s_vec, s_ref)
        np.testing.assert_array_equal(s_vec, vec.envs[i].unwrapped.get_state())  # live envs
    frames = vec.render()
    assert len(frames) == 3 and frames[2].ndim == 3
    threads = list(vec._pool._threads)
    assert len(threads) == 2 and all(t.is_alive() for t in threads)
    vec.close()
    ref.close()
    assert all(not t.is_alive() for t in threads)
    boom = LatentActionVectorEnv([make_inner_env("walker", "run"), make_inner_env("walker", "run"),
                                  _Exploding(make_inner_env("walker", "run"))], bfm,
                                 workers=3, parallel="threads")  # fmt: skip
    boom.reset(seed=0)
    boom.step(actions)
    boom.step(actions)
    with pytest.raises(RuntimeError, match="simulator diverged"):
        boom.step(actions)
    boom.close()


@pytest.mark.parametrize("record_state", [False, True])
def test_one_step_hold_transitions_match_the_vector_env(bfm, record_state: bool) -> None:
    """z_hold=1: the single wrapper builds its transitions directly (not through the
    recorder); they equal the vector env's recorder output in values and dtypes, also with a
    reward_fn and simulator states."""
    kw = {"record_state": record_state, "reward_fn": _reward_x}
    vec = LatentActionVectorEnv([make_inner_env("walker", "run", max_inner_steps=c) for c in CAPS],
                                bfm, 1, **kw)  # fmt: skip
    singles = [LatentActionWrapper(make_inner_env("walker", "run", max_inner_steps=c), bfm, 1, **kw)
               for c in CAPS]  # fmt: skip
    vec.reset(seed=5)
    for i, env in enumerate(singles):
        env.reset(seed=5 + i)
    rng = np.random.default_rng(2)
    for _ in range(8):  # env 0 ends at its 5th step and is reset (NEXT_STEP) at the 6th
        actions = rng.uniform(-1, 1, (3, 8)).astype(np.float32)
        _, rewards, term, trunc, info = vec.step(actions)
        for i, env in enumerate(singles):
            if not info["_transitions"][i]:
                continue
            _, r, te, tr, single_info = env.step(actions[i])
            t = single_info["transitions"]
            assert t == info["transitions"][i]
            assert t.obs.dtype == np.float32 and t.obs.shape == (1, 24)
            assert (t.next_state is not None) == record_state
            assert r == rewards[i] and te == term[i] and tr == trunc[i]
            if record_state:
                np.testing.assert_array_equal(single_info["state"], info["state"][i])
                np.testing.assert_array_equal(t.next_state[0], single_info["state"])
            if te or tr:
                env.reset()


def _reward_x(obs, action, next_obs, info) -> float:
    return float(next_obs[0] - obs[0]) + float(action.sum())


def test_exact_false_uses_matrix_products_and_agrees_to_rounding(bfm) -> None:
    """exact=False: one matrix product per layer for all envs ("numpy-batched"); each env's
    action equals a single wrapper's (row-wise) action for the same observation and latent up
    to float32 rounding, and the default path stays bitwise row-wise."""
    n = 6
    fast = LatentActionVectorEnv([make_inner_env("walker", "run") for _ in range(n)], bfm, exact=False)
    exact = LatentActionVectorEnv([make_inner_env("walker", "run") for _ in range(n)], bfm)
    assert fast._runner.path == "numpy-batched" and exact._runner.path == "numpy"
    one = bfm.policy_runner(batch=1)
    assert not one.use_matrix_products()  # a single row has nothing to batch
    rng = np.random.default_rng(0)
    worst = 0.0
    for _ in range(20):
        obs = rng.standard_normal((n, bfm.obs_dim)).astype(np.float32)
        z = np.asarray(bfm.project(rng.standard_normal((n, bfm.z_dim)).astype(np.float32)))
        rows = []
        for i in range(n):
            one.obs[0], one.z[0] = obs[i], z[i]
            rows.append(one().copy())
        for env in (fast, exact):
            env._runner.obs[:], env._runner.z[:] = obs, z
        assert np.array_equal(exact._runner(), np.concatenate(rows))
        worst = max(worst, float(np.abs(fast._runner() - np.concatenate(rows)).max()))
    assert 0.0 < worst < 1e-5
    obs_f, *_ = fast.reset(seed=0)
    obs_e, *_ = exact.reset(seed=0)
    actions = rng.uniform(-1, 1, (n, bfm.z_dim)).astype(np.float32)
    step_f, step_e = fast.step(actions), exact.step(actions)
    assert np.array_equal(obs_f, obs_e)
    np.testing.assert_allclose(step_f[0], step_e[0], atol=1e-4)
    np.testing.assert_array_equal(step_f[4]["z"], step_e[4]["z"])
    fast.close()
    exact.close()
    with pytest.raises(ValueError, match="exact must be True"):
        LatentActionVectorEnv([make_inner_env("walker", "run")], bfm, exact="no")


def test_batched_latent_map_is_bitwise_the_row_map(bfm) -> None:
    """ActionMap.to_z projects all rows in one pass; every row is bitwise project_row's, also
    when a row without a direction sends the batch down the per-row path."""
    env = LatentActionVectorEnv([make_inner_env("walker", "run") for _ in range(4)], bfm)
    amap = env._map
    rng = np.random.default_rng(1)
    a = rng.uniform(-1, 1, (64, bfm.z_dim)).astype(np.float32)
    a[3] *= 1e-3
    rows = np.stack([amap.project_row(r, np.empty(bfm.z_dim, np.float32)) for r in a])
    assert np.array_equal(amap.to_z(a), rows)
    a[5] = 0.0
    rows[5] = amap.project_row(a[5], np.empty(bfm.z_dim, np.float32))
    assert np.array_equal(amap.to_z(a), rows)
    env.close()


class _InfoEveryOther(gym.Wrapper):
    """Puts a non-empty info on every other step (such a step cannot use the shared rows)."""

    def __init__(self, env: gym.Env) -> None:
        super().__init__(env)
        self.steps = 0

    def step(self, action):
        obs, r, te, tr, info = self.env.step(action)
        self.steps += 1
        return obs, r, te, tr, ({**info, "odd": self.steps} if self.steps % 2 else info)


def _pool_steps(pool, n: int, steps: int, want_state: bool, pause: float = 0.0) -> list:
    rng = np.random.default_rng(4)
    for i in range(n):
        pool.run(i, "reset", (i, i, None))
    out = []
    for _ in range(steps):
        acts = [a for a in rng.uniform(-1, 1, (n, 6)).astype(np.float32)]  # walker: 6 actions
        out.append(pool.step(list(range(n)), acts, want_state))
        if pause:
            time.sleep(pause)
    return out


@pytest.mark.parametrize("spin", [True, False], ids=["shared-memory", "pipe"])
def test_worker_process_steps_are_bitwise_the_local_ones(spin: bool) -> None:
    """Steps handed to a worker through shared memory (or the pipe) give the local results byte
    for byte: observations, rewards, flags, infos (an info that does not fit the rows comes
    through the pipe) and states; a worker that slept between steps is woken."""
    if spin and not _pool.SPIN_HANDOFF:
        pytest.skip("shared-memory hand-off runs on x86-64 only")

    def envs():
        return [make_inner_env("walker", "run", max_inner_steps=40) for _ in range(2)] + [
            _InfoEveryOther(make_inner_env("walker", "run", max_inner_steps=40))
            for _ in range(2)]  # fmt: skip

    local = _pool.LocalPool(envs())
    ref = _pool_steps(local, 4, 6, True) + _pool_steps(local, 4, 3, False)
    pool = _pool.ProcessPool(envs(), 2, spin=spin)
    try:
        assert (1 in pool._channels) is spin  # worker 1 steps the info-making envs 2 and 3
        got = _pool_steps(pool, 4, 6, True) + _pool_steps(pool, 4, 3, False, pause=0.02)
        if spin:
            channel = pool._channels[1]
            assert channel.posted == 9 and channel.ctrl[_pool._VIA_PIPE] == 1  # odd info: pipe
            assert channel.ctrl[_pool._SLEEPING] == 1  # asleep after the last pause
        assert data_equivalence(got, ref, exact=True)
        assert [r[2][4] for r in got] == [{"odd": k} if k % 2 else {} for k in range(1, 10)]
    finally:
        pool.close()
        local.close()


def test_worker_process_errors_and_death_reach_the_caller() -> None:
    """An env's error in a shared-memory step comes back as itself; a worker that died is named."""
    pool = _pool.ProcessPool([make_inner_env("walker", "run"),
                              _Exploding(make_inner_env("walker", "run"))], 2)  # fmt: skip
    try:
        _pool_steps(pool, 2, 2, False)
        with pytest.raises(RuntimeError, match="simulator diverged"):
            pool.step([0, 1], [np.zeros(6, np.float32)] * 2, False)
        pool._procs[0].kill()
        pool._procs[0].join()
        with pytest.raises(RuntimeError, match="worker process 1 died"):
            pool.step([0, 1], [np.zeros(6, np.float32)] * 2, False)
    finally:
        pool.close()


def test_dropped_vector_envs_leave_new_ones_alone(bfm) -> None:
    """Worker processes of vector envs dropped without close() never read a newer env's shared
    memory (each channel has its own mapping): the new env still equals separate stepping."""
    actions = np.random.default_rng(5).uniform(-1, 1, (4, 8)).astype(np.float32)
    for _ in range(3):
        old = LatentActionVectorEnv([make_inner_env("walker", "run") for _ in range(4)], bfm,
                                    workers=2)  # fmt: skip
        old.reset(seed=0)
        old.step(actions)
        del old
        gc.collect()
    vec = LatentActionVectorEnv([make_inner_env("walker", "run") for _ in range(4)], bfm,
                                workers=2)  # fmt: skip
    ref = LatentActionVectorEnv([make_inner_env("walker", "run") for _ in range(4)], bfm)
    try:
        assert data_equivalence(vec.reset(seed=1), ref.reset(seed=1), exact=True)
        for _ in range(4):
            assert data_equivalence(vec.step(actions), ref.step(actions), exact=True)
    finally:
        vec.close()
        ref.close()


def _own_rows_steps(pool, runner, to_env, n: int, steps: int, want_state: bool) -> list:
    """Steps where the actions come from pi's rows: ``pool.act_and_step`` for a pool that
    computes them, else one full-batch forward here and ``pool.step``."""
    rng = np.random.default_rng(6)
    runner.obs[:] = np.stack([pool.run(i, "reset", (i, i, None))[0] for i in range(n)])
    out = []
    for k in range(steps):
        runner.z[:] = rng.normal(size=runner.z.shape).astype(np.float32)
        idx = list(range(n)) if k % 3 else [0, 2, 3]  # some steps leave an env out
        if isinstance(pool, _pool.ProcessPool) and pool.computes_actions:
            acts, results = pool.act_and_step(idx, runner.obs, runner.z, want_state)
        else:
            rows = runner()
            acts = [to_env(rows[i]) for i in idx]
            results = pool.step(idx, acts, want_state)
        for i, (o, *_rest) in zip(idx, results, strict=True):
            runner.obs[i] = o
        out.append((acts, results))
    return out


@pytest.mark.parametrize("to_env_dtype", [np.float32, np.float16], ids=["rows", "pipe"])
def test_worker_processes_compute_their_own_policy_rows_bitwise(bfm, to_env_dtype) -> None:
    """With a row-independent runner each process evaluates its own chunk's policy rows: the
    actions and step results are byte for byte those of one full-batch forward and local
    stepping, also when the actions (float16 here) or an info cannot use the shared rows and
    come back through the pipe."""
    if not _pool.SPIN_HANDOFF:
        pytest.skip("worker-side policy rows need the shared-memory hand-off (x86-64)")
    runner = bfm.policy_runner(batch=4)
    assert runner.independent_rows

    def to_env(a: np.ndarray) -> np.ndarray:
        return a.astype(to_env_dtype)

    def envs():
        return [make_inner_env("walker", "run", max_inner_steps=40) for _ in range(3)] + [
            _InfoEveryOther(make_inner_env("walker", "run", max_inner_steps=40))]

    local = _pool.LocalPool(envs())
    ref = _own_rows_steps(local, runner, to_env, 4, 7, True)
    pool = _pool.ProcessPool(envs(), 2, policy=_pool.ChunkPolicy(bfm.policy_runner, to_env))
    try:
        assert pool.computes_actions
        got = _own_rows_steps(pool, bfm.policy_runner(batch=4), to_env, 4, 7, True)
        assert data_equivalence(got, ref, exact=True)
        assert all(a.dtype == to_env_dtype for acts, _ in got for a in acts)
        assert pool._channels[1].ctrl[_pool._POLICY] == 1
    finally:
        pool.close()
        local.close()


def test_vector_env_splits_the_forward_only_when_rows_are_bitwise(bfm) -> None:
    """``workers=2`` processes compute their own rows with the row-wise numpy runner; with
    ``exact=False`` (matrix products: a row depends on the batch) or threads the forward stays
    one batched call in this process. All three equal ``workers=1`` (exact) or agree to
    rounding (``exact=False``)."""
    envs = lambda: [make_inner_env("walker", "run", max_inner_steps=c) for c in (6, 9, 7, 8)]  # noqa: E731
    split = LatentActionVectorEnv(envs(), bfm, workers=2)
    batched = LatentActionVectorEnv(envs(), bfm, workers=2, exact=False)
    threads = LatentActionVectorEnv(envs(), bfm, workers=2, parallel="threads")
    ref = LatentActionVectorEnv(envs(), bfm)
    try:
        assert split._pool.computes_actions is _pool.SPIN_HANDOFF
        assert not batched._pool.computes_actions
        assert not hasattr(threads._pool, "computes_actions")
        rng = np.random.default_rng(7)
        outs = [env.reset(seed=3) for env in (split, threads, ref)]
        assert data_equivalence(outs[0], outs[2], exact=True)
        assert data_equivalence(outs[1], outs[2], exact=True)
        batched.reset(seed=3)
        for k in range(12):
            a = rng.uniform(-1, 1, (4, bfm.z_dim)).astype(np.float32)
            want = ref.step(a)
            assert data_equivalence(split.step(a), want, exact=True)
            assert data_equivalence(threads.step(a), want, exact=True)
            if k == 0:  # later, the rounding differences grow along the trajectories
                np.testing.assert_allclose(batched.step(a)[0], want[0], atol=1e-4)
    finally:
        for env in (split, batched, threads, ref):
            env.close()


def test_runner_without_independent_rows_keeps_the_forward_in_the_parent(bfm) -> None:
    """A runner that does not promise bitwise, torch-free rows (here torch's ``model.actor``
    path) is never handed to a worker: the pool steps given actions, as without a policy."""
    from bfm_gym.models.fb.fast_policy import PolicyRunner

    model = bfm._model
    module_runner = lambda n: PolicyRunner(model, batch=n, backend="module")  # noqa: E731
    assert not module_runner(2).independent_rows
    pool = _pool.ProcessPool([make_inner_env("walker", "run") for _ in range(4)], 2,
                             policy=_pool.ChunkPolicy(module_runner, np.copy))  # fmt: skip
    try:
        assert not pool.computes_actions
        assert all(c.policy is None for c in pool._channels.values())
        assert len(_pool_steps(pool, 4, 2, False)) == 2
    finally:
        pool.close()


def test_an_env_error_in_a_worker_computing_its_rows_comes_back(bfm) -> None:
    """A worker that computes its own policy rows reports its env's error as itself, and a
    dead worker by name, as a worker that is handed its actions does."""
    vec = LatentActionVectorEnv([make_inner_env("walker", "run"),
                                 _Exploding(make_inner_env("walker", "run"))], bfm,
                                workers=2)  # fmt: skip
    try:
        assert vec._pool.computes_actions is _pool.SPIN_HANDOFF
        vec.reset(seed=0)
        actions = np.zeros((2, bfm.z_dim), np.float32)
        vec.step(actions)
        vec.step(actions)
        with pytest.raises(RuntimeError, match="simulator diverged"):
            vec.step(actions)
        vec._pool._procs[0].kill()
        vec._pool._procs[0].join()
        with pytest.raises(RuntimeError, match="worker process 1 died"):
            vec.step(actions)
    finally:
        vec.close()
