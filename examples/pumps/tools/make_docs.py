#!/usr/bin/env python3
"""Builds the PDF and DOCX documents of the Hydra pack from their plain-text sources.

    python3 examples/pumps/tools/make_docs.py [--out DIR]   (from anywhere; standard library only)

Sources live in tools/src/*.txt in a small markup:
    % key: value        document metadata (title, author, subject, footer, output)
    # / ## / ###        headings of level 1..3 (DOCX styles Heading1..3, PDF bold sizes)
    - text              bullet item
    | a | b | c |       table row; the first row of a block is the header
    ---page---          explicit page break (PDF only; chapters start on a new page)
    blank line          ends a paragraph; consecutive text lines are joined into one

The output is byte-for-byte reproducible: no time stamps in the PDF, fixed dates in the zip.
The PDF writer is deliberately minimal: PDF 1.4, one uncompressed content stream per page, the
standard Helvetica / Helvetica-Bold fonts in WinAnsiEncoding (so text must be cp1252), an
Info dictionary with the title, and a footer "Page n of N" on every page, because citations of
the extracted text name the page.
"""
import os
import re
import sys
import zipfile
from xml.sax.saxutils import escape

HERE = os.path.dirname(os.path.abspath(__file__))
DOCS = os.path.join(os.path.dirname(HERE), "docs")

# ---- source parsing --------------------------------------------------------------------------


def parse(path):
    """Returns (meta, blocks): blocks are ('h', level, text), ('p', text), ('li', text), ('ol', text),
    ('table', rows), ('page',)."""
    meta, blocks, para, table = {}, [], [], []

    def flush():
        if para:
            blocks.append(("p", " ".join(para)))
            para.clear()
        if table:
            blocks.append(("table", [r[:] for r in table]))
            table.clear()

    with open(path, encoding="utf-8") as f:
        for lineno, raw in enumerate(f, 1):
            line = raw.rstrip("\n").rstrip()
            if line.startswith("% "):
                k, _, v = line[2:].partition(":")
                meta[k.strip()] = v.strip()
            elif not line:
                flush()
            elif line == "---page---":
                flush()
                blocks.append(("page",))
            elif line.startswith("#"):
                flush()
                level = len(line) - len(line.lstrip("#"))
                if level > 3 or line[level:level + 1] != " ":
                    sys.exit(f"{path}:{lineno}: bad heading")
                blocks.append(("h", level, line[level + 1:].strip()))
            elif line.startswith("- "):
                flush()
                blocks.append(("li", line[2:].strip()))
            elif re.match(r"\d+\. ", line):
                flush()
                blocks.append(("ol", line.strip()))   # numbered step: the number stays in the text
            elif line.startswith("|"):
                if para:
                    flush()
                cells = [c.strip() for c in line.strip("|").split("|")]
                if table and len(cells) != len(table[0]):
                    sys.exit(f"{path}:{lineno}: table row has {len(cells)} cells, header {len(table[0])}")
                table.append(cells)
            elif blocks and blocks[-1][0] in ("li", "ol") and raw.startswith("  ") and not para:
                blocks[-1] = (blocks[-1][0], blocks[-1][1] + " " + line.strip())   # continued item
            else:
                if table:
                    flush()
                para.append(line.strip())
    flush()
    for k in ("title", "output"):
        if k not in meta:
            sys.exit(f"{path}: missing '% {k}:'")
    return meta, blocks


# ---- PDF -------------------------------------------------------------------------------------

# Advance widths (1/1000 em) of Helvetica and Helvetica-Bold for the printable ASCII range
# 32..126, from the standard Adobe font metrics; other cp1252 characters use 556 (regular) and
# 611 (bold), the width of a digit / lowercase letter, which is close for the few we use (° ² ³ ±).
HELV = [278, 278, 355, 556, 556, 889, 667, 191, 333, 333, 389, 584, 278, 333, 278, 278,
        556, 556, 556, 556, 556, 556, 556, 556, 556, 556, 278, 278, 584, 584, 584, 556,
        1015, 667, 667, 722, 722, 667, 611, 778, 722, 278, 500, 667, 556, 833, 722, 778,
        667, 778, 722, 667, 611, 722, 667, 944, 667, 667, 611, 278, 278, 278, 469, 556,
        333, 556, 556, 500, 556, 556, 278, 556, 556, 222, 222, 500, 222, 833, 556, 556,
        556, 556, 333, 500, 278, 556, 500, 722, 500, 500, 500, 334, 260, 334, 584]
HELV_BOLD = [278, 333, 474, 556, 556, 889, 722, 238, 333, 333, 389, 584, 278, 333, 278, 278,
             556, 556, 556, 556, 556, 556, 556, 556, 556, 556, 333, 333, 584, 584, 584, 611,
             975, 722, 722, 722, 722, 667, 611, 778, 722, 278, 556, 722, 611, 833, 722, 778,
             667, 778, 722, 667, 611, 722, 667, 944, 667, 667, 611, 333, 278, 333, 584, 556,
             333, 556, 611, 556, 611, 556, 333, 611, 611, 278, 278, 556, 278, 889, 611, 611,
             611, 611, 389, 556, 333, 611, 556, 778, 556, 556, 500, 389, 280, 389, 584]

PAGE_W, PAGE_H = 595, 842          # A4 in points
MARGIN_X, TOP, BOTTOM = 62, 780, 80
BODY = 10.0
LEADING = 1.35
HEADING_SIZE = {1: 16.0, 2: 12.5, 3: 11.0}


def text_width(s, size, bold=False):
    table = HELV_BOLD if bold else HELV
    dflt = 611 if bold else 556
    return sum(table[ord(c) - 32] if 32 <= ord(c) <= 126 else dflt for c in s) * size / 1000.0


def wrap(text, width, size, bold=False):
    words, lines, cur = text.split(), [], ""
    for w in words:
        cand = w if not cur else cur + " " + w
        if text_width(cand, size, bold) <= width or not cur:
            cur = cand
        else:
            lines.append(cur)
            cur = w
    if cur:
        lines.append(cur)
    return lines or [""]


def pdf_string(s):
    try:
        b = s.encode("cp1252")
    except UnicodeEncodeError as e:
        sys.exit(f"PDF text is not cp1252 (WinAnsiEncoding): {s!r}: {e}")
    return b"(" + b.replace(b"\\", b"\\\\").replace(b"(", b"\\(").replace(b")", b"\\)") + b")"


class Layout:
    """Places text lines on pages top-down; each page is a list of (font, size, x, y, text)."""

    def __init__(self):
        self.pages, self.y = [[]], TOP

    def new_page(self):
        if self.pages[-1]:
            self.pages.append([])
        self.y = TOP

    def need(self, height):
        """Starts a new page unless `height` points still fit; True when it did."""
        if self.y - height < BOTTOM:
            self.new_page()
            return True
        return False

    def line(self, text, size, bold=False, x=MARGIN_X):
        self.pages[-1].append(("F2" if bold else "F1", size, x, self.y, text))

    def rule(self, y):
        """A thin horizontal line across the text width (graphics only: no effect on the text)."""
        self.pages[-1].append(("rule", 0, MARGIN_X, y, ""))


def layout_pdf(meta, blocks):
    L = Layout()
    width = PAGE_W - 2 * MARGIN_X
    for b in blocks:
        kind = b[0]
        if kind == "page":
            L.new_page()
        elif kind == "h":
            size = HEADING_SIZE[b[1]]
            lines = wrap(b[2], width, size, True)
            # keep a heading together with at least three lines of what follows
            L.need(size * 0.8 + len(lines) * size * LEADING + 3 * BODY * LEADING)
            L.y -= size * 0.8
            for ln in lines:
                L.y -= size * LEADING
                L.line(ln, size, True)
            L.y -= 3
        elif kind in ("p", "li", "ol"):
            indent = 14 if kind in ("li", "ol") else 0
            lines = wrap(b[1], width - indent, BODY)
            L.y -= BODY * 0.5
            for i, ln in enumerate(lines):
                L.need(BODY * LEADING)
                L.y -= BODY * LEADING
                if kind == "li" and i == 0:
                    L.line("\u2022", BODY, False, MARGIN_X + 3)
                L.line(ln, BODY, False, MARGIN_X + indent)
        elif kind == "table":
            # Table rows are drawn as one line of text each, cells separated by " | ". Cells
            # placed in aligned columns look nicer but poppler (the extractor phiforge uses)
            # glues cells that are far apart into one word ("H-15015 %"), which would break
            # retrieval; a separator glyph with normal word spacing extracts cleanly.
            L.y -= BODY * 0.5
            L.need(2 * BODY * LEADING + 6)
            L.rule(L.y)
            for i, r in enumerate(b[1]):
                bold = i == 0
                lines = wrap(" | ".join(r), width - 14, BODY, bold)
                if L.need(len(lines) * BODY * LEADING + 3):
                    L.rule(L.y)            # the table continues on a new page
                for k, ln in enumerate(lines):
                    L.y -= BODY * LEADING
                    L.line(ln, BODY, bold, MARGIN_X + (0 if k == 0 else 14))
                L.y -= 4
                if bold or i == len(b[1]) - 1:
                    L.rule(L.y - 1)        # rules above and below the header and below the last row
                    L.y -= 3
    return L.pages


def write_pdf(meta, blocks, out_path):
    pages = layout_pdf(meta, blocks)
    n = len(pages)
    footer = meta.get("footer", meta["title"])
    objs = []   # object bodies (bytes), object i+1

    def add(body):
        objs.append(body)
        return len(objs)

    catalog = add(b"")   # filled in below
    pages_id = add(b"")
    f1 = add(b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>")
    f2 = add(b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica-Bold /Encoding /WinAnsiEncoding >>")
    kids = []
    for pno, items in enumerate(pages, 1):
        ops = []
        for font, size, x, y, text in items:
            if font == "rule":
                ops.append(b"0.5 w %.2f %.2f m %.2f %.2f l S" % (x, y, PAGE_W - MARGIN_X, y))
                continue
            ops.append(b"BT /%s %.1f Tf %.2f %.2f Td %s Tj ET" % (font.encode(), size, x, y, pdf_string(text)))
        foot = f"{footer} \u00b7 Page {pno} of {n}"
        ops.append(b"BT /F1 8.0 Tf %.2f 40.00 Td %s Tj ET" % (MARGIN_X, pdf_string(foot)))
        stream = b"\n".join(ops) + b"\n"
        content = add(b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"endstream")
        kids.append(add(b"<< /Type /Page /Parent %d 0 R /MediaBox [0 0 %d %d] /Resources << /Font << /F1 %d 0 R /F2 %d 0 R >> >> /Contents %d 0 R >>"
                        % (pages_id, PAGE_W, PAGE_H, f1, f2, content)))
    objs[catalog - 1] = b"<< /Type /Catalog /Pages %d 0 R >>" % pages_id
    objs[pages_id - 1] = b"<< /Type /Pages /Kids [%s] /Count %d >>" % (b" ".join(b"%d 0 R" % k for k in kids), n)
    info = add(b"<< /Title %s /Author %s /Subject %s /Producer (phiforge examples/pumps/tools/make_docs.py) >>"
               % (pdf_string(meta["title"]), pdf_string(meta.get("author", "")), pdf_string(meta.get("subject", ""))))

    out = bytearray(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for i, body in enumerate(objs, 1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % i + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objs) + 1)
    for off in offsets:
        out += b"%010d 00000 n \n" % off
    out += b"trailer\n<< /Size %d /Root %d 0 R /Info %d 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objs) + 1, catalog, info, xref)
    with open(out_path, "wb") as f:
        f.write(out)
    return n


# ---- DOCX ------------------------------------------------------------------------------------

W_NS = 'xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main"'


def run(text, bold=False):
    rpr = "<w:rPr><w:b/></w:rPr>" if bold else ""
    return f'<w:r>{rpr}<w:t xml:space="preserve">{escape(text)}</w:t></w:r>'


def para(text, style=None, bold=False):
    ppr = f'<w:pPr><w:pStyle w:val="{style}"/></w:pPr>' if style else ""
    return f"<w:p>{ppr}{run(text, bold)}</w:p>"


def docx_body(blocks):
    out = []
    for b in blocks:
        if b[0] == "h":
            out.append(para(b[2], f"Heading{b[1]}"))
        elif b[0] == "p":
            out.append(para(b[1]))
        elif b[0] == "li":
            out.append(para(b[1], "ListBullet"))
        elif b[0] == "ol":
            out.append(para(b[1], "ListNumber"))
        elif b[0] == "table":
            rows = []
            for i, r in enumerate(b[1]):
                cells = "".join(f"<w:tc><w:tcPr><w:tcW w:w=\"0\" w:type=\"auto\"/></w:tcPr>{para(c, bold=(i == 0))}</w:tc>" for c in r)
                rows.append(f"<w:tr>{cells}</w:tr>")
            out.append('<w:tbl><w:tblPr><w:tblStyle w:val="TableGrid"/><w:tblW w:w="0" w:type="auto"/></w:tblPr>'
                       + "".join(rows) + "</w:tbl>")
        # explicit page breaks are a PDF matter; DOCX pages are the word processor's business
    return "".join(out)


STYLES = f"""<?xml version="1.0" encoding="UTF-8" standalone="yes"?>
<w:styles {W_NS}>
<w:style w:type="paragraph" w:default="1" w:styleId="Normal"><w:name w:val="Normal"/><w:rPr><w:rFonts w:ascii="Calibri" w:hAnsi="Calibri"/><w:sz w:val="22"/></w:rPr></w:style>
<w:style w:type="paragraph" w:styleId="Title"><w:name w:val="Title"/><w:basedOn w:val="Normal"/><w:rPr><w:b/><w:sz w:val="40"/></w:rPr></w:style>
<w:style w:type="paragraph" w:styleId="Heading1"><w:name w:val="heading 1"/><w:basedOn w:val="Normal"/><w:pPr><w:outlineLvl w:val="0"/></w:pPr><w:rPr><w:b/><w:sz w:val="32"/></w:rPr></w:style>
<w:style w:type="paragraph" w:styleId="Heading2"><w:name w:val="heading 2"/><w:basedOn w:val="Normal"/><w:pPr><w:outlineLvl w:val="1"/></w:pPr><w:rPr><w:b/><w:sz w:val="26"/></w:rPr></w:style>
<w:style w:type="paragraph" w:styleId="Heading3"><w:name w:val="heading 3"/><w:basedOn w:val="Normal"/><w:pPr><w:outlineLvl w:val="2"/></w:pPr><w:rPr><w:b/><w:i/><w:sz w:val="22"/></w:rPr></w:style>
<w:style w:type="paragraph" w:styleId="ListBullet"><w:name w:val="List Bullet"/><w:basedOn w:val="Normal"/><w:pPr><w:ind w:left="360"/></w:pPr></w:style>
<w:style w:type="paragraph" w:styleId="ListNumber"><w:name w:val="List Number"/><w:basedOn w:val="Normal"/><w:pPr><w:ind w:left="360"/></w:pPr></w:style>
<w:style w:type="table" w:styleId="TableGrid"><w:name w:val="Table Grid"/><w:tblPr><w:tblBorders><w:top w:val="single" w:sz="4"/><w:left w:val="single" w:sz="4"/><w:bottom w:val="single" w:sz="4"/><w:right w:val="single" w:sz="4"/><w:insideH w:val="single" w:sz="4"/><w:insideV w:val="single" w:sz="4"/></w:tblBorders></w:tblPr></w:style>
</w:styles>
"""

CONTENT_TYPES = """<?xml version="1.0" encoding="UTF-8" standalone="yes"?>
<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">
<Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/>
<Default Extension="xml" ContentType="application/xml"/>
<Override PartName="/word/document.xml" ContentType="application/vnd.openxmlformats-officedocument.wordprocessingml.document.main+xml"/>
<Override PartName="/word/styles.xml" ContentType="application/vnd.openxmlformats-officedocument.wordprocessingml.styles+xml"/>
<Override PartName="/docProps/core.xml" ContentType="application/vnd.openxmlformats-package.core-properties+xml"/>
</Types>
"""

ROOT_RELS = """<?xml version="1.0" encoding="UTF-8" standalone="yes"?>
<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">
<Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/officeDocument" Target="word/document.xml"/>
<Relationship Id="rId2" Type="http://schemas.openxmlformats.org/package/2006/relationships/metadata/core-properties" Target="docProps/core.xml"/>
</Relationships>
"""

DOC_RELS = """<?xml version="1.0" encoding="UTF-8" standalone="yes"?>
<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">
<Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/styles" Target="styles.xml"/>
</Relationships>
"""


def write_docx(meta, blocks, out_path):
    document = (f'<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n<w:document {W_NS}><w:body>'
                + para(meta["title"], "Title") + docx_body(blocks)
                + '<w:sectPr><w:pgSz w:w="11906" w:h="16838"/></w:sectPr></w:body></w:document>\n')
    core = ('<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
            '<cp:coreProperties xmlns:cp="http://schemas.openxmlformats.org/package/2006/metadata/core-properties" '
            'xmlns:dc="http://purl.org/dc/elements/1.1/">'
            f'<dc:title>{escape(meta["title"])}</dc:title><dc:creator>{escape(meta.get("author", ""))}</dc:creator>'
            f'<dc:subject>{escape(meta.get("subject", ""))}</dc:subject></cp:coreProperties>\n')
    parts = [("[Content_Types].xml", CONTENT_TYPES), ("_rels/.rels", ROOT_RELS),
             ("word/_rels/document.xml.rels", DOC_RELS), ("word/document.xml", document),
             ("word/styles.xml", STYLES), ("docProps/core.xml", core)]
    with zipfile.ZipFile(out_path, "w") as z:
        for name, data in parts:
            info = zipfile.ZipInfo(name, date_time=(2024, 1, 1, 0, 0, 0))   # fixed: reproducible bytes
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            z.writestr(info, data.encode("utf-8"))


def main():
    out_dir = DOCS
    if len(sys.argv) == 3 and sys.argv[1] == "--out":   # tests regenerate into a temporary folder
        out_dir = sys.argv[2]
    elif len(sys.argv) != 1:
        sys.exit("usage: make_docs.py [--out DIR]")
    src_dir = os.path.join(HERE, "src")
    for name in sorted(os.listdir(src_dir)):
        if not name.endswith(".txt"):
            continue
        meta, blocks = parse(os.path.join(src_dir, name))
        out = os.path.join(out_dir, meta["output"])
        if out.endswith(".pdf"):
            n = write_pdf(meta, blocks, out)
            print(f"{os.path.relpath(out)}: {n} pages")
        elif out.endswith(".docx"):
            write_docx(meta, blocks, out)
            print(f"{os.path.relpath(out)}: written")
        else:
            sys.exit(f"{name}: output must be .pdf or .docx")


if __name__ == "__main__":
    main()
