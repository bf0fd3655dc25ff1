"""The from-scratch RNN and LSTM compute exactly what nn.RNN / nn.LSTM compute: outputs, final states, gradients."""

import pytest
import torch

from dlf.errors import DlfError
from dlf.nets.lstm import ScratchLSTM, TorchLSTM, build_lstm, gate_trace
from dlf.nets.rnn import ScratchRNN, TorchRNN, build_rnn

SHAPES = [  # (N, T, F, H, layers, bidirectional, init_state)
    (3, 5, 2, 4, 1, False, "zeros"),
    (2, 7, 3, 5, 2, False, "random"),
    (4, 6, 1, 3, 2, True, "zeros"),
    (1, 1, 4, 6, 3, True, "random"),
]


def _pair(kind, F, H, layers, bi, init_state):
    torch.manual_seed(0)
    if kind == "rnn":
        t = TorchRNN(F, H, layers, dropout=0.3 if layers > 1 else 0.0, bidirectional=bi, init_state=init_state)
        s = ScratchRNN(F, H, layers, dropout=0.3 if layers > 1 else 0.0, bidirectional=bi, init_state=init_state)
    else:
        t = TorchLSTM(F, H, layers, bidirectional=bi, init_state=init_state, forget_bias=1.5)
        s = ScratchLSTM(F, H, layers, bidirectional=bi, init_state=init_state, forget_bias=1.5)
    t, s = t.double().eval(), s.double().eval()  # eval: dropout between layers off, so both are deterministic
    s.load_torch(t)
    return t, s


def _flat(state):
    return state if isinstance(state, tuple) else (state,)


@pytest.mark.parametrize("kind", ["rnn", "lstm"])
@pytest.mark.parametrize("shape", SHAPES)
def test_scratch_equals_torch(kind, shape):
    N, T, F, H, layers, bi, init_state = shape
    t, s = _pair(kind, F, H, layers, bi, init_state)
    x = torch.randn(N, T, F, dtype=torch.float64)
    xt, xs = x.clone().requires_grad_(), x.clone().requires_grad_()
    out_t, st_t = t(xt)
    out_s, st_s = s(xs)
    torch.testing.assert_close(out_s, out_t, rtol=1e-10, atol=1e-12)
    for a, b in zip(_flat(st_s), _flat(st_t)):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)
    # a loss that reads every output and the final states, so every path gets a gradient
    w = torch.randn_like(out_t)
    loss_t = (out_t * w).sum() + sum((v ** 2).sum() for v in _flat(st_t))
    loss_s = (out_s * w).sum() + sum((v ** 2).sum() for v in _flat(st_s))
    loss_t.backward()
    loss_s.backward()
    torch.testing.assert_close(xs.grad, xt.grad, rtol=1e-9, atol=1e-12)
    grads = s.grads_as_torch()
    rnn = t.rnn if kind == "rnn" else t.lstm
    for name, p in rnn.named_parameters():
        torch.testing.assert_close(grads[name], p.grad, rtol=1e-9, atol=1e-12, msg=lambda m, name=name: f"{name}: {m}")


@pytest.mark.parametrize("kind", ["rnn", "lstm"])
def test_given_state_is_used_and_chains(kind):
    """Running two halves with the state carried over equals one run over the whole sequence."""
    t, s = _pair(kind, 2, 4, 2, False, "zeros")
    x = torch.randn(3, 8, 2, dtype=torch.float64)
    for net in (t, s):
        full, _ = net(x)
        a, st = net(x[:, :5])
        b, _ = net(x[:, 5:], st)
        torch.testing.assert_close(torch.cat([a, b], 1), full)


def test_forget_bias_and_random_state():
    t = TorchLSTM(2, 4, forget_bias=2.0, init_state="random")
    b = t.lstm.bias_ih_l0 + t.lstm.bias_hh_l0
    assert torch.allclose(b[4:8], torch.full((4,), 2.0))
    h0, c0 = t.initial_state(torch.zeros(3, 5, 2))
    assert h0.shape == (1, 3, 4) and h0.abs().sum() > 0 and not torch.equal(h0, c0)
    s = ScratchLSTM(2, 4, forget_bias=-1.0)
    assert torch.all(s.b_f[0] == -1.0)


@pytest.mark.parametrize("cls", [TorchLSTM, ScratchLSTM])
def test_chrono_start_biases(cls):
    """Chrono (Tallec & Ollivier 2018): b_f ~ log U(1, t_max - 1) per unit, b_i = -b_f; the twins still agree."""
    torch.manual_seed(0)
    net = cls(2, 256, forget_bias="chrono", t_max=200)
    if cls is TorchLSTM:
        b = net.lstm.bias_ih_l0 + net.lstm.bias_hh_l0
        b_i, b_f = b[:256], b[256:512]
    else:
        b_i, b_f = net.b_i[0], net.b_f[0]
    assert b_f.min() >= 0 and b_f.max() <= torch.log(torch.tensor(199.0)) + 1e-6
    assert b_f.std() > 0.5 and b_f.max() > 4.5          # a spread of time scales, up to ~exp(5.3) = 199 steps
    torch.testing.assert_close(b_i, -b_f)
    if cls is TorchLSTM:
        twin = ScratchLSTM(2, 256, forget_bias="chrono", t_max=200).load_torch(net)
        x = torch.randn(3, 9, 2)
        torch.testing.assert_close(twin(x)[0], net(x)[0], atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("bad", [{"forget_bias": "chronos"}, {"forget_bias": "chrono", "t_max": 2},
                                 {"forget_bias": True}])
def test_bad_forget_bias_is_one_line(bad):
    with pytest.raises(DlfError, match="model.net.(forget_bias|t_max)="):
        build_lstm(2, **bad)


def test_gate_trace_same_for_both_impls():
    t, s = _pair("lstm", 2, 4, 1, False, "zeros")
    x = torch.randn(5, 6, 2, dtype=torch.float64)
    g = gate_trace(t, x)
    assert g.shape == (3, 6, 4)
    torch.testing.assert_close(g, gate_trace(s, x))
    assert torch.all((g > 0) & (g < 1))


@pytest.mark.parametrize("build", [build_rnn, build_lstm])
@pytest.mark.parametrize("bad, match", [
    ({"impl": "numpy"}, "model.net.impl='numpy'"),
    ({"hidden_size": 0}, "model.net.hidden_size=0"),
    ({"dropout": 1.5}, "model.net.dropout=1.5"),
    ({"init_state": "ones"}, "model.net.init_state='ones'"),
    ({"num_layers": 0}, "model.net.num_layers=0"),
])
def test_bad_options_are_one_line(build, bad, match):
    with pytest.raises(DlfError, match=match.replace("[", r"\[")) as e:
        build(in_features=2, **bad)
    assert "\n" not in str(e.value)
