"""A real OpenAI-compatible HTTP server on 127.0.0.1 that answers chat completions from a script.

It records every request body, so tests can see what the pipeline sent (frames, audio, prompts,
which model), and answers either from a queue of scripted replies (malformed ones included) or,
with no queue, with a valid question or an accepting check, after `delay` seconds.
"""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

GOOD_QUESTION = {"question": "What happens on screen when the tone rises?",
                 "options": ["It turns red", "It turns blue", "It goes dark", "Nothing changes"],
                 "answer": "B", "steps": ["1. The tone rises at 1.5 s.", "2. At 1.5 s the frame is blue."]}
ACCEPT = {"supported": True, "consistent": True, "reason": "The blue frame coincides with the higher tone."}
REJECT = {"supported": False, "consistent": True, "reason": "Option A is also seen."}


def is_check(body: dict[str, Any]) -> bool:
    texts = [p.get("text", "") for p in body["messages"][0]["content"] if p.get("type") == "text"]
    return any("checking a generated" in t for t in texts)


class ScriptedServer:
    def __init__(self, replies: list[str] | None = None, delay: float = 0.0):
        self.replies = list(replies) if replies is not None else None
        self.delay = delay
        self.requests: list[dict[str, Any]] = []
        self.in_flight = 0
        self.max_in_flight = 0  # the most requests answered at once
        self.lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # quiet
                pass

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with server.lock:
                    server.requests.append(body)
                    server.in_flight += 1
                    server.max_in_flight = max(server.max_in_flight, server.in_flight)
                    if server.replies is not None:
                        text = server.replies.pop(0) if server.replies else "out of script"
                    else:
                        text = json.dumps(ACCEPT if is_check(body) else GOOD_QUESTION)
                time.sleep(server.delay)
                with server.lock:
                    server.in_flight -= 1
                reply = {"id": "chatcmpl-1", "object": "chat.completion", "created": 0, "model": body["model"],
                         "choices": [{"index": 0, "finish_reason": "stop",
                                      "message": {"role": "assistant", "content": text}}],
                         "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}}
                data = json.dumps(reply).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
