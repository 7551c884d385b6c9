"""`salmonn-o1 data import|export`: other fine-tuning tools' dataset formats to and from ours."""

from __future__ import annotations

import argparse

from salmonn_o1.data.interop import EXPORT_FORMATS, IMPORT_FORMATS, SEPARATE_AUDIO


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "data", help="import LLaMA-Factory / ms-swift / video-SALMONN 2 data; export pDPO data to TRL formats",
        description="Convert datasets between other tools' formats and ours (docs/data.md, 'Importing and "
        "exporting').")
    actions = parser.add_subparsers(dest="action", required=True)
    importer = actions.add_parser(
        "import", help="records of another tool -> our items (SFT) or pair records (preference data)",
        description="Read IN (a JSON list, JSONL, parquet, or a folder written by datasets' save_to_disk) "
        "in format F and write OUT as JSONL: items for `train sft` (data.sources: [{path: OUT}]), or, for "
        "preference records, pairs for `train pdpo` (pdpo.pairs: OUT).")
    importer.add_argument("--format", required=True, choices=IMPORT_FORMATS)
    importer.add_argument("input", metavar="IN")
    importer.add_argument("output", metavar="OUT")
    importer.add_argument("--media-dir", default=None,
                          help="folder relative media paths resolve against (default: IN's folder)")
    importer.add_argument("--separate-audio", choices=SEPARATE_AUDIO, default="ignore",
                          help="a record with a video and a separate audio file: use the video with its own "
                          "track (ignore, default) or refuse it (error)")
    importer.set_defaults(func=run_import)
    exporter = actions.add_parser(
        "export", help="our pDPO pairs / label records -> TRL preference / stepwise-supervision JSONL",
        description="trl-preference reads a pairs.jsonl (pdpo stage 4 or imported); trl-stepwise reads a "
        "label.jsonl (pdpo stage 3). OUT is JSONL, read by datasets' load_dataset('json').")
    exporter.add_argument("--format", required=True, choices=EXPORT_FORMATS)
    exporter.add_argument("input", metavar="IN")
    exporter.add_argument("output", metavar="OUT")
    exporter.add_argument("--threshold", type=float, default=0.0,
                          help="trl-stepwise: a step is labelled good when its value (fraction of completions "
                          "reaching the answer) is above this (default 0)")
    exporter.set_defaults(func=run_export)


def run_import(args: argparse.Namespace) -> int:
    from salmonn_o1.data.interop import import_records, write_imported
    from salmonn_o1.data.schema import Item

    records = import_records(args.input, args.format, media_dir=args.media_dir, separate_audio=args.separate_audio)
    write_imported(records, args.output)
    kind = "items (SFT)" if isinstance(records[0], Item) else "preference pairs"
    print(f"wrote {len(records)} {kind} to {args.output}")
    return 0


def run_export(args: argparse.Namespace) -> int:
    from salmonn_o1.data.interop import export_file

    rows = export_file(args.input, args.format, args.output, threshold=args.threshold)
    print(f"wrote {rows} {args.format} rows to {args.output}")
    return 0
