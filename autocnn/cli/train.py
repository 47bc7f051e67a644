"""``autocnn train``: flags into a TrainConfig, then one training run (or its resumption)."""

from __future__ import annotations

import argparse
import os
import sys
import time
from typing import Any

from autocnn.cli import types
from autocnn.tools.train import DTYPES, IMPLS, LOSSES, MODELS, UPDATE_RULES


def add_parser(subparsers: Any) -> None:
    """Declare ``autocnn train`` and its flags."""
    parser = subparsers.add_parser(
        "train",
        help="train on CIFAR-10 (default: the notebook's >65%% configuration) and write metrics and plots",
        description="Train a network on CIFAR-10 with the Solver and print the notebook's log lines. The "
                    "defaults are the notebook's >65% configuration: ThreeLayerConvNet, 32 filters 7x7, hidden "
                    "1000, float32, reg 1e-3, weight scale 1e-3, Adam lr 1e-3, batch 1000, 10 epochs, lr decay "
                    "0.99. The output folder gets config.json, train.log, per-epoch checkpoints, "
                    "params_final.npz, params_best.npz, metrics.json, curves.png and filters.png.",
        argument_default=argparse.SUPPRESS,  # only flags given reach the config (so --resume can refuse them)
    )
    model = parser.add_argument_group("model")
    model.add_argument("--model", choices=MODELS, help="network (default three-layer)")
    model.add_argument("--impl", choices=IMPLS,
                       help="autocnn (gradients by autograd) or reference (hand-written backward); default autocnn")
    model.add_argument("--num-filters", type=int, metavar="F", help="three-layer: conv filters (default 32)")
    model.add_argument("--filter-size", type=int, metavar="K", help="conv filter side (three-layer 7, convnet 3)")
    model.add_argument("--blocks", type=types.conv_blocks, metavar="SPEC",
                       help="convnet: conv widths per pooling block, e.g. 32,32-64,64-128,128 (the default)")
    model.add_argument("--hidden-dims", "--hidden-dim", dest="hidden_dims", type=types.int_list, metavar="H[,H...]",
                       help="hidden affine widths (three-layer 1000, fc 100,100, convnet 256)")
    model.add_argument("--batchnorm", dest="use_batchnorm", action="store_true",
                       help="spatial batchnorm after convs and batchnorm after hidden affines")
    model.add_argument("--dropout", type=float, nargs="?", const=0.5, metavar="KEEP",
                       help="fc/convnet: dropout with this keep probability (0.5 if no value)")
    model.add_argument("--loss", choices=LOSSES, help="convnet: data loss (default softmax)")
    model.add_argument("--weight-scale", type=types.weight_scale, metavar="STD|he",
                       help="initial weight std (three-layer 1e-3, fc 1e-2, convnet he)")
    model.add_argument("--reg", type=float, help="L2 regularization strength (default 1e-3)")
    model.add_argument("--dtype", choices=DTYPES, help="default float32")

    training = parser.add_argument_group("training")
    training.add_argument("--update-rule", choices=UPDATE_RULES, help="default adam")
    training.add_argument("--learning-rate", "--lr", dest="learning_rate", type=float, metavar="LR",
                          help="default 1e-3")
    training.add_argument("--lr-decay", type=float, metavar="FACTOR", help="learning-rate factor per epoch (default 0.99)")
    training.add_argument("--batch-size", type=int, metavar="N", help="default 1000")
    training.add_argument("--epochs", dest="num_epochs", type=int, metavar="N", help="default 10")
    training.add_argument("--print-every", type=int, metavar="N", help="log the loss every N iterations (default 10)")
    training.add_argument("--num-train-samples", type=int, metavar="N",
                          help="training images used for each train-accuracy check (default 1000)")
    training.add_argument("--seed", type=int, help="seed of weights and minibatches (default: drawn and recorded)")
    training.add_argument("--time-budget", type=float, metavar="MINUTES",
                          help="stop training after this many minutes and report what it reached")
    training.add_argument("--max-iterations", type=int, metavar="N",
                          help="stop training after N iterations (an iteration budget within --epochs)")
    training.add_argument("--patience", type=int, metavar="N",
                          help="stop early when the training loss (moving average) has reached no new low "
                               "for N iterations")
    training.add_argument("--augment", action="store_true",
                          help="random crops (zero padding 4) and horizontal flips of every training minibatch")

    data = parser.add_argument_group("data and output")
    data.add_argument("--data", dest="data_dir", metavar="DIR",
                      help="CIFAR-10 folder or tarball (default $AUTOCNN_DATA, else the cache)")
    data.add_argument("--split", type=types.int_list, metavar="TRAIN,VAL,TEST",
                      help="sizes of the training, validation and test splits (default 49000,1000,1000)")
    data.add_argument("--num-train", type=int, metavar="N",
                      help="train on the first N images of the training split only (a quick run)")
    data.add_argument("--out", metavar="DIR", help="output folder (default runs/train-<date>-<time>)")
    data.add_argument("--overwrite", action="store_true", help="allow --out to be a folder that holds a run")
    data.add_argument("--resume", metavar="DIR",
                      help="continue the run in DIR from its newest checkpoint, with its saved config")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Turn the flags given into a TrainConfig (or a resume) and train; returns the exit code."""
    from autocnn.tools.train import TrainConfig, resume_config, run_training

    given = {name: value for name, value in vars(args).items() if name not in ("command", "func")}
    resume_dir = given.pop("resume", None)
    overwrite = given.pop("overwrite", False)
    if resume_dir is not None:
        if overwrite:
            raise ValueError("--overwrite and --resume exclude each other")
        config = resume_config(resume_dir, **given)
    else:
        config = TrainConfig.from_dict(given)
        if config.out is None:
            config.out = os.path.join("runs", time.strftime("train-%Y%m%d-%H%M%S"))
    try:
        run_training(config, resume=resume_dir is not None, overwrite=overwrite)
    except FloatingPointError as diverged:  # TrainingDivergedError: one line, not a traceback
        print(f"autocnn train: error: {diverged}", file=sys.stderr)
        return 1
    return 0
