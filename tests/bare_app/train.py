"""A bare Hydra app over dlf's config tree, for tests/test_entry.py: dlf's CLI must take every flag and override the
way this does. (Named train.py so that Hydra's job name is `train`, as in dlf.)"""

import hydra
from omegaconf import OmegaConf

from dlf.run.train import CONFIG_DIR  # also registers the ${dlf_pid:} resolver of the run-dir pattern


@hydra.main(config_path=str(CONFIG_DIR), config_name="train", version_base="1.3")
def main(cfg) -> float:
    print("bare app ran:", OmegaConf.to_container(hydra.core.hydra_config.HydraConfig.get().overrides.task))
    return 0.0


if __name__ == "__main__":
    main()
