-- Reverses 0004_runs.up.sql: the run history is dropped.
drop table if exists run_problems;
drop table if exists runs;
