"""What comes in and goes out: decoding, files, documents, tables, JSONL, the one record, reports, outputs.

Its public names are exported here and imported on first use, so importing one module of the package
costs no more than that module.
"""

from detector.core.exports import lazy_exports

__getattr__, __dir__, __all__ = lazy_exports(__name__, {
    "Item": "decoding",
    "nothing_to_score": "decoding",
    "text_item": "decoding",
    "document_context": "html_report",
    "render_fragment": "html_report",
    "templates": "html_report",
    "write_html": "html_report",
    "check_distinct": "outputs",
    "check_output": "outputs",
    "open_new": "outputs",
    "prepare_resume": "outputs",
    "TABLE_COLUMNS": "record",
    "clashing_fields": "record",
    "openapi_model": "record",
    "spark_fields": "record",
    "table_frame": "record",
    "table_row": "record",
    "source_keys": "sources",
    "looks_like_path": "tables",
    "read_table": "tables",
})
