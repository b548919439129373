"""One tenant's search index on disk: dense vectors in FAISS and a BM25 lexical index.

Layout, under `<var>/knowledge/<tenant_id>/`:

    CURRENT                  the version directory in use (replaced atomically)
    <version>/vectors.npy    float32 [w, 384]: one row per window of a chunk (chunking.windows)
    <version>/owners.npy     int64 [w]: the chunk id each window belongs to
    <version>/dense.faiss    those rows; exact (flat) below APPROXIMATE_FROM rows, HNSW above
    <version>/chunk_ids.npy  int64 [n]: chunk ids (our knowledge_chunks.id), one per lexical row
    <version>/digests.npy    int64 [n]: each chunk's text digest, so a rebuild reuses a vector
                             only for the same id with the same text
    <version>/lexical/       bm25s index over the chunks' knowledge.lexical tokens
    <version>/words.json     the chunks' distinct words, which typos in questions are corrected
                             to (knowledge/query.py; an index without it corrects none)
    <version>/manifest.json  version, counts, index kind, build time

A build writes a new version directory and then swaps CURRENT, so a reader never sees half an
index; readers notice the new version on their next search (one stat call) and reload.
The version is part of every answer-cache key, so re-ingestion invalidates cached answers.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import os
import re
import shutil
import threading
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from core.minilm import DIMENSION
from knowledge.groups import groups
from knowledge.lexical import STOPWORDS, tokens
from knowledge.query import NOT_TOPICS, Rewriter

if TYPE_CHECKING:  # imported where used at run time: both take a while to import
    import bm25s
    import faiss

log = logging.getLogger(__name__)

# Exact search over n×384 floats stays within a few milliseconds up to here on 2 cores;
# above it HNSW answers in well under a millisecond (bench/knowledge.py measures both).
# A chunk has ~5 windows, so this is ~4k chunks.
APPROXIMATE_FROM = 20_000
HNSW_NEIGHBOURS = 32
HNSW_EF_CONSTRUCTION = 80
HNSW_EF_SEARCH = 256  # >= the rows a search asks for (8 windows per wanted chunk)
WORD = re.compile(r"[A-Za-z]{3,}")


def digests(texts: Sequence[str]) -> np.ndarray:
    """A 63-bit digest of each chunk text."""
    return np.array([int.from_bytes(hashlib.blake2b(t.encode(), digest_size=8).digest(), "big") >> 1
                     for t in texts], dtype=np.int64)


@dataclass(frozen=True)
class Manifest:
    version: str
    chunks: int
    kind: str  # "flat" | "hnsw"
    built_at: float


class TenantIndex:
    """A loaded, read-only index of one tenant's chunks."""

    def __init__(self, manifest: Manifest, chunk_ids: np.ndarray, owners: np.ndarray,
                 dense: faiss.Index, lexical: bm25s.BM25 | None,
                 words: frozenset[str] = frozenset(),
                 listed: dict[str, list[str]] | None = None,
                 headings: Sequence[str] = ()) -> None:
        self.manifest = manifest
        self._ids = chunk_ids
        self._owners = owners
        self._dense = dense
        self._lexical = lexical
        self._words = words
        self._listed = listed or {}  # knowledge/groups.py
        # chunk id -> its heading line ("Payment methods > Gift cards"); empty for an index
        # built before headings were stored
        self.headings = dict(zip(chunk_ids.tolist(), headings, strict=False)) if headings else {}

    @functools.cached_property
    def rewriter(self) -> Rewriter:
        """Questions rewritten towards this tenant's own words. Built on first use, once per
        index version: ~20 ms for the demo shop's 2k words, ~2 s for 50k; a rewrite then
        takes ~0.05 ms."""
        return Rewriter(self._words, self._listed)

    @property
    def version(self) -> str:
        return self.manifest.version

    def __len__(self) -> int:
        return int(self._ids.shape[0])

    def dense_search(self, vector: np.ndarray, k: int) -> list[tuple[int, float]]:
        """Chunks by their best window's cosine, best first."""
        rows_total = int(self._owners.shape[0])
        if not rows_total:
            return []
        scores, rows = self._dense.search(vector.reshape(1, -1), min(k * 8, rows_total))
        best: dict[int, float] = {}
        for row, score in zip(rows[0], scores[0], strict=True):
            if row >= 0:
                chunk_id = int(self._owners[row])
                if chunk_id not in best:  # rows come best first
                    best[chunk_id] = float(score)
        return list(best.items())[:k]

    @functools.cached_property
    def _vocabulary(self) -> frozenset[str]:
        return frozenset(self._lexical.vocab_dict) if self._lexical is not None else frozenset()

    def unknown_terms(self, query: str) -> list[str]:
        """The query's words that no chunk contains (numbers and SKUs aside), each once: "tents"
        in a shop that sells none. Empty when there is no lexical index to ask."""
        vocabulary = self._vocabulary
        if not vocabulary:
            return []
        # A stop word is never indexed, so one that only shows after the suffix strip ("whats"
        # -> "what") is no word the shop lacks. A word said twice ("... today? ... today?") is
        # one thing the shop lacks, not two. A shopper's word the rewritten question follows
        # with the page's own ("rating" -> review, "zurich" -> Switzerland) is understood, and
        # a word of feeling ("terrible", "crazy"), whom the visitor asks for ("my husband",
        # "from Jane Smith") or a framing word ("in which situations") is about the visitor,
        # not the topic (knowledge/query.py NOT_TOPICS, PERSON).
        understood = {t for words in Rewriter.understood(query) for t in tokens(words)}
        return list(dict.fromkeys(
            t for t in tokens(query)
            if len(t) >= 3 and not any(c.isdigit() for c in t) and t not in vocabulary
            and t not in STOPWORDS and t not in understood and t not in NOT_TOPICS))

    def lexical_search(self, query: str, k: int) -> list[tuple[int, float]]:
        words = tokens(query)
        if not words or self._lexical is None or not len(self):
            return []
        rows, scores = self._lexical.retrieve([words], k=min(k, len(self)),
                                              show_progress=False, n_threads=1)
        return [(int(self._ids[r]), float(s))
                for r, s in zip(rows[0], scores[0], strict=True) if s > 0]


def _build_dense(vectors: np.ndarray) -> tuple[faiss.Index, str]:
    import faiss

    if vectors.shape[0] >= APPROXIMATE_FROM:
        hnsw = faiss.IndexHNSWFlat(DIMENSION, HNSW_NEIGHBOURS, faiss.METRIC_INNER_PRODUCT)
        hnsw.hnsw.efConstruction = HNSW_EF_CONSTRUCTION
        hnsw.add(vectors)
        hnsw.hnsw.efSearch = HNSW_EF_SEARCH
        return hnsw, "hnsw"
    flat = faiss.IndexFlatIP(DIMENSION)
    flat.add(vectors)
    return flat, "flat"


class IndexFiles:
    """Builds and loads the per-tenant index directories under one root."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._loaded: dict[str, TenantIndex] = {}
        self._lock = threading.Lock()

    def tenant_dir(self, tenant_id: str) -> Path:
        if not tenant_id or "/" in tenant_id or tenant_id.startswith("."):
            raise ValueError(f"not a tenant id: {tenant_id!r}")
        return self.root / tenant_id

    def current_version(self, tenant_id: str) -> str | None:
        try:
            return (self.tenant_dir(tenant_id) / "CURRENT").read_text().strip() or None
        except FileNotFoundError:
            return None

    def tenants(self, limit: int) -> list[str]:
        """Up to `limit` tenant ids with an index on disk, the most recently built first (the
        action server loads these at start)."""
        built: list[tuple[float, str]] = []
        try:
            folders = list(self.root.iterdir())
        except FileNotFoundError:  # nothing ingested yet
            return []
        for folder in folders:
            try:
                built.append(((folder / "CURRENT").stat().st_mtime, folder.name))
            except OSError:  # not a tenant's folder, or one without a finished build
                continue
        return [tenant_id for _, tenant_id in sorted(built, reverse=True)[:limit]]

    def digests(self, tenant_id: str) -> dict[int, int]:
        """chunk id -> text digest of the current version (empty when unreadable)."""
        version = self.current_version(tenant_id)
        if version is None:
            return {}
        base = self.tenant_dir(tenant_id) / version
        try:
            # Unequal lengths (a damaged folder) raise ValueError: unreadable.
            return dict(zip(np.load(base / "chunk_ids.npy").tolist(),
                            np.load(base / "digests.npy").tolist(), strict=True))
        except (OSError, ValueError):
            return {}

    def is_current(self, tenant_id: str, chunk_ids: np.ndarray, chunk_digests: np.ndarray) -> bool:
        """Does the current version hold exactly these chunks, with this text, in this layout?"""
        version = self.current_version(tenant_id)
        if version is None:
            return False
        base = self.tenant_dir(tenant_id) / version
        # an index from before headings were stored is rebuilt (from its vectors) to get them
        if not all((base / name).exists()
                   for name in ("owners.npy", "vectors.npy", "dense.faiss", "headings.json")):
            return False
        return self.digests(tenant_id) == dict(zip(chunk_ids.tolist(), chunk_digests.tolist(),
                                                   strict=True))

    def vectors(self, tenant_id: str) -> tuple[np.ndarray, np.ndarray]:
        """The current (owners, window vectors), so a rebuild re-embeds only what changed."""
        version = self.current_version(tenant_id)
        if version is None:
            return np.zeros(0, dtype=np.int64), np.zeros((0, DIMENSION), dtype=np.float32)
        base = self.tenant_dir(tenant_id) / version
        try:
            return np.load(base / "owners.npy"), np.load(base / "vectors.npy")
        except (OSError, ValueError):  # an older layout or a damaged folder: embed everything again
            log.warning("index vectors unreadable; re-embedding", extra={"tenant_id": tenant_id,
                                                                         "version": version})
            return np.zeros(0, dtype=np.int64), np.zeros((0, DIMENSION), dtype=np.float32)

    def build(self, tenant_id: str, chunk_ids: np.ndarray, texts: Sequence[str],
              owners: np.ndarray, vectors: np.ndarray) -> Manifest:
        """A new version from every chunk (id, text) and every window (owner, vector)."""
        import bm25s
        import faiss

        if len(chunk_ids) != len(texts) or len(owners) != vectors.shape[0]:
            raise ValueError("chunk ids and texts, owners and vectors must line up")
        version = f"{time.strftime('%Y%m%dT%H%M%S')}-{uuid.uuid4().hex[:8]}"
        tenant_dir = self.tenant_dir(tenant_id)
        target = tenant_dir / version
        target.mkdir(parents=True)
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        np.save(target / "chunk_ids.npy", np.asarray(chunk_ids, dtype=np.int64))
        np.save(target / "digests.npy", digests(texts))
        np.save(target / "owners.npy", np.asarray(owners, dtype=np.int64))
        np.save(target / "vectors.npy", vectors)
        dense, kind = _build_dense(vectors)
        faiss.write_index(dense, str(target / "dense.faiss"))
        words = sorted({w.lower() for t in texts for w in WORD.findall(t)})
        (target / "words.json").write_text(json.dumps(words))
        (target / "groups.json").write_text(json.dumps(groups(texts)))
        (target / "headings.json").write_text(json.dumps([t.partition("\n")[0] for t in texts]))
        if len(texts):
            lexical = bm25s.BM25()
            lexical.index([tokens(t) or ["∅"] for t in texts], show_progress=False)
            lexical.save(str(target / "lexical"))
        manifest = Manifest(version, len(chunk_ids), kind, time.time())
        (target / "manifest.json").write_text(json.dumps(manifest.__dict__))
        pointer = tenant_dir / f"CURRENT.{version}.tmp"
        pointer.write_text(version)
        os.replace(pointer, tenant_dir / "CURRENT")
        for old in tenant_dir.iterdir():  # readers hold their copy in memory, not open files
            if old.is_dir() and old.name != version:
                shutil.rmtree(old, ignore_errors=True)
        log.info("index built", extra={"tenant_id": tenant_id, "chunks": len(chunk_ids),
                                       "windows": len(owners), "kind": kind, "version": version})
        return manifest

    def load(self, tenant_id: str) -> TenantIndex | None:
        """The tenant's current index, reloaded when a build has replaced it."""
        version = self.current_version(tenant_id)
        if version is None:
            return None
        cached = self._loaded.get(tenant_id)
        if cached is not None and cached.version == version:
            return cached
        with self._lock:
            cached = self._loaded.get(tenant_id)
            if cached is not None and cached.version == version:
                return cached
            try:
                index = self._read(tenant_id, version)
            except FileNotFoundError:  # replaced by a newer build while we read: read that
                version = self.current_version(tenant_id) or version
                try:
                    index = self._read(tenant_id, version)
                except (OSError, ValueError, KeyError, TypeError):
                    log.error("index unreadable: run `python -m knowledge ingest` for this tenant",
                              extra={"tenant_id": tenant_id, "version": version})
                    return None
            self._loaded[tenant_id] = index
            return index

    def _read(self, tenant_id: str, version: str) -> TenantIndex:
        import bm25s
        import faiss

        base = self.tenant_dir(tenant_id) / version
        manifest = Manifest(**json.loads((base / "manifest.json").read_text()))
        dense = faiss.read_index(str(base / "dense.faiss"))  # as its concrete class
        if manifest.kind == "hnsw" and isinstance(dense, faiss.IndexHNSW):
            dense.hnsw.efSearch = HNSW_EF_SEARCH
        lexical = bm25s.BM25.load(str(base / "lexical")) if (base / "lexical").exists() else None
        words_file = base / "words.json"  # absent in indexes built before it existed
        words = (frozenset(json.loads(words_file.read_text())) if words_file.exists()
                 else frozenset())
        groups_file = base / "groups.json"  # the same
        listed = json.loads(groups_file.read_text()) if groups_file.exists() else {}
        headings_file = base / "headings.json"  # the same
        headings = json.loads(headings_file.read_text()) if headings_file.exists() else []
        log.info("index loaded", extra={"tenant_id": tenant_id, "version": version,
                                        "chunks": manifest.chunks, "kind": manifest.kind})
        return TenantIndex(manifest, np.load(base / "chunk_ids.npy"), np.load(base / "owners.npy"),
                           dense, lexical, words, listed, headings)
