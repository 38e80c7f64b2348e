DROP TABLE note_history;
DROP TABLE notes;
