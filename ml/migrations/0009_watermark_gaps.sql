-- publish_watermark_gaps: event ids at or below publish_watermark.event_id that had no visible event
-- when the refresh advanced the watermark (ids are allocated at insert, so a long import transaction
-- can commit low ids after the feed committed higher ones). Each refresh rescores the users of the
-- events that have appeared in these ranges and keeps what is still missing; a range is dropped once
-- no open transaction can fill it (ml/data/gaps.py).
CREATE TABLE IF NOT EXISTS `{serving_db}`.publish_watermark_gaps (
  name VARCHAR(32) NOT NULL COMMENT 'user_topn',
  first_event_id BIGINT NOT NULL,
  last_event_id BIGINT NOT NULL,
  seen_at DATETIME(3) NOT NULL COMMENT 'server time the range was first seen missing',
  PRIMARY KEY (name, first_event_id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;
