"""`dreamer batch`: the jobs file checked before any job starts, the local pool and Ray running
ordinary run folders, failures kept to their job, reruns that resume and skip, the summary."""
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import ROOT
from test_hostile_input import dreamer_in_process, one_line_error

TINY = ["trainer.max_steps=6", "camera.width=[32]", "camera.height=[32]", "camera.eval_resolution=32",
        "export.resolution=32", "export.texture_size=64", "export.faces=500", "export.turntable=false",
        "prior.refs_per_object=16", "trainer.val_every=50"]
# Passes every check, then fails in its worker: export finds no surface above this level.
FAILS_IN_WORKER = ["geometry.isosurface_threshold=1000000"]
JOBS = f"""# three tiny jobs, the second fails in its worker
- a rubber duck
- prompt: a snowman
  seed: 3
  overrides: [{", ".join(FAILS_IN_WORKER)}]
- prompt: a penguin
  method: ism
"""


# Ray 2.60's `ray start` wants token authentication: the test cluster and its clients share one token.
RAY_ENV = {"RAY_USAGE_STATS_ENABLED": "0", "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": os.urandom(16).hex()}


def batch(*args, timeout=900):
    return subprocess.run([sys.executable, "-m", "dreamer.cli", "batch", *map(str, args)], capture_output=True,
                          text=True, cwd=ROOT, timeout=timeout, env={**os.environ, **RAY_ENV})


@pytest.mark.parametrize("name, text, pattern", [
    ("missing.txt", None, "cannot read the jobs file"),
    ("empty.txt", "\n# only a comment\n\n", "holds no job"),
    ("broken.yaml", "- prompt: [a duck\n", "is not valid YAML"),
    ("mapping.yaml", "prompt: a duck\n", "must be a YAML list of jobs"),
    ("method.yaml", "- a rubber duck\n- prompt: a snowman\n  method: sdss\n", "line 2: unknown method 'sdss'"),
    ("representation.yaml", "- prompt: a snowman\n  representation: voxels\n", "line 1: unknown representation"),
    ("prompt.txt", "a rubber duck\n\na dragon\n", "line 3: the toy prior does not know \"a dragon\""),
    ("key.yaml", "- prompt: a snowman\n  sead: 3\n", "line 1: unknown job key 'sead'"),
    ("seed.yaml", "- prompt: a snowman\n  seed: three\n", "line 1: seed must be an integer"),
    ("override.yaml", "- prompt: a snowman\n  overrides: [guidance.guidance_scale=-1]\n", "line 1: guidance.guidance_scale must be at least 0"),
])
def test_a_bad_jobs_file_is_refused_with_its_line_before_any_job_starts(tmp_path, name, text, pattern):
    if text is not None:
        (tmp_path / name).write_text(text)
    out = tmp_path / "batch"
    one_line_error(dreamer_in_process("batch", tmp_path / name, "--out", out), pattern)
    assert not out.exists()


@pytest.fixture(scope="module")
def local_batch(tmp_path_factory):
    """The three jobs on the local pool, two at a time (shared with the Ray comparison)."""
    folder = tmp_path_factory.mktemp("local")
    (folder / "jobs.yaml").write_text(JOBS)
    proc = batch(folder / "jobs.yaml", "--out", folder / "batch", "--jobs", 2, *TINY)
    return folder / "jobs.yaml", folder / "batch", proc


def test_the_local_pool_runs_every_job_keeps_failures_to_their_job_and_resumes(local_batch):
    jobs, out, proc = local_batch
    assert proc.returncode == 1, proc.stderr[-3000:]  # not every job is done
    record = json.loads((out / "batch.json").read_text())
    assert [j["folder"] for j in record["jobs"]] == ["001-a-rubber-duck", "002-a-snowman", "003-a-penguin"]
    table = {r["job"]: r for r in _csv(out / "summary.csv")}
    assert [table[j]["status"] for j in sorted(table)] == ["done", "failed", "done"]
    assert "never exceeds the isosurface threshold" in table["002-a-snowman"]["error"]
    assert float(table["001-a-rubber-duck"]["silhouette_iou"]) > 0 and "model.glb" in table["003-a-penguin"]["files"]
    assert "| 002-a-snowman | a snowman | failed |" in (out / "summary.md").read_text()
    for job, method, seed in (("001-a-rubber-duck", "sds", 0), ("003-a-penguin", "ism", 0)):
        run = json.loads((out / job / "run.json").read_text())
        assert run["status"] == "done" and run["step"] == 6
        config = (out / job / "config.yaml").read_text()
        assert f"method: {method}" in config and f"seed: {seed}" in config
    done_glb = (out / "001-a-rubber-duck" / "model.glb").stat().st_mtime_ns

    again = batch(jobs, "--out", out, "--jobs", 2, *TINY)
    assert "3 jobs, 2 already done" in again.stderr
    assert (out / "001-a-rubber-duck" / "model.glb").stat().st_mtime_ns == done_glb  # not redone
    status = subprocess.run([sys.executable, "-m", "dreamer.cli", "batch", "status", str(out)], capture_output=True,
                            text=True, cwd=ROOT)
    assert status.returncode == 0 and "2 done, 1 failed" in status.stdout.replace("1 failed, 2 done", "2 done, 1 failed")
    other = batch(jobs, "--out", out, *TINY, "trainer.max_steps=7")
    one_line_error(other, "holds another batch")


def test_a_node_that_cannot_see_the_batch_folder_fails_its_job_in_one_line(tmp_path):
    from dreamer.batch.pools import ray_job
    outcome = ray_job({"prompt": "a rubber duck"}, str(tmp_path / "run"), str(tmp_path / "elsewhere" / ".dreamer-batch"))
    assert outcome["status"] == "failed" and "must be storage every node mounts" in outcome["error"]
    assert not (tmp_path / "run").exists()


def test_ray_address_that_does_not_answer_fails_in_seconds(tmp_path):
    pytest.importorskip("ray", reason="ray is not installed (pip install ray)")
    (tmp_path / "jobs.txt").write_text("a rubber duck\n")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed once the block ends: nothing listens there
    started = time.time()
    one_line_error(dreamer_in_process("batch", tmp_path / "jobs.txt", "--out", tmp_path / "b", "--ray",
                                      f"127.0.0.1:{port}"), f"no Ray cluster answers at 127.0.0.1:{port}")
    assert time.time() - started < 10 and not (tmp_path / "b").exists()


def test_ray_missing_is_one_line(tmp_path, monkeypatch):
    import builtins
    real = builtins.__import__
    monkeypatch.setattr(builtins, "__import__",
                        lambda name, *a, **k: (_ for _ in ()).throw(ImportError(name)) if name == "ray" else real(name, *a, **k))
    (tmp_path / "jobs.txt").write_text("a rubber duck\n")
    one_line_error(dreamer_in_process("batch", tmp_path / "jobs.txt", "--out", tmp_path / "b", "--ray", "local"),
                   "pip install 'ray==2.60.0'")


def _csv(path: Path) -> list[dict]:
    import csv
    return list(csv.DictReader(path.open()))


# -- a Ray cluster on this machine, bound to 127.0.0.1, started and stopped by the tests -----------

@pytest.fixture(scope="module")
def ray_cluster(tmp_path_factory):
    pytest.importorskip("ray", reason="ray is not installed (pip install ray)")
    ray_bin = Path(sys.executable).parent / "ray"
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    temp = tmp_path_factory.mktemp("ray")
    env = {**os.environ, **RAY_ENV}
    start = subprocess.run([str(ray_bin), "start", "--head", "--node-ip-address=127.0.0.1", f"--port={port}",
                            "--num-cpus=2", "--num-gpus=0", "--include-dashboard=false", "--disable-usage-stats",
                            f"--temp-dir={temp}"], capture_output=True, text=True, env=env, timeout=180)
    assert start.returncode == 0, start.stderr[-2000:]
    try:
        yield f"127.0.0.1:{port}"
    finally:
        subprocess.run([str(ray_bin), "stop", "--force"], capture_output=True, env=env, timeout=120)


@pytest.mark.slow
def test_ray_runs_the_batch_like_the_local_pool(ray_cluster, local_batch, tmp_path):
    jobs, local, _ = local_batch
    remote = tmp_path / "ray"
    proc = batch(jobs, "--out", remote, "--ray", ray_cluster, *TINY)
    assert proc.returncode == 1, proc.stderr[-3000:]
    table = {r["job"]: r for r in _csv(remote / "summary.csv")}
    assert [table[j]["status"] for j in sorted(table)] == ["done", "failed", "done"]
    assert "never exceeds the isosurface threshold" in table["002-a-snowman"]["error"]
    for job in table:  # the same run folders: the same config.yaml but for where the folder is
        same = [(local / job / "config.yaml").read_text(), (remote / job / "config.yaml").read_text()]
        assert same[0].replace(str(local), "DIR") == same[1].replace(str(remote), "DIR"), job


@pytest.mark.slow
def test_a_ray_worker_killed_mid_run_is_retried_and_the_rerun_does_no_work(ray_cluster, tmp_path):
    (tmp_path / "jobs.txt").write_text("a snowman\n")
    out = tmp_path / "batch"
    args = [tmp_path / "jobs.txt", "--out", out, "--ray", ray_cluster, *TINY, "trainer.max_steps=60",
            "trainer.checkpoint_every=10"]
    proc = subprocess.Popen([sys.executable, "-m", "dreamer.cli", "batch", *map(str, args)], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env={**os.environ, **RAY_ENV})
    run = out / "001-a-snowman"
    deadline, killed = time.time() + 600, None
    while time.time() < deadline and killed is None:
        state = _json(run / "run.json")
        if state.get("step", 0) >= 20 and state.get("status") == "running":
            killed = state["pid"]  # the Ray worker that runs the job
            os.kill(killed, signal.SIGKILL)
        time.sleep(0.5)
    assert killed, "the job never reached step 20"
    _, err = proc.communicate(timeout=900)
    assert proc.returncode == 0, err[-3000:]
    state = _json(run / "run.json")
    assert state["status"] == "done" and state["step"] == 60 and state["pid"] != killed  # retried elsewhere
    steps = [int(line.split(",")[0]) for line in (run / "metrics.csv").read_text().splitlines()[1:]]
    assert steps == list(range(1, 61))  # each step once
    assert "silhouette_iou_8views" in state["metrics"]
    again = batch(*args)
    assert again.returncode == 0 and "1 jobs, 1 already done" in again.stderr


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads process states from /proc (Linux)")
def test_killing_the_batch_stops_its_local_workers(tmp_path):
    """A batch killed outright (SIGKILL: no cleanup runs in it) must not leave its worker training on in
    the run folder, where a rerun would resume the same run beside it."""
    (tmp_path / "jobs.txt").write_text("a snowman\n")
    args = [tmp_path / "jobs.txt", "--out", tmp_path / "batch", *TINY, "trainer.max_steps=5000"]
    proc = subprocess.Popen([sys.executable, "-m", "dreamer.cli", "batch", *map(str, args)], cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    run = tmp_path / "batch" / "001-a-snowman"
    deadline, worker = time.time() + 300, None
    while time.time() < deadline and worker is None:
        state = _json(run / "run.json")
        if state.get("step", 0) >= 2 and state.get("status") == "running":
            worker = state["pid"]
        time.sleep(0.2)
    try:
        assert worker and worker != proc.pid, "the job never reached step 2 in a worker"
        proc.kill()
        proc.wait()
        deadline = time.time() + 15
        while time.time() < deadline and _alive(worker):
            time.sleep(0.2)
        assert not _alive(worker), "the worker trains on after its batch was killed"
    finally:
        proc.kill()
        if worker and _alive(worker):
            os.kill(worker, signal.SIGKILL)


def _alive(pid: int) -> bool:
    """Running (a zombie counts as ended: nobody may reap an orphan in a container)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def _json(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


def test_overrides_before_the_options_still_apply_to_every_job(tmp_path):
    (tmp_path / "jobs.txt").write_text("a rubber duck\n")
    one_line_error(dreamer_in_process("batch", tmp_path / "jobs.txt", "guidance.guidance_scale=-1", "--out",
                                      tmp_path / "b"), "line 1: guidance.guidance_scale must be at least 0")
    one_line_error(dreamer_in_process("batch", tmp_path / "jobs.txt", "stray", "--out", tmp_path / "b"),
                   "unexpected argument stray")
    assert not (tmp_path / "b").exists()
