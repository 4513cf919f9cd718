"""Soft prompts: the loss mask of the homework, the trained parameters, frozen weights, the cached prefix, and a
prompt that names a held-out task from a few examples."""

from __future__ import annotations

import copy

import lmlab
import pytest
import torch
from lmlab import meta_prompt as mp
from lmlab import pretrained
from lmlab import prompting as pr
from lmlab.adapting.arithmetic import arithmetic_tokenizer, make_problem
from lmlab.adapting.prompt_data import HINT, StyledArithmetic
from lmlab.core.model import ModelConfig, TinyTransformer

TOL = 1e-5


def tiny_model(n_vocab: int = 20, n_ctx: int = 32, seed: int = 0) -> TinyTransformer:
    lmlab.seed_everything(seed)
    cfg = ModelConfig(n_vocab=n_vocab, n_ctx=n_ctx, d_model=16, n_layers=2, n_heads=2, d_mlp=32, layer_norm=True)
    return pr.freeze(TinyTransformer(cfg))


def test_homework_mask_example():
    layout = pr.Layout(prompt=5, question=45, reasoning=20, answer=1, newline=1, padding=28)
    assert layout.n == 100
    assert pr.loss_positions(layout) == list(range(50, 72))
    mask = pr.loss_mask(layout, n_ctx=100)
    assert mask.shape == (100,) and int(mask.sum()) == 22
    # output 70 predicts the answer token 71, output 71 the newline, output 72 already predicts padding
    assert mask[70 - 1] and mask[71 - 1] and not mask[72 - 1] and not mask[49 - 1]


@pytest.mark.parametrize(
    "kwargs",
    [
        {"prompt": -1, "question": 45, "reasoning": 20, "answer": 1, "newline": 1, "padding": 28},
        {"prompt": 5, "question": 0, "reasoning": 20, "answer": 1, "newline": 1, "padding": 28},
        {"prompt": 5, "question": 45, "reasoning": 20, "answer": 0, "newline": 1, "padding": 28},
        {"prompt": 5, "question": 45, "reasoning": 20, "answer": 1, "newline": 2, "padding": 28},
    ],
)
def test_invalid_layouts_raise(kwargs):
    with pytest.raises(ValueError):
        pr.Layout(**kwargs)


def test_layout_longer_than_context_raises():
    with pytest.raises(ValueError, match="n_ctx"):
        pr.loss_mask(pr.Layout(5, 45, 20, 1, 1, 28), n_ctx=99)
    with pytest.raises(TypeError):
        pr.loss_mask((5, 45, 20, 1, 1, 28))  # type: ignore[arg-type]


def test_encode_problems_mask_matches_layout():
    tok = arithmetic_tokenizer()
    probs = [make_problem("add", 3, 4), make_problem("div", 12, 4, "Ann", "pens")]
    tokens, targets, mask = pr.encode_problems(tok, probs, 5)
    assert targets.shape == mask.shape == (2, 5 + tokens.shape[1])
    for b, p in enumerate(probs):
        scored = [i for i in range(mask.shape[1]) if mask[b, i]]
        # the scored outputs predict exactly the solution's characters
        text = tok.decode(targets[b, scored])
        assert text == p.solution
        assert scored[0] == 5 + len(p.question) - 1


def test_parameter_count_is_P_times_E():
    model = tiny_model()
    prompt = pr.SoftPrompt(5, model.cfg.d_model)
    trainable = [t for t in list(model.parameters()) + list(prompt.parameters()) if t.requires_grad]
    assert sum(t.numel() for t in trainable) == 5 * model.cfg.d_model


def test_soft_prompt_bad_input():
    with pytest.raises(ValueError):
        pr.SoftPrompt(0, 16)
    with pytest.raises(TypeError):
        pr.SoftPrompt(2.0, 16)  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        pr.SoftPrompt(2, 16, torch.zeros(3, 16))


def test_from_tokens_equals_hard_prompt():
    model = tiny_model()
    hard = [3, 7, 1]
    text = torch.tensor([[4, 5, 6, 2]])
    soft = pr.prompted_logits(model, pr.SoftPrompt.from_tokens(model, hard), text)
    ref = model(torch.tensor([hard + text[0].tolist()]))
    assert (soft - ref).abs().max() < TOL


def test_training_leaves_weights_bit_identical_and_lowers_loss():
    tok = arithmetic_tokenizer()
    model = tiny_model(n_vocab=tok.n_vocab, n_ctx=128)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    probs = [make_problem("add", a, b) for a in range(1, 4) for b in range(1, 4)]
    batch = pr.encode_problems(tok, probs, 3)
    prompt = pr.SoftPrompt(3, model.cfg.d_model, generator=lmlab.generator(0))
    start = prompt.weight.detach().clone()
    losses = pr.train_prompt(model, prompt, lambda s: batch, steps=30, lr=0.05)
    assert losses[-1] < losses[0]
    assert not torch.equal(prompt.weight.detach(), start)
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k]), k


def test_train_prompt_refuses_unfrozen_model():
    cfg = ModelConfig(n_vocab=10, n_ctx=16, d_model=8, n_layers=1)
    model = TinyTransformer(cfg)
    with pytest.raises(ValueError, match="frozen"):
        pr.train_prompt(model, pr.SoftPrompt(2, 8), lambda s: None, steps=1)  # type: ignore[arg-type]


def test_cached_prefix_equals_full_forward():
    model = tiny_model()
    prompt = pr.SoftPrompt(4, model.cfg.d_model, std=1.0, generator=lmlab.generator(1))
    tokens = torch.randint(0, 20, (3, 9), generator=lmlab.generator(2))
    full, cache = model.forward_embeds(prompt(model.embed(tokens, start=4)), return_cache=True)
    # the prompt positions are the same for every sequence of the batch, at every layer
    for resid in cache.resid:
        assert (resid[:, :4] - resid[:1, :4]).abs().max() < TOL
    past = pr.prefix_cache(model, prompt, batch=3)
    cached, _ = model.forward_kv(tokens, past)
    assert (cached - full[:, 4:]).abs().max() < TOL


def test_complete_with_prompt_matches_uncached_greedy():
    tok = arithmetic_tokenizer()
    model = tiny_model(n_vocab=tok.n_vocab, n_ctx=64)
    prompt = pr.SoftPrompt(2, model.cfg.d_model, std=0.5, generator=lmlab.generator(0))
    q = "Question: 3 and 4?"
    out = pr.complete(model, prompt, [q], tok, max_new_tokens=6)[0]
    ids = tok.encode(q)
    for _ in range(len(out)):
        nxt = int(pr.prompted_logits(model, prompt, torch.tensor([ids]))[0, -1].argmax())
        ids.append(nxt)
    assert tok.decode(ids[len(tok.encode(q)) :]).startswith(out.rstrip("\n")[:6])


def test_styled_documents():
    task = StyledArithmetic(n_train=50, n_heldout=10)
    p = task.train[0]
    text, start = task.document(p, worked=True, prefix=True)
    assert text.startswith(HINT) and text.endswith(p.solution) and text[:start].endswith("Answer:")
    inputs, targets, mask = task.batches(batch=4)(0)
    assert inputs.shape == targets.shape == mask.shape == (4, task.max_len - 1)


def test_prompt_names_a_heldout_task_from_8_examples():
    """On the pretrained tagged modular family, 8 examples (distinct inputs) of each held-out task suffice: the
    search over one-token prompts scored on them finds a prompt right on the unseen inputs, and a one-vector prompt
    tuned from it (Adam, small step) keeps that, far above no prompt. A prompt tuned from zero with Adam 0.05 is
    not asserted: it fails at optimization on some draws (see the soft-prompting chapter, (c)(iii))."""
    model = pr.freeze(pretrained.load("modular-tagged", device="cpu"))
    family = pretrained.task("modular-tagged").family
    p = family.p
    search, tuned, none = [], [], []
    for k in family.heldout_tasks:
        x, y = mp.sample_pairs(k, p, 8, lmlab.generator(k))
        assert len(set(x.tolist())) == 8
        rest = mp.unseen(x, p)
        test = (rest, (rest + k) % p)
        _, w_tok = mp.token_search(model, (x, y))
        w = mp.tune_prompt(model, w_tok, (x, y), lr=0.01)
        search.append(mp.pairs_accuracy(model, w_tok, *test))
        tuned.append(mp.pairs_accuracy(model, w, *test))
        with torch.no_grad():
            none.append(float((model(rest[:, None])[:, -1].argmax(-1) == test[1]).float().mean()))
    mean = lambda v: sum(v) / len(v)  # noqa: E731
    # measured over seed offsets 0-2 and kernels: search and tuned 100 %, no prompt at most 14 %
    assert mean(search) >= 0.9, search
    assert mean(tuned) >= mean(none) + 0.5, (tuned, none)


def test_finetune_copies_and_tune_prompt_leaves_model_untouched():
    model = tiny_model(n_vocab=34, n_ctx=4)
    digest = pr.state_digest(model)
    support = mp.sample_pairs(3, 17, 8, lmlab.generator(0))
    start = torch.zeros(1, model.cfg.d_model)
    w = mp.tune_prompt(model, start, support, steps=20)
    tuned, w_ft = mp.finetune(model, start, support, steps=20)
    assert pr.state_digest(model) == digest
    assert pr.state_digest(tuned) != digest
    assert not torch.equal(w, start) and not torch.equal(w_ft, start)
    # fitting 8 pairs with every weight free reaches them all
    tuned, w_ft = mp.finetune(model, start, support, steps=150)
    assert mp.pairs_accuracy(tuned, w_ft, *support) == 1.0


def test_mean_adaptation_curve_averages_single_curves():
    model = tiny_model(n_vocab=34, n_ctx=4)
    start = torch.zeros(1, model.cfg.d_model)
    mean = mp.mean_adaptation_curve(model, start, [1, 2], 17, seeds=[5], steps=2, lr=0.5)
    g = lmlab.generator(5)
    ref = [mp.adaptation_curve(model, start, k, 17, steps=2, lr=0.5, generator=g) for k in (1, 2)]
    assert mean.shape == (3,)
    assert torch.allclose(mean, torch.tensor(ref).mean(0), atol=TOL)
    with pytest.raises(ValueError):
        mp.mean_adaptation_curve(model, start, [], 17, seeds=[5], steps=2)


def test_sample_pairs_without_replacement_and_unseen():
    x, y = mp.sample_pairs(3, 17, 17, lmlab.generator(0))
    assert sorted(x.tolist()) == list(range(17)) and torch.equal(y, (x + 3) % 17)
    assert mp.unseen(x[:4], 17).tolist() == sorted(set(range(17)) - set(x[:4].tolist()))
    with pytest.raises(ValueError):
        mp.sample_pairs(3, 17, 18, lmlab.generator(0))
    assert mp.sample_pairs(3, 17, 40, lmlab.generator(0), replace=True)[0].shape == (40,)


def test_adapt_toward_limits():
    """The penalty lam * ||w - anchor||^2: lam = 0 is plain adaptation, a huge lam keeps w at the anchor, and a
    moderate lam ends between them (closer to the anchor than plain adaptation)."""
    model = tiny_model(n_vocab=34, n_ctx=4)
    support = mp.sample_pairs(3, 17, 4, lmlab.generator(0))
    g = lmlab.generator(1)
    start = torch.randn(1, model.cfg.d_model, generator=g)
    anchor = torch.randn(1, model.cfg.d_model, generator=g)
    plain = mp.adapt(model, start, support, steps=5, lr=0.3)
    zero = mp.adapt_toward(model, start, support, anchor, lam=0.0, steps=5, lr=0.3)
    assert torch.equal(zero, plain.detach())
    huge = mp.adapt_toward(model, start, support, anchor, lam=1e9, steps=5, lr=0.3)
    assert float((huge - anchor).abs().max()) < 1e-6
    mid = mp.adapt_toward(model, start, support, anchor, lam=1.0, steps=5, lr=0.3)
    assert (mid - anchor).norm() < (plain.detach() - anchor).norm()
    assert mp.adapt_toward(model, start, support, anchor, lam=3.0, steps=0, lr=0.3).equal(start)
    with pytest.raises(ValueError, match="lam"):
        mp.adapt_toward(model, start, support, anchor, lam=-1.0, steps=5, lr=0.3)
    with pytest.raises(ValueError, match="anchor"):
        mp.adapt_toward(model, start, support, anchor[:, :3], lam=1.0, steps=5, lr=0.3)
    with pytest.raises(TypeError):
        mp.adapt_toward(model, start, support, anchor, lam="1", steps=5, lr=0.3)  # type: ignore[arg-type]


def test_penalised_curve_limits():
    """adaptation_curve with lam = 0 equals the plain curve; with a huge lam the accuracy stays at the start's
    (start = anchor); a start given as a function of the support pairs is evaluated on them."""
    model = tiny_model(n_vocab=34, n_ctx=4)
    start = torch.randn(1, model.cfg.d_model, generator=lmlab.generator(2))
    kw = dict(steps=4, lr=0.5, n_support=4)
    plain = mp.adaptation_curve(model, start, 3, 17, generator=lmlab.generator(7), **kw)
    zero = mp.adaptation_curve(model, start, 3, 17, generator=lmlab.generator(7), lam=0.0, anchor=start, **kw)
    assert zero == plain
    huge = mp.adaptation_curve(model, start, 3, 17, generator=lmlab.generator(7), lam=1e9, **kw)
    assert huge == [plain[0]] * 5
    seen = []

    def rule(support):
        seen.append(support)
        return start

    assert mp.adaptation_curve(model, rule, 3, 17, generator=lmlab.generator(7), **kw) == plain
    assert len(seen) == 1 and torch.equal(seen[0][0], mp.sample_pairs(3, 17, 4, lmlab.generator(7))[0])


def test_library_start_picks_the_lowest_support_loss():
    model = tiny_model(n_vocab=34, n_ctx=4)
    support = mp.sample_pairs(5, 17, 4, lmlab.generator(0))
    library = torch.randn(6, 1, model.cfg.d_model, generator=lmlab.generator(3))
    losses = mp.support_losses(model, library, support)
    i, w = mp.library_start(model, library, support)
    assert losses.shape == (6,)
    assert i == int(torch.argmin(losses)) and torch.equal(w, library[i])
    assert all(float(losses[i]) <= float(v) for v in losses)
    for j in range(6):  # each entry is the support loss of that start
        assert abs(float(losses[j]) - float(mp.pair_loss(model, library[j], *support))) < TOL
    # a library of every one-token hard prompt is the token search
    tokens = list(range(model.cfg.n_vocab))
    hard = torch.stack([mp.hard_prompt(model, [t]) for t in tokens])
    assert mp.library_start(model, hard, support)[0] == mp.token_search(model, support)[0]
    with pytest.raises(ValueError, match="library"):
        mp.library_start(model, library[0], support)


def test_choose_lambda_takes_the_best_of_the_grid():
    model = tiny_model(n_vocab=34, n_ctx=4)
    start = torch.randn(1, model.cfg.d_model, generator=lmlab.generator(4))
    kw = dict(seeds=[9], steps=3, lr=0.5)
    best, scores = mp.choose_lambda(model, start, [1, 2], 17, lams=[0.0, 1.0, 1e9], **kw)
    assert list(scores) == [0.0, 1.0, 1e9] and best in scores
    assert scores[best] == max(scores.values())
    ref = mp.mean_adaptation_curve(model, start, [1, 2], 17, lam=1.0, **kw)
    assert scores[1.0] == float(ref[-1])
    with pytest.raises(ValueError):
        mp.choose_lambda(model, start, [1, 2], 17, lams=[], **kw)
    with pytest.raises(ValueError):
        mp.choose_lambda(model, start, [1, 2], 17, lams=[-1.0], **kw)


def test_complete_refuses_a_bare_string_instead_of_iterating_its_characters():
    tok = arithmetic_tokenizer()
    model = tiny_model(n_vocab=tok.n_vocab, n_ctx=64)
    with pytest.raises(TypeError, match="questions must be a list of strings, got a single string"):
        pr.complete(model, None, "Question: 3 and 4?", tok, max_new_tokens=2)
    with pytest.raises(TypeError, match=r"questions\[0\] must be a str"):
        pr.complete(model, None, [7], tok, max_new_tokens=2)


TASKS, P = [1, 2], 17


@pytest.mark.parametrize(
    ("call", "error", "match"),
    [
        (lambda m, s: mp.reptile(m, s, TASKS, P, meta_steps=1, tasks_per_step=0), ValueError, "tasks_per_step"),
        (lambda m, s: mp.reptile(m, s, TASKS, P, meta_steps=1, inner_lr=0.0), ValueError, "inner_lr"),
        (lambda m, s: mp.reptile(m, s, TASKS, P, meta_steps=1, inner_steps=-1), ValueError, "inner_steps"),
        (lambda m, s: mp.reptile(m, s, TASKS, P, meta_steps=1, n_support=18), ValueError, "n_support"),
        (lambda m, s: mp.reptile(m, s, [], P, meta_steps=1), ValueError, "tasks"),
        (lambda m, s: mp.maml(m, s, TASKS, P, meta_steps=1, inner_lr=-1.0), ValueError, "inner_lr"),
        (lambda m, s: mp.maml(m, s, TASKS, P, meta_steps=1, outer_lr=0.0), ValueError, "outer_lr"),
        (lambda m, s: mp.maml(m, s, TASKS, P, meta_steps=1, inner_steps=1.5), TypeError, "inner_steps"),
        (lambda m, s: mp.maml(m, s, TASKS, P, meta_steps=1, n_support=0), ValueError, "n_support"),
        (lambda m, s: mp.maml(m, s, TASKS, P, meta_steps=1, n_query=18), ValueError, "n_query"),
        (lambda m, s: mp.maml(m, s, [1.5], P, meta_steps=1), TypeError, "tasks"),
        (lambda m, s: mp.tune_prompts(m, s, TASKS, P, steps=1, lr=0.0), ValueError, "lr"),
        (
            lambda m, s: mp.adaptation_curve(m, s, 1, P, steps=1, n_support=0, generator=lmlab.generator(0)),
            ValueError,
            "n_support",
        ),
        (lambda m, s: mp.adaptation_curve(m, s, 1, P, steps=1, generator=None), TypeError, "generator"),
        (lambda m, s: mp.mean_adaptation_curve(m, s, TASKS, P, seeds=[0], steps=-1), ValueError, "steps"),
        (lambda m, s: mp.mean_adaptation_curve(m, s, TASKS, P, seeds=[], steps=1), ValueError, "seeds"),
        (
            lambda m, s: mp.choose_lambda(m, s, TASKS, P, lams=[0.0], seeds=[0], steps=1, n_support=40),
            ValueError,
            "n_support",
        ),
        (lambda m, s: mp.choose_lambda(m, s, TASKS, P, lams=[-1.0], seeds=[0], steps=1), ValueError, "lams"),
    ],
)
def test_meta_prompt_errors_name_the_argument_as_the_caller_wrote_it(call, error, match):
    model = tiny_model(n_vocab=P + 2 * P, n_ctx=8)
    start = torch.zeros(1, model.cfg.d_model)
    with pytest.raises(error, match=match):
        call(model, start)


def test_sample_pairs_requires_an_int_task():
    with pytest.raises(TypeError, match="k must be an int"):
        mp.sample_pairs(1.5, 17, 4, lmlab.generator(0))
    with pytest.raises(ValueError, match="k must be an int >= 0"):
        mp.sample_pairs(-1, 17, 4, lmlab.generator(0))


# ------------------------------------------------------------------------------------------------------------
# the thin callers of lmlab.train.train
# ------------------------------------------------------------------------------------------------------------


def test_train_prompt_is_train_on_the_prompt_alone():
    from lmlab.core.train import train

    tok = arithmetic_tokenizer()
    model = tiny_model(n_vocab=tok.n_vocab, n_ctx=128)
    batch = pr.encode_problems(tok, [make_problem("add", a, 2) for a in range(1, 5)], 3)
    p1 = pr.SoftPrompt(3, model.cfg.d_model, generator=lmlab.generator(4))
    p2 = pr.SoftPrompt(3, model.cfg.d_model, generator=lmlab.generator(4))
    h1 = pr.train_prompt(model, p1, lambda s: batch, steps=8, lr=0.05)
    loss_fn = lambda m, b: pr.prompted_loss(m, p2, b)  # noqa: E731
    opts = {"optimizer": "adam", "grad_clip": None, "mode": "keep", "progress": False}
    h2 = train(model, lambda s: batch, steps=8, lr=0.05, loss_fn=loss_fn, params=[p2.weight], **opts)
    assert list(h1) == list(h2)
    assert torch.allclose(p1.weight, p2.weight, rtol=0, atol=1e-12)


def test_meta_prompt_tuners_are_train_with_adam():
    from lmlab.core.train import train

    model = tiny_model(n_vocab=P + 2 * P, n_ctx=8)
    start = torch.randn(1, model.cfg.d_model, generator=lmlab.generator(1)) * 0.1
    support = mp.sample_pairs(3, P, 4, lmlab.generator(2))
    opts = {"optimizer": "adam", "grad_clip": None, "mode": "keep", "progress": False}

    w = start.clone().requires_grad_(True)
    train(model, lambda s: support, steps=7, lr=0.05, loss_fn=lambda m, b: mp.pair_loss(m, w, *b), params=[w], **opts)
    assert torch.allclose(mp.tune_prompt(model, start, support, steps=7), w.detach(), rtol=0, atol=1e-12)

    tuned, w_ft = mp.finetune(model, start, support, steps=5)
    ref = copy.deepcopy(model)
    for q in ref.parameters():
        q.requires_grad_(True)
    w = start.clone().requires_grad_(True)
    params = [*ref.parameters(), w]
    train(ref, lambda s: support, steps=5, lr=0.01, loss_fn=lambda m, b: mp.pair_loss(m, w, *b), params=params, **opts)
    assert torch.allclose(w_ft, w.detach(), rtol=0, atol=1e-12)
    for a, b in zip(tuned.parameters(), ref.parameters()):
        assert torch.allclose(a, b, rtol=0, atol=1e-12)
    assert pr.state_digest(model) == pr.state_digest(tiny_model(n_vocab=P + 2 * P, n_ctx=8))  # model untouched

    x = torch.arange(P)
    both = mp.tune_prompts(model, start, [1, 3], P, steps=4)
    assert torch.equal(both[1], mp.tune_prompt(model, start, (x, (x + 3) % P), steps=4, lr=0.05))


# ------------------------------------------------------------------------------------------------------------
# the one completion routine and its BOS convention
# ------------------------------------------------------------------------------------------------------------


def test_complete_puts_bos_in_front_of_the_question_only_when_asked():
    tok = arithmetic_tokenizer()
    model = tiny_model(n_vocab=tok.n_vocab, n_ctx=64, seed=3)
    qs = ["Question: 3 and 4?", "Question: 5 and 61?", "Question: 2 and 8?"]
    for bos in (False, True):
        out = pr.complete(model, None, qs, tok, max_new_tokens=10, bos=bos)
        for q, text in zip(qs, out):
            ids = torch.tensor([tok.encode(q, bos=bos)])
            ref = tok.decode(model.generate(ids, 10)[0, ids.shape[1] :])
            cut = ref.find("\n")
            assert text == (ref if cut < 0 else ref[: cut + 1])
    # behind a soft prompt: [prompt][BOS][question]
    prompt = pr.SoftPrompt(2, model.cfg.d_model, std=0.5, generator=lmlab.generator(0))
    text = pr.complete(model, prompt, [qs[0]], tok, max_new_tokens=5, bos=True)[0]
    ids = tok.encode(qs[0], bos=True)
    n = len(ids)
    for _ in range(5):
        ids.append(int(pr.prompted_logits(model, prompt, torch.tensor([ids]))[0, -1].argmax()))
    ref = tok.decode(ids[n:])
    assert text == (ref if "\n" not in ref else ref[: ref.find("\n") + 1])
    with pytest.raises(TypeError, match="bos"):
        pr.complete(model, None, qs, tok, bos=1)


class _Oracle(torch.nn.Module):
    """A stand-in model whose greedy continuation of a question is a fixed text (right or wrong); it records the
    first token of every sequence it is given."""

    def __init__(self, tok, answers: dict[str, str], n_ctx: int) -> None:
        super().__init__()
        self.tok, self.answers, self.first = tok, answers, []
        self.cfg = ModelConfig(n_vocab=tok.n_vocab, n_ctx=n_ctx, d_model=4, n_layers=0)
        self.device = torch.device("cpu")

    def forward_kv(self, x: torch.Tensor, past: tuple | None = None):
        if past is None:
            self.first += x[:, 0].tolist()
            past = (x, x.shape[1])  # the question, the length it had
        seq = torch.cat([past[0], x], 1) if x is not past[0] else x
        logits = torch.zeros(x.shape[0], x.shape[1], self.cfg.n_vocab)
        for b, row in enumerate(seq):
            text = self.answers[self.tok.decode(row[: past[1]])] + "Final answer: 99\n"  # after "\n": ignored
            ids, i = self.tok.encode(text), row.shape[0] - past[1]
            logits[b, -1, ids[i] if i < len(ids) else self.tok.PAD] = 1.0
        return logits, (seq, past[1])


def test_accuracy_with_an_oracle_and_the_bos_convention():
    from lmlab.adapting.arithmetic import ArithmeticTask

    task = ArithmeticTask(0, n_train=10, n_heldout=40)
    probs, tok = task.heldout, task.tokenizer
    right = _Oracle(tok, {p.question: p.solution for p in probs}, task.max_len + 64)
    assert pr.complete(right, None, [p.question for p in probs], tok, bos=True) == [p.solution for p in probs]
    assert set(right.first) == {tok.BOS}
    assert pr.accuracy(right, None, probs, tok, bos=True) == 1.0
    right.first.clear()
    assert pr.accuracy(right, None, probs, tok) == 1.0 and tok.BOS not in right.first
    wrong = {p.question: p.solution for p in probs}
    for p in probs[:10]:
        wrong[p.question] = p.solution.replace(f"Final answer: {p.answer}\n", f"Final answer: {p.answer + 1}\n")
    for p in probs[10:15]:
        wrong[p.question] = " 1 + 1 = ?"  # no newline at all: unparsable, counts as wrong
    half = _Oracle(tok, wrong, task.max_len + 64)
    assert pr.accuracy(half, None, probs, tok, bos=True) == pytest.approx(25 / 40)
    assert pr.complete(right, None, (probs[0].question,), tok) == [probs[0].solution]  # any sequence of str
