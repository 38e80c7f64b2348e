DELETE FROM people WHERE id = 1;
