INSERT INTO notes (id, body) VALUES (1, 'first; with a semicolon');
INSERT INTO notes (id, body) VALUES (2, 'second');
