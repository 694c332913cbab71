"""validation/train_small_vit.py, shortened: the direction of its results."""

from __future__ import annotations

import numpy as np
import torch

from validation.train_small_vit import (
    PEAK_LR,
    SIZE,
    build,
    evaluate,
    independent,
    one_cycle,
    train,
)


def test_scores_follow_the_raw_attention_and_the_control_has_no_confident_group():
    """Every score the full script reports ranks head-images as the independent
    measurement from the raw class-token rows and the exact mask does (the full script:
    0.82-1.00 on the trained model); the random-init control gets no confident group."""
    torch.set_num_threads(1)
    model, _acc = train(steps=20, batch=16)
    trained = evaluate(model, n_images=6, name="trained")
    for score in ("fg_score", "fg_jaccard", "edge_lift", "texture_lift"):
        assert trained["rho"][score] > 0.5, (score, trained["rho"])
    control = evaluate(build(0).eval(), n_images=6, name="random-init")
    assert control["confident"] == []


def test_independent_measurements_on_a_hand_made_row():
    mask = np.zeros((SIZE, SIZE), bool)
    mask[:64, :64] = True  # the top-left 4 x 4 patches of the 8 x 8 grid
    rows = np.zeros((2, 1, 8, 8))
    rows[0, 0, :4, :4] = 0.75 / 16  # 3/4 of the mass on 16 object patches
    rows[0, 0, 4:, :] = 0.25 / 32  # 1/4 on 32 of the 48 background patches, 0 on 16
    rows[1, 0, 5:, :] = 1 / 24  # all of it on patches 16 px or more below the object
    ind = independent(rows, mask)
    assert np.isclose(ind["density_ratio"][0, 0], (0.75 / 16) / (0.25 / 48))
    assert np.isclose(ind["object_mass"][0, 0], 0.75)
    # the band and texture region: the 64 px square grown by BAND = 3 px is 67 x 67
    assert ind["band_lift"][1, 0] == 0 and np.isclose(ind["texture_mass"][1, 0], 1.0)
    assert np.isclose(ind["texture_region_lift"][1, 0], SIZE**2 / (SIZE**2 - 67**2))


def test_one_cycle_schedule_for_every_short_run():
    """Every step count trains (a one-step warm-up, 10 steps, divided by zero in torch's
    OneCycleLR); the rate stays in (0, peak], and with a warm-up (10 steps or more) it
    starts at peak / 25, rises to within 10% of the peak, then falls."""
    for steps in range(1, 31):
        opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=PEAK_LR)
        sched = one_cycle(opt, steps)
        lrs = []
        for _ in range(steps):
            lrs.append(opt.param_groups[0]["lr"])
            opt.step()
            sched.step()
        assert all(0 < lr <= PEAK_LR * (1 + 1e-9) for lr in lrs), (steps, lrs)
        top = int(np.argmax(lrs))
        if steps >= 10:
            assert np.isclose(lrs[0], PEAK_LR / 25) and top > 0, (steps, lrs)
            assert lrs[top] > 0.9 * PEAK_LR, (steps, lrs)
        assert np.all(np.diff(lrs[top:]) <= 0), (steps, lrs)


def test_train_runs_ten_steps():
    torch.set_num_threads(1)
    model, acc = train(steps=10, batch=2, held_out=6)
    assert 0 <= acc <= 1 and round(acc * 6, 9).is_integer()
    assert not model.training
