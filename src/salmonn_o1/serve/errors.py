"""The one error a request can end in, in OpenAI's shape: {"error": {"message", "type", "param", "code"}}.

Clients (the `openai` package among them) turn the status into an exception type and show the
message, so the message names the input and what is wrong with it, and never carries a traceback.
"""

from __future__ import annotations

from salmonn_o1.serve.protocol import ErrorBody, ErrorResponse

# OpenAI's error types by HTTP status
ERROR_TYPES = {400: "invalid_request_error", 401: "authentication_error", 404: "invalid_request_error",
               413: "invalid_request_error", 500: "server_error", 503: "server_error"}


class APIError(Exception):
    """A request the server answers with `status` and an OpenAI-shaped error body."""

    def __init__(self, message: str, status: int = 400, param: str | None = None, code: str | None = None):
        super().__init__(message)
        self.message, self.status, self.param, self.code = message, status, param, code

    def body(self) -> dict:
        error = ErrorBody(message=self.message, type=ERROR_TYPES.get(self.status, "invalid_request_error"),
                          param=self.param, code=self.code)
        return ErrorResponse(error=error).model_dump()
