"""A tenant's knowledge base: ingestion, chunking, embeddings, hybrid retrieval, grounded answers.

Submodules load torch/FAISS lazily; importing `knowledge` alone is cheap.
"""
