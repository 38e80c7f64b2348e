-- The next id to hand out, one row. A table rather than a sequence or AUTOINCREMENT, so that the
-- same SQL runs on SQLite and PostgreSQL.
CREATE TABLE note_ids (next_id BIGINT NOT NULL);
INSERT INTO note_ids (next_id) VALUES (1);
