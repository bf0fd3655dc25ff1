"""One kind of error a user can fix: its message is one line naming the bad value and the fix.

Also the words for a bad value of a key (`RULES`, `message`: the same for Hydra's type errors and dlf's range checks)
and the two value checks that library code shares with the config checks (dlf.run.checks): a data module's batch size
and a net's implementation, checked where they are built in code too."""


class DlfError(Exception):
    """A bad input or setting, reported to the user as a single line (no traceback) and a non-zero exit."""


class Diverged(DlfError):
    """Training stopped because the loss or a weight stopped being finite (a sweep records the job as `diverged`)."""


def require(condition: bool, message: str) -> None:
    """Raise DlfError(message) unless `condition` holds."""
    if not condition:
        raise DlfError(message)


IMPLS = ("torch", "scratch")  # every family's twin: torch.nn / autograd, or the equations written out


# What a key must be and how to fix it: the words of the one-line error for a wrong type (the keys dlf.run.schema types,
# caught by Hydra as it composes; dlf.run.cli.explain) and for a value out of range (the checks below) alike.
RULES = {
    "seed": ("an integer in [0, 2**32)", "set e.g. seed=42"),
    "optimizer.lr": ("a positive number", "set e.g. optimizer.lr=0.01"),
    "data.batch_size": ("a positive integer", "set e.g. data.batch_size=64"),
    "trainer.max_epochs": ("an integer (-1: no limit)", "set e.g. trainer.max_epochs=10"),
    "trainer.max_steps": ("an integer (-1: no limit)", "set e.g. trainer.max_steps=1000"),
    "trainer.min_epochs": ("an integer >= 0", "set e.g. trainer.min_epochs=1"),
    "trainer.check_val_every_n_epoch": ("a positive integer", "set e.g. trainer.check_val_every_n_epoch=1"),
    "trainer.log_every_n_steps": ("a positive integer", "set e.g. trainer.log_every_n_steps=10"),
}


def message(key: str, value) -> str:
    """The one line for `key` holding a bad `value` (its rule from RULES, else the key's type)."""
    what, fix = RULES.get(key, ("of another type", f"see `python train.py --cfg job` for {key}'s value"))
    return f"{key}={value!r} must be {what}: {fix}"


def is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def check_batch_size(v) -> None:
    """data.batch_size: a positive integer (also checked where a loader is made, for data modules built in code)."""
    if not is_int(v) or v <= 0:
        raise DlfError(message("data.batch_size", v))


def check_impl(v, key: str = "model.net.impl") -> None:
    """A from-scratch twin or torch's own layers (also checked where a net or a GAN loss is built in code)."""
    if v not in IMPLS:
        raise DlfError(f"{key}={v!r} is not known: choose torch or scratch")
