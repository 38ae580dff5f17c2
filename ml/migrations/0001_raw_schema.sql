-- Raw behaviour tables (the data contract, ARCHITECTURE.md §2). Written by loaders only, never by dbt.
CREATE TABLE IF NOT EXISTS `{raw_db}`.users (
  user_id BIGINT NOT NULL PRIMARY KEY,
  gender CHAR(1) NULL,
  age SMALLINT NULL,
  location VARCHAR(64) NULL,
  signup_ts DATETIME(3) NULL
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

CREATE TABLE IF NOT EXISTS `{raw_db}`.items (
  item_id BIGINT NOT NULL PRIMARY KEY,
  title VARCHAR(255) NULL,
  category_id INT NOT NULL,
  category VARCHAR(64) NULL,
  brand VARCHAR(64) NULL,
  price DECIMAL(10,2) NULL,
  in_stock TINYINT(1) NOT NULL DEFAULT 1,
  created_ts DATETIME(3) NULL,
  KEY ix_items_category (category_id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

CREATE TABLE IF NOT EXISTS `{raw_db}`.user_behavior (
  event_id BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
  user_id BIGINT NOT NULL,
  item_id BIGINT NULL COMMENT 'NULL for a search',
  session_id VARCHAR(64) NOT NULL,
  behavior_type ENUM('search','browse','cart','fav','purchase') NOT NULL,
  query_text VARCHAR(255) NULL,
  ts DATETIME(3) NOT NULL,
  ingested_at DATETIME(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
  KEY ix_ub_ts (ts),
  KEY ix_ub_user_ts (user_id, ts),
  KEY ix_ub_item (item_id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

CREATE TABLE IF NOT EXISTS `{raw_db}`.user_behavior_quarantine (
  quarantine_id BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
  raw_row TEXT NULL COMMENT 'the rejected input as received',
  reason VARCHAR(64) NOT NULL,
  detail VARCHAR(255) NULL,
  source VARCHAR(255) NOT NULL,
  line_no BIGINT NULL,
  ingested_at DATETIME(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
  KEY ix_q_reason (reason),
  KEY ix_q_source (source(64))
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;
