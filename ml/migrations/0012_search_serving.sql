-- Search serving tables (issue 15), written by the publisher only: a full publish rebuilds all three
-- as *_new and swaps them in the same RENAME as the other serving tables; the refresh replaces the
-- lists of the queries and users that changed. query_norm is ml.search.text.normalize_query's form;
-- the utf8mb4_unicode_ci collation makes a lookup match width and case variants as well.
-- Numbered 0012: 0011 is left to the other schema work of issue 15.
CREATE TABLE IF NOT EXISTS `{serving_db}`.query_topn (
  query_norm VARCHAR(100) CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci NOT NULL,
  `rank` SMALLINT NOT NULL,
  item_id BIGINT NOT NULL,
  score DOUBLE NOT NULL,
  source VARCHAR(32) NOT NULL,
  model_version VARCHAR(64) NOT NULL,
  generated_at DATETIME(3) NOT NULL,
  PRIMARY KEY (query_norm, `rank`)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

-- The personalised list of each active user's recent queries (ml_user_recent_queries).
CREATE TABLE IF NOT EXISTS `{serving_db}`.user_query_topn (
  user_id BIGINT NOT NULL,
  query_norm VARCHAR(100) CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci NOT NULL,
  `rank` SMALLINT NOT NULL,
  item_id BIGINT NOT NULL,
  score DOUBLE NOT NULL,
  source VARCHAR(32) NOT NULL,
  model_version VARCHAR(64) NOT NULL,
  generated_at DATETIME(3) NOT NULL,
  PRIMARY KEY (user_id, query_norm, `rank`)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

-- The catalogue text the reader indexes (BM25 over titles for a query with no published list) and
-- the category it reorders a query's list by: the read-only account cannot read recsys_raw.items.
CREATE TABLE IF NOT EXISTS `{serving_db}`.search_items (
  item_id BIGINT NOT NULL PRIMARY KEY,
  title VARCHAR(255) NULL,
  category VARCHAR(64) NULL,
  brand VARCHAR(64) NULL,
  category_id INT NOT NULL,
  in_stock TINYINT(1) NOT NULL
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;
