"""`salmonn-o1 datagen`: the paper's reasoning-data pipeline against any OpenAI-compatible endpoint.

Per video: sampled frames (image_url data URLs) and the audio (input_audio, or a transcript) go to
a generator model with an editable prompt asking for a reasoning-intensive multiple-choice
question with numbered steps in a fixed JSON shape; a second call (possibly another endpoint)
checks that the answer is supported and the steps consistent; a failed item is regenerated up
to K times. The accepted items are the toolkit's item schema with steps, so `train sft` reads
the output directly; everything is appended through `records.RecordWriter` and resumes.
"""
