"""Records are applied in offset order; a record past missing ones makes the worker read them again."""

from __future__ import annotations

from streams.core.sequence import HOLE_CONFIRMATIONS, OffsetSequence


def test_the_next_record_and_records_the_state_holds_are_applied():
    sequence = OffsetSequence()
    assert sequence.decide(9, 10).apply
    assert sequence.decide(9, 3).apply  # held already: the processor skips it
    assert sequence.decide(-1, 0).apply


def test_a_record_past_missing_ones_seeks_back_and_waits_for_them():
    sequence = OffsetSequence()
    decision = sequence.decide(9, 40)
    assert (decision.apply, decision.seek_to, decision.hole) == (False, 10, None)
    # Records still on their way while the seek runs are not applied either.
    assert not sequence.decide(9, 41).apply and sequence.decide(9, 41).seek_to is None
    sequence.sought()
    assert sequence.decide(9, 10).apply
    assert sequence.decide(10, 11).apply


def test_records_dropped_around_a_rebalance_never_count_as_a_hole():
    sequence = OffsetSequence()
    for stale in range(40, 40 + 10 * HOLE_CONFIRMATIONS):
        decision = sequence.decide(9, stale)
        assert not decision.apply and decision.seek_to == 10 and decision.hole is None
        sequence.sought()
    assert sequence.decide(9, 10).apply


def test_a_delivery_repeated_right_after_a_seek_is_not_a_hole():
    sequence = OffsetSequence()
    assert sequence.decide(9, 40).seek_to == 10
    sequence.sought()
    assert sequence.decide(9, 40).seek_to == 10  # the same record once more
    sequence.sought()
    assert sequence.decide(9, 10).apply


def test_the_same_first_record_after_every_seek_is_a_hole_in_the_topic():
    sequence = OffsetSequence()
    for _ in range(HOLE_CONFIRMATIONS):
        assert sequence.decide(9, 40).seek_to == 10
        sequence.sought()
    decision = sequence.decide(9, 40)
    assert decision.apply and decision.hole == (10, 39) and decision.seek_to is None
    assert sequence.decide(40, 41).apply
