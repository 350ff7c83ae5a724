-- lower() now lower-cases all of Unicode (Provost registers it on every connection; see
-- src/store/sqlite_library.rs), not only ASCII letters: the index on lower(username) is
-- rebuilt with it, or a userName with a capital such as Á would be looked up under a key
-- its entry does not have.
REINDEX accounts_by_username_ci;
