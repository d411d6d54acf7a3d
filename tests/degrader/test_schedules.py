import logging

import pytest

from degrader.schedules import levels_for


def test_linear_levels_include_the_control():
    assert levels_for("mult_gauss", 0, 1.4, 5) == [0.0, 0.35, 0.7, 1.05, 1.4]
    assert levels_for("ablation", 0.2, 0.8, 4) == [0.0, 0.2, 0.4, 0.6, 0.8]


def test_geometric_levels_start_with_the_control_then_descend_fine_to_coarse():
    assert levels_for("uni_quant", 4, 1024, 5) == [0, 1024, 256, 64, 16, 4]
    assert levels_for("uni_quant", 4, 1024, 9) == [0, 1024, 512, 256, 128, 64, 32, 16, 8, 4]


def test_deduplication_warns(caplog):
    with caplog.at_level(logging.WARNING):
        levels = levels_for("uni_quant", 2, 4, 6)
    assert levels == [0, 4, 3, 2]
    assert "only 3 distinct" in caplog.text


@pytest.mark.parametrize("args,message", [(("ablation", 0, 1.2, 5), r"\[0, 1\]"), (("uni_quant", 1, 64, 5), ">= 2"),
                                          (("uni_quant", 0, 64, 5), "control level 0 is added"),
                                          (("mult_gauss", 1, 0, 5), "swap"), (("mult_gauss", 0, 1, 0), "deg_steps")])
def test_bad_schedules_raise(args, message):
    with pytest.raises(ValueError, match=message):
        levels_for(*args)
