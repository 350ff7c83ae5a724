-- SQLite's migration 0011 rebuilds its index on lower(username) for a Unicode lower();
-- PostgreSQL's lower() always was. Nothing to do here: the file keeps the two backends'
-- migration versions the same.
SELECT 1;
