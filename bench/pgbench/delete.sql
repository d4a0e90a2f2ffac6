-- One existing contact per transaction, never the same one twice: client c's k-th
-- transaction deletes permute(k * clients + c, rows) + 1, a pseudo-random permutation of the
-- preloaded ids 1..rows. pgbench keeps :k per client across transactions (-D k=-1 starts it).
-- run.sh runs this script a fixed number of times (-t rows/clients per client: every
-- preloaded row is deleted once) rather than for BENCH_SECONDS, and checks afterwards that
-- every transaction deleted a row (rows - count(*) = transactions).
\set k :k + 1
\set id permute(:k * :clients + :client_id, :rows, 5309) + 1
DELETE FROM bench.contacts WHERE id = :id;
