"""Task batch streams: a saved position resumes on any number of processes."""

from __future__ import annotations

from datasets import Dataset

from mtlm.training.streams import TaskBatchStream


class RowIds:
    """A task whose batches are the ids of their rows."""

    def collate(self, rows, pad_token_id):
        return [row["row"] for row in rows]


def stream(replicas: int, rank: int) -> TaskBatchStream:
    features = Dataset.from_dict(
        {"input_ids": [[1] * (1 + row % 7) for row in range(40)], "row": list(range(40))}
    )
    return TaskBatchStream(RowIds(), features, 2, 0, 0, 4, replicas, rank)


def test_a_position_saved_by_two_processes_continues_the_epoch_on_one():
    pair = [stream(2, rank) for rank in (0, 1)]
    taken = [[process.next_batch() for _ in range(3)] for process in pair]
    alone = stream(1, 0)
    epoch = alone.order.epoch(0)
    # Each process took every second batch of the epoch: together, its first six.
    assert sorted(sum(taken, [])) == sorted(epoch[:6])

    alone.load_state_dict(pair[0].state_dict())
    assert [alone.next_batch() for _ in range(2)] == epoch[6:8]
    assert alone.state_dict() == {"epoch": 0, "position": 8, "replicas": 1}

    # Back on two processes, each takes its own share of what is left.
    for rank, process in enumerate(stream(2, rank) for rank in (0, 1)):
        process.load_state_dict(alone.state_dict())
        assert process.next_batch() == epoch[8 + rank]
