-- Importer state for sources with string ids and line-level detail (ml/data/online_retail.py).
-- Idempotent on MariaDB and MySQL 8 (which has no ADD COLUMN IF NOT EXISTS): each column is added
-- only when information_schema does not list it yet.

-- Units and unit price of the source line behind an event (Online Retail); NULL for other sources.
SET @ddl = IF(EXISTS(SELECT 1 FROM information_schema.columns WHERE table_schema = '{raw_db}' AND table_name = 'user_behavior' AND column_name = 'quantity'), 'DO 0', 'ALTER TABLE `{raw_db}`.user_behavior ADD COLUMN quantity INT NULL COMMENT ''units on the source line; NULL where the source has none''');
PREPARE add_column FROM @ddl;
EXECUTE add_column;
DEALLOCATE PREPARE add_column;

SET @ddl = IF(EXISTS(SELECT 1 FROM information_schema.columns WHERE table_schema = '{raw_db}' AND table_name = 'user_behavior' AND column_name = 'unit_price'), 'DO 0', 'ALTER TABLE `{raw_db}`.user_behavior ADD COLUMN unit_price DECIMAL(12,4) NULL COMMENT ''price per unit on the source line (sub-cent prices occur); NULL where the source has none''');
PREPARE add_column FROM @ddl;
EXECUTE add_column;
DEALLOCATE PREPARE add_column;

-- A string id of a source → the integer id used in users/items/user_behavior. Assigned once (in the
-- transaction of the batch that first sees the key) and reused by every later import of that source.
-- title_ts/price_ts: event time of the source line that set items.title/items.price (latest wins).
CREATE TABLE IF NOT EXISTS `{raw_db}`.source_keys (
  source VARCHAR(32) NOT NULL COMMENT 'id namespace, e.g. online_retail',
  kind ENUM('user','item') NOT NULL,
  source_key VARCHAR(64) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL COMMENT 'the id as the source writes it (normalised)',
  id BIGINT NOT NULL COMMENT 'user_id or item_id in the contract tables',
  title_ts DATETIME(3) NULL,
  price_ts DATETIME(3) NULL,
  PRIMARY KEY (source, kind, source_key),
  UNIQUE KEY ux_sk_kind_id (kind, id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

-- Which lines of which file (by content hash) are imported: one row per committed batch, written
-- in that batch's transaction, so importing the same file again (or resuming after a failure)
-- skips exactly the committed lines and writes nothing for them.
CREATE TABLE IF NOT EXISTS `{raw_db}`.import_ledger (
  file_sha256 CHAR(64) NOT NULL,
  first_line BIGINT NOT NULL,
  last_line BIGINT NOT NULL,
  source VARCHAR(255) NOT NULL,
  line_count INT NOT NULL COMMENT 'lines of the file in the batch',
  imported_at DATETIME(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
  PRIMARY KEY (file_sha256, first_line)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;
