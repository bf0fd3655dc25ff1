"""One builder: a dlf system from a composed config and its data's facts, the same for the run (dlf.run.train), the
checkpoint loader (dlf.run.checkpoint.load_run: dlf-generate, dlf-sample, notebooks) and the benchmark
(scripts/bench_workloads.py). It saves the constructor's arguments as the system's hyper-parameters (plain types),
which every checkpoint then carries, so Lightning's `load_from_checkpoint` rebuilds the system from a checkpoint alone.

`cfg.model` holds a few keys that its constructor does not take: the system class declares them (`CONFIG_KEYS`: for
every dlf system `compile`, a run option applied after the build by dlf.run.speed, and `lr_table` / `adam_betas`,
which the optimizer configs read). They are left out of what Hydra instantiates.
"""

from __future__ import annotations

from omegaconf import DictConfig, open_dict


def config_keys(model_cfg: DictConfig) -> tuple[str, ...]:
    """The model keys that the system class `model_cfg._target_` declares as not its constructor's (CONFIG_KEYS).
    A target that declares none (a user's own function or class) is taken to be built like a dlf system."""
    from hydra.utils import get_object

    from dlf.systems.base import System

    target = get_object(str(model_cfg._target_))
    return tuple(getattr(target, "CONFIG_KEYS", System.CONFIG_KEYS))


def system_config(model_cfg: DictConfig) -> DictConfig:
    """cfg.model without its config keys: what the system's constructor takes."""
    keys = [k for k in config_keys(model_cfg) if k in model_cfg]
    if not keys:
        return model_cfg
    out = model_cfg.copy()
    with open_dict(out):
        for k in keys:
            out.pop(k)
    return out


def build_system(cfg: DictConfig, facts, optimizer=None, scheduler=None):
    """The system `cfg.model` names, built for the data's `facts`, with the optimizer and scheduler partials (None:
    a system to load weights into, not to train). Partial first, then called: Hydra would turn the facts dataclass
    into a DictConfig if it were passed through instantiate."""
    from hydra.utils import instantiate

    from dlf.systems.base import System

    build = instantiate(system_config(cfg.model), _partial_=True)
    system = build(facts=facts, optimizer=optimizer, scheduler=scheduler)
    system.monitor = cfg.get("monitor")  # what scheduler=plateau steps on (System.plateau_monitor)
    if isinstance(system, System):  # into every checkpoint: System.load_from_checkpoint rebuilds it from them alone
        system.save_hyperparameters(hyper_parameters(cfg, facts), logger=False)
    return system


def hyper_parameters(cfg: DictConfig, facts) -> dict:
    """The constructor's arguments as plain types (resolved; the net's config as its `_target_` dict, the facts with
    the data's normalisation statistics), and `_target_`, the family: what a checkpoint carries."""
    from omegaconf import OmegaConf

    return {**OmegaConf.to_container(system_config(cfg.model), resolve=True), "facts": facts.as_dict()}
