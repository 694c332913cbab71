"""validation/train_small_vit.py, shortened: the direction of its results."""

from __future__ import annotations

import torch

from validation.train_small_vit import build, evaluate, independent, train


def test_scores_follow_the_raw_attention_and_the_control_has_no_confident_group():
    torch.set_num_threads(1)
    model, _acc = train(steps=20, batch=16)
    trained = evaluate(model, n_images=6, name="trained")
    # our scores rank head-images as the raw class-token rows do (independent float64 path)
    assert trained["rho"]["fg_score"] > 0.9
    control = evaluate(build(0).eval(), n_images=6, name="random-init")
    assert control["confident"] == []


def test_independent_measurements_on_a_hand_made_row():
    import numpy as np

    mask = np.zeros((64, 64), bool)
    mask[:32, :32] = True  # the top-left 4 x 4 patches of the 8 x 8 grid
    rows = np.zeros((1, 1, 8, 8))
    rows[0, 0, :4, :4] = 0.75 / 16  # 3/4 of the mass on 16 object patches
    rows[0, 0, 4:, :] = 0.25 / 32  # 1/4 on 32 of the 48 background patches, 0 on 16
    ind = independent(rows, mask)
    assert np.isclose(ind["density_ratio"][0, 0], (0.75 / 16) / (0.25 / 48))
    assert np.isclose(ind["object_mass"][0, 0], 0.75)
    assert np.isclose(ind["texture_lift"][0, 0], 0.25 / 0.75)
