"""``ser submit``: run any ``ser`` command as a Ray job on a cluster (Ray Jobs API).

The entrypoint is ``python -m ser.cli <arguments>`` run in the uploaded working directory, so
the cluster needs ser's dependencies but not ser itself: a working directory that is not a ser source tree
(a pip-installed ser) uploads the installed package too, as a ``py_modules`` entry. ``--wait`` streams the job's
logs and exits non-zero when the job fails or is stopped.
"""

from __future__ import annotations

import shlex
import sys
import time
from pathlib import Path

import yaml

import ser
from ser._util.io import InputError

EXCLUDES = [".venv", ".git", "runs", "**/__pycache__", ".pytest_cache", "*.egg-info", "build", ".whl"]
TERMINAL = {"SUCCEEDED", "FAILED", "STOPPED"}


def runtime_env(working_dir: str, extra_yaml: str | None) -> dict:
    """The working directory (with sensible excludes) and ser's own code unless the directory holds it, merged with
    a user runtime-env YAML."""
    root = Path(working_dir).resolve()
    env = {"working_dir": str(root), "excludes": list(EXCLUDES), "env_vars": {"RAY_USAGE_STATS_ENABLED": "0"}}
    package, layer = Path(ser.__file__).resolve().parent, Path(__file__).resolve().parent
    if not package.is_relative_to(root):            # this folder travels inside ser in a wheel, beside it in a tree
        env["py_modules"] = [str(package)] + ([] if layer.is_relative_to(package) else [str(layer)])
    if extra_yaml:
        extra = yaml.safe_load(Path(extra_yaml).read_text()) or {}
        if not isinstance(extra, dict):
            raise InputError(f"runtime env {extra_yaml}: top level must be a mapping")
        env["excludes"] += extra.pop("excludes", [])
        env["env_vars"].update(extra.pop("env_vars", {}))
        env.update(extra)
    return env


def _client(address: str):
    from ray.job_submission import JobSubmissionClient

    from ser._util.io import InputError

    try:
        return JobSubmissionClient(address)
    except ConnectionError as exc:
        detail = " ".join(str(exc).split())[:160] or type(exc).__name__
        raise InputError(f"--address {address}: no Ray job server answers there ({detail}); check the address and "
                         f"that the cluster's head runs its dashboard (the job server)") from None


def submit(address: str, ser_args: list[str], working_dir: str = ".", runtime_env_yaml: str | None = None,
           wait: bool = False, poll_s: float = 1.0) -> int:
    """Submit ``ser <ser_args>``; print the job id; with ``wait``, stream logs and return 0 only on success."""
    if not ser_args:
        raise InputError("ser submit: give the ser command to run after '--', e.g. `-- run configs/demo.yaml`")
    client = _client(address)
    entrypoint = "python -m ser.cli " + shlex.join(ser_args)
    job_id = client.submit_job(entrypoint=entrypoint, runtime_env=runtime_env(working_dir, runtime_env_yaml))
    print(f"submitted {job_id}: {entrypoint}", flush=True)
    if not wait:
        return 0
    return follow(client, job_id, poll_s)


def follow(client, job_id: str, poll_s: float = 1.0) -> int:
    """Stream a job's logs until it ends; 0 if it succeeded, 1 otherwise."""
    shown = 0
    while True:
        status = str(client.get_job_status(job_id)).split(".")[-1]
        logs = client.get_job_logs(job_id)
        if len(logs) > shown:
            sys.stdout.write(logs[shown:])
            sys.stdout.flush()
            shown = len(logs)
        if status in TERMINAL:
            break
        time.sleep(poll_s)
    info = client.get_job_info(job_id)
    print(f"job {job_id} {status}" + (f": {info.message}" if status != "SUCCEEDED" and info.message else ""))
    return 0 if status == "SUCCEEDED" else 1


def status(address: str, job_id: str) -> int:
    info = _client(address).get_job_info(job_id)
    print(f"{job_id} {str(info.status).split('.')[-1]}: {info.entrypoint}" + (f" ({info.message})" if info.message else ""))
    return 0


def stop(address: str, job_id: str) -> int:
    stopped = _client(address).stop_job(job_id)
    print(f"{job_id}: {'stop requested' if stopped else 'already finished'}")
    return 0


def logs(address: str, job_id: str) -> int:
    sys.stdout.write(_client(address).get_job_logs(job_id))
    return 0
