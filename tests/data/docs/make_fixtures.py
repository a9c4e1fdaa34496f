#!/usr/bin/env python3
"""Writes the extraction test fixtures in this directory (committed; CI does not run this).
Only the Python standard library is used: the PDFs are written by hand, the DOCX files with
zipfile. Run from anywhere: python3 tests/data/docs/make_fixtures.py"""
import io, os, zipfile, zlib

HERE = os.path.dirname(os.path.abspath(__file__))


def put(name, data):
    if isinstance(data, str):
        data = data.encode("utf-8")
    with open(os.path.join(HERE, name), "wb") as f:
        f.write(data)


# ---------------------------------------------------------------- Markdown
put("manual.md", """Pump Manual
===========

Intro paragraph with *emphasis*, **strong**, `code_span`, and a [link](http://x.y "t").

## Maintenance

Check the seals_weekly and 2 * 3 items.

### Filters

Replace the ![filter icon](f.png) filter every 500 hours.

```sh
# not a heading
make filter
```

| Part | Interval |
|------|---------:|
| Filter | 500 h |
| Seal | 1000 h |

Safety
------

> Wear gloves.

- item one
- item two

# Appendix #

<!-- hidden comment -->
[ref]: http://example.com
Done &amp; dusted.
""")

# ---------------------------------------------------------------- HTML
put("page.html", """<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>Pump Guide &amp; FAQ</title>
<style>body { color: red }</style><script>var x = "<p>nope</p>";</script></head>
<body><header><a href="/">Home</a> | Menu</header>
<nav><ul><li>Link A</li><li>Link B</li></ul></nav>
<main><h1>Pump Guide</h1>
<p>The pump&nbsp;moves <b>water</b> &lt;fast&gt; \u2014 caf\u00e9.</p>
<h2>Maintenance</h2><p>Check   the
   seals.</p><div>Second block</div>
<h3>Filters</h3>
<table><tr><th>Part</th><th>Interval</th></tr><tr><td>Filter</td><td>500 h</td></tr></table>
<pre>line 1
  line 2</pre>
<noscript>Enable JS</noscript><template><p>tmpl</p></template><p hidden>secret</p>
<h2>Safety</h2><ul><li>Gloves</li><li>Goggles</li></ul>
</main><footer>Copyright 2024</footer></body></html>
""")
put("latin1.html", b'<html><head><meta charset="iso-8859-1"><title>Caf\xe9</title></head>'
                   b'<body><p>Cr\xe8me br\xfbl\xe9e</p></body></html>')

# ---------------------------------------------------------------- text
put("notes.txt", "First paragraph line one.\nLine two.\n\n\nSecond paragraph.\n")
put("latin1.txt", b"Caf\xe9 cr\xe8me\n")
put("garbage.md", bytes((i * 131 + 7) % 256 for i in range(600)))

# ---------------------------------------------------------------- CSV / JSON / JSONL
put("parts.csv", 'id,name,notes\r\n1,Filter,"Replace every 500 h, or sooner"\r\n'
                 '2,"Seal ""B""","Line one\r\nLine two"\r\n\r\n3,Pump,\r\n')
put("broken.csv", 'a,b\n1,"never closed\n2,3\n')
put("records.json", """[
  {"id": "p1", "title": "Pump", "text": "The pump moves water.\\n\\nIt needs power.", "tags": ["a", "b"]},
  {"id": 2, "title": "Valve", "content": "Valves stop flow."},
  {"title": "No id here", "text": "skipped"}
]
""")
put("faq.json", """{"title": "FAQ", "version": 3, "items": [
  {"q": "How often?", "a": "Every 500 h"},
  {"title": "Filters", "text": "Change them."}
]}
""")
put("broken.json", '{"items": [1, 2,\n  {"a": x}]}\n')
put("corpus.jsonl", "\n".join([
    '{"_id": "d1", "title": "Filters", "text": "Replace filters every 500 hours.\\n\\nUse OEM parts.", "metadata": {"src": "manual"}}',
    '{"id": 7, "text": "Seven."}',
    '{"_id": "d3", "title": "Broken" "text": "missing comma"}',
    '',
    '{"_id": "d4", "title": "No text"}',
    '{"_id": "d1", "text": "duplicate"}',
    '["not", "an", "object"]',
    '{"_id": "d5", "title": "Title only", "text": ""}',
]) + "\n")


# ---------------------------------------------------------------- PDF
def pdf(pages, info=None, encrypt=False):
    """A minimal PDF: one Helvetica content stream per page (a list of lines each)."""
    objs = []  # bodies, object i+1

    def add(body):
        objs.append(body)
        return len(objs)

    font = add(b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>")
    pages_id = len(objs) + 1 + 2 * len(pages)  # after the page and content objects
    kids = []
    for lines in pages:
        ops = [b"BT /F1 12 Tf 72 720 Td 16 TL"]
        for ln in lines:
            esc = ln.encode("latin-1").replace(b"\\", b"\\\\").replace(b"(", b"\\(").replace(b")", b"\\)")
            ops.append(b"(" + esc + b") Tj T*")
        ops.append(b"ET")
        stream = b"\n".join(ops) if lines else b""
        content = add(b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"\nendstream")
        kids.append(add(b"<< /Type /Page /Parent %d 0 R /MediaBox [0 0 612 792] /Contents %d 0 R "
                        b"/Resources << /Font << /F1 %d 0 R >> >> >>" % (pages_id, content, font)))
    assert add(b"<< /Type /Pages /Kids [" + b" ".join(b"%d 0 R" % k for k in kids) +
               b"] /Count %d >>" % len(kids)) == pages_id
    catalog = add(b"<< /Type /Catalog /Pages %d 0 R >>" % pages_id)
    trailer = b"/Root %d 0 R" % catalog
    if info:
        trailer += b" /Info %d 0 R" % add(b"<< " + b" ".join(b"/%s (%s)" % (k.encode(), v.encode("latin-1"))
                                                             for k, v in info.items()) + b" >>")
    if encrypt:  # a user password is required; O/U need not be genuine for a reader to refuse
        enc = add(b"<< /Filter /Standard /V 1 /R 2 /O <" + b"41" * 32 + b"> /U <" + b"42" * 32 + b"> /P -44 >>")
        trailer += b" /Encrypt %d 0 R /ID [<00112233445566778899AABBCCDDEEFF> <00112233445566778899AABBCCDDEEFF>]" % enc
    out = io.BytesIO()
    out.write(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
    offs = []
    for i, body in enumerate(objs):
        offs.append(out.tell())
        out.write(b"%d 0 obj\n" % (i + 1) + body + b"\nendobj\n")
    xref = out.tell()
    out.write(b"xref\n0 %d\n0000000000 65535 f \n" % (len(objs) + 1))
    for o in offs:
        out.write(b"%010d 00000 n \n" % o)
    out.write(b"trailer\n<< /Size %d " % (len(objs) + 1) + trailer + b" >>\nstartxref\n%d\n%%%%EOF\n" % xref)
    return out.getvalue()


manual_pdf = pdf([["Safety first.", "Wear gloves at all times."],
                  ["Maintenance: replace the filter", "every 500 hours."],
                  ["Appendix: parts list."]],
                 info={"Title": "Pump Manual PDF", "Author": "ACME Docs"})
put("manual.pdf", manual_pdf)
put("blank.pdf", pdf([[]]))
put("encrypted.pdf", pdf([["secret"]], encrypt=True))
put("fake.pdf", "This is not a PDF at all, just text named .pdf\n")
put("truncated.pdf", manual_pdf[:60])

# ---------------------------------------------------------------- DOCX
W = 'xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main"'


def para(text, style=None):
    ppr = '<w:pPr><w:pStyle w:val="%s"/></w:pPr>' % style if style else ""
    return "<w:p>%s<w:r><w:t xml:space=\"preserve\">%s</w:t></w:r></w:p>" % (ppr, text)


def cell(text):
    return "<w:tc><w:tcPr/>%s</w:tc>" % para(text)


document = ('<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n<w:document %s><w:body>' % W
            + para("Pump Service Report", "Title")
            + para("Maintenance", "Ueberschrift1")
            + '<w:p><w:r><w:t xml:space="preserve">Replace the </w:t></w:r><w:r><w:rPr><w:b/></w:rPr>'
              '<w:t>filter</w:t></w:r><w:r><w:t xml:space="preserve"> every 500 hours.</w:t></w:r>'
              '<w:del><w:r><w:delText>OLD TEXT</w:delText></w:r></w:del></w:p>'
            + para("Filters", "Heading2")
            + '<w:p><w:r><w:t>Part</w:t><w:tab/><w:t>A-1</w:t><w:br/><w:t>second line</w:t></w:r></w:p>'
            + "<w:tbl><w:tblPr/><w:tr>" + cell("Part") + cell("Interval") + "</w:tr><w:tr>"
            + cell("Filter") + cell("500 h") + "</w:tr></w:tbl>"
            + para("Safety", "Ueberschrift1")
            + para("Wear gloves &amp; goggles.")
            + "<w:sectPr/></w:body></w:document>")
styles = ('<?xml version="1.0" encoding="UTF-8"?><w:styles %s>'
          '<w:style w:type="paragraph" w:styleId="Title"><w:name w:val="Title"/></w:style>'
          '<w:style w:type="paragraph" w:styleId="Ueberschrift1"><w:name w:val="heading 1"/></w:style>'
          '<w:style w:type="paragraph" w:styleId="Heading2"><w:name w:val="heading 2"/></w:style>'
          '<w:style w:type="paragraph" w:styleId="Normal"><w:name w:val="Normal"/></w:style>'
          '</w:styles>' % W)
core = ('<?xml version="1.0" encoding="UTF-8"?><cp:coreProperties '
        'xmlns:cp="http://schemas.openxmlformats.org/package/2006/metadata/core-properties" '
        'xmlns:dc="http://purl.org/dc/elements/1.1/"><dc:title>Service Report 2024</dc:title>'
        '<dc:creator>ACME Docs</dc:creator></cp:coreProperties>')
types = ('<?xml version="1.0" encoding="UTF-8"?><Types xmlns="http://schemas.openxmlformats.org/package/2006/'
         'content-types"><Default Extension="xml" ContentType="application/xml"/>'
         '<Override PartName="/word/document.xml" ContentType="application/vnd.openxmlformats-officedocument.'
         'wordprocessingml.document.main+xml"/></Types>')


def docx(parts):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        for name, body in parts:
            zi = zipfile.ZipInfo(name, date_time=(2024, 1, 1, 0, 0, 0))
            zi.compress_type = zipfile.ZIP_DEFLATED
            z.writestr(zi, body)
    return buf.getvalue()


report = docx([("[Content_Types].xml", types), ("word/document.xml", document), ("word/styles.xml", styles),
               ("docProps/core.xml", core)])
put("report.docx", report)
put("truncated.docx", report[: len(report) // 2])
put("notword.docx", docx([("hello.txt", "just a zip")]))
put("badxml.docx", docx([("word/document.xml", '<w:document %s><w:body><w:p>' % W)]))

# A bomb that claims 2 GiB uncompressed for word/document.xml (headers forged; the data is tiny).
bomb = bytearray(docx([("word/document.xml", document)]))
for sig, off in ((b"PK\x03\x04", 22), (b"PK\x01\x02", 24)):
    i = bomb.find(sig)
    bomb[i + off:i + off + 4] = (0x7FFFFFFF).to_bytes(4, "little")
put("bomb.docx", bytes(bomb))
print("fixtures written to", HERE)
