"""Compare two `salmonn-o1 infer` predictions files item by item (timings ignored).

The check a refactor runs before and after: the same model on the same items must give the
same records (reasoning, answer text, extracted answer, token counts). Exit 0 when every item
in both files is identical, 1 otherwise (the first differing records are printed).

    python scripts/compare_predictions.py before.jsonl after.jsonl
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

TIMING_KEYS = ("seconds",)


def read_predictions(path: Path) -> dict[str, dict]:
    records = {}
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as error:
            raise SystemExit(f"{path}:{number}: not JSON ({error})") from None
        for key in TIMING_KEYS:
            record.pop(key, None)
        records[str(record["id"])] = record
    return records


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("before", type=Path)
    parser.add_argument("after", type=Path)
    parser.add_argument("--show", type=int, default=3, help="differing items to print")
    args = parser.parse_args(argv)
    before, after = read_predictions(args.before), read_predictions(args.after)
    common = sorted(set(before) & set(after))
    differ = [i for i in common if before[i] != after[i]]
    answers = sum(before[i].get("prediction") != after[i].get("prediction") for i in common)
    print(f"{len(common)} items in both ({len(before)} before, {len(after)} after); "
          f"{len(differ)} records differ; answers differ on {answers}")
    for item in differ[:args.show]:
        print(f"--- {item}\nbefore: {json.dumps(before[item])}\nafter:  {json.dumps(after[item])}")
    return 1 if differ or not common else 0


if __name__ == "__main__":
    sys.exit(main())
