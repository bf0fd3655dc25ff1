"""Training health, every `every_n_steps` optimizer steps, for every family: the lecture's three plots (Karpathy,
makemore part 3), logged to TensorBoard under health/ and drawn into <run dir>/plots/ at the end of fit.

* Activations, per layer (each activation module's output, a module called k times a pass named `name[k]`):
  the saturated share, health/saturation/<layer> (tanh and the recurrent nets' h_t: |a| > 0.97; sigmoid: a outside
  [0.03, 0.97], where f' < 0.03; ReLU: units that never fire on the measured batch, f' = 0 for every sample) and
  the histogram, health/activations/<layer>.
* Gradients, per layer (each weight tensor, 2-D or more, named without its ".weight"): ||dJ/dW||,
  health/grad_norm/<layer>, and the histogram, health/gradients/<layer>, as the optimizer is about to use them.
* Updates, per parameter tensor: log10(std(W_after - W_before) / std(W_before)), health/update_ratio/<param>: the
  step the optimizer actually took (learning rate, momentum, Adam's scaling included) against the weights' spread.
  Around -3 is healthy; far above, the rate is too large; far below, the weights barely move.
* The GAN: G and D each (their names start with G. and D.), and D's mean output on the real and on the fake
  samples of the measured D step, health/gan/d_real and health/gan/d_fake (both near 0.5 when neither wins).

The activation modules are found when fit starts; forward hooks go on them (and a pre-hook on each net, to count the
calls of one pass) when a measured batch starts and come off when it ends (and when fit ends or fails): between
measurements no net has a hook, and Lightning calls only on_train_batch_start. Nothing is changed: no extra forward, no
random numbers, so a run with health on trains the same weights as one with it off. At the end one line names, for
each quantity, the worst layer when it is outside its healthy band (medians over the run's measurements).
"""

from __future__ import annotations

import math
import re
from collections import defaultdict

import torch
from torch import nn

from dlf.callbacks.figures import Figures, publish, tensorboard
from dlf.callbacks.health_plots import BANDS, draw_all, summary_line
from dlf.console import say

__all__ = ["BANDS", "TAGS", "Health", "layout"]
TAGS = {  # one TensorBoard chart per quantity, one line per layer (custom scalars' regexes)
    "saturation": r"health/saturation/.*",
    "grad_norm": r"health/grad_norm/.*",
    "update_ratio": r"health/update_ratio/.*",
    "d_output": r"health/gan/d_(real|fake)",
}
BINS = 40
SAMPLE = 16384  # a histogram counts every k-th value when a layer has more (min, max, sum: every value)


def layout(nets: tuple[str, ...] = ()) -> dict:
    """The health section of a TensorBoard custom-scalars layout ({category: {chart: ["Multiline", [regex]]}}, what
    SummaryWriter.add_custom_scalars takes): a chart per quantity, or per quantity and net (nets=("G", "D"))."""
    charts = {}
    for q, rx in TAGS.items():
        if q == "d_output" or not nets:
            charts[q] = ["Multiline", [rx]]
        else:
            charts.update({f"{q} ({n})": ["Multiline", [rx.replace(".*", re.escape(n + ".") + ".*")]] for n in nets})
    return {"health": charts}


def activation_kind(module: nn.Module) -> str | None:
    """tanh | sigmoid | relu for a module whose output is a layer's activations, else None."""
    from dlf.nets.cnn import ScratchActivation
    from dlf.nets.rnn import Recurrent

    if isinstance(module, (nn.Tanh, Recurrent, nn.LSTM, nn.GRU)):  # recurrent nets' h_t: tanh, or o * tanh(C)
        return "tanh"
    if isinstance(module, nn.RNN):
        return "relu" if module.nonlinearity == "relu" else "tanh"
    if isinstance(module, nn.Sigmoid):
        return "sigmoid"
    if isinstance(module, (nn.ReLU, nn.LeakyReLU, nn.ReLU6)):
        return "relu"
    if isinstance(module, ScratchActivation):
        return module.name
    return None


def saturation(kind: str, outs: list[torch.Tensor]) -> torch.Tensor:
    """The saturated share of a layer's outputs over the measured batch (one tensor per call, e.g. D on real, fake)."""
    if kind == "relu":  # a unit is every feature but the batch's: dead when it fires for no sample
        first = outs[0].shape[1:]
        fired = torch.stack([o.flatten(1).amax(0) for o in outs if o.shape[1:] == first]).amax(0) > 0
        return 1.0 - fired.float().mean()
    sat = [(o.abs() > 0.97) if kind == "tanh" else ((o < 0.03) | (o > 0.97)) for o in outs]
    return sum(s.sum() for s in sat) / sum(s.numel() for s in sat)


def histogram(values: torch.Tensor) -> tuple[list[float], list[float], list[float]] | None:
    """(edges, counts, the five numbers TensorBoard's raw histogram also needs: min, max, n, sum, sum of squares);
    None when a value is not finite (a diverging run: the divergence guard reports it)."""
    v = values.detach().flatten().float()
    lo, hi, total, squares = torch.stack([v.min(), v.max(), v.sum(), (v * v).sum()]).tolist()
    if not (math.isfinite(lo) and math.isfinite(hi)):
        return None
    hi = hi if hi > lo else lo + 1e-12
    stride = max(1, v.numel() // SAMPLE)  # the counts of an even subsample, scaled: histc is slow on a big tensor
    counts = (torch.histc(v[::stride], BINS, lo, hi) * (v.numel() / len(v[::stride]))).tolist()
    edges = [lo + (hi - lo) * i / BINS for i in range(BINS + 1)]
    return edges, counts, [lo, hi, float(v.numel()), total, squares]


def write_summary(tb, scalars: dict[str, float], hists: dict[str, tuple], step: int) -> None:
    """One TensorBoard event holding every value of a measurement: what add_scalar and add_histogram_raw write, one
    event each (each event is checksummed byte by byte in Python by TensorBoard's writer, and opened and appended)."""
    from tensorboard.compat.proto.summary_pb2 import HistogramProto, Summary

    values = [Summary.Value(tag=tag, simple_value=v) for tag, v in scalars.items()]
    for tag, (edges, counts, (lo, hi, n, total, squares)) in hists.items():
        histo = HistogramProto(min=lo, max=hi, num=n, sum=total, sum_squares=squares, bucket_limit=edges[1:],
                               bucket=counts)
        values.append(Summary.Value(tag=tag, histo=histo))
    tb.file_writer.add_summary(Summary(value=values), step)


class Health(Figures):
    def __init__(self, every_n_steps: int = 100, enabled: bool = True, compiled: bool = False):
        """compiled: the nets are torch.compile'd (model.compile=true). A hook inside a compiled forward would be
        traced into its graph (and its switch recompile it), so such a run shows the gradients and updates only."""
        self.every = int(every_n_steps)
        self.compiled = bool(compiled)
        self.enabled = bool(enabled) and self.every > 0
        if not self.enabled:  # off: Lightning calls no hook of this callback at any batch (its None check)
            self.on_train_batch_start = self.on_train_batch_end = self.on_before_optimizer_step = None
        self.history: dict[str, dict[str, list]] = defaultdict(lambda: defaultdict(list))  # quantity -> tag -> pts
        self.hists: dict[str, dict[str, tuple]] = defaultdict(dict)  # activations|gradients -> layer -> latest
        self.next_step = 0
        self.kinds: dict[str, str] = {}     # activation module name -> tanh | sigmoid | relu
        self.names: dict[int, str] = {}     # id(parameter) -> its name
        self.groups: list[str] = []         # the nets drawn apart (the GAN's G and D)
        self._targets: list = []            # (a module's register_forward_(pre_)hook, the hook), found at fit start
        self._handles: list = []            # the registered hooks, while a measured batch runs
        self._ready = False
        self._reset_window()

    def _reset_window(self):
        self._window, self._recording, self._step = False, False, 0
        # between measurements Lightning calls only on_train_batch_start: it skips a hook that is None (as for
        # dlf.lightning_internals.skip_empty_batch_hooks), so the other two are None until a measurement opens
        self.on_before_optimizer_step = self.on_train_batch_end = None
        self._acts: dict[tuple[str, int], list[torch.Tensor]] = defaultdict(list)
        self._calls: dict[str, int] = {}
        self._before: dict[str, torch.Tensor] = {}
        self._stepped: set[int] = set()
        self._d_out: dict[str, torch.Tensor] = {}
        self._real_ptr = None
        self._pending: list[tuple[str, str, torch.Tensor]] = []  # (quantity, layer, value) of this measurement
        self._hists: list[tuple[str, str, tuple]] = []           # (activations | gradients, layer, histogram)

    # ---- hooks: found when fit starts, on the modules only while a measured batch runs -------------------------------
    def on_fit_start(self, trainer, pl_module):
        if not self.enabled or not trainer.is_global_zero:
            return
        frozen = {n for n, m in pl_module.named_modules() if n and list(m.parameters())
                  and not any(p.requires_grad for p in m.parameters())}  # G's weight average: never trained
        self.kinds, self._targets = {}, []
        nets = pl_module.nets() if hasattr(pl_module, "nets") else list(pl_module.children())
        roots = {id(net): n for n, net in pl_module.named_children() if any(net is m for m in nets)}
        for name, m in ([] if self.compiled else pl_module.named_modules()):
            kind = activation_kind(m)
            inside = any(name.startswith(k + ".") for k in self.kinds)  # nn.LSTM inside a dlf Recurrent
            if kind is None or inside or any(name == f or name.startswith(f + ".") for f in frozen):
                continue
            self.kinds[name] = kind
            self._targets.append((m.register_forward_hook, self._activation_hook(name)))
        for n, net in pl_module.named_children():
            if id(net) in roots and not self.compiled:  # a new pass of a net: its modules' call counts start again
                self._targets.append((net.register_forward_pre_hook, self._pass_hook(n)))
        self.names = {id(p): n for n, p in pl_module.named_parameters()}
        with_acts = [r for r in roots.values() if any(k == r or k.startswith(r + ".") for k in self.kinds)]
        self.groups = with_acts if len(with_acts) > 1 else []  # the GAN's G and D, drawn apart
        if hasattr(pl_module, "D") and hasattr(pl_module, "G") and not self.compiled:  # D on real and fake
            self._targets.append((pl_module.D.register_forward_hook, self._d_hook))
        self._ready = True

    def _remove_hooks(self):
        for h in self._handles:
            h.remove()
        self._handles.clear()

    def _end(self):
        self._remove_hooks()
        self._ready = False
        self._reset_window()

    def _pass_hook(self, root: str):
        def hook(module, args):
            if self._recording:
                for k in [k for k in self._calls if k == root or k.startswith(root + ".")]:
                    del self._calls[k]
        return hook

    def _activation_hook(self, name: str):
        def hook(module, args, out):
            if self._recording:
                k = self._calls.get(name, 0)
                self._calls[name] = k + 1
                self._acts[(name, k)].append((out[0] if isinstance(out, tuple) else out).detach())
        return hook

    def _d_hook(self, module, args, out):
        if self._recording:
            which = "d_real" if args[0].data_ptr() == self._real_ptr else "d_fake"
            if which not in self._d_out:
                self._d_out[which] = torch.sigmoid(out.detach().float()).mean()

    def on_exception(self, trainer, pl_module, exception):
        self._end()

    # ---- a measured step -------------------------------------------------------------------------------------------
    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        if self._ready and not self._window and trainer.global_step >= self.next_step:
            self._window, self._recording, self._step = True, True, trainer.global_step
            del self.on_before_optimizer_step, self.on_train_batch_end  # this instance's None: the class's hooks again
            self._handles = [register(hook) for register, hook in self._targets]  # removed when the batch ends
            first = batch[0] if isinstance(batch, (list, tuple)) else batch
            self._real_ptr = first.data_ptr() if isinstance(first, torch.Tensor) else None

    def on_before_optimizer_step(self, trainer, pl_module, optimizer):
        if not self._window:
            return
        self._stepped.add(id(optimizer))
        for p in (p for g in optimizer.param_groups for p in g["params"]):
            name = self.names.get(id(p))
            if name is None or p.grad is None:
                continue
            if p.ndim >= 2:  # a layer's weights: the gradient flow through it
                layer = name.removesuffix(".weight")
                self._pending.append(("grad_norm", layer, p.grad.detach().norm()))
                self._hists.append(("gradients", layer, histogram(p.grad)))
            if p.numel() > 1:
                self._before[name] = p.detach().clone()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        if not self._window:
            return
        if self._recording:
            self._recording = False
            self._remove_hooks()
            self._summarise_activations()
        if self._stepped >= {id(o) for o in trainer.optimizers}:  # every optimizer has stepped once: measured
            self._close(trainer, pl_module)

    def on_train_epoch_end(self, trainer, pl_module):
        if self._window:
            self._close(trainer, pl_module)

    def _summarise_activations(self):
        repeated = {n for n, k in self._acts if k > 0}
        for (name, k), outs in self._acts.items():
            layer = f"{name}[{k}]" if name in repeated else name
            self._pending.append(("saturation", layer, saturation(self.kinds[name], outs)))
            self._hists.append(("activations", layer, histogram(torch.cat([o.flatten() for o in outs]))))
        self._acts.clear()

    def _close(self, trainer, pl_module):
        params = dict(pl_module.named_parameters())
        for name, before in self._before.items():  # log10 std(W_after - W_before) / std(W_before)
            ratio = (params[name].detach() - before).std() / before.std()
            self._pending.append(("update_ratio", name, ratio.log10()))
        self._pending += [("gan", which, v) for which, v in self._d_out.items()]
        values = torch.stack([v.detach().float().reshape(()) for *_, v in self._pending]).tolist() \
            if self._pending else []
        scalars, hists = {}, {}
        for (quantity, tag, _), value in zip(self._pending, values):
            if math.isfinite(value):
                self.history[quantity][tag].append((self._step, value))
                scalars[f"health/{quantity}/{tag}"] = value
        for kind, layer, hist in self._hists:
            if hist is not None:
                self.hists[kind][layer] = hists[f"health/{kind}/{layer}"] = hist
        if (tb := tensorboard(trainer)) is not None:
            write_summary(tb, scalars, hists, self._step)
        self.next_step = self._step + self.every
        self._reset_window()

    # ---- the end: figures and one line -----------------------------------------------------------------------------
    def on_fit_end(self, trainer, pl_module):
        self._end()
        if not self.enabled or not trainer.is_global_zero or not self.history:
            return
        draw_all(self, lambda tag, fig, png: publish(trainer, tag, fig, png))
        say(summary_line(self.history, self.groups))

    def teardown(self, trainer, pl_module, stage):
        self._end()

    def state_dict(self):
        return {"next_step": self.next_step, "groups": list(getattr(self, "groups", [])),
                "history": {q: dict(t) for q, t in self.history.items()},
                "hists": {k: dict(v) for k, v in self.hists.items()}}

    def load_state_dict(self, state):
        self.next_step = state["next_step"]
        for q, tags in state["history"].items():
            for tag, points in tags.items():
                self.history[q][tag] = [tuple(p) for p in points]
        for k, layers in state["hists"].items():
            self.hists[k].update(layers)
