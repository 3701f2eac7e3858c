#!/usr/bin/env python3
"""Reference token ids for the C++ WordPiece tokenizer test (tests/data/test_tokenizer.cpp).

DEV TOOLING ONLY: this script needs Hugging Face `transformers` (4.x, whose BertTokenizer
is the slow, pure-Python implementation) and is never run by the build or the tests. The
C++ test reads the JSON it wrote, committed under tests/data/text/.

    python3 -m venv /tmp/tokref && /tmp/tokref/bin/pip install "transformers<5"
    /tmp/tokref/bin/python tests/python/tokenizer_reference.py \
        --vocab tests/data/text/vocab-uncased.txt --out tests/data/text/tokenizer_reference.json

Every case is tokenized twice with the same vocabulary: `uncased` (do_lower_case=True,
accents stripped: the vocabulary's own setting) and `cased` (do_lower_case=False, no
accent stripping: exercises the cased code path, NFC and the absence of lower-casing).
Inputs are stored as UTF-8 bytes in hex, so cases with invalid UTF-8 survive JSON; the
reference decodes them with errors="replace" (the C++ decoder does the same).
If the fast (Rust) tokenizer from `tokenizers` is importable, it is compared as a second
reference and its disagreements are printed (not stored).
"""
import argparse
import json
import random
import sys

import transformers
from transformers import BertTokenizer


def hand_cases():
    """Hand-written sentences; bytes entries are deliberately invalid UTF-8."""
    s = [
        "",
        " ",
        "   \t\n  ",
        "Hello, world!",
        "hello world",
        "HELLO WORLD",
        "The quick brown fox jumps over the lazy dog.",
        "I can't believe it's not butter!",
        "Don't stop-believing... (really?!) [sic] {braces} <angle> \"quotes\" 'single'",
        "e-mail: john.doe@example.com, web: https://www.example.org/path?a=1&b=2#frag",
        "Prices: $5.99, €12,50, £3, ¥100 and 50% off; 3/4 cup; 1,000,000 people.",
        "Numbers 0 1 2 3 42 3.14159 2.718e-10 -17 +5 1st 2nd 3rd 4th 1990s 12:30pm",
        "Phone: +1 (555) 123-4567; ISBN 978-3-16-148410-0",
        "unaffable unbelievable antidisestablishmentarianism supercalifragilisticexpialidocious",
        "Café crème brûlée à la carte, naïve façade, jalapeño, Zoë, Ångström",
        "CAFÉ CRÈME BRÛLÉE À LA CARTE",
        "Müller, Straße, Größe, Übung, ÄÖÜ äöü ß ẞ",
        "Señor Muñoz, ¿dónde está la estación? ¡Olé!",
        "Łódź, Kraków, Gdańsk, Wrocław; zażółć gęślą jaźń",
        "Příliš žluťoučký kůň úpěl ďábelské ódy",
        "İstanbul, Iğdır, ışık, IŞIK, şehir, Çağ",
        "Tiếng Việt có dấu: Hà Nội, Thành phố Hồ Chí Minh, Nguyễn",
        "Ελληνικά: ΟΔΟΣ οδός, Σίσυφος ΣΊΣΥΦΟΣ, άλφα βήτα γάμμα",
        "ΣΑΣ ΣΑΣ. Σ ΑΣ, ΑΣ",
        "Русский текст: Привет, мир! ЁЛКА ёлка, Щука",
        "Українська: Київ, ЇЖАК, ґанок",
        "中文测试：你好，世界！今天天气很好。",
        "日本語のテキスト：東京は大きな都市です。カタカナ、ひらがな。",
        "한국어 텍스트: 안녕하세요, 세계! 대한민국",
        "Mixed 中文and English词语mixed together",
        "CJK ext B: 𠀀𠀁𪜀 compatibility: 豈更車 and 丽",
        "Emoji: 😀 😂 👍🏽 ❤️ 👨‍👩‍👧‍👦 🇫🇷 🎉🎉🎉",
        "I love pizza 🍕 and sushi 🍣!!",
        "Math: ∑ x² ≤ ∞, ∀x∈ℝ, √2 ≈ 1.414, α+β=γ, ½ ¾",
        "Arrows → ← ↑ ↓ ⇒ and bullets • · ‣ and dashes – — ‒ ―",
        "Quotes: “double” ‘single’ «guillemets» „low“ ‹single›",
        "Arabic: مرحبا بالعالم، كيف حالك؟",
        "Hebrew: שָׁלוֹם עוֹלָם",
        "Hindi: नमस्ते दुनिया, यह एक परीक्षण है।",
        "Thai: สวัสดีชาวโลก ภาษาไทย",
        "Fullwidth: ＡＢＣ ａｂｃ １２３ ！？，",
        "Ligatures: ﬁ ﬂ ﬀ ﬃ; Roman numerals Ⅻ ⅻ; circled Ⓐ ⓑ",
        "Signs: Å (angstrom) K (kelvin) Ω (ohm) ℃ ™ © ®",
        "Decomposed: e\u0301 E\u0301 a\u0300 n\u0303 o\u0308 A\u030a u\u0308ber",
        "Stacked marks: a\u0301\u0302\u0303 q\u0307\u0323 e\u0323\u0302 \u0301alone",
        "Zero width: foo\u200bbar zwj\u200dnon\u200cjoiner soft\u00adhyphen BOM\ufeffhere",
        "No-break\u00a0space, thin\u2009space, ideographic\u3000space, em\u2003space",
        "Line\u2028separator and paragraph\u2029separator",
        "Controls: a\x00b c\x01d e\x07f g\x1bh i\x7fj k\x85l",
        "Tabs\tand\nnewlines\r\nand\x0bvertical\x0cform feed",
        "Private use: \ue000\uf8ff and unassigned: \u0378 \U000e0001 tag",
        "Replacement char: a\ufffdb",
        "Special tokens: [CLS] hello [SEP] world [MASK] [PAD] [UNK]",
        "hello[SEP]world[MASK]",
        "lowercase specials: [cls] [sep] [mask]",
        "Partial: [CLS [SEP]] [[MASK]]",
        "Code: int main() { return a[i] + b->c * (d / e) % f; } // comment",
        "Python: def f(x): return x**2 if x > 0 else -x  # note",
        "Path C:\\Users\\test\\file.txt and /usr/local/bin",
        "Hashtags #NLP #DeepLearning @user_name ~tilde ^caret `backtick` |pipe|",
        "ALL CAPS SENTENCE WITH NUMBERS 123 AND SYMBOLS !@#$%^&*()",
        "a",
        "A",
        ".",
        "...",
        "!!!???",
        "a.b.c.d",
        "don't won't shouldn't y'all",
        "Mr. Smith went to Washington D.C. on Jan. 5th, 2021.",
        "The U.S.A. and the U.K. signed the treaty.",
        "state-of-the-art, well-known, twenty-one",
        "Hyphenated—em dash—and en–dash",
        "snake_case_identifier and camelCaseIdentifier and PascalCase",
        "Repeated letters: aaaaaaaaaaaaaaaa bbbbbbbbbbbbbbb loooooooooooong",
        "x" * 99,
        "y" * 100,
        "z" * 101,
        "w" * 250 + " short",
        "pneumonoultramicroscopicsilicovolcanoconiosis" * 2,
        "pneumonoultramicroscopicsilicovolcanoconiosis" * 3,
        "ab" * 50,
        "ab" * 50 + "c",
        "é" * 100,
        "é" * 101,
        "中" * 120,
        "unaffable" * 11,
        "Token with trailing spaces    ",
        "    leading spaces",
        "multiple     internal      spaces",
        "Bücher über Bücher: Die Größe der Straßenbahn",
        "Les élèves étudient à l'école; où est-il? Ça va.",
        "Português: ação, coração, não, São Paulo",
        "Dansk/Norsk: æble, Øre, Ål, smørrebrød",
        "Íslenska: Þórður, Ðoð, æðarfugl",
        "Română: ș ț Ș Ț (comma) vs ş ţ (cedilla)",
        "Magyar: őrült űrhajó, Árvíztűrő tükörfúrógép",
        "Lietuvių: ąčęėįšųūž; Latviešu: āčēģīķļņšūž",
        "Hrvatski: č ć đ š ž Č Ć Đ Š Ž, Dž dž ǅ ǆ Ǆ",
        "Esperanto: ĉ ĝ ĥ ĵ ŝ ŭ Ĉ Ĝ Ĥ Ĵ Ŝ Ŭ",
        "Latin Extended-B: ƀ Ɓ Ƃ ǎ Ǎ ǐ ǒ ǔ ǖ ǘ ǚ ǜ Ǻ ǻ Ǿ ǿ ȁ Ȃ",
        "Latin Extended Additional: Ḁ ḁ Ḃ ḃ Ẁ ẁ Ẽ ẽ Ỳ ỳ ẞ",
        "IPA: ˈfəʊnɛtɪk ʃ ʒ θ ð ŋ ɲ ʔ",
        "Cyrillic extended: Ѐ Ѝ ѐ ѝ Ӂ ӂ Ӑ ӑ",
        "Armenian: Բարեւ աշխարհ; Georgian: გამარჯობა",
        "Japanese punctuation: 「かぎ括弧」『二重』【墨付き】・中黒",
        "Korean jamo: ᄀ ᅡ ᆨ and compatibility ㄱ ㅏ ㄳ",
        "Half-width katakana: ｶﾀｶﾅ ｶﾞ ﾊﾟ",
        "Enclosed: ① ② ⑩ ⑴ ⒜ ㊀ ㈱",
        "Superscripts: x¹ x² x³ H₂O CO₂ ⁿ",
        "Music and games: ♠ ♥ ♦ ♣ ♩ ♪ ♫ ♬ ♭ ♮ ♯",
        "Box drawing: ┌─┐│└┘ ╔═╗ ▀▄█",
        "Currency: ₹ ₽ ₩ ₪ ₫ ₴ ₿ ¢ ¤",
        "Keycap: 1️⃣ #️⃣ and flags 🏳️‍🌈",
        "Skin tones: 👋🏻 👋🏼 👋🏽 👋🏾 👋🏿",
        "Emoji words: happy😀face sad😢face",
        "Variation selectors: ☺︎ ☺️ ✌︎ ✌️",
        "Tags: 🏴󠁧󠁢󠁳󠁣󠁴󠁿 scotland",
        "Mongolian: ᠮᠣᠩᠭᠣᠯ and vowel separator a\u180eb",
        "Devanagari with nukta: क़ ख़ ग़ ज़ ड़ ढ़ फ़ य़",
        "Bengali: আমি বাংলায় গান গাই",
        "Tamil: வணக்கம் உலகம்",
        "Khmer: សួស្តីពិភពលោក",
        "Ethiopic: ሰላም ዓለም",
        "Cherokee: ᏣᎳᎩ ᎦᏬᏂᎯᏍᏗ",
        "Deseret: 𐐷𐐲𐑌 𐐜𐐯𐑅𐐨𐑉𐐯𐐻",
        "Gothic: 𐌷𐌰𐌹𐌻𐍃",
        "Mathematical bold: 𝐀𝐁𝐂 𝐚𝐛𝐜 𝟏𝟐𝟑",
        "Hangul syllable boundaries: 가각갂 힣 뷁",
        "Numbers with separators: 1 000 000, 1'000'000, 1.000.000, 1_000_000",
        "Dates: 2023-10-05, 05/10/2023, 10.05.2023, 5 Oct 2023",
        "Times: 12:30:45, 3:00PM, 23h59",
        "Versions: v1.2.3-beta+build.42, Python3.11, C++17",
        "Fractions: 1/2 3/4 ⅓ ⅔ ⅛",
        "Ordinals: 1º 2ª №5",
        "Degrees: 45° 90°C -40°F",
        "Percent and permille: 50% 5‰ 2‱",
        "Ellipsis… and two-dot leader ‥",
        "Apostrophes: it’s don’t O’Neil rock ’n’ roll",
        "Primes: f′ f″ f‴",
        "Daggers: † ‡ § ¶",
        "Inverted: ¿Qué? ¡Sí!",
        "Brackets: ⟨a⟩ ⟦b⟧ ⦃c⦄ 〈d〉 《e》",
        "Slashes: a/b a\\b a⁄b a∕b",
        "Asterisms: ⁂ ※ ⁑",
        "Tilde forms: ~ ∼ ～ ˜",
        "Underscore: __init__ __main__ ___",
        "a" + "\u0300" * 30 + "b",
        "\u0301\u0301\u0301",
        "\u200b\u200b\u200b",
        "\u3000\u3000",
        "\ufeff",
        "ǅungla ǈudi ǋunja",
        "ﬀ ﬁ ﬂ ﬃ ﬄ ﬅ ﬆ",
        "Ϊ ϊ Ϋ ϋ ΐ ΰ",
        "ᾼ ᾳ ῌ ῃ ῼ ῳ ᾈ ᾀ",
        "Ω Ω ω",
        "İ i̇ I ı",
        "Ǆ ǅ ǆ Ǉ ǈ ǉ",
        "Ⅰ Ⅱ Ⅲ ⅰ ⅱ ⅲ",
        "Ⓐ Ⓩ ⓐ ⓩ",
        "𐐀 𐐨",
        "Ꭰ ꭰ",
        "ẞ ß",
        "ﬓ ﬔ",
        "ŉ ǰ",
        "Հ հ",
        "Ⴀ ⴀ",
    ]
    b = [
        b"invalid \xff byte",
        b"truncated \xe4\xb8",
        b"truncated at end \xe4",
        b"lone continuation \x80\x80 bytes",
        b"overlong \xc0\xaf slash",
        b"overlong three \xe0\x80\xaf",
        b"surrogate \xed\xa0\x80 half",
        b"above max \xf4\x90\x80\x80 cp",
        b"\xf5\xf6\xf7\xf8\xf9\xfa\xfb\xfc\xfd\xfe\xff",
        b"mixed caf\xc3\xa9 and caf\xe9 latin1",
        b"na\xefve Latin-1 text r\xe9sum\xe9",
        b"valid \xf0\x9f\x98\x80 then invalid \xf0\x9f\x98",
        b"\xe4\xb8\xad\xff\xe6\x96\x87",
        b"good\xc2",
        b"\x80",
        b"ab\xfecd ef",
        b"special after cleaning [C\xffLS] [MA\x80SK] [S\xe2EP]",
    ]
    return [x.encode("utf-8") for x in s] + b


def random_cases(n, seed):
    """Random strings mixing many scripts and character classes, reproducible by seed."""
    rng = random.Random(seed)
    pools = [
        "abcdefghijklmnopqrstuvwxyz", "ABCDEFGHIJKLMNOPQRSTUVWXYZ", "0123456789",
        " " * 10, "!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~",
        "àáâãäåçèéêëìíîïñòóôõöùúûüýÿÀÁÂÃÄÅÇÈÉÊËÌÍÎÏÑÒÓÔÕÖÙÚÛÜÝ",
        "ĀāĂăĄąĆćĈĉĊċČčĎďĐđĒēĔĕĖėĘęĚěĜĝĞğĠġĢģĤĥĦħĨĩĪīĬĭĮįİıĲĳĴĵĶķĸĹĺĻļĽľĿŀŁłŃńŅņŇňŉŊŋŌōŎŏŐőŒœŔŕŖŗŘřŚśŜŝŞşŠšŢţŤťŦŧŨũŪūŬŭŮůŰűŲųŴŵŶŷŸŹźŻżŽžſ",
        "ƀƁƂƃƄƅƆƇƈƉƊƋƌƍƎƏƐƑƒƓƔƕƖƗƘƙƚƛƜƝƞƟƠơƢƣƤƥƦƧƨƩƪƫƬƭƮƯưƱƲƳƴƵƶƷƸƹƺƻƼƽƾƿǀǁǂǃǄǅǆǇǈǉǊǋǌǍǎǏǐǑǒǓǔǕǖǗǘǙǚǛǜǝǞǟǠǡǢǣǤǥǦǧǨǩǪǫǬǭǮǯǰǱǲǳǴǵǶǷǸǹǺǻǼǽǾǿȀȁȂȃ",
        "ΑΒΓΔΕΖΗΘΙΚΛΜΝΞΟΠΡΣΤΥΦΧΨΩαβγδεζηθικλμνξοπρστυφχψωςάέήίόύώΆΈΉΊΌΎΏ",
        "АБВГДЕЁЖЗИЙКЛМНОПРСТУФХЦЧШЩЪЫЬЭЮЯабвгдеёжзийклмнопрстуфхцчшщъыьэюя",
        "的一是不了人我在有他这中大来上国个到说们为子和你地出道也时年",
        "あいうえおかきくけこアイウエオカキクケコ。、「」",
        "가나다라마바사아자차카타파하한국어",
        "\u0300\u0301\u0302\u0303\u0308\u030a\u0327\u0323\u05b0\u093c\u0e31",
        "😀😂👍❤️🎉🍕🏽\u200d\ufe0f",
        "–—‘’“”…•€£¥©®™°±×÷¿¡«»",
        "\u200b\u00ad\u2028\u00a0\u3000\t\n\x01\x7f\ufffd",
        "∑∞≤≥≠√∫∂∆∇∈∉⊂⊃∪∩",
        "ﬁﬂＡＢａｂ１２！？ⅠⅡⓐⓑ",
        "\U00020000\U0002a700\uf900\U0002f800\U0001d400\U00010400",
    ]
    words = ["the", "un", "##", "believable", "running", "Straße", "naïve", "token", "izer",
             "hello", "world", "[MASK]", "[SEP]", "[CLS]", "x" * 60, "café", "東京", "ΣΟΦΙΑ"]
    out = []
    for i in range(n):
        parts = []
        for _ in range(rng.randint(1, 12)):
            if rng.random() < 0.35:
                parts.append(rng.choice(words))
            else:
                pool = rng.choice(pools)
                parts.append("".join(rng.choice(pool) for _ in range(rng.randint(1, 15))))
            parts.append(rng.choice([" ", " ", " ", "", "\t", ", "]))
        text = "".join(parts).encode("utf-8")
        if i % 17 == 0:  # a few random byte corruptions
            pos = rng.randrange(len(text) + 1)
            text = text[:pos] + bytes([rng.choice([0x80, 0xbf, 0xc3, 0xe2, 0xf0, 0xff])]) + text[pos:]
        out.append(text)
    return out


def run(tok, text):
    tokens = tok.tokenize(text)
    return {"tokens": tokens, "ids": tok.convert_tokens_to_ids(tokens)}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--vocab", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--random", type=int, default=220)
    ap.add_argument("--seed", type=int, default=1234)
    args = ap.parse_args()

    uncased = BertTokenizer(args.vocab, do_lower_case=True)
    cased = BertTokenizer(args.vocab, do_lower_case=False)
    fast = None
    try:
        from transformers import BertTokenizerFast
        fast = {"uncased": BertTokenizerFast(args.vocab, do_lower_case=True),
                "cased": BertTokenizerFast(args.vocab, do_lower_case=False)}
    except Exception as e:  # pragma: no cover
        print("fast tokenizer unavailable:", e, file=sys.stderr)

    raw = hand_cases() + random_cases(args.random, args.seed)
    cases = []
    fast_diff = {"uncased": 0, "cased": 0}
    for b in raw:
        text = b.decode("utf-8", errors="replace")
        case = {"hex": b.hex()}
        try:
            case["text"] = b.decode("utf-8")
        except UnicodeDecodeError:
            case["invalid_utf8"] = True
        case["uncased"] = run(uncased, text)
        case["cased"] = run(cased, text)
        if fast:
            for k in fast_diff:
                if fast[k](text, add_special_tokens=False)["input_ids"] != case[k]["ids"]:
                    fast_diff[k] += 1
        cases.append(case)

    # Pairs with truncation (longest first) and padding, from the uncased tokenizer.
    rng = random.Random(args.seed + 1)
    texts = [b.decode("utf-8", errors="replace") for b in raw]
    pairs = []
    for i in range(80):
        a = rng.choice(texts)
        b = rng.choice(texts) if i % 5 else None
        max_len = rng.choice([4, 8, 12, 16, 24, 32, 64, 128])
        for name, tok in (("uncased", uncased), ("cased", cased)):
            enc = tok(a, b, max_length=max_len, truncation=True, padding="max_length")
            pairs.append({
                "mode": name, "a_hex": a.encode("utf-8").hex(),
                "b_hex": None if b is None else b.encode("utf-8").hex(), "max_len": max_len,
                "input_ids": enc["input_ids"], "token_type_ids": enc["token_type_ids"],
                "attention_mask": enc["attention_mask"]})
    # Without padding: lengths must match exactly too.
    for i in range(20):
        a, b = rng.choice(texts), rng.choice(texts)
        enc = uncased(a, b, max_length=512, truncation=True)
        pairs.append({"mode": "uncased", "a_hex": a.encode("utf-8").hex(), "b_hex": b.encode("utf-8").hex(),
                      "max_len": 512, "pad": False, "input_ids": enc["input_ids"],
                      "token_type_ids": enc["token_type_ids"], "attention_mask": enc["attention_mask"]})

    doc = {
        "generator": "tests/python/tokenizer_reference.py",
        "reference": "transformers %s BertTokenizer (slow, pure Python)" % transformers.__version__,
        "vocab": "vocab-uncased.txt",
        "cases": cases,
        "pairs": pairs,
    }
    with open(args.out, "w", encoding="utf-8") as f:
        json.dump(doc, f, ensure_ascii=False, indent=None, separators=(",", ":"))
        f.write("\n")
    n_invalid = sum(1 for c in cases if c.get("invalid_utf8"))
    print("cases %d (invalid UTF-8 %d), pairs %d; fast tokenizer disagreements: %s"
          % (len(cases), n_invalid, len(pairs), fast_diff if fast else "n/a"))


if __name__ == "__main__":
    main()
