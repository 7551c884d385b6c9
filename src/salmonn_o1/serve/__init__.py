"""`salmonn-o1 serve`: the model behind OpenAI's chat completions API, batching concurrent requests.

    app          FastAPI routes, error shapes, the API key check
    plan         a chat request read as one question about one media input
    media_urls   data: and file:// URLs to the model's features (cached by content)
    batching     the queue and the one thread that owns the model
    text_streams turn-1 tokens to the streamed reasoning steps and answer
    protocol     the request and response models (pydantic)

It sits above the inference layer (it calls `SalmonnO1Pipeline.ask_batch`) and beside the commands.
"""
