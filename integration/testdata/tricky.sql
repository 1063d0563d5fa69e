-- Data that breaks naive dump/restore tools (used by backup_test.go).
SET NAMES utf8mb4;
CREATE DATABASE shop CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci;
USE shop;
CREATE TABLE texts (
  id INT PRIMARY KEY,
  s TEXT CHARACTER SET utf8mb4,
  b BLOB,
  n INT NULL
) ENGINE=InnoDB;
INSERT INTO texts VALUES
  (1, 'MARKER-emoji 🔐😀 and ünïcødé ☃', 'binary\0with\0nuls', NULL),
  (2, NULL, UNHEX('00FF7F80C3A9E29883F09F9490'), 3),
  (3, 'quote '' double " backslash \\ tab\t newline\n cr\r end', NULL, NULL),
  (4, '', '', 0),
  (5, REPEAT('long🔐', 5000), RANDOM_BYTES(1024), -2147483648);
CREATE TABLE gen (
  a INT,
  b INT,
  c INT AS (a + b) VIRTUAL,
  d INT AS (a * b) PERSISTENT,
  j JSON CHECK (JSON_VALID(j))
) ENGINE=InnoDB;
INSERT INTO gen (a, b, j) VALUES (1, 2, '{"k": "v🔐"}'), (3, 4, NULL), (NULL, 5, '[1,2,3]');
CREATE TABLE legacy (id INT PRIMARY KEY, v VARCHAR(20), t TIMESTAMP NULL) ENGINE=MyISAM;
INSERT INTO legacy VALUES (1, 'myisam row', '2026-01-02 03:04:05'), (2, NULL, NULL);
CREATE TABLE big (
  id INT PRIMARY KEY,
  h CHAR(64),
  r DOUBLE,
  d DECIMAL(20,6),
  k VARBINARY(16)
) ENGINE=InnoDB;
INSERT INTO big SELECT seq, SHA2(seq, 256), seq / 7, seq * 1.000001, UNHEX(MD5(seq)) FROM seq_1_to_200000;
CREATE TABLE audit_log (id INT AUTO_INCREMENT PRIMARY KEY, msg VARCHAR(100)) ENGINE=InnoDB;
CREATE TRIGGER texts_ai AFTER INSERT ON texts FOR EACH ROW INSERT INTO audit_log (msg) VALUES (CONCAT('inserted ', NEW.id));
CREATE VIEW v_texts AS SELECT id, s FROM texts WHERE s IS NOT NULL;
DELIMITER //
CREATE PROCEDURE add_text(IN i INT, IN t TEXT)
BEGIN
  INSERT INTO texts (id, s) VALUES (i, t);
END//
CREATE FUNCTION twice(x INT) RETURNS INT DETERMINISTIC
BEGIN
  RETURN x * 2;
END//
DELIMITER ;
CALL add_text(6, 'via procedure 🔐');
CREATE EVENT prune_audit ON SCHEDULE EVERY 1 DAY DO DELETE FROM audit_log WHERE id < 0;

CREATE DATABASE `crm-2` CHARACTER SET latin1;
USE `crm-2`;
CREATE TABLE `odd name``s` (`col with space` VARCHAR(10) CHARACTER SET latin1, u VARCHAR(10) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin) ENGINE=InnoDB;
INSERT INTO `odd name``s` VALUES ('latin é', '🔐'), (NULL, NULL);
CREATE VIEW v_odd AS SELECT COUNT(*) AS n FROM `odd name``s`;
