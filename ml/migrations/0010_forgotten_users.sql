-- Users removed by `recsys user forget` (ml/publish/forget.py). Only a keyed hash of the user id is
-- kept (HMAC-SHA256 with the salt below), never the id: enough for the importers to recognise and
-- refuse a forgotten user's rows in a re-imported file (quarantine reason forgotten_user, no raw text).
-- Numbered 0010: 0009 is left free for the other schema work of issue 14 (watermarks, items 3-5).
CREATE TABLE IF NOT EXISTS `{raw_db}`.forgotten_users (
  user_hash CHAR(64) NOT NULL PRIMARY KEY COMMENT 'hex HMAC-SHA256(forget_salt.salt, user id)',
  forgotten_at DATETIME(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

-- One random salt per raw database, made once (INSERT IGNORE on the fixed key keeps the first).
CREATE TABLE IF NOT EXISTS `{raw_db}`.forget_salt (
  id TINYINT NOT NULL PRIMARY KEY,
  salt CHAR(64) NOT NULL
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;
INSERT IGNORE INTO `{raw_db}`.forget_salt (id, salt) VALUES (1, SHA2(CONCAT(UUID(), RAND(), SYSDATE(6)), 256));
