"""The LSTM (Hochreiter & Schmidhuber 1997), twice written, in the course's notation:

    f_t = σ(W_f·[h_{t-1}, x_t] + b_f)        forget gate
    i_t = σ(W_i·[h_{t-1}, x_t] + b_i)        input gate
    C̃_t = tanh(W_C·[h_{t-1}, x_t] + b_C)     candidate cell state
    C_t = f_t * C_{t-1} + i_t * C̃_t          cell state (the long-term memory)
    o_t = σ(W_o·[h_{t-1}, x_t] + b_o)        output gate
    h_t = o_t * tanh(C_t)

* TorchLSTM: nn.LSTM (fast path). It splits each W_g into a hidden part and an input part and keeps two biases.
* ScratchLSTM: the equations above in a loop over time (the layer/direction loop is dlf.nets.rnn.ScratchRecurrent).

forget_bias sets b_f at start (1.0 by default, Gers et al. 2000 / Jozefowicz et al. 2015): the forget gate starts
mostly open, so the cell state and its gradient survive many steps from the first update. forget_bias=chrono is
Tallec & Ollivier's (2018) chrono initialisation for dependencies up to t_max steps: each unit's b_f ~ log U(1, t_max - 1)
and b_i = -b_f, so unit j starts by keeping its cell state for about exp(b_f) steps (a spread of time scales up to t_max).
"""

from __future__ import annotations

import torch
from torch import nn

from dlf.errors import require
from dlf.nets.rnn import Recurrent, ScratchRecurrent, check_options

GATES = ("f", "i", "C", "o")
TORCH_ORDER = {"i": 0, "f": 1, "C": 2, "o": 3}  # nn.LSTM stacks its gate rows as i, f, g (= C̃), o


def _check_forget_bias(forget_bias, t_max):
    require(forget_bias == "chrono" or isinstance(forget_bias, (int, float)) and not isinstance(forget_bias, bool),
            f"model.net.forget_bias={forget_bias!r} must be a number (e.g. 1.0) or chrono")
    require(isinstance(t_max, int) and not isinstance(t_max, bool) and t_max >= 3,
            f"model.net.t_max={t_max!r} must be an integer >= 3 (the longest dependency chrono sets time scales for)")


def _start_biases(forget_bias, t_max: int, H: int) -> tuple[torch.Tensor, torch.Tensor | None]:
    """(b_f, b_i) at start; b_i None keeps the drawn one. chrono: b_f ~ log U(1, t_max - 1), b_i = -b_f."""
    if forget_bias != "chrono":
        return torch.full((H,), float(forget_bias)), None
    b_f = torch.log(torch.empty(H).uniform_(1, t_max - 1))  # b_f = log U(1, T_max - 1)
    return b_f, -b_f                                         # b_i = -b_f


class TorchLSTM(Recurrent):
    N_STATES = 2

    def __init__(self, in_features: int, hidden_size: int = 128, num_layers: int = 1, dropout: float = 0.0,
                 bidirectional: bool = False, init_state: str = "zeros", forget_bias: float | str = 1.0,
                 t_max: int = 100):
        _check_forget_bias(forget_bias, t_max)
        super().__init__(in_features, hidden_size, num_layers, dropout, bidirectional, init_state)
        self.forget_bias, self.t_max = forget_bias if forget_bias == "chrono" else float(forget_bias), t_max
        self.lstm = nn.LSTM(in_features, hidden_size, num_layers, batch_first=True,
                            dropout=self.dropout if num_layers > 1 else 0.0, bidirectional=self.bidirectional)
        H, f, i = hidden_size, TORCH_ORDER["f"], TORCH_ORDER["i"]
        with torch.no_grad():
            for name, p in self.lstm.named_parameters():
                if name.startswith("bias_ih"):
                    b_f, b_i = _start_biases(self.forget_bias, t_max, H)
                    p[f * H:(f + 1) * H].copy_(b_f)               # b_f = forget_bias ...
                    if b_i is not None:
                        p[i * H:(i + 1) * H].copy_(b_i)
                elif name.startswith("bias_hh"):
                    p[f * H:(f + 1) * H].zero_()                  # ... (nn.LSTM adds b_hh to b_ih)
                    if self.forget_bias == "chrono":
                        p[i * H:(i + 1) * H].zero_()

    def forward(self, x: torch.Tensor, state=None):
        return self.lstm(x, self.initial_state(x) if state is None else state)


class ScratchLSTM(ScratchRecurrent):
    """W_g [H, H + F] acts on [h_{t-1}, x_t] (hidden part first, as the course writes it); one bias b_g per gate."""

    N_STATES = 2

    def __init__(self, in_features: int, hidden_size: int = 128, num_layers: int = 1, dropout: float = 0.0,
                 bidirectional: bool = False, init_state: str = "zeros", forget_bias: float | str = 1.0,
                 t_max: int = 100):
        _check_forget_bias(forget_bias, t_max)
        super().__init__(in_features, hidden_size, num_layers, dropout, bidirectional, init_state)
        self.forget_bias, self.t_max = forget_bias if forget_bias == "chrono" else float(forget_bias), t_max
        ks = range(num_layers * self.dirs)
        H = hidden_size
        for g in GATES:
            self.register_module(f"W_{g}", nn.ParameterList(self._uniform(H, H + self._layer_in(k // self.dirs))
                                                            for k in ks))
            self.register_module(f"b_{g}", nn.ParameterList(self._uniform(H) for _ in ks))
        with torch.no_grad():
            for b_f, b_i in zip(self.b_f, self.b_i):
                start_f, start_i = _start_biases(self.forget_bias, t_max, H)
                b_f.copy_(start_f)
                if start_i is not None:
                    b_i.copy_(start_i)
        self.trace: list | None = None  # set to a list to record (f, i, o) at every step (gate-activity figures)

    def cell(self, x_t, s, k):
        h, c = s
        hx = torch.cat([h, x_t], 1)                                # [h_{t-1}, x_t]
        f = torch.sigmoid(hx @ self.W_f[k].T + self.b_f[k])        # f_t = σ(W_f·[h_{t-1}, x_t] + b_f)
        i = torch.sigmoid(hx @ self.W_i[k].T + self.b_i[k])        # i_t = σ(W_i·[h_{t-1}, x_t] + b_i)
        c_tilde = torch.tanh(hx @ self.W_C[k].T + self.b_C[k])     # C̃_t = tanh(W_C·[h_{t-1}, x_t] + b_C)
        c = f * c + i * c_tilde                                    # C_t = f_t * C_{t-1} + i_t * C̃_t
        o = torch.sigmoid(hx @ self.W_o[k].T + self.b_o[k])        # o_t = σ(W_o·[h_{t-1}, x_t] + b_o)
        h = o * torch.tanh(c)                                      # h_t = o_t * tanh(C_t)
        if self.trace is not None and k == 0:
            self.trace.append((f.detach(), i.detach(), o.detach()))
        return h, c

    @torch.no_grad()
    def load_torch(self, net: TorchLSTM) -> ScratchLSTM:
        """Copy a TorchLSTM's weights (and random h_0, C_0) into this net: W_g = [W_hh_g, W_ih_g], b_g = b_ih_g + b_hh_g."""
        p, H = dict(net.lstm.named_parameters()), self.hidden_size
        for k in range(self.num_layers * self.dirs):
            sfx = self.torch_suffix(k, self.dirs)
            for g in GATES:
                rows = slice(TORCH_ORDER[g] * H, (TORCH_ORDER[g] + 1) * H)
                getattr(self, f"W_{g}")[k].copy_(torch.cat([p["weight_hh" + sfx][rows], p["weight_ih" + sfx][rows]], 1))
                getattr(self, f"b_{g}")[k].copy_(p["bias_ih" + sfx][rows] + p["bias_hh" + sfx][rows])
        if self.init_state == "random":
            self.state0.copy_(net.state0)
        return self

    def grads_as_torch(self) -> dict[str, torch.Tensor]:
        """This net's gradients under nn.LSTM's parameter names and layout."""
        out, H = {}, self.hidden_size
        for k in range(self.num_layers * self.dirs):
            sfx = self.torch_suffix(k, self.dirs)
            order = sorted(GATES, key=TORCH_ORDER.get)
            w = [getattr(self, f"W_{g}")[k].grad for g in order]
            b = torch.cat([getattr(self, f"b_{g}")[k].grad for g in order])
            out["weight_hh" + sfx] = torch.cat([x[:, :H] for x in w])
            out["weight_ih" + sfx] = torch.cat([x[:, H:] for x in w])
            out["bias_ih" + sfx] = out["bias_hh" + sfx] = b
        return out


def scratch_twin(net: Recurrent) -> ScratchLSTM:
    """A ScratchLSTM computing exactly what `net` computes (itself if it is one)."""
    if isinstance(net, ScratchLSTM):
        return net
    twin = ScratchLSTM(net.in_features, net.hidden_size, net.num_layers, net.dropout, net.bidirectional,
                       net.init_state, net.forget_bias, net.t_max)
    return twin.to(next(net.parameters())).load_torch(net)


@torch.no_grad()
def gate_trace(net: Recurrent, x: torch.Tensor) -> torch.Tensor:
    """Gate activity of the first layer (forward direction) on x [N, T, F]: [3 (f, i, o), T, H], mean over the batch."""
    twin = scratch_twin(net)
    was = twin.training
    twin.eval()
    twin.trace = []
    try:
        twin(x)
        trace = twin.trace[: x.shape[1]]
    finally:
        twin.trace = None
        twin.train(was)
    return torch.stack([torch.stack([g.mean(0) for g in step]) for step in trace], 1)


def build_lstm(in_features: int, impl: str = "torch", hidden_size: int = 128, num_layers: int = 1,
               dropout: float = 0.0, bidirectional: bool = False, init_state: str = "zeros",
               forget_bias: float | str = 1.0, t_max: int = 100) -> Recurrent:
    """The LSTM the config asks for: impl=torch (nn.LSTM) or impl=scratch (the gate equations in a loop)."""
    check_options(in_features, hidden_size, num_layers, dropout, init_state, impl)
    cls = TorchLSTM if impl == "torch" else ScratchLSTM
    return cls(in_features, hidden_size, num_layers, dropout, bidirectional, init_state, forget_bias, t_max)
