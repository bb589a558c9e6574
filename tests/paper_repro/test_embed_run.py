"""Figures (e) and (f) read test embeddings from the result store: the ``paper-repro-embed`` kind embeds a finished
run's test split once, keyed by the checkpoint's content, exactly as ``paper_repro.evaluate`` does."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import paper_repro.evaluate as evaluate
from paper_repro.builders import build_model, eval_transform_for, load_test
from paper_repro.checkpoint import CHECKPOINT, load_checkpoint
from paper_repro.embed_run import EmbedRun
from paper_repro.figures.real_runs import RealParams, get_runs, real_store, run_embeddings

from .real_fixture import tiny_real


@pytest.fixture(scope="module")
def real(tmp_path_factory) -> RealParams:
    return tiny_real(tmp_path_factory.mktemp("embed"))


def test_embeddings_are_a_stored_record_equal_to_evaluate(real, monkeypatch):
    runs, _ = get_runs(real)
    run = runs["easy"][0]
    emb, test = run_embeddings(run, real)
    # The record: one per checkpoint, kind paper-repro-embed, in the figures' store.
    store = real_store(real)
    key = EmbedRun.of(run.path, run.config, data_root=real.data_root)
    assert store.result(key)["step"] == real.steps
    # Equal to embedding the test split directly, as paper_repro.evaluate does.
    cfg = run.config
    data = load_test(cfg)
    model = build_model(cfg, data)
    model.load_state_dict(load_checkpoint(run.path / CHECKPOINT, map_location="cpu")["model"])
    direct = evaluate.embed_dataset(model, data, transform=eval_transform_for(cfg, data)).numpy()
    assert emb.dtype == np.float32 and np.array_equal(emb, direct)
    assert np.array_equal(test.labels, data.labels) and test.class_names == list(data.class_names)
    images, _ = test.get_batch([0, 1])
    assert torch.equal(images, data.get_batch([0, 1])[0])
    # A second figure reads the record: nothing is embedded again.
    monkeypatch.setattr(evaluate, "embed_dataset", lambda *a, **k: pytest.fail("embedded again"))
    again, _ = run_embeddings(run, real)
    assert np.array_equal(again, emb)


def test_the_key_follows_the_weights_not_the_folder(real, tmp_path):
    runs, _ = get_runs(real)
    run = runs["random"][0]
    a = EmbedRun.of(run.path, run.config)
    moved = tmp_path / "moved"
    moved.mkdir()
    (moved / CHECKPOINT).write_bytes((run.path / CHECKPOINT).read_bytes())
    assert EmbedRun.of(moved, run.config).key == a.key
    (moved / CHECKPOINT).write_bytes((run.path / CHECKPOINT).read_bytes() + b"\0")
    assert EmbedRun.of(moved, run.config).key != a.key
    with pytest.raises(FileNotFoundError, match="nothing to embed"):
        EmbedRun.of(tmp_path, run.config)
