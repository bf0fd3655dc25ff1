"""The sequence system: an RNN or LSTM (dlf.nets.rnn / dlf.nets.lstm) and an output layer V, trained by BPTT.

What it predicts follows from the data's target:
* regression (data=adding): y_hat = V h_T, read at the last step; cost: mean squared error.
* classes (data=mnist1d): y_hat = softmax(V h_T) at the last step; cost: cross-entropy.
* next_token (data=text): y_hat_t = softmax(V h_t) at every step; the course's cost L = Σ_t L_t with
  L_t = -log y_hat_t[next character], averaged over the sequences of a batch. Also logged: nll (L / T, nats per
  character) and perplexity exp(nll).

Truncated BPTT (model.tbptt_steps=k): in training the sequence is cut into chunks of k steps; the state is carried from
one chunk to the next but detached, so no gradient flows back more than k steps (values are unchanged: the forward pass
is the same). All chunks' losses are summed into one optimizer step per batch, which keeps gradient clipping and
schedulers working as usual. (Lightning 1.x had this as a Trainer flag; Lightning 2 removed it.)
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
import torchmetrics
from torch import nn

from dlf.data.base import DataFacts
from dlf.errors import require
from dlf.systems.base import System


def detach_state(state):
    return tuple(s.detach() for s in state) if isinstance(state, tuple) else state.detach()


class SequenceSystem(System):
    ACCEPTS = ("sequence", "tokens")

    def __init__(self, net: Callable, facts: DataFacts, tbptt_steps: int | None = None,
                 optimizer: Callable | None = None, scheduler: Callable | None = None,
                 lr_table: dict | None = None, adam_betas: list | None = None):
        super().__init__(facts, optimizer, scheduler, lr_table, adam_betas)
        require(tbptt_steps is None or (isinstance(tbptt_steps, int) and not isinstance(tbptt_steps, bool)
                                        and tbptt_steps > 0),
                f"model.tbptt_steps={tbptt_steps!r} must be a positive number of steps (e.g. 20), or null for full BPTT")
        self.tbptt_steps = tbptt_steps
        tasks = {"regression": "regression", "classes": "classes", "next_token": "lm"}
        require(facts.target in tasks, f"a sequence model cannot learn data={facts.name}'s target '{facts.target}': "
                                       "use regression, classes or next_token data (adding, mnist1d, text)")
        self.task = tasks[facts.target]
        require((self.task == "lm") == (facts.kind == "tokens"),
                f"data={facts.name} has kind '{facts.kind}' but target '{facts.target}': not a sequence task dlf knows")
        in_features = len(facts.vocab) if self.task == "lm" else facts.in_features
        self.net = net(in_features=in_features)
        require(not (self.task == "lm" and self.net.bidirectional),
                "model.net.bidirectional=true cannot model language (it would read the next character): set it false")
        require(not (tbptt_steps and self.net.bidirectional),
                "model.tbptt_steps needs a one-directional net: set model.net.bidirectional=false or model.tbptt_steps=null")
        out = {"regression": 1, "classes": facts.num_classes, "lm": len(facts.vocab or [])}[self.task]
        self.head = nn.Linear(self.net.out_features, out)  # V: hidden to output
        if self.task == "classes":
            make = lambda: torchmetrics.classification.MulticlassAccuracy(  # noqa: E731
                num_classes=facts.num_classes, average="micro", validate_args=False)
            self.train_acc, self.val_acc, self.test_acc = make(), make(), make()
        if self.task == "lm":
            self.nll = nn.ModuleDict({s: torchmetrics.MeanMetric() for s in ("val", "test")})

    # ---- computing -------------------------------------------------------------------------------------------------
    def inputs(self, x: torch.Tensor) -> torch.Tensor:
        """x as [N, T, F]: characters become one-hot vectors; [N, T] signals (MNIST-1D) get one feature per step."""
        if self.task == "lm":
            return F.one_hot(x, len(self.facts.vocab)).to(self.head.weight.dtype)
        return x.unsqueeze(-1) if x.dim() == 2 else x

    def encode(self, x: torch.Tensor, tbptt_steps: int | None = None, state=None):
        """Hidden states h_1..h_T [N, T, D*H] and the final state; with tbptt_steps=k the gradient stops every k steps."""
        k = tbptt_steps or x.shape[1]
        outs = []
        for s in range(0, x.shape[1], k):
            if s > 0:
                state = detach_state(state)  # carried forward, but backpropagation stops here
            out, state = self.net(x[:, s:s + k], state)
            outs.append(out)
        return torch.cat(outs, 1) if len(outs) > 1 else outs[0], state

    def last(self, hs: torch.Tensor) -> torch.Tensor:
        """The features read at the end: h_T (bidirectional: forward h_T and the backward direction's h_1)."""
        if not self.net.bidirectional:
            return hs[:, -1]
        H = self.net.hidden_size
        return torch.cat([hs[:, -1, :H], hs[:, 0, H:]], 1)

    def forward(self, x: torch.Tensor, tbptt_steps: int | None = None) -> torch.Tensor:
        """Regression: y_hat [N, 1]; classes: logits [N, K]; language model: logits [N, T, V] (softmax in the cost)."""
        hs, _ = self.encode(self.inputs(x), tbptt_steps)
        return self.head(hs) if self.task == "lm" else self.head(self.last(hs))

    def cost(self, z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        if self.task == "regression":
            return F.mse_loss(z, y)
        if self.task == "classes":
            return F.cross_entropy(z, y)
        # L = Σ_t L_t, L_t = -log softmax(V h_t)[y_t]; mean over the N sequences
        return F.cross_entropy(z.reshape(-1, z.shape[-1]), y.reshape(-1), reduction="sum") / z.shape[0]

    # ---- training --------------------------------------------------------------------------------------------------
    def _step(self, batch, stage: str):
        x, y = batch
        z = self(x, self.tbptt_steps if stage == "train" else None)
        loss = self.cost(z, y)
        n, train = len(x), stage == "train"
        log = {"batch_size": n, "on_step": train, "on_epoch": not train}
        self.log(f"{stage}/loss", loss, prog_bar=True, **log)
        if self.task == "regression":
            self.log(f"{stage}/mse", loss, **log)
        elif self.task == "classes":
            acc = getattr(self, f"{stage}_acc")
            acc.update(z.detach(), y)
            self.log_at_epoch_end(f"{stage}/acc", acc, prog_bar=not train)
        else:
            nll = loss.detach() / x.shape[1]  # nats per character
            if train:
                self.log("train/nll", nll, batch_size=n)
                self.log("train/ppl", torch.exp(nll), batch_size=n)
            else:
                self.nll[stage].update(nll, weight=n)
        return loss

    def metric_names(self) -> set[str]:
        extra = {"regression": ("mse",), "classes": ("acc",), "lm": ("nll", "ppl")}[self.task]  # as in _step
        return self.stage_metrics("loss", *extra)

    def _lm_epoch_end(self, stage: str):
        if self.task == "lm" and self.nll[stage].update_called:
            nll = self.nll[stage].compute()
            self.log(f"{stage}/nll", nll)
            self.log(f"{stage}/ppl", torch.exp(nll), prog_bar=True)
            self.nll[stage].reset()

    def training_step(self, batch, batch_idx):
        return self._step(batch, "train")

    def validation_step(self, batch, batch_idx):
        self._step(batch, "val")

    def test_step(self, batch, batch_idx):
        self._step(batch, "test")

    def on_validation_epoch_end(self):
        super().on_validation_epoch_end()
        self._lm_epoch_end("val")

    def on_test_epoch_end(self):
        super().on_test_epoch_end()
        self._lm_epoch_end("test")

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        # What scripts/sample.py needs to rebuild the model without the data: the facts (vocabulary) as plain types.
        checkpoint["dlf_facts"] = self.facts.as_dict()
