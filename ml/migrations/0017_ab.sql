-- A/B of champion vs challenger (issue 17, ml/experiment.py). Written by the publisher only.
-- user_topn_challenger: the challenger's per-user lists, same shape as user_topn (reasons included:
-- 0013 ran first); the full publish builds both and swaps them in one RENAME.
CREATE TABLE IF NOT EXISTS `{serving_db}`.user_topn_challenger LIKE `{serving_db}`.user_topn;

-- One row per run of an experiment; the running one has no ended_at. The full publish rebuilds this
-- table as ab_experiment_new (history copied) and swaps it with the lists, so every reader process
-- sees the split and the lists change together. Times are UTC, like impressions.served_at.
CREATE TABLE IF NOT EXISTS `{serving_db}`.ab_experiment (
  id BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
  name VARCHAR(64) NOT NULL COMMENT 'experiment name (RECSYS_AB_SALT); also the salt of the user split',
  share DOUBLE NOT NULL COMMENT 'share of users in the challenger arm, 0 < share < 1',
  champion_version VARCHAR(64) NOT NULL,
  challenger_version VARCHAR(64) NOT NULL,
  started_at DATETIME(3) NOT NULL COMMENT 'UTC: the swap that started this run',
  ended_at DATETIME(3) NULL COMMENT 'UTC: the swap that ended it; NULL while it runs',
  KEY ix_ab_name_started (name, started_at)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;
