-- Portable SQL: runs on SQLite and PostgreSQL alike.
CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT NOT NULL);
CREATE INDEX notes_body ON notes (body);
