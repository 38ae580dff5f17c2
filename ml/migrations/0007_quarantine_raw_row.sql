-- A rejected line is kept whole up to 4 MiB (ml.data.validate.MAX_RAW_BYTES): TEXT holds only
-- 65,535 bytes, and LOAD DATA LOCAL cuts a longer value with a warning instead of failing.
-- MODIFY is idempotent (re-running it changes nothing).
ALTER TABLE `{raw_db}`.user_behavior_quarantine MODIFY raw_row MEDIUMTEXT NULL COMMENT 'the rejected input as received (up to 4 MiB; longer lines are cut and say so in detail)';
