"""Search-aware recommendations: query understanding, query→item relevance (lexical BM25,
behavioural ``ml_query_item``, packaged static embeddings) and the personalised search ranker."""
