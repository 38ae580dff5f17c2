-- Simulator ground truth: the planted intent of each simulated session. Written by
-- ml.data.simulate.load_simulation only; never read by models, only by evaluation.
CREATE TABLE IF NOT EXISTS `{raw_db}`.sim_session_intent (
  session_id VARCHAR(64) NOT NULL PRIMARY KEY,
  user_id BIGINT NOT NULL,
  intent_category_id INT NOT NULL,
  long_term_category_id INT NOT NULL,
  is_switch TINYINT(1) NOT NULL,
  query_text VARCHAR(255) NULL,
  start_ts DATETIME(3) NOT NULL,
  KEY ix_ssi_user_ts (user_id, start_ts)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;
