-- Simulator ground truth of the search queries: for every simulated session that opens with a
-- search, what its query was planted to ask for. Written by ml.data.sim_load.load_simulation and the
-- live feed (ml.data.feed) next to sim_session_intent; never read by models, only by evaluation
-- (e.g. does the search ranker put the planted brand first; how do typos and Chinese queries fare).
--   category_id  the session's intent category (= sim_session_intent.intent_category_id)
--   brand/model  the brand and model line the text names (before any typo), NULL when it names none
--   lang         'en', or 'zh' for a Chinese query
--   has_typo     1 when a word of the text was misspelt on purpose
CREATE TABLE IF NOT EXISTS `{raw_db}`.sim_query_intent (
  session_id VARCHAR(64) NOT NULL PRIMARY KEY,
  user_id BIGINT NOT NULL,
  query_text VARCHAR(255) NOT NULL,
  category_id INT NOT NULL,
  brand VARCHAR(64) NULL,
  model VARCHAR(32) NULL,
  lang CHAR(2) NOT NULL,
  has_typo TINYINT(1) NOT NULL,
  KEY ix_sqi_category_brand (category_id, brand)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;
