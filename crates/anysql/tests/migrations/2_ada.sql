INSERT INTO people (id, name) VALUES (1, 'Ada');
