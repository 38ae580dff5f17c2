-- Impressions (issue 17): one row per item of every list the serving reader served (or a serving
-- layer reported through POST /impressions), with its rank. Raw data like user_behavior: written by
-- the reader only, through its own INSERT-only account, and read by dbt (outcome marts).
-- served_at is the reader's UTC clock when it answered; ingested_at the server's when the batch landed.
CREATE TABLE IF NOT EXISTS `{raw_db}`.impressions (
  impression_id BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
  request_id VARCHAR(64) NOT NULL COMMENT 'X-Request-ID of the request, or a uuid4 the reader made',
  user_id BIGINT NULL COMMENT 'NULL for an anonymous search',
  item_id BIGINT NOT NULL,
  `rank` SMALLINT NOT NULL COMMENT '1 = first shown',
  model_version VARCHAR(64) NULL,
  list_source VARCHAR(32) NOT NULL COMMENT 'user_topn, popular, item_similar, search:<answer>, client',
  endpoint VARCHAR(32) NOT NULL COMMENT '/recommendations, /similar, /search, /impressions',
  served_at DATETIME(3) NOT NULL,
  ingested_at DATETIME(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
  KEY ix_imp_user_served (user_id, served_at),
  KEY ix_imp_request (request_id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

-- The reader's writer: INSERT on this table only (no SELECT: it cannot read back what it wrote,
-- nor any other raw table). `recsys db init` re-applies the password and the grant every time.
CREATE USER IF NOT EXISTS '{impressions_user}'@'%' IDENTIFIED BY '{impressions_password}';
CREATE USER IF NOT EXISTS '{impressions_user}'@'localhost' IDENTIFIED BY '{impressions_password}';
GRANT INSERT ON `{raw_db}`.impressions TO '{impressions_user}'@'%';
GRANT INSERT ON `{raw_db}`.impressions TO '{impressions_user}'@'localhost';
