"""The optimiser choice and its constants, without NumPy: the CLI checks flags before NumPy
loads. The optimisers themselves are in ``optimizers.py``."""

from __future__ import annotations

from gradflow.engine.spec import Choice

MOMENTUM = 0.9  # torch.optim.SGD(momentum=0.9), dampening 0, no Nesterov
BETAS = (0.9, 0.999)  # torch.optim.Adam's defaults
EPS = 1e-8


class Optimizer(Choice):
    SGD = "sgd"
    MOMENTUM = "momentum"
    ADAM = "adam"
