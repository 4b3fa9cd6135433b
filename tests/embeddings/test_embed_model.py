"""The numpy all-MiniLM-L6-v2 gives sentence-transformers' own published results.

The reference: sentence-transformers' semantic search example (examples/sentence_transformer/applications/
semantic-search/README.md in UKPLab/sentence-transformers) prints these cosine scores for all-MiniLM-L6-v2, to four
decimals. Matching them checks the tokenizer, every layer, the pooling and the normalisation at once.
"""

from __future__ import annotations

import numpy as np
import pytest

from rubin_app.embed_model import DIMENSION, MiniLM

CORPUS = [
    "A man is eating food.",
    "A man is eating a piece of bread.",
    "The girl is carrying a baby.",
    "A man is riding a horse.",
    "A woman is playing violin.",
    "Two men pushed carts through the woods.",
    "A man is riding a white horse on an enclosed ground.",
    "A monkey is playing drums.",
    "A cheetah is running behind its prey.",
]
# query -> its top results with the scores sentence-transformers prints
PUBLISHED = {
    "A man is eating pasta.": [
        ("A man is eating food.", 0.7035),
        ("A man is eating a piece of bread.", 0.5272),
        ("A man is riding a horse.", 0.1889),
        ("A man is riding a white horse on an enclosed ground.", 0.1047),
        ("A cheetah is running behind its prey.", 0.0980),
    ],
    "Someone in a gorilla costume is playing a set of drums.": [
        ("A monkey is playing drums.", 0.6433),
        ("A woman is playing violin.", 0.2564),
    ],
    "A cheetah chases prey on across a field.": [("A cheetah is running behind its prey.", 0.8253)],
}


@pytest.fixture(scope="module")
def model() -> MiniLM:
    """The bundled model, loaded once."""
    return MiniLM()


def test_scores_match_the_published_ones(model: MiniLM) -> None:
    corpus = model.encode(CORPUS)
    for query, expected in PUBLISHED.items():
        scores = corpus @ model.encode([query])[0]
        ranked = [CORPUS[i] for i in np.argsort(-scores)]
        assert ranked[: len(expected)] == [sentence for sentence, _ in expected], query
        for sentence, score in expected:
            assert scores[CORPUS.index(sentence)] == pytest.approx(score, abs=6e-4), (query, sentence)


def test_similar_sentences_are_close_and_unrelated_ones_are_not(model: MiniLM) -> None:
    food, bread, violin = model.encode(["A man is eating food.", "A man is eating a piece of bread.",
                                        "A woman is playing violin."])  # fmt: skip
    assert float(food @ bread) > 0.7
    assert float(food @ violin) < 0.1


def test_vectors_are_384_long_normalised_and_deterministic(model: MiniLM) -> None:
    texts = ["Rubin keeps your chats private.", "", "x" * 5000, "Привет, как дела?"]
    first = model.encode(texts)
    assert first.shape == (4, DIMENSION) and first.dtype == np.float32
    assert np.allclose(np.linalg.norm(first, axis=1), 1.0, atol=1e-5)
    assert np.array_equal(first, model.encode(texts))


def test_a_text_gets_the_same_vector_alone_or_padded_in_a_batch(model: MiniLM) -> None:
    short, long = "Short one.", "A much longer sentence that forces the short one to be padded in its batch. " * 5
    together = model.encode([short, long], batch_size=2)
    alone = model.encode([short], batch_size=1)
    assert np.allclose(together[0], alone[0], atol=1e-5)


def test_long_texts_are_truncated_to_256_word_pieces(model: MiniLM) -> None:
    long = "retrieval " * 1000
    assert model.count_tokens([long, "two words"]) == [256, 4]
    head = model.encode([long])[0]
    assert np.allclose(head, model.encode(["retrieval " * 600])[0], atol=1e-5)  # what is past 256 is not read
