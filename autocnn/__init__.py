"""autocnn: the CNN homework stack with forward passes only; HIPS autograd derives every gradient."""

__version__ = "0.1.0"
