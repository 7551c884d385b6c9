"""Bad requests get a 4xx in OpenAI's error shape naming the problem, and the server keeps serving."""

from __future__ import annotations

import base64
import json

import numpy as np
import openai
import pytest

from serving import MAX_REQUEST_MB, MODEL, user_message


def body(**fields) -> dict:
    return {"model": MODEL, "messages": [{"role": "user", "content": "What colour is the screen?"}],
            "max_tokens": 4, **fields}


def error_of(response, status: int) -> dict:
    """The OpenAI-shaped error of a response that must have `status`."""
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert "Traceback" not in error["message"] and 'File "' not in error["message"]
    return error


def video(url: str, **extra) -> list[dict]:
    return [{"role": "user", "content": [{"type": "video_url", "video_url": {"url": url, **extra}},
                                         {"type": "text", "text": "What is shown?"}]}]


def data_url(payload: bytes, mime: str = "video/mp4") -> str:
    return f"data:{mime};base64,{base64.b64encode(payload).decode()}"


@pytest.mark.parametrize(("request_body", "message", "param"), [
    ('{"model": "salmonn-o1-mini", "messages": [', "not valid JSON", None),
    ("[1, 2]", "must be a JSON object", None),
    (body(max_token=5), "unknown field `max_token`", "max_token"),
    (body(messages=video("data:video/mp4;base64,AAAA", fps=2)), "unknown field `messages[0].content[0].video_url.fps`",
     "messages[0].content[0].video_url.fps"),
    (body(messages=[{"role": "user", "content": [{"type": "video", "url": "x"}]}]), "'video'", "messages[0].content[0]"),
    ({"messages": body()["messages"]}, "`model` is required", "model"),
    (body(temperature=-1), "`temperature`: Input should be greater than or equal to 0", "temperature"),
    (body(stop=["a", "b", "c", "d", "e"]), "at most 4 stop strings", "stop"),
    (body(logprobs=True), "`logprobs` is not supported", "logprobs"),
    (body(n=99), "at most 16 choices", "n"),
    (body(messages=[{"role": "system", "content": "Be terse."}, *body()["messages"]]), "system messages are not",
     "messages[0].role"),
    (body(messages=[*body()["messages"], {"role": "assistant", "content": "Red."}, *body()["messages"]]),
     "assistant messages are not", "messages[1].role"),
    (body(messages=[{"role": "user", "content": [{"type": "video_url", "video_url": {"url": "data:,x"}}] * 2}]),
     "a second video", "messages[0].content[1]"),
    (body(messages=[{"role": "user", "content": "  "}]), "text is empty", "messages[0].content"),
    (body(options=["only one"]), "`options` has 1 entry", "options"),
])
def test_malformed_requests_are_400s_naming_the_field(server, request_body, message, param):
    error = error_of(server.post(request_body), 400)
    assert message in error["message"]
    assert error["param"] == param and error["type"] == "invalid_request_error"


@pytest.mark.parametrize(("url", "message", "code"), [
    (data_url(b"not a video at all " * 64), "unreadable or unsupported container", "invalid_media"),
    ("data:video/mp4;base64,@@@not-base64@@@", "not valid base64", "invalid_url"),
    ("data:video/mp4,plain-text", "only base64 data: URLs", "invalid_url"),
    ("https://example.com/clip.mp4", "fetches nothing from the network", "invalid_url"),
])
def test_undecodable_media_is_a_400_that_names_the_item(server, url, message, code):
    error = error_of(server.post(body(messages=video(url))), 400)
    assert message in error["message"] and error["code"] == code
    assert error["message"].startswith("messages[0].content[0].video_url")
    assert "salmonn-o1-serve-" not in error["message"], "a temporary file's name leaked"


def test_missing_and_disallowed_files_are_refused(server, tmp_path):
    missing = error_of(server.post(body(messages=video((server.media_dir / "nothing.mp4").as_uri()))), 400)
    assert "no such file" in missing["message"]
    secret = tmp_path / "secret.mp4"
    secret.write_bytes(b"outside the served folder")
    for url in [secret.as_uri(), "file:///etc/passwd", f"file://{server.media_dir}/../{secret.parent.name}/secret.mp4"]:
        refused = error_of(server.post(body(messages=video(url))), 400)
        assert refused["code"] == "file_url_refused" and "outside the folder" in refused["message"], url
    link = server.media_dir / "link.mp4"
    link.symlink_to(secret)
    through_link = error_of(server.post(body(messages=video(link.as_uri()))), 400)
    assert through_link["code"] == "file_url_refused", "a symlink out of the folder is followed, then refused"


def test_an_oversize_request_is_a_413(server):
    payload = data_url(b"\0" * (MAX_REQUEST_MB << 20))
    error = error_of(server.post(body(messages=video(payload))), 413)
    assert "--max-request-mb" in error["message"]

    def chunked():  # no Content-Length: the limit is enforced on the bytes read
        yield b'{"model": "salmonn-o1-mini", "messages": "'
        for _ in range(4 * MAX_REQUEST_MB + 1):
            yield b"a" * (256 << 10)
        yield b'"}'

    assert error_of(server.post(chunked()), 413)["code"] == "request_too_large"


def test_an_overlong_video_is_refused_before_decoding(server, media_dir):
    from salmonn_o1.data.synthetic.video_io import write_mp4

    path = write_mp4(media_dir / "long.mp4", np.zeros((40, 16, 16, 3), np.uint8), fps=1)
    error = error_of(server.post(body(messages=video(path.as_uri()))), 400)
    assert error["code"] == "media_too_long" and "40.0 s" in error["message"]


def test_the_api_key_is_required_on_v1_but_not_on_health(server, counting_clip):
    from openai import OpenAI

    wrong = OpenAI(base_url=f"{server.base_url}/v1", api_key="wrong", max_retries=0)
    with pytest.raises(openai.AuthenticationError) as raised:
        wrong.chat.completions.create(model=MODEL, messages=user_message(counting_clip), max_tokens=4)
    assert raised.value.status_code == 401 and "API key" in raised.value.message
    error = error_of(server.post(body(), key=None), 401)
    assert error["type"] == "authentication_error"
    assert server.health()["status"] == "ok"


def test_an_unknown_model_is_a_404(server):
    with pytest.raises(openai.NotFoundError, match="does not exist"):
        server.client().chat.completions.create(model="gpt-4o", messages=body()["messages"], max_tokens=4)


def test_the_server_keeps_serving_after_bad_requests(server, counting_clip):
    server.post(b"{{{")
    server.post(body(messages=video(data_url(b"junk" * 50))))
    response = server.client().chat.completions.create(model=MODEL, messages=user_message(counting_clip),
                                                       max_tokens=4, temperature=0)
    assert response.choices[0].message.content is not None
    health = server.health()
    assert health["status"] == "ok" and health["failed"] == 0
    assert json.loads(server.post(b"{{{").text)["error"]["code"] == "invalid_json"
