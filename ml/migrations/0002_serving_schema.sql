-- Serving tables read by the serving layer; written by the publisher only (atomic swaps of *_new).
CREATE TABLE IF NOT EXISTS `{serving_db}`.user_topn (
  user_id BIGINT NOT NULL,
  `rank` SMALLINT NOT NULL,
  item_id BIGINT NOT NULL,
  score DOUBLE NOT NULL,
  source VARCHAR(32) NOT NULL,
  model_version VARCHAR(64) NOT NULL,
  generated_at DATETIME(3) NOT NULL,
  PRIMARY KEY (user_id, `rank`)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

CREATE TABLE IF NOT EXISTS `{serving_db}`.item_similar (
  item_id BIGINT NOT NULL,
  `rank` SMALLINT NOT NULL,
  similar_item_id BIGINT NOT NULL,
  score DOUBLE NOT NULL,
  PRIMARY KEY (item_id, `rank`)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

CREATE TABLE IF NOT EXISTS `{serving_db}`.popular_topn (
  scope VARCHAR(32) NOT NULL COMMENT 'global or category:<category_id>',
  `rank` SMALLINT NOT NULL,
  item_id BIGINT NOT NULL,
  score DOUBLE NOT NULL,
  PRIMARY KEY (scope, `rank`)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

CREATE TABLE IF NOT EXISTS `{serving_db}`.publish_log (
  id BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
  run_id VARCHAR(128) NOT NULL,
  kind ENUM('full','refresh') NOT NULL,
  users INT NOT NULL DEFAULT 0,
  `rows` INT NOT NULL DEFAULT 0,
  model_version VARCHAR(64) NULL,
  started_at DATETIME(3) NOT NULL,
  finished_at DATETIME(3) NULL,
  max_event_ts DATETIME(3) NULL,
  KEY ix_pl_kind_finished (kind, finished_at)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;
