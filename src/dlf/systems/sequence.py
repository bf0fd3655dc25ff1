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
from dlf.systems.base import System, accuracy


def detach_state(state):
    return tuple(s.detach() for s in state) if isinstance(state, tuple) else state.detach()


# ---- what a sequence system predicts: chosen once, from the data's target -------------------------------------------
class Task:
    """What the head reads, the cost and the metrics beside the loss, for one kind of target. Subclasses set
    in_features / out_features (for the net and the head V) and may register per-stage metrics on the system."""

    kind = "sequence"       # the data kind it reads
    every_step = False      # the head reads h_T only (True: every h_t, a language model)
    metrics: tuple[str, ...] = ()  # logged beside {stage}/loss
    eval_metrics: tuple[str, ...] = ()  # logged in validation and test only
    in_features: int
    out_features: int

    def inputs(self, x: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
        """[N, T] signals get one feature per step: [N, T, 1]; [N, T, F] pass unchanged."""
        return x.unsqueeze(-1) if x.dim() == 2 else x

    def cost(self, z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def log(self, system: System, stage: str, loss, z, y, **kw) -> None:
        """Log this stage's metrics beside the loss; `kw`: the step's self.log arguments (batch_size, on_step, ...)."""

    def epoch_end(self, system: System, stage: str) -> None:
        """At the end of a validation or test epoch (after the system's epoch metrics)."""


class Regression(Task):
    """data=adding: y_hat = V h_T read at the last step; cost: mean squared error; logs {stage}/mse. Data with a
    tolerance (data.variant=hochreiter1997: 0.04) also log {val,test}/wrong: how many sequences of the split have
    |y_hat - y| >= tolerance (a count, summed over the batches)."""

    metrics = ("mse",)

    def __init__(self, system: System, facts: DataFacts):
        self.in_features, self.out_features = facts.in_features, 1
        self.tolerance = facts.extra.get("tolerance")
        self.eval_metrics = ("wrong",) if self.tolerance else ()

    def cost(self, z, y):
        return F.mse_loss(z, y)                                    # J = 1/n sum_i (y_i - y_hat_i)^2

    def log(self, system, stage, loss, z, y, **kw):
        system.log(f"{stage}/mse", loss, **kw)
        if self.tolerance and stage != "train":
            wrong = ((z.detach() - y).abs() >= self.tolerance).sum().float()
            system.log(f"{stage}/wrong", wrong, reduce_fx="sum", on_step=False, on_epoch=True,
                       prog_bar=stage == "val")


class Classes(Task):
    """data=mnist1d: y_hat = softmax(V h_T) at the last step; cost: cross-entropy; logs {stage}/acc."""

    metrics = ("acc",)

    def __init__(self, system: System, facts: DataFacts):
        self.in_features, self.out_features = facts.in_features, facts.num_classes
        self.acc = system.add_stage_metrics("acc", lambda: accuracy(facts.num_classes))

    def cost(self, z, y):
        return F.cross_entropy(z, y)                               # J = -1/n sum_i log softmax(z_i)[y_i]

    def log(self, system, stage, loss, z, y, **kw):
        system.update_metric(stage, self.acc[stage], z.detach(), y)
        system.log_at_epoch_end(f"{stage}/acc", self.acc[stage], prog_bar=stage != "train")


class NextToken(Task):
    """data=text: y_hat_t = softmax(V h_t) at every step over one-hot characters; L = Σ_t L_t; logs nll and ppl."""

    kind = "tokens"
    every_step = True
    metrics = ("nll", "ppl")

    def __init__(self, system: System, facts: DataFacts):
        self.in_features = self.out_features = len(facts.vocab or [])
        self.nll = system.add_stage_metrics("nll", torchmetrics.MeanMetric, stages=("val", "test"))

    def inputs(self, x, dtype):
        return F.one_hot(x, self.in_features).to(dtype)           # character ids -> one-hot vectors

    def cost(self, z, y):
        # L = Σ_t L_t, L_t = -log softmax(V h_t)[y_t]; mean over the N sequences
        return F.cross_entropy(z.reshape(-1, z.shape[-1]), y.reshape(-1), reduction="sum") / z.shape[0]

    def log(self, system, stage, loss, z, y, **kw):
        nll = loss.detach() / z.shape[1]  # nats per character
        if stage == "train":
            system.log("train/nll", nll, batch_size=kw["batch_size"])
            system.log("train/ppl", torch.exp(nll), batch_size=kw["batch_size"])
        else:
            self.nll[stage].update(nll, weight=kw["batch_size"])

    def epoch_end(self, system, stage):
        if self.nll[stage].update_called:
            nll = self.nll[stage].compute()
            system.log(f"{stage}/nll", nll)
            system.log(f"{stage}/ppl", torch.exp(nll), prog_bar=True)
            self.nll[stage].reset()


TASKS = {"regression": Regression, "classes": Classes, "next_token": NextToken}


class SequenceSystem(System):
    ACCEPTS = ("sequence", "tokens")

    def __init__(self, net: Callable, facts: DataFacts, tbptt_steps: int | None = None,
                 optimizer: Callable | None = None, scheduler: Callable | None = None):
        super().__init__(facts, optimizer, scheduler)
        require(tbptt_steps is None or (isinstance(tbptt_steps, int) and not isinstance(tbptt_steps, bool)
                                        and tbptt_steps > 0),
                f"model.tbptt_steps={tbptt_steps!r} must be a positive number of steps (e.g. 20), or null for full BPTT")
        self.tbptt_steps = tbptt_steps
        require(facts.target in TASKS, f"a sequence model cannot learn data={facts.name}'s target '{facts.target}': "
                                       "use regression, classes or next_token data (adding, mnist1d, text)")
        require(TASKS[facts.target].kind == facts.kind,
                f"data={facts.name} has kind '{facts.kind}' but target '{facts.target}': not a sequence task dlf knows")
        self.task = TASKS[facts.target](self, facts)  # inputs, what the head reads, the cost, the metrics
        self.net = net(in_features=self.task.in_features)
        require(not (self.task.every_step and self.net.bidirectional),
                "model.net.bidirectional=true cannot model language (it would read the next character): set it false")
        require(not (tbptt_steps and self.net.bidirectional),
                "model.tbptt_steps needs a one-directional net: set model.net.bidirectional=false or model.tbptt_steps=null")
        self.head = nn.Linear(self.net.out_features, self.task.out_features)  # V: hidden to output

    # ---- computing -------------------------------------------------------------------------------------------------
    def nets(self) -> list[nn.Module]:
        """The recurrent net and its output layer V."""
        return [self.net, self.head]

    def inputs(self, x: torch.Tensor) -> torch.Tensor:
        """x as [N, T, F]: characters become one-hot vectors; [N, T] signals (MNIST-1D) get one feature per step."""
        return self.task.inputs(x, self.head.weight.dtype)

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
        return self.head(hs) if self.task.every_step else self.head(self.last(hs))

    def cost(self, z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """The task's cost J(z, y) (see the module docstring)."""
        return self.task.cost(z, y)

    # ---- training --------------------------------------------------------------------------------------------------
    def step(self, batch, batch_idx: int, stage: str) -> torch.Tensor:
        x, y = batch
        z = self(x, self.tbptt_steps if stage == "train" else None)
        loss = self.cost(z, y)
        train = stage == "train"
        log = {"batch_size": len(x), "on_step": train, "on_epoch": not train}
        self.log(f"{stage}/loss", loss, prog_bar=True, **log)
        self.task.log(self, stage, loss, z, y, **log)
        return loss

    def metric_names(self) -> set[str]:
        evals = {f"{stage}/{n}" for stage in ("val", "test") for n in self.task.eval_metrics}
        return self.stage_metrics("loss", *self.task.metrics) | evals  # as in step

    def on_validation_epoch_end(self):
        super().on_validation_epoch_end()
        self.task.epoch_end(self, "val")

    def on_test_epoch_end(self):
        super().on_test_epoch_end()
        self.task.epoch_end(self, "test")

    # ---- in use ------------------------------------------------------------------------------------------------
    def answer(self, x: torch.Tensor) -> torch.Tensor:
        """Regression (adding): y_hat [N]; classes: the class [N]."""
        z = self(x)
        return z[:, 0] if isinstance(self.task, Regression) else z.argmax(-1)

    def probabilities(self, x: torch.Tensor) -> torch.Tensor:
        require(isinstance(self.task, Classes), f"data={self.facts.name}'s model is not a classifier: use predict")
        return torch.softmax(self(x), -1)

    def predict(self, raw):
        """A language model: P(next character | prompt) as {character: probability}, most likely first (a list of
        prompts: one dict each); other tasks: System.predict (sums, classes)."""
        if not self.task.every_step:
            return super().predict(raw)
        probs = self._answer_raw(lambda x: torch.softmax(self(x)[:, -1], -1), raw)
        rows = probs.unsqueeze(0) if probs.dim() == 1 else probs
        out = [dict(sorted(zip(self.facts.vocab, row.tolist()), key=lambda kv: -kv[1])) for row in rows]
        return out[0] if isinstance(raw, str) else out

    @torch.no_grad()
    def next_char_probs(self, prompt: str):
        """P(next character | prompt) [V] and the state after the prompt."""
        hs, state = self.encode(self.inputs(self.facts.encode(prompt)[0].to(self.device)))
        return torch.softmax(self.head(hs[:, -1]), -1)[0], state

    @torch.no_grad()
    def sample(self, prompt: str, length: int = 200, temperature: float = 0.8, seed: int = 0) -> str:
        """The prompt and `length` characters, each drawn from softmax(V h_t / temperature) (0: the most likely)."""
        require(self.task.every_step, f"data={self.facts.name}'s model is not a language model: use predict")
        require(temperature >= 0, f"temperature={temperature} must be >= 0 (0: always the most likely character)")
        was = self.training
        self.eval()
        gen = torch.Generator().manual_seed(seed)
        hs, state = self.encode(self.inputs(self.facts.encode(prompt)[0].to(self.device)))
        logits, out = self.head(hs[:, -1])[0].cpu(), []
        for _ in range(length):
            if temperature == 0:
                c = int(logits.argmax())
            else:
                c = int(torch.multinomial(torch.softmax(logits / temperature, -1), 1, generator=gen))
            out.append(self.facts.vocab[c])
            step = self.inputs(torch.tensor([[c]], device=self.device))
            hs, state = self.encode(step, state=state)  # one step, carrying h (and C)
            logits = self.head(hs[:, -1])[0].cpu()
        self.train(was)
        return prompt + "".join(out)
