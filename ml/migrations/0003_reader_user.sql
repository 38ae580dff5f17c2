-- Read-only account for the serving layer: SELECT on the serving database only.
CREATE USER IF NOT EXISTS '{reader_user}'@'%' IDENTIFIED BY '{reader_password}';
CREATE USER IF NOT EXISTS '{reader_user}'@'localhost' IDENTIFIED BY '{reader_password}';
GRANT SELECT ON `{serving_db}`.* TO '{reader_user}'@'%';
GRANT SELECT ON `{serving_db}`.* TO '{reader_user}'@'localhost';
