"""`python -m salmonn_o1.integrations.lmms_eval --include-path`: the folder to pass lmms-eval's --include_path."""

from __future__ import annotations

import argparse

from salmonn_o1.integrations.lmms_eval import TASKS_DIR


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m salmonn_o1.integrations.lmms_eval",
        description="Where salmonn-o1's lmms-eval task YAMLs (avr_synth, rivabench) are installed.",
    )
    parser.add_argument("--include-path", action="store_true",
                        help="print the task folder, for `lmms-eval --include_path`")
    args = parser.parse_args(argv)
    if not args.include_path:
        parser.print_help()
        return 2
    print(TASKS_DIR)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
