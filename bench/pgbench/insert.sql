-- One durable step write: INSERT one ~200-byte row, autocommit (1 commit per transaction).
\set step random(1, 100)
INSERT INTO ceiling_step (workflow_id, step_no, status, output)
VALUES (gen_random_uuid(), :step, 'completed', 'completed step output ' || repeat('x', 110));
