"""The Ray Data inference pipeline: errors table, GPU pinning with fake GPUs, refusal, resume after a kill."""

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from ser.config import load_config
from ser.config import PrepareConfig
from ser.inference.prepare import prepare

pytestmark = pytest.mark.ray


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    root = tmp_path_factory.mktemp("demo")
    manifest = prepare(PrepareConfig(corpus="demo", root=str(root), per_speaker=5))
    manifest.loc[3, "path"] = str(root / "missing.wav")
    with open(manifest.loc[7, "path"], "wb") as f:
        f.write(b"garbage, not audio")
    path = root / "manifest.parquet"
    manifest.to_parquet(path)
    return path, manifest


def stages(tmp_path, **infer):
    """A config with these ``infer`` settings; one chained actor unless a test asks for more (a second actor's start
    costs seconds on 2 cores and is not what these tests are about; the pool's size has its own tests)."""
    infer.setdefault("chain_actors", 1)
    cfg = tmp_path / "c.yaml"
    cfg.write_text(yaml.safe_dump({"infer": infer}))
    return load_config(cfg)


def test_the_dataset_hands_out_one_block_per_batch_in_order(ray_session):
    """Blocks are what the actors get: ``rows_per_block`` rows each, the last one short, in the given (longest-first)
    order, the index not carried along."""
    from jobs.infer import dataset_of

    rows = pd.DataFrame({"utt_id": [f"u{i}" for i in range(7)], "duration_s": np.arange(7.0)[::-1]},
                        index=range(10, 17))
    ds = dataset_of(rows, 3)
    assert ds.num_blocks() == 3
    assert [len(batch["utt_id"]) for batch in ds.iter_batches(batch_size=None)] == [3, 3, 1]
    pd.testing.assert_frame_equal(ds.to_pandas(), rows.reset_index(drop=True))


def test_pipeline_writes_scores_and_errors(tmp_path, corpus, ray_session):
    from jobs.infer import run_infer

    path, manifest = corpus
    cfg = stages(tmp_path, shard_rows=8, speech={"batch_size": 8})
    scores, errors = run_infer(pd.read_parquet(path), cfg.infer, cfg.label_set, tmp_path / "out")
    assert len(scores) == len(manifest) - 2
    assert sorted(errors["utt_id"]) == sorted(manifest.loc[[3, 7], "utt_id"])
    assert set(errors["error"].str.split(":").str[0]) == {"missing file", "unreadable audio"}
    assert (scores["transcript_source"] == "reference").all()
    assert (scores["model_fold"] == scores["fold"]).all()
    assert pd.read_parquet(tmp_path / "out" / "scores.parquet")["utt_id"].is_unique
    # the fold-k acoustic model was trained on the other folds only
    assert len(list((tmp_path / "out" / "models").glob("acoustic-*.pkl"))) == manifest["fold"].nunique()


def test_a_fold_without_audio_is_recorded_and_the_rest_scored(tmp_path, corpus, ray_session):
    """Acoustic features skip unreadable files (Arrow once refused the ragged rows), every fold gets a model."""
    from jobs.infer import run_infer

    path, manifest = corpus
    gone = manifest["fold"] == manifest["fold"].iloc[0]
    broken = manifest.assign(path=np.where(gone, str(tmp_path / "nowhere.wav"), manifest["path"]))
    cfg = stages(tmp_path, shard_rows=8, speech={"batch_size": 8})
    scores, errors = run_infer(broken, cfg.infer, cfg.label_set, tmp_path / "out")
    assert set(errors["utt_id"]) == set(manifest.loc[gone | manifest.index.isin([3, 7]), "utt_id"])
    assert len(scores) == len(manifest) - len(errors) and not scores["fold"].eq(manifest["fold"].iloc[0]).any()
    assert len(list((tmp_path / "out" / "models").glob("acoustic-*.pkl"))) == manifest["fold"].nunique()


def test_no_readable_audio_says_so_and_writes_the_errors_table(tmp_path, corpus, ray_session):
    from jobs.infer import run_infer

    path, manifest = corpus
    wrong_root = manifest.assign(path=[str(tmp_path / "elsewhere" / Path(p).name) for p in manifest["path"]])
    cfg = stages(tmp_path)
    with pytest.raises(RuntimeError, match=rf"0 of {len(manifest)} audio files readable; first: missing file: "):
        run_infer(wrong_root, cfg.infer, cfg.label_set, tmp_path / "out")
    assert len(pd.read_parquet(tmp_path / "out" / "errors.parquet")) == len(manifest)


def test_each_gpu_actor_gets_its_own_gpu(tmp_path, corpus, ray_session):
    from jobs.infer import run_infer
    from ser.testing.tiny_models import build_wav2vec2

    path, manifest = corpus
    for fold in manifest["fold"].unique():
        build_wav2vec2(tmp_path / "ckpt" / fold, ["ang", "hap", "neu", "sad"])
    cfg = stages(tmp_path, shard_rows=4, speech={"backend": "hf", "model": str(tmp_path / "ckpt" / "{fold}"),
                                                 "num_gpus": 1, "num_cpus": 0, "actors": 2, "batch_size": 2})
    scores, _ = run_infer(pd.read_parquet(path), cfg.infer, cfg.label_set, tmp_path / "out")
    gpus = {w.rsplit(":", 1)[1].split("#")[0] for w in scores["speech_worker"]}
    assert gpus == {"GPU0", "GPU1"}


def test_refuses_gpus_the_cluster_lacks(tmp_path, corpus, ray_session):
    from jobs.infer import run_infer

    cfg = stages(tmp_path, speech={"num_gpus": 1, "actors": 3})
    with pytest.raises(RuntimeError, match=r"infer.speech asks for 3 actor\(s\) × 1 GPU = 3 GPU\(s\), but the Ray "
                                           r"cluster has 2"):
        run_infer(pd.read_parquet(corpus[0]), cfg.infer, cfg.label_set, tmp_path / "out")


def test_killed_run_resumes_without_loss_or_duplicates(tmp_path, corpus):
    path, manifest = corpus
    out = tmp_path / "out"
    cfg = tmp_path / "c.yaml"
    cfg.write_text(yaml.safe_dump({"infer": {"shard_rows": 2, "chain_actors": 1, "speech": {"batch_size": 2},
                                             "sentiment": {"batch_size": 2}}}))
    cmd = [sys.executable, "-m", "ser.cli", "infer", "--config", str(cfg), "--manifest", str(path), "--out", str(out)]
    env = {**os.environ, "RAY_ADDRESS": ""}
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env,
                            start_new_session=True)
    deadline = time.time() + 120
    while time.time() < deadline and len(list((out / "shards").glob("part-*.parquet"))) < 2:
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    first = sorted((out / "shards").glob("part-*.parquet"))
    written = pd.concat([pd.read_parquet(f) for f in first])["utt_id"]
    assert 0 < len(written) < len(manifest), "the run was not interrupted mid-way"
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert f"{len(written)} already scored" in done.stderr
    record = json.loads((out / "run.json").read_text())                 # what ran, with which models
    assert record["command"] == "infer" and record["models"] == {} and record["packages"]["ray"]
    # the first run's shards are untouched, and every utterance is scored exactly once
    for f in first:
        assert f.exists()
    allrows = pd.concat([pd.read_parquet(f) for f in (out / "shards").glob("part-*.parquet")])
    assert allrows["utt_id"].is_unique and set(allrows["utt_id"]) == set(manifest["utt_id"])
    assert "audio" not in allrows                                       # the last actor stage dropped the waveforms
    scores = pd.read_parquet(out / "scores.parquet")
    assert len(scores) == len(manifest) - 2


def test_actor_killed_mid_inference_is_restarted_and_the_job_completes(tmp_path, corpus, ray_session):
    """A speech actor dies (os._exit) in its first batch; Ray restarts it and retries: nothing lost or doubled."""
    from jobs.infer import run_infer
    from ser.inference.backends.hf_speech import HFSpeechStage
    from ser.testing.tiny_models import build_wav2vec2

    path, manifest = corpus
    for fold in manifest["fold"].unique():
        build_wav2vec2(tmp_path / "ckpt" / fold, ["ang", "hap", "neu", "sad"])
    marker = tmp_path / "crashed-once"

    class CrashOnce(HFSpeechStage):
        def __call__(self, batch):
            if not marker.exists():
                marker.touch()
                os._exit(1)                      # the actor process dies mid-batch
            return super().__call__(batch)

    cfg = stages(tmp_path, shard_rows=4, speech={"batch_size": 4})
    kwargs = {"model": str(tmp_path / "ckpt" / "{fold}"), "classes": ("ang", "hap", "neu", "sad")}
    scores, errors = run_infer(pd.read_parquet(path), cfg.infer, cfg.label_set, tmp_path / "out",
                               speech_stage=(CrashOnce, kwargs))
    assert marker.exists()
    assert scores["utt_id"].is_unique and len(scores) + len(errors) == len(manifest)


def test_in_sample_rows_feed_the_trainval_protocol(tmp_path, corpus, ray_session):
    """infer.in_sample: every fold's model also scores the other folds' utterances (train/val rows)."""
    from jobs.infer import run_infer
    from ser.data.folds import fold_splits
    from ser.tuning.per_fold import make_fold_search, tune_folds

    path, manifest = corpus
    cfg = stages(tmp_path, in_sample=True, val_share=0.25, shard_rows=16)
    scores, errors = run_infer(pd.read_parquet(path), cfg.infer, cfg.label_set, tmp_path / "out")
    folds = manifest["fold"].nunique()
    assert len(errors) == 2 and len(scores) == (len(manifest) - 2) * folds
    assert set(scores["split"]) == {"test", "train", "val"}
    own = scores[scores["split"] == "test"]
    assert (own["model_fold"] == own["fold"]).all() and len(own) == len(manifest) - 2
    assert (scores.loc[scores["split"] != "test", "model_fold"] != scores.loc[scores["split"] != "test", "fold"]).all()
    text = ["text_neg", "text_neu", "text_pos", "transcript"]
    assert (scores.groupby("utt_id")[text].nunique() == 1).all().all()      # text computed once per utterance
    assert scores.groupby("utt_id")["speech_ang"].nunique().max() > 1       # speech differs by scoring model
    splits = fold_splits(scores, "trainval")
    assert all(s.tuning.sum() > 0 and not (s.tuning & s.test).any() for s in splits)
    published = replace(cfg.tune, method="published", protocol="trainval", space={})
    chosen = tune_folds(scores, cfg.label_set, published, make_fold_search(published), 0)
    assert set(chosen) == set(manifest["fold"]) and all(r[0].config["merge"] == "exclude" for r in chosen.values())


def test_chained_stages_score_exactly_as_a_pool_per_stage(tmp_path, corpus, ray_session):
    """The demo's stages (acoustic speech, VADER on the reference, a tiny Whisper path) chained, an actor per core
    (the default on a local CPU-only Ray: two here), give the same table as an actor pool per stage, row for row."""
    from jobs.infer import run_infer

    path, _ = corpus
    manifest = pd.read_parquet(path)
    chained = stages(tmp_path, shard_rows=8, speech={"batch_size": 8}, chain_actors="auto",
                     text_paths=[{"name": "asr", "asr": {"backend": "whisper", "model": "ser:tiny-random"},
                                  "sentiment": {"backend": "vader"}}])
    assert chained.infer.chain_stages == "auto"
    one, _ = run_infer(manifest, chained.infer, chained.label_set, tmp_path / "chained")
    assert one["speech_worker"].nunique() == 2
    per_stage = replace(chained.infer, chain_stages="never")
    two, _ = run_infer(manifest, per_stage, chained.label_set, tmp_path / "per-stage")
    pd.testing.assert_frame_equal(one.drop(columns="speech_worker"), two.drop(columns="speech_worker"))


def test_stages_chain_on_a_local_cpu_machine_and_run_in_order():
    """auto chains on a Ray ser starts itself without GPU stages; a cluster or a GPU stage keeps a pool per stage.
    A chain constructs its stages once and passes each batch through them in the configured order."""
    from ray.data import ActorPoolStrategy

    from jobs.infer import _chained
    from ser.inference.backends.chain import StageChain
    from ser.inference.pipeline import chains_stages

    assert chains_stages("auto", local=True, stage_gpus=[0, 0, 0])
    assert not chains_stages("auto", local=True, stage_gpus=[1, 0])
    assert not chains_stages("auto", local=False, stage_gpus=[0, 0])
    assert chains_stages("always", local=False, stage_gpus=[1, 0]) and not chains_stages("never", True, [0])

    class Append:
        def __init__(self, tag):
            self.tag = tag

        def __call__(self, batch):
            return {"trace": batch["trace"] + self.tag}

    stages = [{"fn": Append, "fn_constructor_kwargs": {"tag": "s"}, "num_gpus": 0.0, "num_cpus": 1.0,
               "compute": ActorPoolStrategy(size=2)},
              {"fn": Append, "fn_constructor_kwargs": {"tag": "t"}, "num_gpus": 0.5, "num_cpus": 0.5,
               "compute": ActorPoolStrategy(size=1)}]
    stage = _chained(stages, actors=3)
    assert stage["num_gpus"] == 0.5 and stage["num_cpus"] == 1.0 and stage["compute"].max_size == 3
    assert _chained(stages, 2, machine_cpus=8)["num_cpus"] == 4     # the machine's CPUs shared by the chain's actors
    chain = stage["fn"](**stage["fn_constructor_kwargs"])
    assert chain({"trace": np.array(["a", "b"], dtype=object)})["trace"].tolist() == ["ast", "bst"]

    class Identity:
        def __call__(self, batch):
            return batch

    passing = {"trace": np.array(["a"], dtype=object), "audio": np.zeros(1)}
    assert set(StageChain([(Identity, {})])(passing)) == {"trace", "audio"}
    assert set(StageChain([(Identity, {})], drop=("audio",))(passing)) == {"trace"}  # the waveforms stay in the actor
    with pytest.raises(ValueError, match="at least one stage"):
        StageChain([])


def test_the_chained_pool_takes_a_core_per_actor_while_the_models_fit_in_memory():
    """auto: one actor per core, fewer when each actor's models (every fold's, all stages') would overrun the
    memory Ray sees free or when there are fewer batches; the configured speech actors when sizes are unknown."""
    from ser.inference.pipeline import ACTOR_BASE_BYTES, WEIGHT_MEMORY, chain_pool_size

    gib = 1 << 30
    per_actor = ACTOR_BASE_BYTES + WEIGHT_MEMORY * 2 * gib
    assert chain_pool_size("auto", 8, 100 * gib, 2 * gib, configured=1, batches=1000) == 8
    assert chain_pool_size("auto", 8, 3 * per_actor + 1, 2 * gib, configured=1, batches=1000) == 3
    assert chain_pool_size("auto", 8, per_actor / 2, 2 * gib, configured=1, batches=1000) == 1   # at least one
    assert chain_pool_size("auto", 8, 100 * gib, 2 * gib, configured=1, batches=2) == 2
    assert chain_pool_size("auto", 8, 100 * gib, None, configured=2, batches=1000) == 2
    assert chain_pool_size(5, 2, 0.0, None, configured=1, batches=1) == 5                    # as given


def test_model_bytes_counts_local_files_and_cached_hub_snapshots(tmp_path, monkeypatch):
    """A local model directory's files (half-precision weights twice: a CPU loads them as fp32); a hub id's snapshot
    in the Hugging Face cache (by its refs pointer or a commit revision); None for a hub model that is not
    downloaded. Fold templates count every fold's model."""
    from huggingface_hub import constants

    from jobs.infer import _models_bytes
    from ser.inference.backends.hub import model_bytes

    for fold, size in (("f1", 100), ("f2", 50)):
        (tmp_path / fold / "sub").mkdir(parents=True)
        (tmp_path / fold / "model.safetensors").write_bytes(b"x" * size)
        (tmp_path / fold / "sub" / "config.json").write_bytes(b"{}")
    assert model_bytes(str(tmp_path / "f1")) == 102
    half = tmp_path / "half"
    half.mkdir()
    (half / "config.json").write_text('{"torch_dtype": "float16"}')       # 26 bytes
    (half / "model.safetensors").write_bytes(b"x" * 10)
    assert model_bytes(str(half)) == 26 + 2 * 10                             # loaded as fp32 on a CPU
    cache = tmp_path / "hub"
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))
    assert model_bytes("org/model") is None
    snapshot = cache / "models--org--model" / "snapshots" / "abc123"
    snapshot.mkdir(parents=True)
    (snapshot / "model.safetensors").write_bytes(b"x" * 7)
    assert model_bytes("org/model", revision="abc123") == 7 and model_bytes("org/model") is None
    (cache / "models--org--model" / "refs").mkdir()
    (cache / "models--org--model" / "refs" / "main").write_text("abc123\n")
    assert model_bytes("org/model") == 7

    speech = {"fn_constructor_kwargs": {"model": str(tmp_path / "{fold}")}}
    vader = {"fn_constructor_kwargs": {}}
    hub = {"fn_constructor_kwargs": {"model": "org/model"}}
    assert _models_bytes([speech, vader, hub], ["f1", "f2"]) == 102 + 52 + 7
    assert _models_bytes([speech, {"fn_constructor_kwargs": {"model": "org/other"}}], ["f1"]) is None


def test_actor_stages_are_fitted_to_a_local_machine_so_all_run_at_once(monkeypatch):
    """Four stages reserving a CPU each on 2 CPUs ran two at a time; scaled, every stage has its actor at once.
    Decoding then reserves what the speech actor does (so Ray Data fuses them) and a cluster keeps its settings."""
    from ray.data import ActorPoolStrategy

    from jobs.infer import _fit_local_machine
    from ser.inference.pipeline import fitted_cpu_reservations

    assert fitted_cpu_reservations([1, 1, 1, 1], 2) == [0.5, 0.5, 0.5, 0.5]
    assert fitted_cpu_reservations([0.5, 1.5], 1) == [0.25, 0.75]
    assert fitted_cpu_reservations([2, 1, 1], 8) == [2, 1, 1]             # they fit: unchanged
    stages = [{"num_cpus": 1.0, "compute": ActorPoolStrategy(size=2)}, {"num_cpus": 1.0, "compute":
              ActorPoolStrategy(size=1)}, {"num_cpus": 0.0, "compute": ActorPoolStrategy(size=1)}]
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    assert [s["num_cpus"] for s in _fit_local_machine(stages, 1.5)] == [0.5, 0.5, 0.0]     # 3 CPUs wanted → 1.5
    monkeypatch.setenv("RAY_ADDRESS", "ray://head:10001")
    assert [s["num_cpus"] for s in _fit_local_machine(stages, 1.5)] == [1.0, 1.0, 0.0]
