"""The vanilla (Elman) RNN, twice written: h_t = tanh(U x_t + W h_{t-1} + b).

* TorchRNN: nn.RNN (tanh), cuDNN/MKL fast path.
* ScratchRNN: a Python loop over time steps, one line per equation; autograd does backpropagation through time.

Both take x [N, T, F] and an optional state, and return (outputs [N, T, D*H], h_n [L*D, N, H]) exactly like nn.RNN
(batch_first=True): L layers, D = 2 directions when bidirectional. The machinery shared with the LSTM (initial state,
layers, directions, dropout between layers) lives here too; dlf.nets.lstm adds only the cell.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from dlf.errors import check_impl, require

INIT_STATES = ("zeros", "random")


def check_options(in_features, hidden_size, num_layers, dropout, init_state, impl=None):
    if impl is not None:
        check_impl(impl)
    require(isinstance(hidden_size, int) and hidden_size > 0,
            f"model.net.hidden_size={hidden_size!r} must be a positive integer, e.g. 128")
    require(isinstance(num_layers, int) and num_layers > 0,
            f"model.net.num_layers={num_layers!r} must be a positive integer, e.g. 1")
    require(isinstance(dropout, (int, float)) and 0 <= dropout < 1,
            f"model.net.dropout={dropout!r} must be in [0, 1) (it acts between stacked layers)")
    require(init_state in INIT_STATES, f"model.net.init_state={init_state!r} is not known: choose zeros or random")
    require(isinstance(in_features, int) and in_features > 0, "the data gave no per-step input size")


class Recurrent(nn.Module):
    """What both twins of both cells share: sizes, and the initial state h_0 (and C_0 for the LSTM).

    init_state=zeros: h_0 = 0. init_state=random: h_0 drawn once from U(-1, 1) when the net is built (the course starts
    from random values); it is a buffer, so it is saved in checkpoints and the same for every batch.
    """

    N_STATES = 1  # 1: h (RNN); 2: (h, C) (LSTM)

    def __init__(self, in_features: int, hidden_size: int = 128, num_layers: int = 1, dropout: float = 0.0,
                 bidirectional: bool = False, init_state: str = "zeros"):
        super().__init__()
        check_options(in_features, hidden_size, num_layers, dropout, init_state)
        self.in_features, self.hidden_size, self.num_layers = in_features, hidden_size, num_layers
        self.dropout, self.bidirectional, self.init_state = float(dropout), bool(bidirectional), init_state
        self.dirs = 2 if bidirectional else 1
        self.out_features = hidden_size * self.dirs
        if init_state == "random":
            shape = (self.N_STATES, num_layers * self.dirs, 1, hidden_size)
            self.register_buffer("state0", torch.empty(shape).uniform_(-1.0, 1.0))

    def initial_state(self, x: torch.Tensor):
        """h_0 (RNN) or (h_0, C_0) (LSTM) for a batch x [N, T, F]: each [L*D, N, H]."""
        shape = (self.num_layers * self.dirs, x.shape[0], self.hidden_size)
        if self.init_state == "random":
            states = [s.to(x.dtype).expand(shape).contiguous() for s in self.state0]
        else:
            states = [x.new_zeros(shape) for _ in range(self.N_STATES)]
        return states[0] if self.N_STATES == 1 else tuple(states)


class TorchRNN(Recurrent):
    def __init__(self, in_features: int, hidden_size: int = 128, num_layers: int = 1, dropout: float = 0.0,
                 bidirectional: bool = False, init_state: str = "zeros"):
        super().__init__(in_features, hidden_size, num_layers, dropout, bidirectional, init_state)
        self.rnn = nn.RNN(in_features, hidden_size, num_layers, nonlinearity="tanh", batch_first=True,
                          dropout=self.dropout if num_layers > 1 else 0.0, bidirectional=self.bidirectional)

    def forward(self, x: torch.Tensor, state=None):
        return self.rnn(x, self.initial_state(x) if state is None else state)


class ScratchRecurrent(Recurrent):
    """The loop over layers, directions and time steps. Subclasses write the cell: one time step of one layer."""

    FROM_SCRATCH = True  # a twin written out: no mixed precision, no torch.compile (dlf.run.speed)

    def forward(self, x: torch.Tensor, state=None):
        state = self.initial_state(x) if state is None else state
        states = (state,) if self.N_STATES == 1 else tuple(state)
        T = x.shape[1]
        layer_in, finals = x, [[] for _ in range(self.N_STATES)]
        for layer in range(self.num_layers):
            outs = []
            for d in range(self.dirs):
                k = layer * self.dirs + d
                s = tuple(st[k] for st in states)          # h_0 (and C_0) of this layer and direction
                hs = [None] * T
                for t in (range(T) if d == 0 else reversed(range(T))):  # the backward direction reads x_T ... x_1
                    s = self.cell(layer_in[:, t], s, k)
                    hs[t] = s[0]
                outs.append(torch.stack(hs, 1))
                for j in range(self.N_STATES):
                    finals[j].append(s[j])
            layer_in = torch.cat(outs, -1) if self.dirs == 2 else outs[0]
            if layer < self.num_layers - 1 and self.dropout > 0:
                layer_in = F.dropout(layer_in, self.dropout, self.training)  # between layers, as nn.RNN does
        final = tuple(torch.stack(f) for f in finals)
        return layer_in, final[0] if self.N_STATES == 1 else final

    def cell(self, x_t, s, k):
        raise NotImplementedError

    def _uniform(self, *shape) -> nn.Parameter:
        bound = 1.0 / math.sqrt(self.hidden_size)  # the same initialisation as nn.RNN / nn.LSTM
        return nn.Parameter(torch.empty(shape).uniform_(-bound, bound))

    def _layer_in(self, layer: int) -> int:
        return self.in_features if layer == 0 else self.out_features

    @staticmethod
    def torch_suffix(k: int, dirs: int) -> str:
        """nn.RNN's parameter suffix for layer/direction index k: _l0, _l0_reverse, ..."""
        return f"_l{k // dirs}" + ("_reverse" if k % dirs else "")


class ScratchRNN(ScratchRecurrent):
    """U: input-to-hidden, W: hidden-to-hidden, b: one bias (nn.RNN's b_ih + b_hh) per layer and direction."""

    def __init__(self, in_features: int, hidden_size: int = 128, num_layers: int = 1, dropout: float = 0.0,
                 bidirectional: bool = False, init_state: str = "zeros"):
        super().__init__(in_features, hidden_size, num_layers, dropout, bidirectional, init_state)
        ks = range(num_layers * self.dirs)
        self.U = nn.ParameterList(self._uniform(hidden_size, self._layer_in(k // self.dirs)) for k in ks)
        self.W = nn.ParameterList(self._uniform(hidden_size, hidden_size) for _ in ks)
        self.b = nn.ParameterList(self._uniform(hidden_size) for _ in ks)

    def cell(self, x_t, s, k):
        (h,) = s
        h = torch.tanh(x_t @ self.U[k].T + h @ self.W[k].T + self.b[k])  # h_t = tanh(U x_t + W h_{t-1} + b)
        return (h,)

    @torch.no_grad()
    def load_torch(self, net: TorchRNN) -> ScratchRNN:
        """Copy a TorchRNN's weights (and random h_0) into this net."""
        p = dict(net.rnn.named_parameters())
        for k in range(len(self.U)):
            sfx = self.torch_suffix(k, self.dirs)
            self.U[k].copy_(p["weight_ih" + sfx])
            self.W[k].copy_(p["weight_hh" + sfx])
            self.b[k].copy_(p["bias_ih" + sfx] + p["bias_hh" + sfx])
        if self.init_state == "random":
            self.state0.copy_(net.state0)
        return self

    def grads_as_torch(self) -> dict[str, torch.Tensor]:
        """This net's gradients under nn.RNN's parameter names (both biases get the gradient of b)."""
        g = {}
        for k in range(len(self.U)):
            sfx = self.torch_suffix(k, self.dirs)
            g["weight_ih" + sfx], g["weight_hh" + sfx] = self.U[k].grad, self.W[k].grad
            g["bias_ih" + sfx] = g["bias_hh" + sfx] = self.b[k].grad
        return g


def build_rnn(in_features: int, impl: str = "torch", hidden_size: int = 128, num_layers: int = 1,
              dropout: float = 0.0, bidirectional: bool = False, init_state: str = "zeros") -> Recurrent:
    """The tanh RNN the config asks for: impl=torch (nn.RNN) or impl=scratch (a loop over time)."""
    check_options(in_features, hidden_size, num_layers, dropout, init_state, impl)
    cls = TorchRNN if impl == "torch" else ScratchRNN
    return cls(in_features, hidden_size, num_layers, dropout, bidirectional, init_state)
