"""How the driver cuts the queue into batches of repetitions (no Ray needed)."""

from collections import deque

from actors.driver import take_batch
from actors.plan import Unit

ALL = (0, 1, 2)


def queue_of(*units: Unit) -> deque[Unit]:
    return deque(units)


def test_repetitions_of_a_level_with_the_same_prompts_go_together_in_even_batches():
    queue = queue_of(*(Unit(0.5, r, ALL) for r in range(7)), Unit(1.0, 0, ALL))
    first = take_batch(queue, 4)
    second = take_batch(queue, 4)
    assert [u.repeat_index for u in first] == [0, 1, 2, 3] and [u.repeat_index for u in second] == [4, 5, 6]
    assert list(queue) == [Unit(1.0, 0, ALL)]  # another level never joins


def test_ten_repetitions_at_most_six_per_batch_make_two_batches_of_five():
    queue = queue_of(*(Unit(0.5, r, ALL) for r in range(10)))
    assert [len(take_batch(queue, 6)) for _ in range(2)] == [5, 5] and not queue


def test_units_missing_other_prompts_and_single_repetition_actors_go_alone():
    resumed = Unit(0.5, 1, (2,))  # a resumed run: only prompt 2 of repetition 1 is missing
    queue = queue_of(Unit(0.5, 0, ALL), resumed, Unit(0.5, 2, ALL))
    assert take_batch(queue, 3) == [Unit(0.5, 0, ALL), Unit(0.5, 2, ALL)]
    assert take_batch(queue, 3) == [resumed] and not queue
    queue = queue_of(Unit(0.5, 0, ALL), Unit(0.5, 1, ALL))
    assert take_batch(queue, 1) == [Unit(0.5, 0, ALL)] and len(queue) == 1

