"""run_assistant_fleet's own logic, without a server: chunking, keys, and bad input refused before anything."""

from __future__ import annotations

import pytest

from prefect_openai_runs import OpenAICredentials
from prefect_openai_runs._fleet import split
from prefect_openai_runs.flows import run_assistant_fleet


def test_prompts_are_split_in_order_with_keys_distinct_across_chunks_and_fleets() -> None:
    chunks = split([f"p{i}" for i in range(25)], 10, "fleet-a")

    assert [c.prompts for c in chunks] == [[f"p{i}" for i in range(s, min(s + 10, 25))] for s in (0, 10, 20)]
    assert [c.start for c in chunks] == [0, 10, 20]
    keys = [k for c in chunks for k in c.idempotency_keys()]
    assert len(set(keys)) == 25 and all(len(k) == 32 for k in keys)
    assert chunks[1].idempotency_keys() == split([f"p{i}" for i in range(25)], 10, "fleet-a")[1].idempotency_keys()
    assert set(keys).isdisjoint(k for c in split(["x"] * 25, 10, "fleet-b") for k in c.idempotency_keys())


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"prompts": []}, "prompts must hold at least one prompt"),
        ({"chunk_size": 0}, "chunk_size must be at least 1"),
        ({"attempts": 0}, "attempts must be at least 1"),
        ({"lost_after_seconds": 0}, "lost_after_seconds and poll_seconds must be positive"),
        ({"credentials": OpenAICredentials(api_key="sk-test-not-saved")}, "save the credentials block"),
    ],
)
def test_bad_input_is_refused_before_any_chunk_is_sent(kwargs: dict[str, object], message: str) -> None:
    arguments: dict[str, object] = {"credentials": "openai", "assistant_id": "asst_abc", "prompts": ["a"], **kwargs}
    with pytest.raises(ValueError, match=message):
        run_assistant_fleet.fn(**arguments)
