"""How the driver cuts the queue into batches of units (no Ray needed)."""

from collections import deque

from actors.driver import batch_sizes, group_batch_sizes, group_key, peers, run_order, take_batch
from configs.experiments import get_config
from configs.sweeps import apply_variant, sweep_variants
from degrader.run.plan import Unit

ALL = (0, 1, 2)


def queue_of(*units: Unit) -> deque[Unit]:
    return deque(units)


def test_units_with_the_same_prompts_go_together_across_levels():
    queue = queue_of(*(Unit(0.5, r, ALL) for r in range(3)), *(Unit(1.0, r, ALL) for r in range(3)))
    first = take_batch(queue, 4)
    assert [(u.level, u.repeat_index) for u in first] == [(0.5, 0), (0.5, 1), (0.5, 2), (1.0, 0)]
    assert list(queue) == [Unit(1.0, 1, ALL), Unit(1.0, 2, ALL)]


def test_units_missing_other_prompts_and_single_unit_actors_go_alone():
    resumed = Unit(0.5, 1, (2,))  # a resumed run: only prompt 2 of repetition 1 is missing
    queue = queue_of(Unit(0.5, 0, ALL), resumed, Unit(1.0, 2, ALL))
    assert take_batch(queue, 3) == [Unit(0.5, 0, ALL), Unit(1.0, 2, ALL)]
    assert take_batch(queue, 3) == [resumed] and not queue
    queue = queue_of(Unit(0.5, 0, ALL), Unit(0.5, 1, ALL))
    assert take_batch(queue, 1) == [Unit(0.5, 0, ALL)] and len(queue) == 1


def test_batch_sizes_let_every_actor_finish_in_the_same_number_of_rounds():
    assert batch_sizes(50, [10]) == [10]  # 5 rounds
    assert batch_sizes(50, [10, 10]) == [9, 9]  # 3 rounds each, not 3 for one actor and 2 for the other
    assert batch_sizes(50, [17]) == [17] and batch_sizes(50, [17, 17]) == [13, 13]  # 3 rounds; 2 rounds
    assert batch_sizes(10, [6]) == [5] and batch_sizes(7, [4]) == [4]  # 5 + 5, not 6 + 4; 4 + 3
    assert batch_sizes(40, [20]) == [20] and batch_sizes(40, [20, 20]) == [20, 20]  # a resumed run: 40 of 50 left
    assert batch_sizes(50, [10, 5]) == [9, 5] and batch_sizes(3, [1, 1, 1]) == [1, 1, 1]
    for n, most in [(50, [10, 10]), (50, [17, 17]), (23, [4, 7, 1]), (1, [8, 8])]:
        sizes = batch_sizes(n, most)
        rounds = -(-n // sum(most))
        assert all(1 <= s <= m for s, m in zip(sizes, most, strict=True)) and rounds * sum(sizes) >= n


def test_variants_of_one_task_and_group_run_one_after_another_in_first_appearance_order():
    configs = [apply_variant(get_config(task), variant) for task in ("dreams_it", "iq_it")
               for variant in sweep_variants("thesis")]
    order = [(configs[i].config_name, configs[i].name_suffix.rsplit("_", 2)[-2:]) for i in run_order(configs)]
    expected = ["gauss_attn", "ablation_attn", "quant_attn", "gauss_mlp", "gauss_embed"]
    assert order == [(task, variant.split("_")) for task in ("dreams_it", "iq_it") for variant in expected]
    single = configs[:1]
    assert run_order(single) == [0] and run_order(configs[:2]) == [0, 1]


def test_peers_are_the_other_variants_of_the_same_task_and_group():
    configs = [apply_variant(get_config(task), variant) for task in ("dreams_it", "iq_it")
               for variant in sweep_variants("thesis")]
    names = [(c.config_name, c.name_suffix.rsplit("_", 2)[-2:]) for c in configs]
    assert [names[configs.index(p)] for p in peers(configs, 0)] == [("dreams_it", ["ablation", "attn"]),
                                                                     ("dreams_it", ["quant", "attn"])]
    assert peers(configs, 1) == [] and peers(configs[:1], 0) == []  # dreams_it's only mlp variant; alone
    assert [configs.index(p) for p in peers(configs, 8)] == [5, 9]  # iq_it's attn variants, not dreams_it's
    assert group_key(configs[0]) == ("dreams_it", "attn_only") and group_key(configs[6]) == ("iq_it", "mlp_only")


def test_the_variants_of_a_group_share_one_batch_size_per_actor():
    assert [batch_sizes(n, [17] * 4)[0] for n in (150, 170, 90)] == [13, 15, 12]
    assert all(group_batch_sizes(n, [17] * 4, [m for m in (150, 170, 90) if m != n]) == [15] * 4
               for n in (150, 170, 90))
    assert group_batch_sizes(50, [10, 4], []) == batch_sizes(50, [10, 4])  # no peers: as batch_sizes
