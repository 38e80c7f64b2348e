CREATE TABLE notes (
    id BIGINT PRIMARY KEY,
    title TEXT NOT NULL,
    body TEXT NOT NULL,
    revision BIGINT NOT NULL
);

CREATE TABLE note_history (
    note_id BIGINT NOT NULL REFERENCES notes (id) ON DELETE CASCADE,
    revision BIGINT NOT NULL,
    title TEXT NOT NULL,
    body TEXT NOT NULL,
    PRIMARY KEY (note_id, revision)
);
