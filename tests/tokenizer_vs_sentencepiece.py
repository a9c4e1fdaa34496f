#!/usr/bin/env python3
"""Cross-checks phiforge's SentencePiece tokenizer against Google's sentencepiece library.

Needs Debian's python3-sentencepiece, so run it with /usr/bin/python3 (a pyenv python on PATH
does not see Debian's modules). Modes:

  gen CORPUS                     write the deterministic test corpus (varied scripts, code,
                                 whitespace runs, emoji, digits) used by tests/test_tokenizer.c
  dump MODEL CORPUS              print sentencepiece's ids of every line of CORPUS, one line each
                                 (tests/test_tokenizer.c compares them with pf_tokenize)
  bench MODEL GGUF CORPUS [BIN]  encode ~1 MB of corpus text, as one string and line by line, with
                                 sentencepiece and with `BIN tokenize --time` (default
                                 build/phiforge); checks the ids are identical and prints both
                                 speeds (encoding only, best of 3) and their ratio

Like for like: llama2-tokenizer.model's normalizer is "identity" with add_dummy_prefix on and
remove_extra_whitespaces off, so sentencepiece prefixes one "▁" and keeps every space, tab and
newline, exactly what llama.cpp's SPM path does with add_space_prefix (no BOS, no special-token
parsing). Lines are read as bytes and split on "\\n" only, so "\\r" stays inside a line.
"""
import random
import subprocess
import sys
import tempfile
import time


def load_sp(model):
    import sentencepiece as spm
    return spm.SentencePieceProcessor(model_file=model)


def read_lines(path):
    with open(path, "rb") as f:
        data = f.read().decode("utf-8")
    lines = data.split("\n")
    if lines and lines[-1] == "":
        lines.pop()  # the newline that ends the file does not start another line
    return lines


def dump(model, corpus):
    sp = load_sp(model)
    out = sys.stdout
    for line in read_lines(corpus):
        out.write(" ".join(str(i) for i in sp.encode(line)) + "\n")


def best_of(n, fn):
    best = 1e9
    for _ in range(n):
        t0 = time.perf_counter()
        res = fn()
        best = min(best, time.perf_counter() - t0)
    return best, res


def phiforge_ids(binary, gguf, path, lines):
    """Best MB/s of 3 runs (encoding time only, as `--time` reports it) and the ids."""
    cmd = [binary, "tokenize", "-m", gguf, "--no-bos", "--no-special", "--time", "-f", path] + (["--lines"] if lines else [])
    mbs, ids = 0.0, None
    for _ in range(3):
        r = subprocess.run(cmd, capture_output=True, text=True, check=True)
        mbs = max(mbs, float(r.stderr.split("=")[-1].split()[0]))
        ids = [[int(x) for x in line.split()] for line in r.stdout.split("\n")[:-1]]
    return mbs, ids


def bench(model, gguf, corpus, binary="build/phiforge"):
    """~1 MB of corpus text, encoded as one string and line by line, by both implementations."""
    sp = load_sp(model)
    lines, parts, size = read_lines(corpus), [], 0
    while size < 1_000_000:
        for line in lines:
            parts.append(line)
            size += len(line.encode("utf-8")) + 1
    text = "\n".join(parts)
    raw = text.encode("utf-8")
    ok = True
    with tempfile.NamedTemporaryFile(suffix=".txt") as f:
        f.write(raw)
        f.flush()
        for mode, lines_mode in (("one 1 MB string", False), ("line by line", True)):
            secs, ids = best_of(3, lambda: sp.encode(parts if lines_mode else text))
            sp_mbs = len(raw) / secs / 1e6
            pf_mbs, pf_ids = phiforge_ids(binary, gguf, f.name, lines_mode)
            same = pf_ids == (ids if lines_mode else [ids])
            ok = ok and same
            print(f"{mode}: {len(raw)} bytes; ids identical: {same}; sentencepiece {sp_mbs:.2f} MB/s, "
                  f"phiforge {pf_mbs:.2f} MB/s, ratio {pf_mbs / sp_mbs:.2f}x")
    return 0 if ok else 1


# ---- corpus ------------------------------------------------------------------------------------

WORDS = {
    "en": "the quick brown fox jumps over lazy dog we don't can't it's I'm you're they'll "
          "tokenizer model weights inference fine-tuning retrieval industry report quarterly revenue "
          "pipeline valve pressure maintenance schedule compliance audit contract clause liability".split(),
    "fr": "été déjà où garçon façon naïve cœur Noël français élève hôtel forêt âge crème brûlée "
          "l'économie d'après qu'il s'être".split(),
    "de": "Größe Straße über Mädchen schön Äpfel Öl Übung weiß Fußgängerübergang "
          "Donaudampfschifffahrtsgesellschaft".split(),
    "es": "niño año señor mañana corazón canción ¿qué? ¡hola! pingüino acción".split(),
    "vi": "Tiếng Việt người đường phố nước ăn uống cảm ơn xin chào".split(),
    "pl": "zażółć gęślą jaźń źdźbło łódź Kraków".split(),
    "ru": "Привет мир съешь же ещё этих мягких французских булок да выпей чаю Москва".split(),
    "uk": "Україна ґанок їжак є Київ".split(),
    "el": "Καλημέρα κόσμε ψυχή αλφάβητο Ελλάδα".split(),
    "ar": "مرحبا بالعالم اللغة العربية جميلة السلام عليكم كتاب مدرسة".split(),
    "he": "שלום עולם עברית ספר".split(),
    "fa": "سلام دنیا زبان فارسی".split(),
    "zh": "你好 世界 中文 分词器 模型 训练 数据 北京 上海 人工智能".split(),
    "ja": "こんにちは 世界 日本語 カタカナ ひらがな 東京 トークナイザー 漢字".split(),
    "ko": "안녕하세요 세계 한국어 서울 토크나이저".split(),
    "hi": "नमस्ते दुनिया हिन्दी भाषा".split(),
    "th": "สวัสดี ชาวโลก ภาษาไทย".split(),
    "ta": "வணக்கம் உலகம் தமிழ்".split(),
}
EMOJI = ["🦙", "😀", "🚀", "👍🏽", "👨‍👩‍👧‍👦", "🇫🇷", "❤️", "🤖", "🎉", "🙏", "☕", "🔥", "🏳️‍🌈", "🧑‍💻"]
CODE = [
    "int main(int argc, char **argv) { return 0; }",
    "\tfor (size_t i = 0; i < n; i++) sum += x[i] * y[i];",
    "    if x is None:\n",
    "def f(a, b=2, *args, **kw):\treturn {'a': a, \"b\": b}",
    "{\"key\": [1, 2.5, -3e-7, true, null], \"nested\": {\"k\": \"v\"}}",
    "#include <stdio.h>  // comment\t\t/* block */",
    "$ grep -rn 'TODO' src/ | wc -l && echo \"done\" >> log.txt",
    "SELECT id, name FROM users WHERE age >= 18 ORDER BY name DESC;",
    "<div class=\"x\">&nbsp;&lt;tag&gt;</div>",
    "x = a[i] << 3 | (b & 0xFF) ^ ~c; y -= 1; z **= 2; w //= 3",
    "fn main() -> Result<(), Box<dyn Error>> { println!(\"{:?}\", v); Ok(()) }",
    "</s> <s> <unk> <|user|> [INST] <<SYS>> literal special-looking text",
]
ODD = ["\u00a0", "\u3000", "\u200b", "\u200d", "\u2028", "e\u0301", "n\u0303", "\ufeff", "𝔘𝔫𝔦𝔠𝔬𝔡𝔢", "𝄞", "½",
       "ﬁ", "Ⅻ", "①", "™", "…", "—", "“quoted”", "«guillemets»", "‘single’", "\x0b", "\x0c", "\r", "\x7f", "\x01"]
BLOCKS = [(0x20, 0x7E), (0xA0, 0x24F), (0x370, 0x3FF), (0x400, 0x4FF), (0x590, 0x5FF), (0x600, 0x6FF),
          (0x900, 0x97F), (0xE00, 0xE7F), (0x1100, 0x11FF), (0x2000, 0x206F), (0x2190, 0x22FF), (0x2500, 0x257F),
          (0x3040, 0x30FF), (0x4E00, 0x9FFF), (0xAC00, 0xD7A3), (0xFF00, 0xFFEF), (0x1F300, 0x1FAFF),
          (0x10000, 0x1007F), (0x20000, 0x2A6DF)]


def gen_line(rng):
    kind = rng.randrange(10)
    if kind <= 2:  # sentences in one language, with punctuation and numbers
        lang = rng.choice(list(WORDS))
        ws = [rng.choice(WORDS[lang]) for _ in range(rng.randint(1, 14))]
        if rng.random() < 0.3:
            ws.insert(rng.randrange(len(ws) + 1), str(rng.randint(0, 10 ** rng.randint(1, 12))))
        sep = "" if lang in ("zh", "ja") and rng.random() < 0.5 else " "
        return sep.join(ws) + rng.choice([".", "!", "?", "", "。", "،", "...", ":"])
    if kind == 3:  # mixed scripts and emoji
        parts = []
        for _ in range(rng.randint(2, 8)):
            r = rng.random()
            if r < 0.3:
                parts.append(rng.choice(EMOJI))
            elif r < 0.4:
                parts.append(rng.choice(ODD))
            else:
                parts.append(rng.choice(WORDS[rng.choice(list(WORDS))]))
        return rng.choice([" ", "", "  ", "\t"]).join(parts)
    if kind == 4:
        return rng.choice(CODE).replace("\n", "")
    if kind == 5:  # whitespace runs
        ws = rng.choice([" ", "\t", "  ", "\t\t", " \t", "   "]) * rng.randint(1, 6)
        w = rng.choice(WORDS["en"])
        return rng.choice([ws + w, w + ws, ws, w + ws + w, ws + w + ws + w + ws])
    if kind == 6:  # numbers, dates, amounts
        return rng.choice([
            f"{rng.randint(0, 99999)}.{rng.randint(0, 999):03d}",
            f"{rng.randint(1990, 2030)}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}T12:34:56Z",
            f"+1 ({rng.randint(200, 999)}) {rng.randint(100, 999)}-{rng.randint(1000, 9999)}",
            f"0x{rng.getrandbits(32):08X} {rng.getrandbits(64)}",
            f"${rng.randint(1, 10**6):,}.{rng.randint(0, 99):02d} (€{rng.random() * 1000:.2f}, ¥{rng.randint(0, 10**7)})",
            "3" * rng.randint(1, 20),
        ])
    if kind == 7:  # punctuation runs
        return "".join(rng.choice("!?.,;:-_=+*/\\|()[]{}<>@#$%^&~`'\"") for _ in range(rng.randint(1, 30)))
    # random code points from assorted Unicode blocks
    out = []
    for _ in range(rng.randint(1, 25)):
        lo, hi = rng.choice(BLOCKS)
        out.append(chr(rng.randint(lo, hi)))
        if rng.random() < 0.2:
            out.append(" ")
    return "".join(out)


def gen(path, n=3000):
    rng = random.Random(20240603)
    lines = [gen_line(rng) for _ in range(n)]
    lines += ["", " ", "  ", "\t", "Hello world", " Hello world", "Hello, world!", "🦙.cpp"]
    with open(path, "wb") as f:
        for line in lines:
            assert "\n" not in line
            f.write(line.encode("utf-8") + b"\n")


def main(argv):
    if len(argv) >= 2 and argv[0] == "gen":
        gen(argv[1])
    elif len(argv) >= 3 and argv[0] == "dump":
        dump(argv[1], argv[2])
    elif len(argv) >= 4 and argv[0] == "bench":
        return bench(*argv[1:5])
    else:
        print(__doc__, file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
