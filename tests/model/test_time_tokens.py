"""Text time tokens: each frame is preceded by its time written as the steps write it."""

from __future__ import annotations

import torch

from salmonn_o1.checkpoints import load_model_and_processor
from salmonn_o1.config import tiny_config
from salmonn_o1.media_types import DecodedMedia
from salmonn_o1.model.interleave import interleave_plan, media_token_count, spec_for
from salmonn_o1.tokenizer import load_tokenizer, time_text_ids


def test_the_table_holds_the_tokens_of_each_time_as_written_inside_a_step():
    tokenizer = load_tokenizer()
    table = time_text_ids(tokenizer, max_seconds=12.0, step=0.5)
    assert len(table) == 25 and len({len(row) for row in table}) == 1
    in_step = tokenizer("from 3.5 s", add_special_tokens=False).input_ids
    row = [i for i in table[7] if i >= 0]
    assert in_step[-1 - len(row):-1] == row  # the same ids as "3.5" inside a sentence


def test_each_frame_gets_k_time_tokens_placed_before_it():
    table = [[10, 11, -1], [12, 13, 14]]
    config = tiny_config(time_tokens=True, time_token_mode="text", time_text_ids=table)
    plain = tiny_config()
    times = (0.0, 0.5, 1.0)
    spec = spec_for(config, "video", num_frames=3, num_chunks=1, duration=1.5, frame_times=times)
    base = spec_for(plain, "video", num_frames=3, num_chunks=1, duration=1.5, frame_times=times)
    assert media_token_count(spec) == media_token_count(base) + 3 * 3
    plan = interleave_plan(spec).tolist()
    time_offset = 3 * config.video_tokens_per_frame + spec.num_audio_tokens
    assert plan[:3] == [time_offset, time_offset + 1, time_offset + 2]  # frame 0's time tokens lead


def test_the_model_embeds_the_time_text_with_its_own_token_embeddings():
    model, processor = load_model_and_processor("tiny")
    tokenizer = processor.tokenizer
    model.config.time_tokens, model.config.time_token_mode = True, "text"
    model.config.time_text_ids = time_text_ids(tokenizer, 2.0)
    embeds = model._time_token_embeddings(torch.tensor([0.5, 1.5, 9.0]))
    k = len(model.config.time_text_ids[0])
    table = model.config.time_text_ids
    for f, row in enumerate([table[1], table[3], table[4]]):  # 9.0 s lies past the table: its last row
        for j, token in enumerate(row):
            expected = model.get_input_embeddings().weight[token] if token >= 0 else torch.zeros(model.config.hidden_size)
            assert torch.allclose(embeds[f * k + j], expected)

    # the table tensor is built once, and again only when the config gets a new table
    first = model._time_text_table(torch.device("cpu"))
    assert model._time_text_table(torch.device("cpu")) is first
    model.config.time_text_ids = time_text_ids(tokenizer, 4.0)
    assert model._time_text_table(torch.device("cpu")).shape[0] == 9 != first.shape[0]


def test_a_text_time_model_runs_forward_through_the_processor():
    model, processor = load_model_and_processor("mini")
    assert model.config.time_token_mode == "text" and model.time_embedding is None
    frames = torch.zeros(4, 64, 64, 3, dtype=torch.uint8).numpy()
    media = DecodedMedia(frames=frames, frame_times=torch.arange(4).numpy() / 2.0,
                         audio=torch.zeros(32000).numpy(), duration=2.0, has_audio=True, kind="video", source="t")
    features = processor.media_features(media)
    sample = processor.encode([{"role": "user", "content": "hi"}, {"role": "assistant", "content": "ok"}], features,
                              add_generation_prompt=False)
    out = model(**processor.collate([sample]))
    assert torch.isfinite(out.loss)
