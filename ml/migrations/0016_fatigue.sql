-- Fatigue demotion (issue 17): the demotion each full publish chose from the impression log
-- (ml.models.fatigue.fit_fatigue): min_shows = N (NULL = no demotion), decay per further unengaged
-- show, the evidence (impressions and clicks of the fit split, the CTR table per exposure bucket as
-- JSON) and why. Written by the full publish before it scores; the refresh reads the newest row, so
-- both demote with the same N and decay until the next full publish fits again.
CREATE TABLE IF NOT EXISTS `{serving_db}`.fatigue_params (
  id BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
  run_id VARCHAR(64) NOT NULL COMMENT 'publish_log.run_id of the full publish that fitted it',
  fitted_at DATETIME(3) NOT NULL,
  min_shows INT NULL COMMENT 'N: unengaged shows from which an item is demoted; NULL = no demotion',
  decay DOUBLE NOT NULL COMMENT 'score factor decay^(shows - N + 1) for shows >= N',
  impressions BIGINT NOT NULL COMMENT 'impressions of the fit split',
  clicks BIGINT NOT NULL,
  reason VARCHAR(255) NOT NULL,
  ctr_table TEXT NOT NULL COMMENT 'JSON: per exposure bucket k, impressions, clicks, expected, ratio, z'
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;
