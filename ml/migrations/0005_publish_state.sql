-- Publisher state and the intent fallback read by the serving layer (ml/publish.py, ml/serving/app.py).
-- publish_watermark: the last raw event_id whose user's rows are reflected in user_topn. event_id
-- (insertion order), not event time ts, so late-arriving events with an old ts are never skipped.
CREATE TABLE IF NOT EXISTS `{serving_db}`.publish_watermark (
  name VARCHAR(32) NOT NULL PRIMARY KEY COMMENT 'user_topn',
  event_id BIGINT NOT NULL,
  max_event_ts DATETIME(3) NULL,
  updated_at DATETIME(3) NOT NULL
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

-- One row per recently active user: the category of their recent events (the cold-start fallback
-- for users without user_topn rows; the read-only reader cannot read raw events).
CREATE TABLE IF NOT EXISTS `{serving_db}`.user_intent_category (
  user_id BIGINT NOT NULL PRIMARY KEY,
  category_id INT NOT NULL,
  strength DOUBLE NOT NULL COMMENT 'share of the recency-weighted recent events in this category, 0..1',
  last_event_ts DATETIME(3) NOT NULL
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;
