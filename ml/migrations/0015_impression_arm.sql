-- A/B arms (issue 17): which arm of an experiment a served list came from ('champion' or
-- 'challenger'; NULL outside an experiment and for lists a serving layer reported itself), and an
-- index on served_at for the outcome marts, which read impressions by time window.
-- Idempotent on MariaDB and MySQL 8 (no ADD COLUMN/INDEX IF NOT EXISTS there): each is added only
-- when information_schema does not list it yet.
SET @ddl = IF(EXISTS(SELECT 1 FROM information_schema.columns WHERE table_schema = '{raw_db}' AND table_name = 'impressions' AND column_name = 'arm'), 'DO 0', 'ALTER TABLE `{raw_db}`.impressions ADD COLUMN arm VARCHAR(16) NULL COMMENT ''A/B arm of the list: champion, challenger; NULL outside an experiment'' AFTER list_source');
PREPARE add_column FROM @ddl;
EXECUTE add_column;
DEALLOCATE PREPARE add_column;

SET @ddl = IF(EXISTS(SELECT 1 FROM information_schema.statistics WHERE table_schema = '{raw_db}' AND table_name = 'impressions' AND index_name = 'ix_imp_served'), 'DO 0', 'ALTER TABLE `{raw_db}`.impressions ADD KEY ix_imp_served (served_at)');
PREPARE add_index FROM @ddl;
EXECUTE add_index;
DEALLOCATE PREPARE add_index;
