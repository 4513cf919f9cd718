"""The pretrained recipes reach the quality their targets state (see ``pretrained.info(name)["target"]``).

Each recipe trains in seconds the first time (then it is read from the cache, ``$LMLAB_CACHE``); CI starts from
an empty cache, so there these tests train every recipe from its seed.
"""

from __future__ import annotations

import math

import pytest
from lmlab import heads, pretrained, prompting
from lmlab.inside.induction_eval import evaluate_induction


@pytest.fixture(scope="module")
def induction_model():
    return pretrained.load("induction-2l", device="cpu")


def test_bigram_zero_recovers_the_language() -> None:
    model = pretrained.load("bigram-zero", device="cpu")
    q = pretrained.bigram_agreement(model, pretrained.task("bigram-zero"))
    assert q["corr"] >= 0.99
    assert q["kl"] < 0.02 * q["entropy"]  # within 2 % of the best possible loss


def test_induction_2l_copies_the_second_half(induction_model) -> None:
    task = pretrained.task("induction-2l")
    res = evaluate_induction(induction_model, task.n_vocab, task.eval_len, seeds=range(50, 54), batch=64)
    assert res.loss_second < 0.1
    assert abs(res.loss_first - math.log(task.n_vocab)) < 0.25
    assert res.accuracy_second > 0.97


def test_induction_2l_has_the_two_kinds_of_head(induction_model) -> None:
    det = heads.detect_heads(induction_model, seq_len=pretrained.task("induction-2l").eval_len, batch=64)
    assert any(layer == 0 for layer, _ in det.previous_token_heads)
    assert det.induction_heads and all(layer == 1 for layer, _ in det.induction_heads)


def test_arithmetic_cot_answers_held_out_questions() -> None:
    model = pretrained.load("arithmetic-cot", device="cpu")
    task = pretrained.task("arithmetic-cot")
    # the recipe's model was trained with BOS in front of every question (prompting's BOS convention)
    assert prompting.accuracy(model, None, task.heldout, task.tokenizer, bos=True) >= 0.98


def test_digits_vgg_classifies_held_out_digits() -> None:
    from lmlab.compressing.vision import accuracy

    model = pretrained.load("digits-vgg", device="cpu")
    digits = pretrained.task("digits-vgg")
    assert accuracy(model, digits.x_test, digits.y_test) >= 0.98  # the recipe's stated target


def test_arithmetic_styles_needs_a_prompt() -> None:
    from lmlab.adapting.prompt_data import HINT

    model = pretrained.load("arithmetic-styles", device="cpu")
    task = pretrained.task("arithmetic-styles")
    probs = task.heldout[:200]
    assert prompting.accuracy(model, None, probs, task.tokenizer) < 0.1
    assert prompting.accuracy(model, None, probs, task.tokenizer, prefix=HINT) >= 0.9


def test_modular_tagged_knows_every_task_by_its_tag() -> None:
    from lmlab import meta_prompt

    model = pretrained.load("modular-tagged", device="cpu")
    p = pretrained.task("modular-tagged").p
    acc = [meta_prompt.pair_accuracy(model, meta_prompt.hard_prompt(model, [p + k]), k, p) for k in range(p)]
    assert min(acc) >= 0.85
