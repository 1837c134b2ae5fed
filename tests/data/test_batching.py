"""Dynamic padding and the length-grouped batch order."""

from __future__ import annotations

import numpy as np
import torch

from mtlm.data.batching import LengthGroupedBatches, pad_features


def test_pad_features_pads_each_field_with_its_value() -> None:
    features = [
        {"input_ids": [2, 7, 3], "attention_mask": [1, 1, 1], "labels": [-100, 4, -100]},
        {"input_ids": [2, 3], "attention_mask": [1, 1], "labels": [-100, -100]},
        {"input_ids": [2, 8, 9, 3], "attention_mask": [1, 1, 1, 1], "labels": [-100, 1, 2, -100]},
    ]
    batch = pad_features(features, pad_token_id=5)
    assert batch["input_ids"].tolist() == [[2, 7, 3, 5], [2, 3, 5, 5], [2, 8, 9, 3]]
    assert batch["attention_mask"].tolist() == [[1, 1, 1, 0], [1, 1, 0, 0], [1, 1, 1, 1]]
    assert batch["labels"].tolist() == [
        [-100, 4, -100, -100],
        [-100, -100, -100, -100],
        [-100, 1, 2, -100],
    ]
    assert all(tensor.dtype == torch.long for tensor in batch.values())


def test_pad_features_scalar_fields_keep_their_type() -> None:
    features = [
        {"input_ids": [1], "labels": 0.5, "cls": 2},
        {"input_ids": [1, 2], "labels": -1.0, "cls": 0},
    ]
    batch = pad_features(features, pad_token_id=0)
    assert batch["labels"].dtype == torch.float32
    assert batch["labels"].tolist() == [0.5, -1.0]
    assert batch["cls"].dtype == torch.long
    assert batch["cls"].tolist() == [2, 0]


def varied_lengths(count: int = 1000, seed: int = 0) -> list[int]:
    return np.random.default_rng(seed).integers(1, 200, size=count).tolist()


def test_every_index_exactly_once_per_epoch() -> None:
    lengths = varied_lengths(1003)
    sampler = LengthGroupedBatches(lengths, batch_size=16, seed=1, chunk_batches=10)
    for epoch in range(3):
        batches = sampler.epoch(epoch)
        flat = [index for batch in batches for index in batch]
        assert sorted(flat) == list(range(len(lengths)))
        assert all(1 <= len(batch) <= 16 for batch in batches)


def test_order_differs_across_epochs_and_is_deterministic_for_a_seed() -> None:
    lengths = varied_lengths(500)
    first = LengthGroupedBatches(lengths, batch_size=8, seed=3, chunk_batches=5)
    same = LengthGroupedBatches(lengths, batch_size=8, seed=3, chunk_batches=5)
    other = LengthGroupedBatches(lengths, batch_size=8, seed=4, chunk_batches=5)
    assert first.epoch(0) == same.epoch(0)
    assert first.epoch(2) == same.epoch(2)
    assert first.epoch(0) != first.epoch(1)
    assert first.epoch(0) != other.epoch(0)


def padding_fraction(batches: list[list[int]], lengths: list[int]) -> float:
    padded = sum(max(lengths[i] for i in batch) * len(batch) for batch in batches)
    return 1.0 - sum(lengths) / padded


def test_grouping_lengths_cuts_padding() -> None:
    lengths = varied_lengths(2000)
    batch_size = 16
    grouped = LengthGroupedBatches(lengths, batch_size=batch_size, seed=0, chunk_batches=50)
    order = np.random.default_rng(0).permutation(len(lengths)).tolist()
    random_batches = [order[i : i + batch_size] for i in range(0, len(order), batch_size)]
    grouped_fraction = padding_fraction(grouped.epoch(0), lengths)
    random_fraction = padding_fraction(random_batches, lengths)
    assert random_fraction > 0.3
    assert grouped_fraction < random_fraction / 5


def test_batches_within_a_chunk_are_not_in_length_order() -> None:
    lengths = varied_lengths(800)
    batches = LengthGroupedBatches(lengths, batch_size=8, seed=0, chunk_batches=100).epoch(0)
    longest = [max(lengths[i] for i in batch) for batch in batches]
    assert longest != sorted(longest, reverse=True)


def test_two_replicas_get_disjoint_batches_of_equal_count() -> None:
    for count in (1000, 1024):  # 63 batches of at most 16 (odd), then 64 (even)
        lengths = varied_lengths(count)
        ranks = [
            LengthGroupedBatches(lengths, 16, seed=5, chunk_batches=4, num_replicas=2, rank=rank)
            for rank in (0, 1)
        ]
        for epoch in (0, 1):
            zero, one = (sampler.epoch(epoch) for sampler in ranks)
            assert len(zero) == len(one) > 0
            seen_zero = {index for batch in zero for index in batch}
            seen_one = {index for batch in one for index in batch}
            assert not seen_zero & seen_one
            whole = LengthGroupedBatches(lengths, 16, seed=5, chunk_batches=4).epoch(epoch)
            dropped = len(whole) - len(zero) - len(one)
            assert dropped == len(whole) % 2
            assert len(seen_zero | seen_one) >= count - 16 * dropped


def test_more_replicas_than_batches_still_gives_every_rank_a_batch() -> None:
    lengths = [3, 5, 7]
    for rank in range(4):
        sampler = LengthGroupedBatches(lengths, 2, seed=0, num_replicas=4, rank=rank)
        assert len(sampler.epoch(0)) == 1
