"""Typed configuration: one loader, "did you mean", defaults documented from the dataclasses, --set, model refs."""

import logging
from pathlib import Path

import pytest
import yaml

from ser.inference.backends.hub import locate_model, model_version
from ser.cli import main
from ser.config import ConfigError, InferConfig, StudyConfig, load_config
from ser.config.reference import config_reference
from ser.inference.pipeline import model_versions

DOCS = Path(__file__).parent.parent / "docs" / "config.md"


def test_docs_config_md_is_the_generated_reference():
    """docs/config.md holds exactly what the dataclasses say (regenerate: `ser config reference`)."""
    assert config_reference() in DOCS.read_text(), "docs/config.md is stale: run `ser config reference`"


def test_defaults_come_from_the_dataclasses():
    cfg = load_config(None)
    assert isinstance(cfg, StudyConfig) and cfg == load_config({})
    assert cfg.tune.trials == 48 and cfg.infer.sentiment.scheduling.batch_size == 64
    assert cfg.infer.speech.backend == "acoustic" and not cfg.infer.asr.enabled


@pytest.mark.parametrize("raw, message", [
    ({"infer": {"speech": {"backend": "hf", "modle": "x"}}}, "infer.speech (backend hf): unknown key 'modle'; did you mean 'model'?"),
    ({"infer": {"sentiment": {"backend": "vader", "max_length": 64}}}, "infer.sentiment (backend vader): unknown key 'max_length'"),
    ({"tune": {"trials": 0}}, "tune.trials must be a positive integer, got 0"),
    ({"tune": {"aggregate": "mean"}}, "tune.aggregate: 'mean' is not one of ['fold-mean', 'pooled']"),
    ({"tune": {"space": {"soft": {"joint_w": {"steps": 0, "range": [0, 1]}}}}},
     "tune.space.soft.joint_w.steps must be a positive integer"),
    ({"prepare": {"corpus": "timit"}}, "prepare.corpus: 'timit' is not one of"),
    ({"infer": {"chain_stages": "yes"}}, "infer.chain_stages: 'yes' is not one of ['auto', 'always', 'never']"),
    ({"infer": {"chain_actors": 0}}, "infer.chain_actors must be auto or a positive integer, got 0"),
    ({"infer": {"chain_actors": "many"}}, "infer.chain_actors must be auto or a positive integer, got 'many'"),
    ({"infer": {"asr": {"backend": "whisper"}}}, "infer.asr: backend 'whisper' needs 'model'"),
    ({"infer": {"speech": {"backend": "hf", "model": "a", "checkpoint": "b"}}}, "give 'model' only"),
    ({"sweep": {"gaet": "hv"}}, "did you mean 'gate'?"),
    ({"evaluate": 3}, "evaluate must be a mapping"),
])
def test_bad_values_name_the_key(raw, message):
    with pytest.raises(ConfigError, match="^config: .*" + _escaped(message)):
        load_config(raw)


def _escaped(text: str) -> str:
    import re

    return re.escape(text)


def test_checkpoint_is_a_deprecated_name_for_model(caplog):
    with caplog.at_level(logging.WARNING, logger="ser.config"):
        cfg = load_config({"infer": {"speech": {"backend": "hf", "checkpoint": "/ckpt/{fold}"}}})
    assert cfg.infer.speech.options.model == "/ckpt/{fold}"
    assert "infer.speech.checkpoint is deprecated; call it 'model'" in caplog.text


def test_set_overrides_on_any_subcommand_and_config_show_prints_the_result(tmp_path, capsys):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("tune: {trials: 5}\n")
    assert main(["config", "show", str(cfg), "--set", "tune.trials=7", "--set", "infer.speech.backend=hf",
                 "--set", "infer.speech.model=myorg/w2v-{fold}", "--set", "labels.negative=[ang]"]) == 0
    shown = yaml.safe_load(capsys.readouterr().out)
    assert shown["tune"]["trials"] == 7 and shown["infer"]["speech"]["model"] == "myorg/w2v-{fold}"
    assert shown["labels"]["negative"] == ["ang"] and shown["evaluate"]["bootstrap"] == 1000
    assert load_config(shown) == load_config(cfg, sets=("tune.trials=7", "infer.speech.backend=hf",
                                                        "infer.speech.model=myorg/w2v-{fold}",
                                                        "labels.negative=[ang]"))
    assert main(["config", "show", str(cfg), "--set", "tune.trails=3"]) == 2
    assert "did you mean 'trials'" in capsys.readouterr().err
    assert main(["config", "show", str(cfg), "--set", "tune.trials"]) == 2
    assert "expected section.key=value" in capsys.readouterr().err


def test_set_reaches_a_table_command(tmp_path, capsys, synth_table):
    synth_table.to_parquet(tmp_path / "s.parquet")
    assert main(["evaluate", "--scores", str(tmp_path / "s.parquet"), "--out", str(tmp_path / "o"),
                 "--set", "evaluate.bootstrap=20", "--set", "evaluate.metric=wa"]) == 0
    import json

    boot = json.loads((tmp_path / "o" / "evaluation.json").read_text())["comparisons"]["text"]["bootstrap"]
    assert boot["n_boot"] == 20 and boot["metric"] == "wa" and "text − speech: Δwa" in capsys.readouterr().out


def test_model_references_local_or_hub(tmp_path):
    (tmp_path / "fold-a").mkdir()
    assert locate_model(str(tmp_path / "fold-a"), "speech model") == str(tmp_path / "fold-a")
    assert locate_model("myorg/wav2vec2-iemocap-Ses01F", "speech model") == "myorg/wav2vec2-iemocap-Ses01F"
    with pytest.raises(FileNotFoundError, match="speech model not found: .*fold-b"):
        locate_model(str(tmp_path / "fold-b"), "speech model")
    with pytest.raises(FileNotFoundError, match="not a hub id"):
        locate_model("some dir/with spaces", "speech model")


def test_model_versions_change_when_a_model_changes(tmp_path, monkeypatch):
    """A local model's content fingerprint, per fold of a template; a hub id's commit from the local cache."""
    for fold in ("A", "B"):
        (tmp_path / fold).mkdir()
        (tmp_path / fold / "config.json").write_text('{"n": 1}')
    infer = load_config({"infer": {"speech": {"backend": "hf", "model": str(tmp_path / "{fold}")},
                                   "sentiment": {"backend": "hf", "model": "cardiffnlp/xlm-sentiment",
                                                 "revision": "v1"}}}).infer
    import huggingface_hub.constants as hub_constants

    # the constant, not the environment variable: huggingface_hub reads the variable once, at import
    monkeypatch.setattr(hub_constants, "HF_HUB_OFFLINE", True)           # no request leaves the test
    monkeypatch.setattr(hub_constants, "HF_HUB_CACHE", str(tmp_path / "cache"))
    refs = tmp_path / "cache" / "models--cardiffnlp--xlm-sentiment" / "refs"
    refs.mkdir(parents=True)
    (refs / "v1").write_text("0123456789abcdef0123456789abcdef01234567\n")
    before = model_versions(infer, ["A", "B"])
    assert before["sentiment"] == "commit:0123456789abcdef0123456789abcdef01234567"
    assert set(before["speech"]) == {"A", "B"} and before["speech"]["A"] == before["speech"]["B"]
    (tmp_path / "B" / "config.json").write_text('{"n": 2}')
    after = model_versions(infer, ["A", "B"])
    assert after["speech"]["A"] == before["speech"]["A"] and after["speech"]["B"] != before["speech"]["B"]
    assert model_version("nobody/never-downloaded") == "unresolved:main"


def test_infer_config_round_trips_through_its_yaml_shape():
    infer = load_config({"infer": {"speech": {"backend": "hf", "model": "m", "actors": 2, "num_gpus": 0.5}}}).infer
    assert isinstance(infer, InferConfig)
    again = load_config({"infer": infer.to_dict()}).infer
    assert again == infer and again.speech.scheduling.num_gpus == 0.5
