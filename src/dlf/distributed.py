"""Many processes on Lightning's DDP: start-up checks that turn hangs into one line, one run dir shared by every rank,
the strategy object (with a join timeout), and rank-zero printing.

Who starts the processes:
- Lightning (`trainer=ddp_cpu`, `trainer=ddp`): rank 0 is the command you typed; it re-runs the same command line for
  ranks 1.. with `hydra.run.dir=<rank 0's run dir>` (lightning.fabric.strategies.launchers.subprocess_script), so the
  run dir is already shared.
- torchrun: every rank is started alike and would pick its own run dir (the name has a time and a pid). Rank 0 picks
  it and publishes it in the TCP store torchrun's agent already serves at MASTER_ADDR:MASTER_PORT; the others read it
  and start Hydra with `hydra.run.dir=<it>` (and `hydra.output_subdir=null`: rank 0 alone writes .hydra/).
- SLURM's srun (one task per process): the dir is named after the job and step, slurm_<job>_<step>, the same on
  every task and different for every job step; a requeued job (SLURM_RESTART_COUNT >= 1) finds it and resumes from
  its last.ckpt (slurm_requeued).
See docs/scaling.md.
"""

from __future__ import annotations

import os
import socket
import sys
from datetime import timedelta

from omegaconf import DictConfig

from dlf.errors import DlfError

# A CPU process costs about one core-second of start-up (imports) and some 300 MB; Lightning starts them one after
# another and each waits for all at the rendezvous. Beyond 4 processes a core they only time-slice (no speed-up) and
# start-up grows past a minute on a loaded machine, so more is refused (a mistyped devices=99 hangs otherwise).
CPU_PROCS_PER_CORE = 4


def _int(v, default: int = 1) -> int:
    try:
        return int(v)
    except (TypeError, ValueError):
        return default


def launched_by() -> str | None:
    """'torchrun', 'slurm' or None (Lightning starts the processes itself, or a single process)."""
    if "TORCHELASTIC_RUN_ID" in os.environ:
        return "torchrun"
    if _int(os.environ.get("SLURM_NTASKS"), 1) > 1 and "SLURM_PROCID" in os.environ \
            and os.environ.get("SLURM_JOB_NAME") not in ("bash", "interactive"):
        return "slurm"
    return None


def global_rank() -> int:
    for key in ("RANK", "SLURM_PROCID", "LOCAL_RANK"):
        if key in os.environ:
            return _int(os.environ[key], 0)
    return 0


def is_ddp(t) -> bool:
    """Whether the trainer config asks for more than one process (DDP)."""
    strategy = str(t.get("strategy", "auto")).lower()
    dev = t.get("devices", 1)
    many = _int(t.get("num_nodes", 1)) > 1 or (isinstance(dev, int) and dev > 1) or \
        (hasattr(dev, "__len__") and not isinstance(dev, str) and len(dev) > 1)
    return strategy.startswith("ddp") or many


def check(cfg: DictConfig) -> None:
    """One-line errors for what would otherwise hang or crash deep inside torch.distributed. See docs/bad_inputs.md."""
    t = cfg.get("trainer") or {}
    if not is_ddp(t):
        return
    accel = str(t.get("accelerator", "auto")).lower()
    dev, nodes = t.get("devices", 1), _int(t.get("num_nodes", 1))
    external = launched_by()
    if accel == "auto":  # Lightning's choice: the GPUs if CUDA has any, else CPU processes
        import torch

        accel = "gpu" if torch.cuda.is_available() else "cpu"
    if accel in ("gpu", "cuda"):
        import torch

        visible = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if visible == 0:
            raise DlfError("trainer=ddp runs one process per CUDA GPU but none is visible here (torch.cuda."
                           "is_available() is False): use trainer=ddp_cpu (CPU processes, gloo) or trainer=cpu")
        if isinstance(dev, int) and dev > visible:
            raise DlfError(f"trainer.devices={dev} asks for {dev} GPUs but {visible} visible here "
                           f"(CUDA_VISIBLE_DEVICES={os.environ.get('CUDA_VISIBLE_DEVICES', 'unset')}): set "
                           f"trainer.devices={visible} or trainer.devices=auto")
    elif accel == "cpu" and isinstance(dev, int) and external is None:
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
        if dev > CPU_PROCS_PER_CORE * cores:
            raise DlfError(f"trainer.devices={dev} CPU processes on {cores} cores: more than {CPU_PROCS_PER_CORE} a "
                           f"core only slow each other down and may not all start in time: set trainer.devices="
                           f"{cores} (one a core; data.batch_size is per process)")
    if nodes > 1 and external is None:
        raise DlfError(f"trainer.num_nodes={nodes} needs a launcher that starts the processes of every node (Lightning "
                       "starts one node's only and would wait for the others forever): run `torchrun --nnodes="
                       f"{nodes} --node-rank=<i> --master-addr=<node 0> --master-port=<port> train.py ...` on each "
                       "node, or srun under SLURM (docs/scaling.md)")
    timeout = cfg.get("ddp_timeout", 600)
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or timeout <= 0:
        raise DlfError(f"ddp_timeout={timeout!r} must be a positive number of seconds: set e.g. ddp_timeout=600")
    port = os.environ.get("MASTER_PORT")
    if external is None and "LOCAL_RANK" not in os.environ and port:  # Lightning's rank 0 will listen on it
        if not port.isdigit() or not 0 < int(port) < 65536:
            raise DlfError(f"MASTER_PORT={port!r} is not a port number: unset it (Lightning picks a free one) or "
                           "set e.g. MASTER_PORT=29500")
        if port_in_use(int(port)):
            raise DlfError(f"MASTER_PORT={port} is in use by another program (another run?): unset MASTER_PORT "
                           "(Lightning picks a free port) or choose a free one")


def refuse_multirun(config: DictConfig) -> None:
    """DDP inside a Hydra multirun run by the basic launcher is refused in one line (Lightning issue #15689)."""
    launcher = str(config.hydra.launcher.get("_target_", ""))
    if is_ddp(config.get("trainer") or {}) and launched_by() is None and launcher.endswith("BasicLauncher"):
        raise DlfError("a multirun (-m) cannot start DDP processes: Lightning's launcher re-runs the whole command "
                       "line (the sweep) in each child (Lightning issue #15689): run one command per job, e.g. `for "
                       "o in sgd adam; do python train.py trainer=ddp_cpu optimizer=$o; done`, or sweep with "
                       "hydra/launcher=submitit_slurm")


def port_in_use(port: int, host: str = "") -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind((host, port))
        except OSError:
            return True
    return False


def slurm_run_dir(config: DictConfig) -> str:
    """Under srun: logs/<task>/runs/slurm_<job>_<step>, named by the job and its step, which a requeue keeps."""
    name = f"slurm_{os.environ.get('SLURM_JOB_ID', '0')}_{os.environ.get('SLURM_STEP_ID', '0')}"
    return f"{config.paths.log_dir}/{config.task_name}/runs/{name}"


def slurm_requeued(config: DictConfig) -> None:
    """A Slurm job started again by a requeue (`scontrol requeue`, `#SBATCH --requeue` after a pre-emption or node
    failure: SLURM_RESTART_COUNT >= 1) continues from its own run dir's last.ckpt when no ckpt_path is given: the run
    dir is named by the job (slurm_run_dir), so the requeued job finds it, and the run ends as if left alone."""
    from pathlib import Path

    from omegaconf import open_dict, read_write

    if launched_by() != "slurm" or _int(os.environ.get("SLURM_RESTART_COUNT"), 0) < 1 or config.get("ckpt_path"):
        return
    last = Path(slurm_run_dir(config)) / "checkpoints" / "last.ckpt"
    if last.is_file():
        with read_write(config), open_dict(config):
            config.ckpt_path = str(last)


def share_run_dir(config: DictConfig, given: bool) -> None:
    """Under torchrun or srun, before Hydra makes the run dir: the same `hydra.run.dir` for every rank (rank 0's
    choice), .hydra/ written by rank 0 alone. Nothing to do when Lightning starts the processes (it passes its own
    hydra.run.dir to its children) or for one process. `given`: the dir is already named (command line, resume)."""
    from omegaconf import open_dict, read_write

    who = launched_by()
    if who is None or not is_ddp(config.get("trainer") or {}):
        return
    rank = global_rank()
    with read_write(config), open_dict(config):
        if rank != 0:
            config.hydra.output_subdir = None
        if given:
            return
        if who == "slurm":  # the same after a requeue: the requeued job finds its run dir (slurm_requeued)
            config.hydra.run.dir = slurm_run_dir(config)
        elif rank != 0:  # rank 0 lets Hydra pick as usual and publish_run_dir() announces it from inside the run
            config.hydra.run.dir = _store_get("run_dir", config)


def _store(cfg):
    from torch.distributed import TCPStore

    if os.environ.get("TORCHELASTIC_USE_AGENT_STORE") != "True":
        raise DlfError("torchrun did not offer its agent store (TORCHELASTIC_USE_AGENT_STORE is not True), so the ranks "
                       "cannot agree on one run dir: pass hydra.run.dir=<dir> to every rank")
    return TCPStore(os.environ["MASTER_ADDR"], int(os.environ["MASTER_PORT"]), is_master=False,
                    timeout=timedelta(seconds=float(cfg.get("ddp_timeout", 600))))


def _key(name: str) -> str:
    return f"dlf/{name}/{os.environ.get('TORCHELASTIC_RUN_ID', '')}/{os.environ.get('TORCHELASTIC_RESTART_COUNT', '0')}"


def _store_get(name: str, cfg) -> str:
    try:
        return _store(cfg).get(_key(name)).decode()
    except DlfError:
        raise
    except Exception as e:  # noqa: BLE001 - a timeout or a dead store: one line
        raise DlfError(f"rank {global_rank()} waited {cfg.get('ddp_timeout', 600)} s for rank 0 to choose the run dir "
                       f"({type(e).__name__}): check that rank 0 started (its own error comes first), or raise "
                       "ddp_timeout") from None


def publish_run_dir(cfg: DictConfig) -> None:
    """Rank 0 under torchrun: tell the other ranks the run dir Hydra gave this run."""
    if launched_by() == "torchrun" and global_rank() == 0 and is_ddp(cfg.get("trainer") or {}):
        _store(cfg).set(_key("run_dir"), str(cfg.paths.output_dir))


def strategy(cfg: DictConfig, model=None):
    """The Trainer's strategy: for DDP a DDPStrategy whose process group gives up after `ddp_timeout` seconds when a
    rank never joins (or stops answering) instead of waiting forever. Manual optimization (the GANs) steps one
    sub-network at a time, so DDP must allow parameters without a gradient in a step (find_unused_parameters)."""
    t = cfg.trainer
    name = t.get("strategy", "auto")
    if not isinstance(name, str) or name != "ddp":
        return name
    from lightning.pytorch.strategies import DDPStrategy

    manual = model is not None and not model.automatic_optimization
    return DDPStrategy(timeout=timedelta(seconds=float(cfg.get("ddp_timeout", 600))), find_unused_parameters=manual)


def one_line_timeout(e: BaseException, cfg) -> str | None:
    """The one line for a rank that never joined (torch's store timeout), else None."""
    text = f"{type(e).__name__}: {e}"
    if "DistStoreError" in text or ("Timed out" in text and "clients" in text) or "Socket Timeout" in text:
        return (f"not every DDP process joined within ddp_timeout={cfg.get('ddp_timeout', 600)} s ({_first(e)}): "
                "check that every rank/node was started with the same world size and can reach MASTER_ADDR:"
                "MASTER_PORT, or raise ddp_timeout")
    return None


def _first(e: BaseException) -> str:
    lines = str(e).strip().splitlines()
    return (lines[0] if lines else type(e).__name__)[:160]


def is_rank_zero() -> bool:
    """True on global rank 0 (and in every single-process run)."""
    from lightning.pytorch.utilities import rank_zero_only

    return getattr(rank_zero_only, "rank", 0) == 0


def say(*args, **kwargs) -> None:
    """print() on global rank 0 only (the end-of-run lines)."""
    if is_rank_zero():
        print(*args, **kwargs)
        sys.stdout.flush()
