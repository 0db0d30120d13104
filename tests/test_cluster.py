"""Ray cluster use: job submission to a head on 127.0.0.1, and GPU placement on a simulated 2-node cluster."""

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from ser.data.schema import validate
from ser.data.synthetic import synthetic_scores

pytestmark = pytest.mark.ray
VENV_BIN = str(Path(sys.executable).parent)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def ray_head():
    """A Ray head with a job server on 127.0.0.1 and free ports; token auth on both sides.

    Started with ``--block`` in its own process group and stopped by signalling that group:
    ``ray stop`` would also stop the test session's own local Ray.
    """
    token = secrets.token_hex(16)
    # a short temp dir: Ray's socket paths under it must fit AF_UNIX's 107 bytes (pytest-xdist's base temp is deeper)
    temp_dir = tempfile.mkdtemp(prefix="ser-ray-")
    env = {**os.environ, "PATH": f"{VENV_BIN}:{os.environ['PATH']}", "RAY_AUTH_MODE": "token",
           "RAY_AUTH_TOKEN": token, "RAY_USAGE_STATS_ENABLED": "0"}
    env.pop("RAY_ADDRESS", None)
    dash = free_port()
    cmd = [f"{VENV_BIN}/ray", "start", "--head", "--block", "--node-ip-address=127.0.0.1", f"--port={free_port()}",
           "--dashboard-host=127.0.0.1", f"--dashboard-port={dash}", "--include-dashboard=true", "--num-cpus=2",
           f"--ray-client-server-port={free_port()}", f"--dashboard-agent-listen-port={free_port()}",
           f"--dashboard-agent-grpc-port={free_port()}", f"--runtime-env-agent-port={free_port()}",
           f"--metrics-export-port={free_port()}", "--disable-usage-stats",
           f"--temp-dir={temp_dir}"]
    head = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    address = f"http://127.0.0.1:{dash}"
    deadline = time.time() + 90
    while time.time() < deadline:
        try:
            socket.create_connection(("127.0.0.1", dash), timeout=1).close()
            break
        except OSError:
            time.sleep(0.5)
    else:
        os.killpg(head.pid, signal.SIGKILL)
        pytest.fail("the Ray head's job server did not come up")
    yield address, token
    os.killpg(head.pid, signal.SIGTERM)
    try:
        head.wait(timeout=5)
    except subprocess.TimeoutExpired:             # `ray start --block` outlives SIGTERM (it waited out 30 s here)
        os.killpg(head.pid, signal.SIGKILL)
        head.wait(timeout=30)
    shutil.rmtree(temp_dir, ignore_errors=True)


@pytest.fixture
def ser_submit(ray_head):
    """Run `ser submit --address <head> ...` as its own process, with the head's auth mode and token."""
    address, token = ray_head
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    env.update(RAY_AUTH_MODE="token", RAY_AUTH_TOKEN=token)

    def run(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "ser.cli", "submit", "--address", address, *args], env=env,
                              capture_output=True, text=True, timeout=300, cwd=Path(__file__).resolve().parent.parent)
    return run


def test_submitted_job_runs_tune_on_the_cluster(ser_submit, tmp_path):
    validate(synthetic_scores(3, 60, seed=4, profile="text-strong")).to_parquet(tmp_path / "s.parquet")
    (tmp_path / "c.yaml").write_text("tune: {trials: 4}\nevaluate: {bootstrap: 50}\n")
    done = ser_submit("--wait", "--", "tune", "--scores", str(tmp_path / "s.parquet"), "--config",
                      str(tmp_path / "c.yaml"), "--out", str(tmp_path / "out"))
    assert done.returncode == 0, (done.stdout + done.stderr)[-3000:]
    assert "SUCCEEDED" in done.stdout and "tuning: 12/12 trials" in done.stdout        # the job's own log lines
    result = json.loads((tmp_path / "out" / "results.json").read_text())
    assert len(result["folds"]) == 3 and "tuned" in result["mean"]
    job_id = done.stdout.split("submitted ")[1].split(":")[0]
    status = ser_submit("--status", job_id)
    assert status.returncode == 0 and "SUCCEEDED" in status.stdout


def test_failing_job_is_reported_failed(ser_submit, tmp_path):
    done = ser_submit("--wait", "--", "evaluate", "--scores", str(tmp_path / "missing.parquet"))
    assert done.returncode == 1
    assert "FAILED" in done.stdout and "does not exist" in done.stdout


TWO_NODES = r"""
import json, sys
import pandas as pd
import ray
from ray.cluster_utils import Cluster
from jobs.infer import run_infer
from ser.config import load_config
from ser.config import PrepareConfig
from ser.inference.prepare import prepare
from ser.testing.tiny_models import build_wav2vec2

root = sys.argv[1]
cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 2})
gpu_node = cluster.add_node(num_cpus=1, num_gpus=2)
ray.init(address=cluster.address)
manifest = prepare(PrepareConfig(corpus="demo-b", root=root + "/c", per_speaker=3))
for fold in manifest["fold"].unique():
    build_wav2vec2(f"{root}/ckpt/{fold}", ["ang", "hap", "neu", "sad"])
stages = load_config({"infer": {"shard_rows": 4, "speech": {
    "backend": "hf", "model": root + "/ckpt/{fold}", "num_gpus": 1, "num_cpus": 0, "actors": 2, "batch_size": 2}}}).infer
scores, _ = run_infer(manifest, stages, load_config(None).label_set, root + "/out")
print(json.dumps({"gpu_node": gpu_node.node_id, "workers": sorted(set(scores["speech_worker"]))}))
ray.shutdown()
cluster.shutdown()
"""


def test_gpu_stages_land_on_the_gpu_node(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("RAY_ADDRESS", "RAY_AUTH_MODE", "RAY_AUTH_TOKEN")}
    done = subprocess.run([sys.executable, "-c", TWO_NODES, str(tmp_path)], capture_output=True, text=True,
                          env=env, timeout=300, cwd=Path(__file__).resolve().parent.parent)
    assert done.returncode == 0, done.stderr[-3000:]
    out = json.loads(done.stdout.strip().splitlines()[-1])
    nodes = {w.split("/")[1].split(":")[0] for w in out["workers"]}
    gpus = {w.rsplit(":", 1)[1].split("#")[0] for w in out["workers"]}
    assert nodes == {out["gpu_node"][:12]} and gpus == {"GPU0", "GPU1"}
