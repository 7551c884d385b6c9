"""`salmonn-o1 serve`'s own arguments: a bad value is one usage error (exit 2) before any model loads."""

from __future__ import annotations

import pytest

from salmonn_o1.cli import main


@pytest.mark.parametrize(("argv", "message"), [
    (["--port", "70000"], "must be <= 65535"),
    (["--max-video-seconds", "0"], "must be > 0"),
    (["--max-batch-size", "0"], "must be >= 1"),
    (["--batch-wait-ms", "-5"], "must be a finite number >= 0"),
    (["--threads", "zero"], "expected an integer"),
    (["--allowed-local-media-path", "/no/such/folder"], "not a folder"),
])
def test_bad_arguments_exit_2_with_one_error_line(argv, message, capsys):
    try:
        status = main(["serve", *argv])
    except SystemExit as stop:
        status = stop.code
    err = capsys.readouterr().err
    assert status == 2 and message in err and "Traceback" not in err
    assert len([line for line in err.splitlines() if "error:" in line]) == 1
