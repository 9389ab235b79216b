-- Citus: the extension for the single-server scenarios the Citus schedule runs on distributed
-- tables (29_replay, 31_delete_absent: the files read DWR_CITUS, which pg_test/suite.sh sets, and
-- distribute their production table; their expected output is the single server's).
CREATE EXTENSION dms_window_reload;
