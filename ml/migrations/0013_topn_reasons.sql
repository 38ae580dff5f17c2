-- Reasons (issue 17): every published user_topn row says why it is there, a short code of
-- ml.contracts.REASON_CODES and its argument ("searched" + the query, "viewed_with" + the item id,
-- "popular_in" + the category name; '' when the code needs none), chosen by ml.models.reasons.
-- The publisher stages user_topn_new with CREATE TABLE ... LIKE, so the staged table has them too.
-- user_intent_category gains the category's name: the reader's fallback says "popular in <name>"
-- without reading recsys_raw.items (its read-only account cannot).
-- Idempotent on MariaDB and MySQL 8 (no ADD COLUMN IF NOT EXISTS there): each column is added only
-- when information_schema does not list it yet.
SET @ddl = IF(EXISTS(SELECT 1 FROM information_schema.columns WHERE table_schema = '{serving_db}' AND table_name = 'user_topn' AND column_name = 'reason'), 'DO 0', 'ALTER TABLE `{serving_db}`.user_topn ADD COLUMN reason VARCHAR(32) NOT NULL DEFAULT '''' COMMENT ''why the row is there: a code of ml.contracts.REASON_CODES''');
PREPARE add_column FROM @ddl;
EXECUTE add_column;
DEALLOCATE PREPARE add_column;

SET @ddl = IF(EXISTS(SELECT 1 FROM information_schema.columns WHERE table_schema = '{serving_db}' AND table_name = 'user_topn' AND column_name = 'reason_arg'), 'DO 0', 'ALTER TABLE `{serving_db}`.user_topn ADD COLUMN reason_arg VARCHAR(100) NOT NULL DEFAULT '''' COMMENT ''argument of the reason: a query, an item id, a category name, or empty''');
PREPARE add_column FROM @ddl;
EXECUTE add_column;
DEALLOCATE PREPARE add_column;

SET @ddl = IF(EXISTS(SELECT 1 FROM information_schema.columns WHERE table_schema = '{serving_db}' AND table_name = 'user_intent_category' AND column_name = 'category'), 'DO 0', 'ALTER TABLE `{serving_db}`.user_intent_category ADD COLUMN category VARCHAR(64) NOT NULL DEFAULT '''' COMMENT ''name of category_id (recsys_raw.items.category)''');
PREPARE add_column FROM @ddl;
EXECUTE add_column;
DEALLOCATE PREPARE add_column;
