"""The ledger's model seconds are the time a backend spent answering, for a backend that answers a whole
batch at once (transformers) as for one whose answers stream in (servers)."""

from __future__ import annotations

import time

from referee.ledger import Ledger
from referee.models.base import Completion, Model, Sampling

CHATS = [[{"role": "user", "content": f"question {i}"}] for i in range(3)]


class Slow(Model):
    """Answers a batch after `delay` seconds, all at once (a list) or one by one ((position, answer) pairs, in
    the order they arrive, as the server backends do)."""

    spec = "slow"
    fingerprint = "slow-v1"

    def __init__(self, delay: float, stream: bool):
        super().__init__()
        self.delay, self.stream = delay, stream

    def _generate(self, requests):
        if self.stream:
            return self._one_by_one(requests)
        time.sleep(self.delay)
        return [Completion("answer", 3, 1, "stop") for _ in requests]

    def _one_by_one(self, requests):
        for position in reversed(range(len(requests))):
            time.sleep(self.delay / len(requests))
            yield position, Completion("answer", 3, 1, "stop")


def test_model_seconds_count_the_work_of_whole_batch_and_streaming_backends():
    for stream in (False, True):
        ledger = Ledger()
        with ledger.activate():
            Slow(0.3, stream).generate(CHATS, Sampling(max_new_tokens=4))
        totals = ledger.to_dict()["totals"]
        assert totals["calls"] == 3
        assert 0.3 <= totals["model_seconds"] < 3, (stream, totals)
