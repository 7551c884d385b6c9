"""Under concurrent clients every request is answered once and correctly, in shared batches; a client
that leaves mid-stream does not hold up the others."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from serving import MODEL, TOKENS, user_message

CLIENTS, REQUESTS_EACH = 16, 4
GREEDY = {"max_tokens": TOKENS["max_new_tokens"], "temperature": 0}


@pytest.fixture(scope="module")
def expected(reference, counting_clip, sound_clip):
    return {clip.path: reference(clip.path, clip.question, clip.options, **TOKENS)
            for clip in (counting_clip, sound_clip)}


def ask(client, clip) -> tuple[str, str | None, str]:
    response = client.chat.completions.create(model=MODEL, messages=user_message(clip),
                                              extra_body={"options": clip.options}, **GREEDY)
    message = response.choices[0].message
    return response.id, message.content, (message.model_extra or {}).get("reasoning_content")


def test_concurrent_clients_are_answered_once_each_and_correctly(server, counting_clip, sound_clip, expected):
    before = server.health()

    def one_client(number: int) -> list[tuple]:
        client = server.client()
        clips = [counting_clip, sound_clip] if number % 2 else [sound_clip, counting_clip]
        return [(clips[i % 2], *ask(client, clips[i % 2])) for i in range(REQUESTS_EACH)]

    with ThreadPoolExecutor(CLIENTS) as pool:
        answered = [row for rows in pool.map(one_client, range(CLIENTS)) for row in rows]
    assert len(answered) == CLIENTS * REQUESTS_EACH
    assert len({response_id for _, response_id, _, _ in answered}) == len(answered), "a response id repeats"
    for clip, _, content, reasoning in answered:
        assert content == expected[clip.path].answer_text
        assert reasoning is not None and reasoning.splitlines()[0] == expected[clip.path].steps[0]
    after = server.health()
    assert after["requests"] - before["requests"] == len(answered), "the model answered each request once"
    assert after["largest_batch"] > 1, "concurrent requests shared a batch"
    assert after["batches"] - before["batches"] < len(answered)
    assert after["failed"] == 0 and after["waiting"] == 0


def test_a_client_leaving_mid_stream_does_not_stall_the_others(server, counting_clip, expected):
    before = server.health()
    client = server.client()
    # Sampling this hot (seeded: it runs alone and repeatably) rarely ends a turn early: left to run,
    # its 3000 tokens would hold the model for far longer than the others below may take.
    leaving = client.chat.completions.create(model=MODEL, messages=user_message(counting_clip), stream=True,
                                             temperature=5.0, seed=0, max_tokens=3000)
    next(iter(leaving))  # the stream has started
    leaving.close()
    started = time.monotonic()
    with ThreadPoolExecutor(4) as pool:
        answers = list(pool.map(lambda _: ask(server.client(), counting_clip), range(4)))
    took = time.monotonic() - started
    assert [content for _, content, _ in answers] == [expected[counting_clip.path].answer_text] * 4
    assert took < 30, f"the others waited {took:.0f} s behind a client that had left"
    deadline = time.monotonic() + 10
    while True:
        health = server.health()
        dropped = (health["cancelled"] - before["cancelled"]) + (health["abandoned"] - before["abandoned"])
        if dropped >= 1 or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert dropped >= 1, "the request of the client that left was dropped or its batch abandoned"
    assert health["status"] == "ok" and health["failed"] == 0
