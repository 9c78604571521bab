"""The gradient split by path length, and what it needs from the engine."""

from __future__ import annotations

import numpy as np
import pytest

from gradflow.engine.losses import LOSSES
from gradflow.engine.network import build
from gradflow.engine.passes import backward, forward
from gradflow.engine.spec import NetworkSpec

SMALL = {"depth": 8, "width": 7, "batch": 5, "block_size": 2, "bias_var": 0.1}


@pytest.mark.parametrize("skip", ["none", "post", "pre", "postnorm"])
def test_backward_hands_back_the_scaled_input_gradient(skip: str) -> None:
    spec = NetworkSpec(**SMALL, skip=skip, norm="layer", activation="tanh")  # type: ignore[arg-type]
    network = build(spec)
    tape, y = forward(spec, network.weights_for(spec), network.biases_for(spec), network.x)
    records = backward(spec, tape, LOSSES[spec.loss](y, network.loss_data).dy, keep=True)
    values, exponent = records.input_gradient
    assert records.input_grads is not None
    np.testing.assert_array_equal(values * 2.0**exponent, records.input_grads[0])
