"""How the driver cuts the queue into batches of units (no Ray needed)."""

from collections import deque

from actors.driver import compile_ahead, peers, run_order, take_batch
from configs.experiments import get_config
from configs.sweeps import apply_variant, sweep_variants
from degrader.run.plan import Unit, batch_sizes, group_batch_sizes, group_key, total_units

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


def test_later_groups_are_compiled_ahead_by_the_helpers_one_each_and_each_once():
    configs = [apply_variant(get_config(task), variant) for task in ("dreams_it", "iq_it")
               for variant in sweep_variants("thesis")]
    order = run_order(configs)

    def named(plan):
        return {i: [(c.config_name, c.param_group_name) for c, _ in groups] for i, groups in plan.items() if groups}

    # the first variant of each group in run order: dreams_it's attn (0), mlp (1), embed (2), then iq_it's (5, 6, 7)
    assert named(compile_ahead(configs, order, None, 3)) == {
        0: [("dreams_it", "mlp_only"), ("dreams_it", "embed_only"), ("iq_it", "attn_only")],
        1: [("iq_it", "mlp_only"), ("iq_it", "embed_only")]}
    assert named(compile_ahead(configs, order, None, 1)) == {
        0: [("dreams_it", "mlp_only")], 1: [("dreams_it", "embed_only")], 2: [("iq_it", "attn_only")],
        5: [("iq_it", "mlp_only")], 6: [("iq_it", "embed_only")]}
    assert named(compile_ahead(configs, order, None, 0)) == {}  # one actor: nothing ahead
    done = [0 if config.config_name == "dreams_it" and config.param_group_name != "embed_only" else 1
            for config in configs]  # a resumed sweep: dreams_it's attn and mlp variants are done
    assert named(compile_ahead(configs, order, done, 3)) == {
        2: [("iq_it", "attn_only"), ("iq_it", "mlp_only"), ("iq_it", "embed_only")]}
    attn = compile_ahead(configs, order, None, 3)[0][2]  # iq_it's attn group: its 3 variants size its batches
    assert attn[0] is configs[5] and attn[1] == [total_units(configs[i]) for i in (5, 8, 9)]


def test_every_actor_and_every_variant_of_a_group_get_one_size_while_it_fits():
    from types import SimpleNamespace

    from actors.driver import _group_sizes

    separate = SimpleNamespace(group_sizes={}, compiles=False)  # actors that share no steps: as before
    assert _group_sizes(separate, get_config("dreams_it"), [35, 34], [47, 46]) == [35, 34] and not separate.group_sizes
    fleet = SimpleNamespace(group_sizes={}, compiles=True)
    gauss, ablation = (apply_variant(get_config("dreams_it"), v) for v in ("gauss_attn", "ablation_attn"))
    mlp = apply_variant(get_config("dreams_it"), "gauss_mlp")
    assert _group_sizes(fleet, gauss, [35, 34], [47, 46]) == [34, 34]  # one decode step shape on both actors
    assert _group_sizes(fleet, ablation, [35, 35], [47, 47]) == [34, 34]  # the group's, not sized anew
    assert _group_sizes(fleet, mlp, [11, 11], [14, 14]) == [11, 11]  # another group: its own
    assert _group_sizes(fleet, ablation, [20, 20], [30, 20]) == [20, 20]  # 34 no longer fits: sized anew
