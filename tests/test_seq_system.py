"""The sequence system: truncated BPTT, heads and costs, data modules, bad input, and the vanishing-gradient measurement."""

import functools
import math

import pytest
import torch

from dlf.callbacks.sequence import grad_through_time
from dlf.data.adding import BASELINE_MSE, AddingDataModule
from dlf.data.text import TextDataModule, generate_corpus
from dlf.errors import DlfError
from dlf.nets.lstm import build_lstm
from dlf.nets.rnn import build_rnn
from dlf.systems.sequence import SequenceSystem


def _system(build, facts, **kw):
    torch.manual_seed(0)
    tb = kw.pop("tbptt_steps", None)
    return SequenceSystem(functools.partial(build, hidden_size=kw.pop("hidden_size", 6), **kw), facts,
                          tbptt_steps=tb).double()


def _adding(T=12, n=8):
    dm = AddingDataModule(seq_len=T, n_train=n, n_val=n, n_test=n)
    facts = dm.prepare()
    return facts, dm.train[0].double(), dm.train[1].double()


def _grads(system, x, y, k):
    system.zero_grad()
    x = x.clone().requires_grad_()
    system.cost(system(x, k), y).backward()
    return x.grad, {n: p.grad.clone() for n, p in system.named_parameters()}


@pytest.mark.parametrize("build", [build_rnn, build_lstm])
@pytest.mark.parametrize("impl", ["torch", "scratch"])
def test_tbptt_with_k_at_least_T_is_full_bptt(build, impl):
    facts, x, y = _adding(T=12)
    s = _system(build, facts, impl=impl, num_layers=2)
    gx_full, gp_full = _grads(s, x, y, None)
    for k in (12, 50):
        gx, gp = _grads(s, x, y, k)
        torch.testing.assert_close(gx, gx_full, rtol=0, atol=0)
        for n in gp:
            torch.testing.assert_close(gp[n], gp_full[n], rtol=0, atol=0)


@pytest.mark.parametrize("build", [build_rnn, build_lstm])
def test_tbptt_with_k_below_T_cuts_the_gradient_path(build):
    facts, x, y = _adding(T=12)
    s = _system(build, facts)
    gx_full, gp_full = _grads(s, x, y, None)
    gx, gp = _grads(s, x, y, 5)  # chunks [0,5) [5,10) [10,12): the cost at the end reaches back to step 10 only
    assert torch.all(gx_full[:, :10].abs().sum((0, 2)) > 0)
    assert torch.all(gx[:, :10] == 0) and torch.all(gx[:, 10:].abs().sum((0, 2)) > 0)
    torch.testing.assert_close(gx[:, 10:], gx_full[:, 10:], rtol=0, atol=0)  # the kept steps: the same gradient
    assert any(not torch.allclose(gp[n], gp_full[n]) for n in gp if "weight_hh" in n)
    # the forward pass (the values) does not change
    torch.testing.assert_close(s(x, 5), s(x, None), rtol=1e-12, atol=1e-12)


def test_tbptt_language_model_keeps_values():
    dm = TextDataModule(seq_len=20, corpus_chars=5000)
    facts = dm.prepare()
    s = _system(build_lstm, facts)
    x, y = dm.train[0][:4], dm.train[1][:4]
    z_full, z_cut = s(x, None), s(x, 7)
    assert z_full.shape == (4, 20, len(facts.vocab))
    torch.testing.assert_close(z_cut, z_full, rtol=1e-12, atol=1e-12)  # chunked nn.LSTM calls: rounding only
    # the cost is summed over time: about T * log(V) for an untrained net
    assert abs(float(s.cost(z_full, y)) / 20 - math.log(len(facts.vocab))) < 0.5


@pytest.mark.parametrize("bad", [0, -3, 2.5, True, "ten"])
def test_bad_tbptt_steps_is_one_line(bad):
    facts, _, _ = _adding()
    with pytest.raises(DlfError, match="model.tbptt_steps=") as e:
        _system(build_rnn, facts, tbptt_steps=bad)
    assert "\n" not in str(e.value)


def test_bidirectional_head_and_refusals():
    facts, x, _ = _adding(T=6)
    s = _system(build_lstm, facts, bidirectional=True)
    assert s(x).shape == (8, 1)
    with pytest.raises(DlfError, match="tbptt_steps needs a one-directional"):
        _system(build_rnn, facts, bidirectional=True, tbptt_steps=3)
    text = TextDataModule(seq_len=10, corpus_chars=2000).prepare()
    with pytest.raises(DlfError, match="bidirectional=true cannot model language"):
        _system(build_rnn, text, bidirectional=True)


def test_adding_problem_data():
    dm = AddingDataModule(seq_len=30, n_train=20_000, n_val=10, n_test=10, data_seed=3)
    facts = dm.prepare()
    x, y = dm.train
    assert x.shape == (20_000, 30, 2) and y.shape == (20_000, 1) and facts.in_features == 2
    m = x[..., 1]
    assert torch.all(m[:, :15].sum(1) == 1) and torch.all(m[:, 15:].sum(1) == 1)
    torch.testing.assert_close(y[:, 0], (x[..., 0] * m).sum(1))
    assert abs(float(((y - 1) ** 2).mean()) - BASELINE_MSE) < 0.005  # always answering 1: MSE 1/6
    again = AddingDataModule(seq_len=30, n_train=20_000, n_val=10, n_test=10, data_seed=3)
    again.prepare()
    assert torch.equal(again.train[0], x) and not torch.equal(again.test[0], dm.val[0])


def test_text_data_and_generated_corpus():
    text = generate_corpus(3000, seed=0)
    assert "The sun rises in the east." in generate_corpus(20_000) and text == generate_corpus(3000, seed=0)
    dm = TextDataModule(seq_len=16, corpus_chars=5000)
    facts = dm.prepare()
    x, y = dm.train
    assert x.shape[1] == 16 and torch.equal(x[0, 1:], y[0, :-1]) and torch.equal(x[1, 0], y[0, -1])
    assert facts.kind == "tokens" and facts.num_classes == len(facts.vocab) and "e" in facts.vocab
    assert 5 < facts.extra["unigram_ppl"] < len(facts.vocab)


@pytest.mark.parametrize("content, match", [
    (b"", "is empty"),
    (b"  \n ", "is empty"),
    (b"\x89PNG\r\n\x1a\n\x00\x00\x00IHDR" * 20, "looks binary"),
    (b"short text", "has only 10 characters"),
])
def test_bad_text_files_are_one_line(tmp_path, content, match):
    f = tmp_path / "corpus.txt"
    f.write_bytes(content)
    with pytest.raises(DlfError, match=match) as e:
        TextDataModule(path=str(f), seq_len=16).prepare()
    assert "\n" not in str(e.value) and "corpus.txt" in str(e.value)
    with pytest.raises(DlfError, match="is not a file"):
        TextDataModule(path=str(tmp_path / "missing.txt")).prepare()


def test_the_vanishing_gradient_measured():
    """Over T = 100 steps a tanh RNN's dL/dh_1 is more than 12 orders of magnitude below dL/dh_T. The LSTM's cell
    path keeps far more (8+ orders more with the usual forget bias 1), and with the forget gate open (bias 3) the
    signal stays within about one order of magnitude."""
    dm = AddingDataModule(seq_len=100, n_train=10, n_val=64, n_test=10)
    facts = dm.prepare()
    x, y = dm.val

    def ratio(build, **kw):
        torch.manual_seed(0)
        n = grad_through_time(SequenceSystem(functools.partial(build, hidden_size=32, **kw), facts), x, y)
        assert n.shape == (100,) and torch.all(n[-10:] > 0)
        return float(n[0] / n[-1])

    rnn = ratio(build_rnn)
    lstm, lstm_open = ratio(build_lstm, forget_bias=1.0), ratio(build_lstm, forget_bias=3.0)
    assert rnn < 1e-12
    assert lstm > 1e6 * rnn
    assert lstm_open > 1e-2
