"""Diagnostics for recurrent nets: the vanishing gradient, measured, and the LSTM's gate activity.

GradientThroughTime: on a fixed batch, the norm of dL/dh_t (the total derivative: every path from h_t to the cost,
through h_{t+1}, h_{t+2}, ...) for every step t, as a figure, and the ratio ||dL/dh_1|| / ||dL/dh_T|| as the scalar
diag/grad_ratio_first_last. For a cost read at the last step this is how much of the error signal survives the trip
back to the first step: a tanh RNN's ratio falls geometrically with T, an LSTM's forget gate can keep it near 1.

GateActivity (LSTM): f_t, i_t, o_t of the first layer on the fixed batch, averaged over the batch, as unit × time images.
Both run before the first step and after the last one.
"""

from __future__ import annotations

import lightning as L
import torch

from dlf.callbacks.figures import Figures, plt, publish
from dlf.console import say
from dlf.errors import require


def _hidden(state) -> torch.Tensor:
    """The hidden states h_t [L, N, H] (all layers) from a net's state h or (h, C): the node the next step reads."""
    return state[0] if isinstance(state, tuple) else state


def grad_through_time(system, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """||dL/dh_t|| for t = 1..T (top layer, whole batch) for a SequenceSystem on the batch (x, y)."""
    net = system.net
    require(not net.bidirectional, "the gradient-through-time diagnostic needs a one-directional net")
    was = system.training
    system.eval()  # no dropout: a deterministic measurement
    try:
        with torch.inference_mode(False), torch.enable_grad():
            xin = system.inputs(x)
            state, hs = None, []
            for t in range(xin.shape[1]):
                _, state = net(xin[:, t:t + 1], state)  # one step at a time, so every h_t is a node we can ask about
                hs.append(_hidden(state))               # the next step reads this very tensor
            if system.task.every_step:
                z = system.head(torch.stack([h[-1] for h in hs], 1))  # softmax(V h_t) at every step
            else:
                z = system.head(hs[-1][-1])                           # read at the last step
            grads = torch.autograd.grad(system.cost(z, y), hs, allow_unused=True)
    finally:
        system.train(was)
    return torch.stack([g[-1].norm() if g is not None else torch.zeros(()) for g in grads]).detach().cpu()


def fixed_batch(trainer: L.Trainer, size: int):
    dm = trainer.datamodule
    data = dm.val if dm.val and len(dm.val[0]) else dm.train
    return data[0][:size], data[1][:size]


def _log_scalar(trainer: L.Trainer, name: str, value: float) -> None:
    for lg in trainer.loggers:
        lg.log_metrics({name: value}, step=trainer.global_step)


class GradientThroughTime(Figures):
    def __init__(self, batch_size: int = 64):
        self.batch_size = batch_size
        self.history: list[tuple[int, torch.Tensor]] = []

    def _measure(self, trainer, pl_module, when: str):
        if pl_module.net.bidirectional:
            return
        x, y = fixed_batch(trainer, self.batch_size)
        norms = grad_through_time(pl_module, x.to(pl_module.device), y.to(pl_module.device))
        self.history.append((trainer.global_step, norms))
        ratio = float(norms[0] / norms[-1]) if norms[-1] > 0 else float("nan")
        _log_scalar(trainer, "diag/grad_ratio_first_last", ratio)
        say(f"gradient through time ({when}, step {trainer.global_step}): ||dL/dh_1|| / ||dL/dh_T|| = {ratio:.3g}")
        fig, ax = plt.subplots(figsize=(6, 3.5))
        for step, n in self.history:
            ax.semilogy(range(1, len(n) + 1), n.clamp_min(1e-45).numpy(), label=f"step {step}")
        ax.set_xlabel("time step t")
        ax.set_ylabel("||dL/dh_t||")
        ax.set_title(f"Gradient through time ({type(pl_module.net).__name__})")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend()
        publish(trainer, "diag/grad_through_time", fig, f"grad_through_time_{when}.png")

    def on_train_start(self, trainer, pl_module):
        self._measure(trainer, pl_module, "start")

    def on_train_end(self, trainer, pl_module):
        self._measure(trainer, pl_module, "end")


class GateActivity(Figures):
    def __init__(self, batch_size: int = 64):
        self.batch_size = batch_size

    def _draw(self, trainer, pl_module, when: str):
        from dlf.nets.lstm import ScratchLSTM, TorchLSTM, gate_trace

        if not isinstance(pl_module.net, (TorchLSTM, ScratchLSTM)):
            return
        x, _ = fixed_batch(trainer, self.batch_size)
        gates = gate_trace(pl_module.net, pl_module.inputs(x.to(pl_module.device))).float().cpu()  # [3, T, H]
        # constrained layout: one colour bar beside three axes, which tight_layout cannot place (it warned)
        fig, axes = plt.subplots(3, 1, figsize=(7, 6), sharex=True, layout="constrained")
        for ax, g, name in zip(axes, gates, ("forget f_t", "input i_t", "output o_t")):
            im = ax.imshow(g.T.numpy(), aspect="auto", vmin=0, vmax=1, cmap="viridis", interpolation="nearest")
            ax.set_ylabel("unit")
            ax.set_title(f"{name}: mean {g.mean():.2f}", fontsize=9)
            _log_scalar(trainer, f"diag/gate_{name.split()[1][0]}_mean", float(g.mean()))
        axes[-1].set_xlabel("time step t")
        fig.colorbar(im, ax=axes, shrink=0.8, label="gate value (batch mean)")
        publish(trainer, "diag/lstm_gates", fig, f"lstm_gates_{when}.png")

    def on_train_start(self, trainer, pl_module):
        self._draw(trainer, pl_module, "start")

    def on_train_end(self, trainer, pl_module):
        self._draw(trainer, pl_module, "end")


class SuccessCriterion(L.Callback):
    """Hochreiter & Schmidhuber's (1997) stopping rule for the adding problem: training stops at the first validation
    at which `monitor` (val/wrong: sequences of the validation set off by 0.04 or more) is at most `max_wrong` and the
    average training MSE since the previous validation is below `train_mse`. The training sequences seen until then
    (batches x their sizes) are logged in the test as test/sequences_to_success (NaN: never met). The count and the
    running training error are saved in checkpoints, so `ckpt_path=last` continues them."""

    def __init__(self, monitor: str = "val/wrong", max_wrong: int = 0, train_mse: float = 0.01):
        self.monitor, self.max_wrong, self.train_mse = monitor, max_wrong, train_mse
        self.seen, self.sequences = 0, None        # training sequences so far; at success
        self._sum, self._n = 0.0, 0                # the training error since the last validation

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        n = len(batch[0])
        loss = outputs["loss"] if isinstance(outputs, dict) else outputs
        self.seen += n
        self._sum += float(loss.detach()) * n
        self._n += n

    def on_validation_end(self, trainer, pl_module):
        wrong = trainer.callback_metrics.get(self.monitor)
        if trainer.sanity_checking or wrong is None or not self._n:
            return
        mse, self._sum, self._n = self._sum / self._n, 0.0, 0
        if self.sequences is None and float(wrong) <= self.max_wrong and mse < self.train_mse:
            self.sequences = self.seen
            trainer.should_stop = True
            say(f"success after {self.seen:,} training sequences (step {trainer.global_step}): "
                f"{self.monitor}={int(wrong)}, training MSE {mse:.4g} < {self.train_mse}")

    def on_test_epoch_end(self, trainer, pl_module):
        pl_module.log("test/sequences_to_success", float("nan") if self.sequences is None else float(self.sequences))

    def state_dict(self):
        return {"seen": self.seen, "sequences": self.sequences, "sum": self._sum, "n": self._n}

    def load_state_dict(self, state):
        # the test loads the best checkpoint, which may predate the success: a success already recorded is kept
        self.seen, self._sum, self._n = state["seen"], state["sum"], state["n"]
        self.sequences = state["sequences"] if state["sequences"] is not None else self.sequences
