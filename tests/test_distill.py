"""Distillation losses, layer mapping, projections, student building and the training loop.

Everything runs on tiny tensors and a tiny BERT built from a config: nothing is downloaded.
"""

from __future__ import annotations

import math
from collections import Counter
from itertools import pairwise

import pytest
import torch
from transformers import AutoModel, BertConfig, BertTokenizerFast, PreTrainedModel

from paretokd.config import TaskSpec
from paretokd.distill import (
    UNTRAINED_LOSS,
    Projections,
    TeacherTargets,
    evaluate,
    layer_losses,
    logit_loss,
    logit_loss_sums,
    make_batches,
    normalised_mse,
    residual_order,
    train,
)
from paretokd.distill.train import Trainee, train_together
from paretokd.models import student
from paretokd.models.student import layer_map
from paretokd.records import Arch

TEACHER_LAYERS = 4
TEACHER_WIDTH = 32
AGNOSTIC = TaskSpec()
STUDENT = Arch(num_layers=2, hidden_size=16, num_heads=2, intermediate_size=32)


def _states(seed: int, batch: int = 2, tokens: int = 5, width: int = 8) -> torch.Tensor:
    return torch.randn(batch, tokens, width, generator=torch.Generator().manual_seed(seed))


def _mask() -> torch.Tensor:
    # Row 0 has 3 real tokens, row 1 all 5.
    return torch.tensor([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]])


# --- normalised_mse -----------------------------------------------------------------------------


def test_normalised_mse_is_zero_for_a_perfect_copy() -> None:
    teacher = _states(0)
    assert normalised_mse(teacher.clone(), teacher, _mask()).item() == 0.0


def test_normalised_mse_is_one_for_zeros() -> None:
    teacher = _states(0)
    loss = normalised_mse(torch.zeros_like(teacher), teacher, _mask())
    assert loss.item() == pytest.approx(1.0)


def test_normalised_mse_known_value() -> None:
    teacher = _states(0)
    # Half the teacher leaves a quarter of its energy unexplained.
    assert normalised_mse(0.5 * teacher, teacher, _mask()).item() == pytest.approx(0.25)
    assert normalised_mse(2.0 * teacher, teacher, _mask()).item() == pytest.approx(1.0)


def test_normalised_mse_ignores_masked_tokens() -> None:
    mask = _mask()
    teacher, pred = _states(0), _states(1)
    before = normalised_mse(pred, teacher, mask)
    padded = (mask == 0).unsqueeze(-1)
    noisy_pred = torch.where(padded, pred + 100.0, pred)
    noisy_teacher = torch.where(padded, teacher * -7.0 + 3.0, teacher)
    after = normalised_mse(noisy_pred, noisy_teacher, mask)
    assert after.item() == pytest.approx(before.item(), rel=1e-6)
    # ... while the same change on a real token does change it.
    real = torch.zeros_like(padded)
    real[0, 0] = True
    assert normalised_mse(torch.where(real, pred + 100.0, pred), teacher, mask) > before


def test_normalised_mse_is_scale_free() -> None:
    teacher, pred = _states(0), _states(1)
    loss = normalised_mse(pred, teacher, _mask())
    scaled = normalised_mse(pred * 10.0, teacher * 10.0, _mask())
    assert scaled.item() == pytest.approx(loss.item(), rel=1e-5)
    assert loss.item() > 0.5  # two unrelated random tensors: far from a copy


def test_normalised_mse_reads_a_half_precision_teacher() -> None:
    teacher = _states(0)
    loss = normalised_mse(teacher.clone(), teacher.to(torch.float16), _mask())
    assert loss.dtype == torch.float32
    assert loss.item() < 1e-5


# --- layer_map ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("n_student", "n_teacher", "expected"),
    [
        (2, 6, [2, 5]),
        (6, 6, [0, 1, 2, 3, 4, 5]),
        (1, 6, [5]),
        (3, 6, [1, 3, 5]),
        (2, 4, [1, 3]),
        (1, 1, [0]),
    ],
)
def test_layer_map_examples(n_student: int, n_teacher: int, expected: list[int]) -> None:
    assert layer_map(n_student, n_teacher) == expected


@pytest.mark.parametrize("n_teacher", range(1, 13))
def test_layer_map_properties(n_teacher: int) -> None:
    for n_student in range(1, n_teacher + 1):
        mapping = layer_map(n_student, n_teacher)
        assert len(mapping) == n_student
        assert mapping[-1] == n_teacher - 1
        assert all(0 <= t < n_teacher for t in mapping)
        assert all(a <= b for a, b in pairwise(mapping))
        # No deeper than the teacher, so no teacher layer is copied twice.
        assert len(set(mapping)) == n_student


# --- Projections and layer_losses ---------------------------------------------------------------


def test_projections_equal_widths_are_identity() -> None:
    proj = Projections(3, 8, 8)
    states = [_states(i) for i in range(3)]
    out = proj(states)
    assert len(out) == 3
    for before, after in zip(states, out, strict=True):
        assert torch.equal(before, after)
    assert sum(p.numel() for p in proj.parameters()) == 0


def test_projections_smaller_student_start_as_padded_identity() -> None:
    proj = Projections(2, 8, 12)
    states = [_states(i, width=8) for i in range(2)]
    out = proj(states)
    assert len(out) == 2
    for before, after in zip(states, out, strict=True):
        assert after.shape == (2, 5, 12)
        torch.testing.assert_close(after[..., :8], before)
        assert torch.count_nonzero(after[..., 8:]) == 0
    # Trainable, one map per layer, each its own.
    assert all(p.requires_grad for p in proj.parameters())
    assert proj.maps[0].weight is not proj.maps[1].weight


def test_projections_need_one_state_per_layer() -> None:
    with pytest.raises(ValueError):
        Projections(2, 8, 12)([_states(0)])


def test_layer_losses_one_per_student_layer_on_the_mapped_teacher_layers() -> None:
    mask = _mask()
    teacher = [_states(10 + i) for i in range(TEACHER_LAYERS)]  # layer_map(2, 4) == [1, 3]
    losses = layer_losses([teacher[1], teacher[3]], teacher, mask)
    assert losses.shape == (2,)
    assert torch.count_nonzero(losses) == 0

    losses = layer_losses([teacher[0], teacher[3]], teacher, mask)
    assert losses[0] > 0.5
    assert losses[1] == 0

    three = layer_losses([teacher[i] for i in range(3)], teacher, mask)
    assert three.shape == (3,)


# --- student.build ------------------------------------------------------------------------------


def _tiny_teacher() -> PreTrainedModel:
    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=100,
        hidden_size=TEACHER_WIDTH,
        num_hidden_layers=TEACHER_LAYERS,
        num_attention_heads=4,
        intermediate_size=64,
        max_position_embeddings=64,
    )
    return AutoModel.from_config(config).eval()


@pytest.fixture(scope="module")
def teacher() -> PreTrainedModel:
    return _tiny_teacher()


def _query(model: PreTrainedModel, layer: int) -> torch.Tensor:
    return model.state_dict()[f"encoder.layer.{layer}.attention.self.query.weight"]


def test_build_has_the_arch_sizes(teacher: PreTrainedModel) -> None:
    model = student.build(STUDENT, teacher)
    cfg = model.config
    assert type(model) is type(teacher)
    assert cfg.num_hidden_layers == 2
    assert cfg.hidden_size == 16
    assert cfg.num_attention_heads == 2
    assert cfg.intermediate_size == 32
    assert cfg.vocab_size == teacher.config.vocab_size
    assert len(model.encoder.layer) == 2
    assert _query(model, 0).shape == (16, 16)
    assert model.encoder.layer[0].intermediate.dense.weight.shape == (32, 16)
    # The teacher's config is left alone.
    assert teacher.config.hidden_size == TEACHER_WIDTH
    assert teacher.config.num_hidden_layers == TEACHER_LAYERS


def _best_head_rows(teacher: PreTrainedModel, layer: int, n: int, size: int = 8) -> list[int]:
    importance = student.head_importance(teacher, layer)
    best = sorted(sorted(range(len(importance)), key=lambda h: -importance[h])[:n])
    return [h * size + j for h in best for j in range(size)]


def test_build_teacher_init_copies_leading_slices(teacher: PreTrainedModel) -> None:
    assert layer_map(2, TEACHER_LAYERS) == [1, 3]
    model = student.build(STUDENT, teacher, teacher_init=True)
    sd, tsd = model.state_dict(), teacher.state_dict()
    # Query rows run over heads: the student (2 heads of the teacher's size 8)
    # keeps the two most important heads of its teacher layer, whole.
    for mine, theirs in ((1, 3), (0, 1)):
        want = _query(teacher, theirs)[_best_head_rows(teacher, theirs, 2)][:, :16]
        torch.testing.assert_close(_query(model, mine), want, rtol=0, atol=0)
    other = _query(teacher, 1)[_best_head_rows(teacher, 1, 2)][:, :16]
    assert not torch.equal(_query(model, 1), other)
    for name in (
        "embeddings.word_embeddings.weight",
        "embeddings.position_embeddings.weight",
        "embeddings.LayerNorm.weight",
    ):
        want = tsd[name][tuple(slice(0, n) for n in sd[name].shape)]
        torch.testing.assert_close(sd[name], want, rtol=0, atol=0)
    ffn = "encoder.layer.{}.intermediate.dense.weight"
    torch.testing.assert_close(sd[ffn.format(1)], tsd[ffn.format(3)][:32, :16], rtol=0, atol=0)


def test_build_without_teacher_init_differs(teacher: PreTrainedModel) -> None:
    torch.manual_seed(1)
    model = student.build(STUDENT, teacher, teacher_init=False)
    assert not torch.equal(_query(model, 1), _query(teacher, 3)[:16, :16])
    word = "embeddings.word_embeddings.weight"
    assert not torch.equal(model.state_dict()[word], teacher.state_dict()[word][:, :16])


def test_build_full_size_student_is_a_copy(teacher: PreTrainedModel) -> None:
    same = Arch(TEACHER_LAYERS, TEACHER_WIDTH, 4, 64)
    model = student.build(same, teacher).eval()
    ids = torch.tensor([[2, 17, 45, 9, 3]])
    with torch.no_grad():
        out_s = model(input_ids=ids).last_hidden_state
        out_t = teacher(input_ids=ids).last_hidden_state
    torch.testing.assert_close(out_s, out_t)


# --- train and evaluate -------------------------------------------------------------------------


def _random_batches(
    seed: int, n: int = 4, size: int = 4, tokens: int = 12
) -> list[dict[str, torch.Tensor]]:
    gen = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(n):
        ids = torch.randint(5, 100, (size, tokens), generator=gen)
        mask = torch.ones(size, tokens, dtype=torch.long)
        mask[0, 8:] = 0
        mask[1, 10:] = 0
        ids[mask == 0] = 0
        out.append({"input_ids": ids, "attention_mask": mask, "token_type_ids": ids * 0})
    return out


def test_train_decreases_the_loss_and_evaluate_is_finite(teacher: PreTrainedModel) -> None:
    torch.manual_seed(0)
    model = student.build(STUDENT, teacher)
    train_targets = TeacherTargets(teacher, _random_batches(0), keep=True)
    eval_targets = TeacherTargets(teacher, _random_batches(1), keep=True)
    before = evaluate(model, Projections(2, 16, TEACHER_WIDTH), eval_targets, AGNOSTIC)

    seen: list[tuple[int, float]] = []
    result, proj = train(
        model,
        train_targets,
        steps=20,
        learning_rate=1e-2,
        weight_decay=0.0,
        seed=0,
        task=AGNOSTIC,
        progress=lambda step, loss: seen.append((step, loss)),
    )
    assert [s for s, _ in seen] == list(range(1, 21))
    first, last = seen[0][1], seen[-1][1]
    assert last < 0.8 * first
    assert result.steps == 20
    assert result.train_loss == pytest.approx(sum(loss for _, loss in seen[-2:]) / 2)
    assert not model.training

    after = evaluate(model, proj, eval_targets, AGNOSTIC)
    assert isinstance(after, float)
    assert math.isfinite(after)
    assert after < UNTRAINED_LOSS
    assert after < before


def test_students_trained_side_by_side_end_as_alone_from_one_teacher_pass(
    teacher: PreTrainedModel,
) -> None:
    """The finals' side-by-side training: one teacher forward a step, the same students."""
    archs = [STUDENT, Arch(1, 32, 4, 64)]
    forwards = 0

    def count(*_: object) -> None:
        nonlocal forwards
        forwards += 1

    hook = teacher.register_forward_hook(count)
    try:
        alone = []
        for i, arch in enumerate(archs):
            model = student.build(arch, teacher)
            targets = TeacherTargets(teacher, _random_batches(0), keep=False)
            rate = 1e-2 * (i + 1)  # each its own rate, as the rule gives
            result, _ = train(
                model, targets, steps=6, learning_rate=rate, weight_decay=0.0, seed=3, task=AGNOSTIC
            )
            alone.append((model, result))
        forwards_alone, forwards = forwards, 0
        models = [student.build(arch, teacher) for arch in archs]
        targets = TeacherTargets(teacher, _random_batches(0), keep=False)
        trainees = [Trainee(m, 1e-2 * (i + 1)) for i, m in enumerate(models)]
        together = train_together(
            trainees, targets, steps=6, weight_decay=0.0, seed=3, task=AGNOSTIC
        )
    finally:
        hook.remove()
    assert forwards_alone == 12 and forwards == 6  # one teacher pass instead of two
    for (model, result), side, (result_side, _) in zip(alone, models, together, strict=True):
        assert result_side.train_loss == result.train_loss
        for (name, a), b in zip(
            model.state_dict().items(), side.state_dict().values(), strict=True
        ):
            assert torch.equal(a, b), name  # dropout drew the same numbers: identical weights
    assert teacher.config.hidden_dropout_prob > 0  # so the random streams were exercised


def test_a_watched_training_ships_its_best_held_out_step(teacher: PreTrainedModel) -> None:
    torch.manual_seed(0)
    model = student.build(STUDENT, teacher)
    train_targets = TeacherTargets(teacher, _random_batches(0), keep=True)
    eval_targets = TeacherTargets(teacher, _random_batches(1), keep=True)
    # A rate high enough that later steps can undo earlier progress.
    result, proj = train(
        model,
        train_targets,
        steps=25,
        learning_rate=5e-2,
        weight_decay=0.0,
        seed=0,
        task=AGNOSTIC,
        held_out=eval_targets,
        eval_every=5,
    )
    assert [s for s, _ in result.curve] == [5, 10, 15, 20, 25]
    best_step, best_loss = min(result.curve, key=lambda point: point[1])
    assert result.best_step == best_step
    # The weights returned are that step's: scoring them again gives its loss.
    assert evaluate(model, proj, eval_targets, AGNOSTIC) == pytest.approx(best_loss, rel=1e-5)
    assert not model.training


def test_teacher_targets_are_kept_only_when_asked(teacher: PreTrainedModel) -> None:
    batches = _random_batches(2, n=2)
    kept = TeacherTargets(teacher, batches, keep=True)
    states = kept[0].states
    assert kept[0].logits is None  # a bare encoder has no head
    assert len(states) == TEACHER_LAYERS
    assert states[0].dtype == torch.float16
    assert states[0].shape == (4, 12, TEACHER_WIDTH)
    assert kept[0].states is states
    fresh = TeacherTargets(teacher, batches, keep=False)
    assert fresh[0] is not fresh[0]
    torch.testing.assert_close(fresh[0].states[-1], states[-1])


# --- make_batches -------------------------------------------------------------------------------

WORDS = ["the", "cat", "sat", "on", "a", "mat", "dog", "ran", "far", "away"]


@pytest.fixture(scope="module")
def tokenizer(tmp_path_factory: pytest.TempPathFactory) -> BertTokenizerFast:
    vocab = tmp_path_factory.mktemp("tok") / "vocab.txt"
    vocab.write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *WORDS]) + "\n")
    # transformers 5 reads the vocabulary from `vocab` (a path or a dict).
    tok = BertTokenizerFast(vocab=str(vocab))
    assert tok("the cat")["input_ids"] == [2, 5, 6, 3]  # the vocabulary was read
    return tok


def _texts() -> list[str]:
    gen = torch.Generator().manual_seed(0)
    texts = []
    for i in range(23):
        n = int(torch.randint(1, 12, (1,), generator=gen))
        picks = torch.randint(0, len(WORDS), (n,), generator=gen).tolist()
        texts.append(" ".join(WORDS[j] for j in picks) + f" {WORDS[i % len(WORDS)]}")
    return texts


def test_make_batches_group_by_length_and_cover_every_text(tokenizer: BertTokenizerFast) -> None:
    texts = _texts()
    max_length = 8
    batches, order = make_batches(texts, tokenizer, batch_size=4, max_length=max_length)

    assert sorted(order) == list(range(len(texts)))
    assert [len(b["input_ids"]) for b in batches] == [4] * 5 + [3]
    widths = [b["input_ids"].shape[1] for b in batches]
    assert widths == sorted(widths)
    assert len(set(widths)) > 1  # the texts really have different lengths
    assert max(widths) == max_length

    rows = []
    for batch in batches:
        assert set(batch) >= {"input_ids", "attention_mask"}
        ids, mask = batch["input_ids"], batch["attention_mask"]
        assert ids.shape == mask.shape
        # Padded to the longest text of the batch, and no further.
        assert int(mask.sum(dim=1).max()) == ids.shape[1]
        for row, row_mask in zip(ids.tolist(), mask.tolist(), strict=True):
            n = sum(row_mask)
            assert row_mask == [1] * n + [0] * (len(row) - n)
            assert all(t == tokenizer.pad_token_id for t in row[n:])
            rows.append(tuple(row[:n]))

    expected = tokenizer(texts, truncation=True, max_length=max_length)["input_ids"]
    assert Counter(rows) == Counter(tuple(ids) for ids in expected)
    # Row k of the batches is text order[k].
    assert rows == [tuple(expected[i]) for i in order]
    assert any(len(tokenizer(t)["input_ids"]) > max_length for t in texts)  # truncation mattered


def test_make_batches_is_deterministic(tokenizer: BertTokenizerFast) -> None:
    texts = _texts()
    a, order_a = make_batches(texts, tokenizer, batch_size=5, max_length=16)
    b, order_b = make_batches(list(texts), tokenizer, batch_size=5, max_length=16)
    assert order_a == order_b
    assert len(a) == len(b) == 5
    for x, y in zip(a, b, strict=True):
        assert torch.equal(x["input_ids"], y["input_ids"])


# --- importance-ordered slicing ---------------------------------------------------------


def test_kept_dims_keep_the_head_of_the_order_in_index_order() -> None:
    assert student.kept_dims(None, 3) == [0, 1, 2]
    assert student.kept_dims([5, 2, 9, 1], 2) == [2, 5]


def test_build_slices_the_ordered_residual_dims(teacher: PreTrainedModel) -> None:
    order = list(reversed(range(32)))  # the last dimensions first
    model = student.build(Arch(2, 16, 2, 32), teacher, residual_order=order)
    keep = torch.tensor(list(range(16, 32)))
    words = teacher.embeddings.word_embeddings.weight
    assert torch.equal(model.embeddings.word_embeddings.weight, words[:, keep])
    # A query weight: heads on its rows, the kept residual dims on its columns;
    # layer_map(2, 4) == [1, 3].
    expected = _query(teacher, 3)[_best_head_rows(teacher, 3, 2)][:, keep]
    assert torch.equal(_query(model, 1), expected)


def test_unit_orders_rank_ffn_units_by_what_they_write(teacher: PreTrainedModel) -> None:
    batches = _random_batches(4, n=2)
    orders = student.unit_orders(teacher, batches)
    assert len(orders) == teacher.config.num_hidden_layers
    for i, order in enumerate(orders):
        # Independently: the activation as BERT's `intermediate` module outputs it,
        # over real tokens only, times the norm of each unit's output column.
        acts: list[torch.Tensor] = []
        handle = teacher.encoder.layer[i].intermediate.register_forward_hook(
            lambda _m, _a, out, acts=acts: acts.append(out)
        )
        with torch.no_grad():
            for batch in batches:
                teacher(**batch)
        handle.remove()
        masks = [b["attention_mask"].bool() for b in batches]
        real = torch.cat([a[m] for a, m in zip(acts, masks, strict=True)])
        down = teacher.encoder.layer[i].output.dense.weight
        score = (real**2).mean(dim=0).sqrt() * down.norm(dim=0)
        ranked = score[torch.tensor(order)]
        assert sorted(order) == list(range(teacher.config.intermediate_size))
        assert bool((ranked[:-1] >= ranked[1:] - 1e-6).all())
        assert order != list(range(teacher.config.intermediate_size))


def test_the_teachers_target_pass_ranks_its_units_as_their_own_pass_does(
    teacher: PreTrainedModel,
) -> None:
    # The search ranks the units during the teacher's pass for its proxy targets.
    batches = _random_batches(5, n=3)
    with student.UnitImportance(teacher) as units:
        targets = TeacherTargets(teacher, batches, keep=False)
        for i in range(len(targets)):
            targets[i]
    assert units.batches == len(batches)
    with torch.no_grad():
        teacher(**batches[0])  # after the block: not recorded
    assert units.batches == len(batches)
    assert units.orders() == student.unit_orders(teacher, batches)


def test_build_keeps_the_ordered_ffn_units(teacher: PreTrainedModel) -> None:
    units = [list(reversed(range(64)))] * 4  # the last units first, in every layer
    model = student.build(Arch(2, 32, 4, 16), teacher, unit_order=units)
    top = torch.arange(48, 64)
    for s_layer, t_layer in enumerate(layer_map(2, 4)):
        ours, theirs = model.encoder.layer[s_layer], teacher.encoder.layer[t_layer]
        assert torch.equal(ours.intermediate.dense.weight, theirs.intermediate.dense.weight[top])
        assert torch.equal(ours.intermediate.dense.bias, theirs.intermediate.dense.bias[top])
        assert torch.equal(ours.output.dense.weight, theirs.output.dense.weight[:, top])
    # Without an order the leading units are kept.
    plain = student.build(Arch(2, 32, 4, 16), teacher)
    lead = teacher.encoder.layer[1].intermediate.dense.weight[:16]
    assert torch.equal(plain.encoder.layer[0].intermediate.dense.weight, lead)


def test_projections_put_features_back_where_they_were_sliced_from() -> None:
    proj = Projections(1, 2, 5, kept=[1, 3])
    (out,) = proj([torch.tensor([[[7.0, 9.0]]])])
    assert out.tolist() == [[[0.0, 7.0, 0.0, 9.0, 0.0]]]


def test_residual_order_ranks_dimensions_by_energy(teacher: PreTrainedModel) -> None:
    batches = _random_batches(3, n=2)
    targets = TeacherTargets(teacher, batches, keep=True)
    order = residual_order(targets)
    assert sorted(order) == list(range(teacher.config.hidden_size))
    energy = torch.zeros(teacher.config.hidden_size)
    for i in range(len(targets)):
        mask = batches[i]["attention_mask"].unsqueeze(-1)
        for h in targets[i].states:
            energy += (h.float() ** 2 * mask).sum(dim=(0, 1))
    ranked = energy[torch.tensor(order)]
    assert bool((ranked[:-1] >= ranked[1:]).all())


# --- task mode: logits -----------------------------------------------------------------------


def test_logit_loss_is_zero_on_a_copy_and_scales_with_temperature() -> None:
    teacher = torch.tensor([[2.0, -1.0, 0.5], [0.0, 3.0, -2.0]])
    assert float(logit_loss(teacher.clone(), teacher, "classification", 2.0)) == pytest.approx(0)
    student = torch.zeros(2, 3)
    # KL(p || uniform) by hand at T = 1, for the batch mean.
    p = torch.softmax(teacher, dim=-1)
    by_hand = float((p * (p.log() + math.log(3))).sum(dim=-1).mean())
    assert float(logit_loss(student, teacher, "classification", 1.0)) == pytest.approx(by_hand)
    # Regression: plain MSE on the one output.
    reg = logit_loss(torch.tensor([[1.0], [2.0]]), torch.tensor([[0.0], [4.0]]), "regression", 2.0)
    assert float(reg) == pytest.approx((1 + 4) / 2)


def test_logit_loss_sums_normalise_to_one_for_an_uninformed_student() -> None:
    teacher = torch.tensor([[2.0, -1.0], [0.0, 3.0], [1.0, 1.5]])
    err, ref = logit_loss_sums(torch.zeros(3, 2), teacher, "classification", torch.zeros(()))
    assert float(err / ref) == pytest.approx(1.0)  # uniform predictions explain nothing
    err, _ = logit_loss_sums(teacher.clone(), teacher, "classification", torch.zeros(()))
    assert float(err) == pytest.approx(0.0, abs=1e-6)
    scores = torch.tensor([[1.0], [3.0], [5.0]])
    mean = scores.mean(dim=0)
    err, ref = logit_loss_sums(mean.expand(3, 1), scores, "regression", mean)
    assert float(err / ref) == pytest.approx(1.0)


@pytest.mark.parametrize("kind", ["classification", "regression"])
def test_task_mode_learns_the_teachers_logits(kind: str) -> None:
    from transformers import AutoModelForSequenceClassification

    config = BertConfig(
        vocab_size=100,
        hidden_size=TEACHER_WIDTH,
        num_hidden_layers=4,
        num_attention_heads=4,
        intermediate_size=64,
        max_position_embeddings=64,
        num_labels=3 if kind == "classification" else 1,
    )
    torch.manual_seed(0)
    teacher = AutoModelForSequenceClassification.from_config(config).eval()
    for p in teacher.parameters():
        # A head that says something: random heads predict near-uniform logits.
        p.requires_grad_(False)
    teacher.classifier.weight.mul_(20)
    task = TaskSpec(kind=kind, temperature=2.0, hidden_weight=0.5)  # type: ignore[arg-type]
    model = student.build(STUDENT, teacher)
    assert type(model) is type(teacher)
    train_targets = TeacherTargets(teacher, _random_batches(0), keep=True)
    eval_targets = TeacherTargets(teacher, _random_batches(1), keep=True)
    assert train_targets[0].logits is not None
    before = evaluate(model, Projections(2, 16, TEACHER_WIDTH), eval_targets, task)
    _, proj = train(
        model, train_targets, steps=30, learning_rate=1e-2, weight_decay=0.0, seed=0, task=task
    )
    after = evaluate(model, proj, eval_targets, task)
    assert math.isfinite(after) and after < before


# --- attention heads ----------------------------------------------------------------------------


def test_head_dims_keep_whole_heads_by_importance() -> None:
    importance = [0.1, 0.9, 0.5, 0.7]  # teacher heads of size 8
    # The teacher's head size: the two most important heads (1 and 3), whole, in order.
    assert student.head_dims(importance, 8, heads=2, head=8) == [*range(8, 16), *range(24, 32)]
    # Narrower heads: the leading entries of the most important heads.
    assert student.head_dims(importance, 8, heads=2, head=4) == [8, 9, 10, 11, 24, 25, 26, 27]
    # Wider heads: each student head is two whole teacher heads.
    assert student.head_dims(importance, 8, heads=2, head=16) == list(range(32))
    assert student.head_dims(importance, 8, heads=1, head=16) == [*range(8, 16), *range(24, 32)]
    # Too many heads for the teacher: the caller falls back to plain slicing.
    assert student.head_dims(importance, 8, heads=3, head=16) is None


def test_a_student_with_the_teachers_head_size_keeps_its_best_heads(
    teacher: PreTrainedModel,
) -> None:
    arch = Arch(num_layers=TEACHER_LAYERS, hidden_size=16, num_heads=2, intermediate_size=64)
    model = student.build(arch, teacher)  # head size 8, as the teacher's (32 / 4)
    for layer in range(TEACHER_LAYERS):
        rows = _best_head_rows(teacher, layer, 2)
        # No residual order given: the leading 16 residual dims on the other axis.
        torch.testing.assert_close(_query(model, layer), _query(teacher, layer)[rows][:, :16])
