"""Knowledge retrieval: quality on the demo shop's documents, speed at 1k / 10k / 100k chunks.

1. Quality: ingests devtools/demo_knowledge into a temporary SQLite database and asks the
   questions in bench/data/knowledge_questions.yml (written the way visitors write, never
   indexed or trained on). A passage is relevant when it comes from the question's source
   file and contains all its evidence phrases. Prints recall@1, recall@5 and MRR, for the
   embedding precision in use and for fp32 (quality must not change with the faster path),
   and how the abstention score separates these questions from
   bench/data/knowledge_uncovered.yml. Then what the knowledge route answers without an LLM
   key, routing left out: the share of covered questions whose answer's first source is a
   covering document, and of uncovered ones that abstain (per topic, failures by cause);
   bench/knowledge_e2e.py measures the same through the running bot.
2. Ingestion: ingests synthetic Markdown documents of ~200-token sections through the real
   pipeline (load, chunk, embed, store, index) and prints chunks/s and the chunk length.
3. Scale: indexes of N synthetic chunks plus the demo documents, and for each the latency of
   retrieval as the knowledge route does it (embed the question + dense + lexical + fuse, LLM
   excluded), p50/p95, and recall@5 of the demo questions among the N distractors. Chunks up
   to --embed-limit are embedded for real; beyond it, vectors are embedded vectors with noise
   (ingestion speed is measured in 2, so this only saves minutes of encoding).

Usage: .venv/bin/python -m bench.knowledge [--sizes 1000,10000,100000] [--ingest-chunks 2000]
       [--embed-limit 10000] [--skip-fp32]
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import random
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.knowledge_report import Outcome, report  # noqa: E402
from bench.turns import pct  # noqa: E402
from core.db import create_engine, session_factory  # noqa: E402
from devtools.bootstrap import migrate  # noqa: E402
from devtools.demo_shop import DEMO_KNOWLEDGE  # noqa: E402
from knowledge.answers import KnowledgeAnswers  # noqa: E402
from knowledge.chunking import windows  # noqa: E402
from knowledge.embeddings import Embedder  # noqa: E402
from knowledge.index import APPROXIMATE_FROM, IndexFiles  # noqa: E402
from knowledge.ingest import collect, ingest  # noqa: E402
from knowledge.retrieval import MIN_SCORE, Retriever  # noqa: E402
from knowledge.tables import KnowledgeChunkRow, KnowledgeDocumentRow  # noqa: E402
from tenants.models import Tenant  # noqa: E402

log = logging.getLogger("bench.knowledge")
DATA = ROOT / "bench" / "data"
TENANT = "bench-tenant"


# The sets in knowledge_questions.yml: the first one written with the knowledge base (its
# numbers are the ones earlier changes were judged by), the second written per topic as
# shoppers phrase things (issue 11), the third in the style of public customer-support sets.
SETS = {"questions": "earlier set", "real_phrasings": "real phrasings",
        "support_style": "support-set style"}


@dataclass(frozen=True)
class Question:
    text: str
    source: str
    evidence: tuple[str, ...]
    topic: str = ""
    also: tuple[str, ...] = ()  # other documents that answer it too
    group: str = "questions"

    @property
    def covering(self) -> tuple[str, ...]:
        """The documents an answer's first source may come from."""
        return (self.source, *self.also)


def load_questions() -> tuple[list[Question], list[str]]:
    data = yaml.safe_load((DATA / "knowledge_questions.yml").read_text())
    uncovered = yaml.safe_load((DATA / "knowledge_uncovered.yml").read_text())["questions"]
    covered = [Question(q["question"], q["source"], tuple(q["evidence"]),
                        q.get("topic") or Path(q["source"]).stem, tuple(q.get("also", ())), group)
               for group in SETS for q in data.get(group, ())]
    return covered, [q["question"] for q in uncovered]


def relevant(question: Question, source: str, text: str) -> bool:
    low = text.casefold()
    return source == question.source and all(e.casefold() in low for e in question.evidence)


# --- 1. quality on the demo documents -------------------------------------------------------

async def demo_index(workdir: Path,
                     embedder: Embedder) -> tuple[Retriever, dict[int, tuple[str, str]]]:
    url = f"sqlite:///{workdir / 'bench.db'}"
    migrate(url)
    engine = create_engine(f"sqlite+aiosqlite:///{workdir / 'bench.db'}")
    sessions = session_factory(engine)
    files = IndexFiles(workdir / "knowledge")
    await ingest(TENANT, collect([DEMO_KNOWLEDGE]), sessions, files, embedder)
    from sqlalchemy import select

    async with sessions() as session:
        rows = (await session.execute(
            select(KnowledgeChunkRow.id, KnowledgeDocumentRow.source, KnowledgeChunkRow.text)
            .join(KnowledgeDocumentRow, KnowledgeChunkRow.document_id == KnowledgeDocumentRow.id)
        )).all()
    return Retriever(files, sessions, embedder), {r.id: (r.source, r.text) for r in rows}


def score(retriever: Retriever, chunks: dict[int, tuple[str, str]], questions: list[Question],
          tenant: str = TENANT, show_misses: bool = False) -> dict[str, float]:
    hits1 = hits5 = 0
    reciprocal = 0.0
    misses = []
    for q in questions:
        fused, _, _ = retriever.rank(tenant, q.text, k=10)
        ranks = [i for i, (cid, _) in enumerate(fused)
                 if cid in chunks and relevant(q, *chunks[cid])]
        first = ranks[0] + 1 if ranks else None
        hits1 += first == 1
        hits5 += bool(first and first <= 5)
        reciprocal += 1 / first if first else 0.0
        if show_misses and not (first and first <= 5):
            top = chunks.get(fused[0][0], ("-", ""))[1].split("\n")[0] if fused else "-"
            misses.append(f"    {q.text!r} ({q.source}) -> top: {top[:70]}")
    n = len(questions)
    if misses:
        print("  not in the top 5:\n" + "\n".join(misses))
    return {"recall@1": hits1 / n, "recall@5": hits5 / n, "mrr": reciprocal / n}


class NoCache:
    """Every question answered afresh (the bench measures retrieval, not the cache)."""

    async def get(self, key: str) -> dict[str, Any] | None:
        return None

    async def set(self, key: str, value: dict[str, Any]) -> None:
        return None


async def answers(retriever: Retriever, covered: list[Question], uncovered: list[str],
                  show_failures: bool) -> dict[str, float]:
    """What the knowledge route answers without an LLM key, routing left out: retrieval,
    abstention and the extractive pick of the passage whose source the answer cites."""
    knowledge = KnowledgeAnswers(retriever, NoCache(), None)
    tenant = Tenant(TENANT, TENANT, "Bench", None, 30, "demo", None)

    async def outcome(text: str) -> Outcome:
        answer = await knowledge.answer(tenant, text)
        if answer.abstained or not answer.sources:
            return Outcome("abstained")
        return Outcome("answered", answer.sources[0].document, answer.sources[0].title,
                       answer.text)

    yes = [await outcome(q.text) for q in covered]
    no = [await outcome(q) for q in uncovered]
    return report(covered, yes, uncovered, no, SETS, show_failures)


def abstention(retriever: Retriever, covered: list[Question], uncovered: list[str]) -> None:
    """How the abstention score (best cosine less a penalty per word no chunk contains)
    separates covered from uncovered questions, next to the best cosine alone."""
    yes = [retriever.ranking(TENANT, q.text) for q in covered]
    no = [retriever.ranking(TENANT, q) for q in uncovered]
    print(f"  best cosine: covered p10 {pct([r.best_cosine for r in yes], 10):.2f} median "
          f"{statistics.median(r.best_cosine for r in yes):.2f}; uncovered median "
          f"{statistics.median(r.best_cosine for r in no):.2f} p90 "
          f"{pct([r.best_cosine for r in no], 90):.2f}")
    print("  threshold  answers covered  abstains on uncovered   (score | cosine alone)")
    for t in (0.30, 0.33, 0.35, 0.37, 0.40, 0.45, 0.50):
        mark = "  <- MIN_SCORE" if abs(t - MIN_SCORE) < 1e-9 else ""
        print(f"  {t:9.2f}  {sum(r.score >= t for r in yes) / len(yes):6.1%} | "
              f"{sum(r.best_cosine >= t for r in yes) / len(yes):6.1%}  "
              f"{sum(r.score < t for r in no) / len(no):10.1%} | "
              f"{sum(r.best_cosine < t for r in no) / len(no):6.1%}{mark}")


# --- 2 and 3. synthetic chunks ----------------------------------------------------------------

WORDS = {
    "thing": ("jacket coat parka vest sweater hoodie shirt tee trousers jeans shorts skirt dress "
              "boot sneaker sandal sock beanie scarf glove backpack duffel bottle mug belt cap"
              ).split(),
    "adj": ("waterproof breathable warm lightweight durable recycled organic insulated stretch "
            "packable slim relaxed classic technical merino cotton linen wool leather canvas"
            ).split(),
    "topic": "delivery returns warranty repairs sizing care payment invoice voucher exchange "
             "customs tracking pickup restock preorder discount membership newsletter".split(),
    "place": "Lisbon Oslo Denver Kyoto Austin Lyon Porto Bergen Quebec Malmo Graz Leeds".split(),
}


def synthetic_text(rng: random.Random, n: int, words: int = 130) -> str:
    """About `words` words of shop-like prose (130 words: one chunk of ~200 tokens with its
    heading line), different for every n."""
    sentences: list[str] = []
    while sum(len(s.split()) for s in sentences) < words:
        a, t, topic, place = (rng.choice(WORDS["adj"]), rng.choice(WORDS["thing"]),
                              rng.choice(WORDS["topic"]), rng.choice(WORDS["place"]))
        sentences.append(rng.choice([
            f"The {a} {t} ships from our {place} warehouse within {rng.randint(1, 9)} days.",
            f"For {topic} questions about the {a} {t}, our {place} team answers within "
            f"{rng.randint(2, 48)} hours.",
            f"Model {t.upper()}-{n % 997}-{rng.randint(10, 99)} comes in {rng.randint(2, 12)} "
            f"colours and costs {rng.randint(15, 400)} euros.",
            f"Our {topic} policy for {a} items changed in {rng.randint(2019, 2026)}, see section "
            f"{rng.randint(1, 30)}.",
            f"Customers in {place} often ask whether the {t} is {a}; it is rated "
            f"{rng.randint(1, 5)} out of 5.",
        ]))
    return f"Catalogue note {n}\n" + " ".join(sentences)


async def ingestion_throughput(workdir: Path, embedder: Embedder, chunks: int) -> None:
    docs = workdir / "synthetic-docs"
    docs.mkdir()
    rng = random.Random(7)
    per_doc = 10
    for d in range(max(1, chunks // per_doc)):
        body = [f"# Synthetic document {d}\n"]
        for s in range(per_doc):
            section = synthetic_text(rng, d * per_doc + s).split("\n", 1)[1]
            body.append(f"## Section {s}\n\n{section}\n")
        (docs / f"doc-{d:05d}.md").write_text("\n".join(body))
    url = f"sqlite:///{workdir / 'ingest.db'}"
    migrate(url)
    engine = create_engine(f"sqlite+aiosqlite:///{workdir / 'ingest.db'}")
    files = collect([docs])
    embedder.encode(["warm up"])
    started = time.perf_counter()

    def progress(done: int, total: int) -> None:
        print(f"\r  embedding {done}/{total}", end="", file=sys.stderr, flush=True)

    sessions = session_factory(engine)
    report = await ingest(TENANT, files, sessions, IndexFiles(workdir / "ingest-index"),
                          embedder, progress)
    elapsed = time.perf_counter() - started
    print(file=sys.stderr)
    from sqlalchemy import select

    async with sessions() as session:
        texts = (await session.execute(select(KnowledgeChunkRow.text).limit(300))).scalars().all()
    await engine.dispose()
    tokens = statistics.mean(embedder.token_count(t) for t in texts)
    print(f"  {report.chunks_total} chunks of {tokens:.0f} tokens "
          f"(mean over stored chunks, model tokenizer) in "
          f"{elapsed:.1f} s: {report.chunks_total / elapsed:.0f} chunks/s end to end "
          f"(load, chunk, embed [{embedder.precision}], store, index)")


def scale(workdir: Path, embedder: Embedder, demo: tuple[IndexFiles, dict[int, tuple[str, str]]],
          sizes: list[int], embed_limit: int, questions: list[Question]) -> None:
    demo_files, demo_chunks = demo
    demo_owners, demo_vectors = demo_files.vectors(TENANT)
    demo_ids = np.array(sorted(demo_chunks), dtype=np.int64)
    demo_texts = [demo_chunks[i][1] for i in demo_ids.tolist()]
    rng = random.Random(11)
    largest = max(sizes)
    texts = [synthetic_text(rng, i) for i in range(largest)]
    groups = [windows(t) for t in texts]
    sizes_w = np.array([len(g) for g in groups])
    owners = np.repeat(np.arange(10_000_000, 10_000_000 + largest, dtype=np.int64), sizes_w)
    real = int(sizes_w[:min(embed_limit, largest)].sum())
    print(f"  embedding {real} windows of {min(embed_limit, largest)} synthetic chunks "
          "for real ...",
          file=sys.stderr)
    started = time.perf_counter()
    vectors = embedder.encode([w for g in groups[:embed_limit] for w in g])
    print(f"  ({real / (time.perf_counter() - started):.0f} windows/s)", file=sys.stderr)
    if len(owners) > real:
        noise = np.random.default_rng(3)
        extra = vectors[noise.integers(0, real, len(owners) - real)] + noise.normal(
            0, 0.04, (len(owners) - real, vectors.shape[1])).astype(np.float32)
        extra /= np.linalg.norm(extra, axis=1, keepdims=True)
        vectors = np.concatenate([vectors, extra])
    print(f"  {'chunks':>8} {'windows':>8} {'index':>6} {'build s':>8} {'p50 ms':>7} {'p95 ms':>7} "
          f"{'recall@5':>9} {'MRR':>6}")
    for n in sizes:
        files = IndexFiles(workdir / f"scale-{n}")
        ids = np.concatenate([demo_ids, np.arange(10_000_000, 10_000_000 + n, dtype=np.int64)])
        rows = int(sizes_w[:n].sum())
        started = time.perf_counter()
        manifest = files.build(TENANT, ids, demo_texts + texts[:n],
                               np.concatenate([demo_owners, owners[:rows]]),
                               np.concatenate([demo_vectors, vectors[:rows]]))
        build = time.perf_counter() - started
        retriever = Retriever(files, None, embedder)  # type: ignore[arg-type]  # rank() only
        latencies = []
        for q in questions[:20]:  # warm up
            retriever.rank(TENANT, q.text)
        for q in questions:
            t = time.perf_counter()
            retriever.rank(TENANT, q.text)
            latencies.append((time.perf_counter() - t) * 1000)
        quality = score(retriever, demo_chunks, questions)
        print(f"  {n:>8} {rows + len(demo_owners):>8} {manifest.kind:>6} {build:>8.1f} "
              f"{pct(latencies, 50):>7.1f} {pct(latencies, 95):>7.1f} "
              f"{quality['recall@5']:>9.3f} {quality['mrr']:>6.3f}")


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1000,10000,100000")
    parser.add_argument("--ingest-chunks", type=int, default=2000)
    parser.add_argument("--embed-limit", type=int, default=10_000)
    parser.add_argument("--skip-fp32", action="store_true")
    parser.add_argument("--misses", action=argparse.BooleanOptionalAction, default=True,
                        help="list the questions missed (default: on)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    covered, uncovered = load_questions()
    # Questions through the ONNX query encoder, as the action server does.
    embedder = Embedder()
    with tempfile.TemporaryDirectory(prefix="bench-knowledge-") as tmp:
        workdir = Path(tmp)
        print(f"1. Quality on the demo knowledge base: {len(covered)} visitor questions, "
              f"{len(uncovered)} uncovered ones")
        retriever, chunks = await demo_index(workdir, embedder)
        print(f"  {len(chunks)} chunks from {DEMO_KNOWLEDGE.relative_to(ROOT)}")
        for group, label in SETS.items():
            asked = [q for q in covered if q.group == group]
            result = score(retriever, chunks, asked, show_misses=args.misses)
            print(f"  [{embedder.precision}] {label} ({len(asked)}): recall@1 "
                  f"{result['recall@1']:.3f}  recall@5 {result['recall@5']:.3f}  MRR "
                  f"{result['mrr']:.3f}   (targets: recall@5 >= 0.95, MRR >= 0.85)")
        if not args.skip_fp32 and embedder.precision != "fp32":
            (workdir / "fp32").mkdir()
            fp32 = Embedder("fp32")
            r32, c32 = await demo_index(workdir / "fp32", fp32)
            other = score(r32, c32, covered)
            print(f"  [fp32] all {len(covered)}: recall@1 {other['recall@1']:.3f}  recall@5 "
                  f"{other['recall@5']:.3f}  MRR {other['mrr']:.3f}")
            vec_a = embedder.encode([q.text for q in covered])
            vec_b = fp32.encode([q.text for q in covered])
            print(f"  cosine between {embedder.precision} and fp32 vectors of the questions: "
                  f"min {float((vec_a * vec_b).sum(1).min()):.5f}")
        abstention(retriever, covered, uncovered)
        print("\n1b. Answers without an LLM key, routing left out (the end-to-end measure through "
              "the running bot is bench/knowledge_e2e.py)")
        await answers(retriever, covered, uncovered, args.misses)

        if args.ingest_chunks:
            print(f"\n2. Ingestion throughput ({args.ingest_chunks} synthetic chunks)")
            await ingestion_throughput(workdir, embedder, args.ingest_chunks)

        sizes = [int(s) for s in args.sizes.split(",") if s]
        if not sizes:
            return
        print(f"\n3. Retrieval at scale (embed question + hybrid search, LLM excluded; exact "
              f"search below {APPROXIMATE_FROM} chunks, HNSW above; target p95 <= 20 ms at 100k)")
        scale(workdir, embedder, (retriever.index_files, chunks), sizes, args.embed_limit, covered)


if __name__ == "__main__":
    asyncio.run(main())
