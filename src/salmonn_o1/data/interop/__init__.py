"""Importers from and exporters to other fine-tuning tools' dataset formats (docs/data.md).

    import_records(path, "llamafactory" | "ms-swift" | "video-salmonn2") -> [Item] or [pair record]
    write_imported(records, out.jsonl)
    export_file(pairs.jsonl | label.jsonl, "trl-preference" | "trl-stepwise", out.jsonl)
"""

from salmonn_o1.data.interop.exporters import EXPORT_FORMATS, export_file, export_records
from salmonn_o1.data.interop.formats import FORMATS, SEPARATE_AUDIO
from salmonn_o1.data.interop.importers import CONVERSATION, import_records, write_imported

IMPORT_FORMATS = FORMATS

__all__ = ["CONVERSATION", "EXPORT_FORMATS", "IMPORT_FORMATS", "SEPARATE_AUDIO", "export_file", "export_records",
           "import_records", "write_imported"]
