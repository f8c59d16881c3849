"""Students of every supported encoder family, bare or with a sequence classification head.

Each tiny teacher (``tiny_family_teacher``) is saved and loaded back as a user's
would be. For each one: a small teacher-initialised student has the right
shapes and really holds teacher slices, a full-size student reproduces the
teacher exactly, and the ONNX export of a student matches PyTorch.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from conftest import FAMILIES, HEADS
from transformers import AutoModelForSequenceClassification, AutoTokenizer

from paretokd import latency
from paretokd.config import LatencySpec, TeacherSpec
from paretokd.errors import ParetokdError
from paretokd.models import student, teacher
from paretokd.models.teacher import Teacher
from paretokd.records import Arch

TEACHER = Arch(num_layers=4, hidden_size=64, num_heads=4, intermediate_size=128)
SMALL = Arch(num_layers=2, hidden_size=32, num_heads=2, intermediate_size=64)
TEXTS = ["The quick brown fox jumps over the lazy dog.", "Return the value."]

# Where each family keeps what the tests look at (the code itself needs no names).
BASE_PREFIX = {
    "bert": "bert.",
    "roberta": "roberta.",
    "xlm-roberta": "roberta.",
    "distilbert": "distilbert.",
    "electra": "electra.",
}
FFN_IN = {"distilbert": "transformer.layer.{}.ffn.lin1.weight"}
FFN_IN_DEFAULT = "encoder.layer.{}.intermediate.dense.weight"
CLASSIFIER = {
    "bert": "classifier.weight",
    "roberta": "classifier.out_proj.weight",
    "xlm-roberta": "classifier.out_proj.weight",
    "distilbert": "classifier.weight",
    "electra": "classifier.out_proj.weight",
}
CASES = [pytest.param(f, h, id=f"{f}-{h}") for f in FAMILIES for h in HEADS]


@pytest.fixture(scope="module")
def load(tiny_family_teacher: Callable[[str, str], Path]) -> Callable[[str, str], Teacher]:
    """Load a saved tiny teacher (once per module) as the pipeline would."""
    loaded: dict[tuple[str, str], Teacher] = {}

    def get(family: str, head: str) -> Teacher:
        if (family, head) not in loaded:
            path = tiny_family_teacher(family, head)
            if head == "base":
                loaded[(family, head)] = teacher.load(TeacherSpec(name=str(path)))
            else:
                # teacher.load reads the bare encoder (AutoModel); a head needs its class.
                model = AutoModelForSequenceClassification.from_pretrained(path)
                tokenizer = AutoTokenizer.from_pretrained(path)
                loaded[(family, head)] = teacher.from_model(family, model, tokenizer, str(path))
        return loaded[(family, head)]

    return get


def _batch(t: Teacher) -> dict[str, torch.Tensor]:
    # Two texts of different lengths: the shorter one is padded.
    return dict(t.tokenizer(TEXTS, padding=True, return_tensors="pt"))


def _strip_layers(names: list[str]) -> set[str]:
    return {re.sub(r"\.layer\.\d+\.", ".layer.N.", name) for name in names}


@pytest.mark.parametrize(("family", "head"), CASES)
def test_teacher_dims_and_inputs(
    load: Callable[[str, str], Teacher], family: str, head: str
) -> None:
    t = load(family, head)
    assert t.config.model_type == family
    assert t.dims == TEACHER
    with_types = family in ("bert", "electra")
    assert ("token_type_ids" in t.tokenizer.model_input_names) is with_types
    assert set(_batch(t)) == set(t.tokenizer.model_input_names)


@pytest.mark.parametrize(("family", "head"), CASES)
def test_small_student_is_sliced_from_the_teacher(
    load: Callable[[str, str], Teacher], family: str, head: str
) -> None:
    t = load(family, head)
    # A residual order that is not the identity: the kept dims are not the leading ones.
    order = list(range(63, -1, -2)) + list(range(0, 64, 2))
    keep = student.kept_dims(order, SMALL.hidden_size)
    # FFN units ranked on the teacher's own activations, found in every family's naming.
    units = student.unit_orders(t.model, [_batch(t)])
    assert [sorted(u) for u in units] == [list(range(TEACHER.intermediate_size))] * 4
    assert units[3] != list(range(TEACHER.intermediate_size))
    model = student.build(SMALL, t.model, True, order, units).eval()

    assert type(model) is type(t.model)
    assert student.sizes(model.config) == SMALL
    assert t.dims == TEACHER  # the teacher's config is left alone
    for key in ("num_labels", "id2label", "problem_type", "pad_token_id"):
        assert getattr(model.config, key) == getattr(t.config, key)

    with torch.no_grad():
        out = model(**_batch(t), output_hidden_states=True)
    tokens = _batch(t)["input_ids"].shape[1]
    assert len(out.hidden_states) == SMALL.num_layers + 1
    assert out.hidden_states[-1].shape == (2, tokens, SMALL.hidden_size)
    if head != "base":
        assert out.logits.shape == (2, t.config.num_labels)

    # Every student tensor has a teacher counterpart: nothing is left at its fresh init.
    sd, tsd = model.state_dict(), t.model.state_dict()
    assert _strip_layers(list(sd)) <= _strip_layers(list(tsd))
    prefix = "" if head == "base" else BASE_PREFIX[family]
    ffn = prefix + FFN_IN.get(family, FFN_IN_DEFAULT)
    # Student layer 1 is teacher layer 3 (layer_map(2, 4) == [1, 3]), keeping its top units.
    top = student.kept_dims(units[3], SMALL.intermediate_size)
    want = tsd[ffn.format(3)][top][:, keep]
    torch.testing.assert_close(sd[ffn.format(1)], want, rtol=0, atol=0)
    if head != "base":
        torch.testing.assert_close(sd[CLASSIFIER[family]], tsd[CLASSIFIER[family]][:, keep])
    word = prefix + "embeddings.word_embeddings.weight"
    if family == "electra":
        # 32-wide embeddings, as wide as this student: one is dropped to keep the projection.
        assert model.config.embedding_size == 31
        torch.testing.assert_close(sd[word], tsd[word][:, :31], rtol=0, atol=0)
        proj = prefix + "embeddings_project.weight"
        torch.testing.assert_close(sd[proj], tsd[proj][keep, :31], rtol=0, atol=0)
    else:
        torch.testing.assert_close(sd[word], tsd[word][:, keep], rtol=0, atol=0)


@pytest.mark.parametrize(("family", "head"), CASES)
def test_full_size_student_reproduces_the_teacher(
    load: Callable[[str, str], Teacher], family: str, head: str
) -> None:
    t = load(family, head)
    model = student.build(t.dims, t.model, teacher_init=True).eval()
    batch = _batch(t)
    with torch.no_grad():
        got, want = model(**batch), t.model(**batch)
    # Same weights, same ops. Not bit for bit: the loaded teacher's tensors are not
    # 64-byte aligned like the student's fresh ones, and for a 1-label head the
    # CPU kernels then sum in another order (differences of 4e-9).
    torch.testing.assert_close(got[0], want[0], rtol=0, atol=1e-6)


@pytest.mark.parametrize(("family", "head"), CASES)
def test_student_onnx_matches_pytorch(
    load: Callable[[str, str], Teacher], family: str, head: str, tmp_path: Path
) -> None:
    t = load(family, head)
    model = student.build(SMALL, t.model, teacher_init=True)
    names = list(t.tokenizer.model_input_names)
    path = latency.export_onnx(model, names, tmp_path / "student.onnx")
    spec = LatencySpec()
    sess = latency.session(path, spec)
    assert [i.name for i in sess.get_inputs()] == names
    assert [o.name for o in sess.get_outputs()] == [
        "last_hidden_state" if head == "base" else "logits"
    ]
    assert latency.parity(model, path, _batch(t), spec) < 1e-4
    assert latency.onnx_vocab_size(path) == t.config.vocab_size


def test_electra_embeddings_as_wide_as_the_teacher_follow_the_student() -> None:
    from transformers import ElectraConfig, ElectraModel

    torch.manual_seed(0)
    config = ElectraConfig(
        vocab_size=100,
        embedding_size=64,
        hidden_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=128,
    )
    tied = ElectraModel(config).eval()
    model = student.build(Arch(1, 32, 2, 64), tied)
    # No projection in the teacher, none in the student: its embeddings are sliced like BERT's.
    assert model.config.embedding_size == 32
    assert not hasattr(model, "embeddings_project")
    word = "embeddings.word_embeddings.weight"
    torch.testing.assert_close(model.state_dict()[word], tied.state_dict()[word][:, :32])


def test_distilbert_student_config_sets_its_own_ffn_width() -> None:
    from transformers import DistilBertConfig

    config = DistilBertConfig(n_layers=4, dim=64, n_heads=4, hidden_dim=128)
    cfg = student.with_sizes(config, SMALL)
    assert (cfg.n_layers, cfg.dim, cfg.n_heads, cfg.hidden_dim) == (2, 32, 2, 64)
    assert student.sizes(config) == TEACHER


def test_sizes_of_a_model_without_encoder_sizes_is_a_clear_error() -> None:
    from transformers import GPT2Config

    with pytest.raises(ParetokdError, match="gpt2.*intermediate_size"):
        student.sizes(GPT2Config())


def test_every_listed_family_has_a_tiny_teacher() -> None:
    assert set(FAMILIES) == set(student.FAMILIES)
