"""PDF and .docx files -> their text, as an `Item` (pypdf, python-docx; each optional)."""

from __future__ import annotations

from pathlib import Path

from detector.core.errors import first_line
from detector.io.decoding import Item, size, text_item

MAX_DOCUMENT = 64 * 1024 * 1024  # a .docx or PDF is parsed whole: larger ones are refused, not read
_PDF_MAGIC, _ZIP_MAGIC = b"%PDF-", b"PK\x03\x04"


def document_kind(path: Path, head: bytes) -> str | None:
    """'pdf' or 'docx' when the file is one (by its first bytes; a .docx is a zip named .docx)."""
    if head.startswith(_PDF_MAGIC):
        return "pdf"
    if head.startswith(_ZIP_MAGIC) and path.suffix.lower() in (".docx", ".docm", ".dotx"):
        return "docx"
    return None


def _pdf_text(path: Path) -> tuple[str, str]:
    try:
        from pypdf import PdfReader
    except ImportError as err:
        raise ValueError("a PDF: install pypdf to read it") from err
    try:
        reader = PdfReader(str(path))
        if reader.is_encrypted and not reader.decrypt(""):
            raise ValueError("an encrypted PDF: decrypt it first")
        pages = [page.extract_text() or "" for page in reader.pages]
    except ValueError:
        raise
    except Exception as err:  # pypdf raises many types on a damaged file
        why = first_line(err, 100)
        raise ValueError(f"a PDF that cannot be read ({why})") from err
    text = "\n\n".join(p.strip() for p in pages if p.strip())
    if not text:
        raise ValueError(f"a PDF with no extractable text ({len(pages)} page(s); a scanned PDF "
                         "needs OCR first)")
    return text, f"text extracted from a PDF of {len(pages)} page(s)"


def _docx_text(path: Path) -> tuple[str, str]:
    try:
        import docx
    except ImportError as err:
        raise ValueError("a .docx file: install python-docx to read it") from err
    try:
        document = docx.Document(str(path))
    except Exception as err:  # python-docx raises zipfile/lxml/KeyError types for a broken file
        raise ValueError(f"a .docx file that cannot be read ({type(err).__name__})") from err
    paragraphs = [p.text for p in document.paragraphs]
    for table in document.tables:  # text in tables is text too
        paragraphs += [cell.text for row in table.rows for cell in row.cells]
    text = "\n\n".join(p.strip() for p in paragraphs if p.strip())
    if not text:
        raise ValueError("a .docx file with no text (only images or empty)")
    return text, "text extracted from a .docx file"


def read_document(path: Path, kind: str, total: int) -> Item:
    """A PDF or .docx file (`kind`, of `total` bytes) as an item: its text, or why it cannot be read."""
    source = str(path)
    if total > MAX_DOCUMENT:
        return Item(source, error=f"a {kind} of {size(total)}; documents over {size(MAX_DOCUMENT)} are not read")
    try:
        text, note = _pdf_text(path) if kind == "pdf" else _docx_text(path)
    except ValueError as err:
        return Item(source, error=str(err))
    return text_item(text, source, note=note)
