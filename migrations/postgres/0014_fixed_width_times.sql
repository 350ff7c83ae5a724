-- SQLite's migration 0014 makes its text times fixed-width so that they compare as times;
-- PostgreSQL keeps them as timestamptz and always compared them exactly. Nothing to do here:
-- the file keeps the two backends' migration versions the same.
SELECT 1;
