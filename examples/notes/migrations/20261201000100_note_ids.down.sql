DROP TABLE note_ids;
