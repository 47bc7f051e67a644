"""The notebook's cell [6]: train the three-layer convnet for one epoch on CIFAR-10.

    model = ThreeLayerConvNet(weight_scale=0.001, hidden_dim=500, reg=0.001)
    solver = Solver(model, data, num_epochs=1, batch_size=50, update_rule='adam',
                    optim_config={'learning_rate': 1e-3}, verbose=True, print_every=20)

Expected: validation accuracy >= 0.45 after the epoch (the notebook: 0.488).
"""

from __future__ import annotations

import sys
from typing import Sequence

from autocnn.tools.train import TrainConfig, run_training
from experiments.common import for_run, parse_args, record_expectation, smoke

NAME = "train_one_epoch"


def notebook_config() -> TrainConfig:
    """Cell [6]: 32 7x7 filters (the default), hidden 500, reg 1e-3, weight scale 1e-3,
    float32, Adam 1e-3, batch 50, one epoch, the Solver's lr_decay 1."""
    return TrainConfig(model="three-layer", num_filters=32, filter_size=7, hidden_dims=[500], weight_scale=1e-3,
                       reg=1e-3, dtype="float32", update_rule="adam", learning_rate=1e-3, lr_decay=1.0,
                       batch_size=50, num_epochs=1, print_every=20, seed=0)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(NAME, __doc__.splitlines()[0], argv)
    config = notebook_config()
    if args.smoke:
        config = smoke(config, num_filters=4, hidden_dims=[16], num_train=100, print_every=1)
    result = run_training(for_run(config, args), overwrite=True)
    record_expectation(args.out, "val accuracy after one epoch", result.metrics["final_val_acc"], 0.45,
                       smoke_run=args.smoke)
    return 0


if __name__ == "__main__":
    sys.exit(main())
